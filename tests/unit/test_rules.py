import hashlib
import string

import pytest

from fsd.domain import rules
from fsd.errors import ValidationError

SEED_RESERVED = ["112", "101", "102", "103", "04", "104", "100", "115", "121", "123", "109", "125", "149", "141"]


def _error(fn, *args, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------- extensions


def test_reserved_set_is_exactly_the_seed_list():
    assert rules.RESERVED_EXTENSIONS == frozenset(SEED_RESERVED)


@pytest.mark.parametrize("number", SEED_RESERVED)
def test_every_reserved_number_is_refused(number):
    err = _error(rules.validate_extension, number)
    assert err.field == "extension"
    assert str(err) == f"extension {number} is reserved for emergency and service numbers"


@pytest.mark.parametrize("number", SEED_RESERVED)
def test_reserved_number_refused_with_whitespace(number):
    err = _error(rules.validate_extension, f"  {number}\t")
    assert "reserved" in str(err)


@pytest.mark.parametrize("number", ["0", "01", "02", "03", "05", "0200", "00", "0999"])
def test_leading_zero_refused(number):
    err = _error(rules.validate_extension, number)
    assert str(err) == "extension must not start with 0"
    assert err.field == "extension"


@pytest.mark.parametrize("value", ["12a", "abc", "1 23", "+200", "-200", "20.0", "２００", "٢٠٠", "²⁰⁰", "*97", "#1"])
def test_non_digits_refused(value):
    err = _error(rules.validate_extension, value)
    assert str(err) == "extension must contain digits only"


@pytest.mark.parametrize("value", ["", "   ", None])
def test_empty_extension_refused(value):
    err = _error(rules.validate_extension, value)
    assert err.field == "extension"
    assert "required" in str(err)


@pytest.mark.parametrize("value", ["1", "9", "123456789", "999999999999"])
def test_extension_length(value):
    err = _error(rules.validate_extension, value)
    assert str(err) == f"extension must be {rules.EXTENSION_MIN_LEN} to {rules.EXTENSION_MAX_LEN} digits long"


@pytest.mark.parametrize("value", ["20", "99", "105", "110", "111", "113", "200", "201", "1000", "9999", "12345678"])
def test_valid_extensions(value):
    assert rules.validate_extension(value) == value


def test_extension_is_stripped():
    assert rules.validate_extension(" 201 \n") == "201"


def test_length_bounds_allow_3_and_4_digits():
    assert rules.EXTENSION_MIN_LEN <= 3 and rules.EXTENSION_MAX_LEN >= 4


def test_feature_codes_are_digits_and_not_reserved():
    assert rules.FEATURE_CODES
    for code in rules.FEATURE_CODES:
        assert code.isascii() and code.isdigit()
        assert not code.startswith("0")
        assert code not in rules.RESERVED_EXTENSIONS
        assert rules.EXTENSION_MIN_LEN <= len(code) <= rules.EXTENSION_MAX_LEN
    for code in rules.STAR_CODES:
        assert not code.isdigit()


@pytest.mark.parametrize("code", sorted(rules.FEATURE_CODES))
def test_feature_codes_refused(code):
    err = _error(rules.validate_extension, code)
    assert str(err).startswith(f"extension {code} is a feature code")
    assert err.field == "extension"


# ---------------------------------------------------------------- next_free_extension


def test_next_free_first():
    assert rules.next_free_extension(set()) == "200"


def test_next_free_skips_taken():
    assert rules.next_free_extension({"200", "201", "203"}) == "202"


def test_next_free_skips_reserved():
    # 100..104 and 109 are reserved; 105 is the first free 3-digit number from 100
    assert rules.next_free_extension(set(), start=100) == "105"
    assert rules.next_free_extension({"105", "106", "107", "108"}, start=100) == "110"
    assert rules.next_free_extension(set(), start=112) == "113"
    assert rules.next_free_extension(set(), start=141) == "142"
    assert rules.next_free_extension(set(), start=149) == "150"


def test_next_free_skips_feature_codes():
    for code in rules.FEATURE_CODES:
        result = rules.next_free_extension(set(), start=int(code))
        assert result == str(int(code) + 1)
        assert result not in rules.FEATURE_CODES


def test_next_free_never_returns_an_invalid_or_taken_number():
    taken: set[str] = set()
    for _ in range(300):
        ext = rules.next_free_extension(taken, start=100)
        assert ext not in taken
        assert rules.validate_extension(ext) == ext
        taken.add(ext)
    assert not taken & rules.RESERVED_EXTENSIONS
    assert not taken & set(rules.FEATURE_CODES)


def test_next_free_widens_when_range_exhausted():
    taken = {str(n) for n in range(200, 1000)}
    assert rules.next_free_extension(taken) == "1000"
    taken |= {"1000", "1001"}
    assert rules.next_free_extension(taken) == "1002"


def test_next_free_width_two():
    assert rules.next_free_extension(set(), start=10, width=2) == "10"
    taken = {str(n) for n in range(10, 100)}
    assert rules.next_free_extension(taken, start=10, width=2) == "105"


def test_next_free_tolerates_whitespace_and_ints_in_taken():
    assert rules.next_free_extension({" 200 ", 201}) == "202"


def test_next_free_start_beyond_width():
    assert rules.next_free_extension(set(), start=5000, width=3) == "5000"


def test_next_free_exhausted():
    err = _error(rules.next_free_extension, set(), start=10**rules.EXTENSION_MAX_LEN)
    assert err.field == "extension"


# ---------------------------------------------------------------- logins


@pytest.mark.parametrize(
    ("name", "login"),
    [
        ("Иванов Пётр", "ivanov.petr"),
        ("  Иванов   Пётр  ", "ivanov.petr"),
        ("Анна", "anna"),
        ("Щукин Ёжик", "shchukin.ezhik"),
        ("Юлия Хмельницкая", "iuliia.khmelnitskaia"),
        ("Ульяна", "uliana"),
        ("Эдуард", "eduard"),
        ("Подъячев Игорь", "podiachev.igor"),
        ("Kowalski", "kowalski"),
        ("O'Brien Sean", "obrien.sean"),
        ("O\u2019Brien", "obrien"),
        ("Zoë", "zoe"),
        ("Римский-Корсаков Николай", "rimskii-korsakov.nikolai"),
        ("Иванов Пётр Сергеевич", "ivanov.petr.sergeevich"),
        ("Иванов 2 Пётр!", "ivanov.petr"),
        ("-Анна-", "anna"),
        ("Я", "ia"),
        ("Мар'яна Коваль", "mariana.koval"),
        ("Марʼяна", "mariana"),
        ("Ђоковић Новак", "djokovic.novak"),
        ("Әлия Қасымова", "aliia.kasymova"),
        ("Pérez-Reverte Arturo", "perez-reverte.arturo"),
        ("Smith — John", "smith.john"),
        ("Иванов\u00a0Пётр", "ivanov.petr"),
    ],
)
def test_suggest_login(name, login):
    assert rules.suggest_login(name, set()) == login
    assert rules.validate_login(login) == login


@pytest.mark.parametrize("name", ["", "   ", "123", "!!!", "王小明", "А", "-", None])
def test_suggest_login_falls_back_to_user(name):
    assert rules.suggest_login(name, set()) == "user"
    assert rules.suggest_login(name, {"user"}) == "user2"
    assert rules.suggest_login(name, {"user", "user2"}) == "user3"


def test_suggest_login_unique_suffixes():
    taken = {"ivanov.petr"}
    assert rules.suggest_login("Иванов Пётр", taken) == "ivanov.petr2"
    taken = {"ivanov.petr", "ivanov.petr2", "ivanov.petr3"}
    assert rules.suggest_login("Иванов Пётр", taken) == "ivanov.petr4"
    # a gap is reused
    assert rules.suggest_login("Иванов Пётр", {"ivanov.petr", "ivanov.petr3"}) == "ivanov.petr2"


def test_suggest_login_taken_case_insensitive():
    assert rules.suggest_login("Анна", {"ANNA"}) == "anna2"


def test_suggest_login_many_namesakes():
    taken: set[str] = set()
    for _ in range(50):
        login = rules.suggest_login("Иванов Пётр", taken)
        assert login not in taken
        taken.add(login)
    assert "ivanov.petr50" in taken


def test_suggest_login_max_length():
    name = "Константинопольский-Достоевский Александр"
    login = rules.suggest_login(name, set())
    assert len(login) <= 32
    assert rules.validate_login(login) == login
    taken = {login}
    for _ in range(12):
        nxt = rules.suggest_login(name, taken)
        assert len(nxt) <= 32
        assert nxt not in taken
        assert rules.validate_login(nxt) == nxt
        taken.add(nxt)


def test_suggest_login_truncation_does_not_end_with_separator():
    # 31 letters + "." would be cut right after the dot
    name = "a" * 31 + " bbb"
    login = rules.suggest_login(name, set())
    assert login == "a" * 31
    assert rules.suggest_login(name, {login}) == "a" * 31 + "2"
    assert rules.suggest_login(name, {login} | {"a" * 31 + str(n) for n in range(2, 10)}) == "a" * 30 + "10"


@pytest.mark.parametrize("login", ["ab", "ivanov.petr", "user_1", "a-b", "a" * 32, "x9"])
def test_valid_logins(login):
    assert rules.validate_login(login) == login
    assert rules.LOGIN_RE.match(login)


def test_validate_login_lowercases_and_strips():
    assert rules.validate_login("  Ivanov.Petr ") == "ivanov.petr"


@pytest.mark.parametrize(
    ("login", "rule"),
    [
        ("", "required"),
        (None, "required"),
        ("a", "at least 2"),
        ("a" * 33, "at most 32"),
        ("1abc", "start with a Latin letter"),
        (".abc", "start with a Latin letter"),
        ("_abc", "start with a Latin letter"),
        ("иван", "start with a Latin letter"),
        ("ivan petrov", "may contain only"),
        ("ivan@domain", "may contain only"),
        ("ivan:1", "may contain only"),
        ("ivanов", "may contain only"),
        ("ivan+1", "may contain only"),
    ],
)
def test_invalid_logins(login, rule):
    err = _error(rules.validate_login, login)
    assert rule in str(err)
    assert err.field == "login"


# ---------------------------------------------------------------- passwords

LOOKALIKES = set("0Oo1lIi|")


def test_password_alphabet_has_no_lookalikes():
    assert not set(rules.PASSWORD_ALPHABET) & LOOKALIKES
    assert len(set(rules.PASSWORD_ALPHABET)) == len(rules.PASSWORD_ALPHABET)


def test_generated_passwords():
    seen = set()
    for _ in range(2000):
        pw = rules.generate_password()
        assert len(pw) == 12
        assert set(pw) <= set(rules.PASSWORD_ALPHABET)
        assert not set(pw) & LOOKALIKES
        assert any(c in string.ascii_lowercase for c in pw)
        assert any(c in string.ascii_uppercase for c in pw)
        assert any(c in string.digits for c in pw)
        assert rules.validate_password(pw) == pw
        seen.add(pw)
    assert len(seen) == 2000


def test_generated_password_uses_whole_alphabet():
    chars = set()
    for _ in range(500):
        chars |= set(rules.generate_password(16))
    assert chars == set(rules.PASSWORD_ALPHABET)


@pytest.mark.parametrize("length", [8, 9, 16, 32, 64])
def test_generated_password_length(length):
    for _ in range(50):
        pw = rules.generate_password(length)
        assert len(pw) == length
        rules.validate_password(pw)


@pytest.mark.parametrize("length", [0, 3, 7, 129, -1])
def test_generated_password_bad_length(length):
    err = _error(rules.generate_password, length)
    assert err.field == "length"


@pytest.mark.parametrize("pw", ["abcdEF12", "abcdefg1!", "ABCDEFG1!", "abcdEFGH!", "Pa55word", "x" * 6 + "Y1"])
def test_valid_passwords(pw):
    assert rules.validate_password(pw) == pw


@pytest.mark.parametrize(
    ("pw", "rule"),
    [
        ("", "required"),
        (None, "required"),
        ("aB1!", "at least 8"),
        ("abcDE12", "at least 8"),
        ("abcdefgh", "at least 3 of"),
        ("abcdefg1", "at least 3 of"),
        ("ABCDEFG!", "at least 3 of"),
        ("12345678", "at least 3 of"),
        ("abcd EF12", "may contain only"),
        ("пароль12AB", "may contain only"),
        ("abcdEF12\n", "may contain only"),
        ("aB1!" * 40, "at most 128"),
    ],
)
def test_invalid_passwords(pw, rule):
    err = _error(rules.validate_password, pw)
    assert rule in str(err)
    assert err.field == "password"


def test_hash_verify_roundtrip():
    pw = rules.generate_password()
    stored = rules.hash_password(pw)
    assert stored.startswith("$argon2id$")
    assert pw not in stored
    assert rules.verify_password(stored, pw)
    assert not rules.verify_password(stored, pw + "x")
    assert not rules.verify_password(stored, "")
    assert not rules.needs_rehash(stored)
    # salted: same password hashes differently
    assert rules.hash_password(pw) != stored


def test_hash_unicode_password():
    stored = rules.hash_password("пароль-Ёж-1")
    assert rules.verify_password(stored, "пароль-Ёж-1")
    assert not rules.verify_password(stored, "пароль-Еж-1")


@pytest.mark.parametrize(
    "garbage",
    ["", "garbage", "$argon2id$v=19$m=1,t=1,p=1$xx$yy", "$2b$12$abcdefghijklmnopqrstuu", None, "$argon2id$"],
)
def test_verify_garbage_hash_is_false(garbage):
    assert rules.verify_password(garbage, "whatever1A") is False
    assert rules.needs_rehash(garbage) is True


def test_needs_rehash_with_weaker_parameters():
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("abcdEF12")
    assert rules.verify_password(weak, "abcdEF12")
    assert rules.needs_rehash(weak)


def test_configure_password_hasher():
    rules.configure_password_hasher()  # start from the defaults, whatever the suite configured
    stored_default = rules.hash_password("abcdEF12")
    try:
        rules.configure_password_hasher(time_cost=1, memory_cost=1024, parallelism=1)
        fast = rules.hash_password("abcdEF12")
        assert "m=1024,t=1,p=1" in fast
        assert rules.verify_password(fast, "abcdEF12")
        assert rules.verify_password(stored_default, "abcdEF12")
        assert rules.needs_rehash(stored_default)
        assert not rules.needs_rehash(fast)
    finally:
        rules.configure_password_hasher()
    assert rules.needs_rehash(fast)
    assert not rules.needs_rehash(stored_default)


def test_sip_a1_hash_known_value():
    expected = hashlib.md5(b"ivanov.petr:acme.vats.example.ru:Xk7mPq2R").hexdigest()
    assert rules.sip_a1_hash("ivanov.petr", "acme.vats.example.ru", "Xk7mPq2R") == expected
    # RFC 2617 style fixed vector, computed independently
    assert rules.sip_a1_hash("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


def test_sip_a1_hash_is_lowercase_hex():
    value = rules.sip_a1_hash("a", "b.c", "d")
    assert len(value) == 32
    assert set(value) <= set("0123456789abcdef")


# ---------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("8 912 345-67-89", "+79123456789"),
        ("89123456789", "+79123456789"),
        ("+7 912 345 67 89", "+79123456789"),
        ("+79123456789", "+79123456789"),
        ("79123456789", "+79123456789"),
        ("7 (912) 345-67-89", "+79123456789"),
        ("9123456789", "+79123456789"),
        ("+7 (495) 123-45-67", "+74951234567"),
        ("8 495 123 45 67", "+74951234567"),
        ("8 (812) 123-45-67", "+78121234567"),
        ("  +7-912-345-67-89  ", "+79123456789"),
        ("+1 650 253 0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+375 29 123-45-67", "+375291234567"),
    ],
)
def test_normalize_phone(raw, e164):
    assert rules.normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "   ", None, "abc", "112", "8 912", "+7 912 345 67 89 00 00", "1" * 200, "201"])
def test_normalize_phone_garbage(raw):
    err = _error(rules.normalize_phone, raw)
    assert err.field == "mobile"


def test_normalize_phone_other_region():
    assert rules.normalize_phone("029 123 45 67", region="BY") == "+375291234567"


def test_validate_did():
    assert rules.validate_did("8 (495) 123-45-67") == "+74951234567"
    err = _error(rules.validate_did, "12")
    assert err.field == "number"


# ---------------------------------------------------------------- forwarding


def test_forwarding_off_without_mobile():
    assert rules.validate_forwarding("off", None, None) == ("off", 15)
    assert rules.validate_forwarding("off", 30, "") == ("off", 30)


def test_forwarding_default_delay():
    assert rules.FORWARD_DEFAULT_DELAY == 15
    assert rules.validate_forwarding("delayed", None, "+79123456789") == ("delayed", 15)
    assert rules.validate_forwarding("delayed", "", "+79123456789") == ("delayed", 15)


def test_forwarding_modes():
    assert rules.validate_forwarding("instant", None, "+79123456789") == ("instant", 15)
    assert rules.validate_forwarding(" Delayed ", "20", "+79123456789") == ("delayed", 20)
    assert rules.validate_forwarding("delayed", 1, "+79123456789") == ("delayed", 1)
    assert rules.validate_forwarding("delayed", 300, "+79123456789") == ("delayed", 300)


@pytest.mark.parametrize("mode", ["instant", "delayed"])
@pytest.mark.parametrize("mobile", [None, "", "  "])
def test_forwarding_requires_mobile(mode, mobile):
    err = _error(rules.validate_forwarding, mode, None, mobile)
    assert err.field == "mobile"
    assert "requires a mobile" in str(err)


@pytest.mark.parametrize("mode", ["instant", "delayed"])
def test_forwarding_checks_the_mobile(mode):
    err = _error(rules.validate_forwarding, mode, None, "12345")
    assert err.field == "mobile"
    assert rules.validate_forwarding(mode, None, "8 912 345-67-89") == (mode, 15)


def test_forwarding_none_mode_is_off():
    assert rules.validate_forwarding(None, None, None) == ("off", 15)


@pytest.mark.parametrize("delay", [0, -1, 301, 1000, "abc", "1.5", 2.5, True])
def test_forwarding_bad_delay(delay):
    err = _error(rules.validate_forwarding, "delayed", delay, "+79123456789")
    assert err.field == "forward_delay"
    assert "1 to 300" in str(err)


@pytest.mark.parametrize("mode", ["on", "", "always", "INSTANTLY", 1])
def test_forwarding_bad_mode(mode):
    err = _error(rules.validate_forwarding, mode, None, "+79123456789")
    assert err.field == "forward_mode"
    assert "off, instant, delayed" in str(err)


# ---------------------------------------------------------------- tariff


def test_tariff_below_limit():
    rules.check_tariff(0, 10)
    rules.check_tariff(9, 10)


def test_tariff_at_exactly_max_users():
    err = _error(rules.check_tariff, 10, 10)
    assert str(err) == "tariff limit reached: 10 of 10 users"
    assert err.field == "tariff"


def test_tariff_over_limit():
    err = _error(rules.check_tariff, 12, 10)
    assert str(err) == "tariff limit reached: 12 of 10 users"


def test_tariff_unlimited():
    rules.check_tariff(10**6, None)


def test_tariff_zero():
    assert str(_error(rules.check_tariff, 0, 0)) == "tariff limit reached: 0 of 0 users"


# ---------------------------------------------------------------- roles, strategies, actions


@pytest.mark.parametrize("role", ["admin", "user", "limited", " Admin ", "LIMITED"])
def test_roles(role):
    assert rules.validate_role(role) == role.strip().lower()


@pytest.mark.parametrize("role", ["", "root", "administrator", None, 1])
def test_bad_roles(role):
    err = _error(rules.validate_role, role)
    assert err.field == "role"
    assert "admin, user, limited" in str(err)


@pytest.mark.parametrize("s", rules.STRATEGIES)
def test_strategies(s):
    assert rules.validate_strategy(s) == s
    assert rules.validate_strategy(s.upper()) == s


@pytest.mark.parametrize("s", ["", "random", "in order", None])
def test_bad_strategy(s):
    err = _error(rules.validate_strategy, s)
    assert err.field == "strategy"
    assert "simultaneous" in str(err)


@pytest.mark.parametrize("a", rules.NO_ANSWER_ACTIONS)
def test_no_answer_actions(a):
    assert rules.validate_no_answer_action(a) == a


@pytest.mark.parametrize("a", ["", "hangup", None])
def test_bad_no_answer_action(a):
    err = _error(rules.validate_no_answer_action, a)
    assert err.field == "no_answer_action"
    assert "voicemail" in str(err)


# ---------------------------------------------------------------- seconds


@pytest.mark.parametrize(("value", "n"), [(5, 5), ("5", 5), (" 30 ", 30), (1, 1), (60, 60), (20.0, 20), ("+7", 7)])
def test_seconds(value, n):
    assert rules.validate_seconds(value, field="ring_timeout", lo=1, hi=60) == n


@pytest.mark.parametrize("value", [0, 61, -5, "", "x", "5s", "1e3", 2.5, None, True, False, [5], "9" * 40])
def test_bad_seconds(value):
    err = _error(rules.validate_seconds, value, field="ring_timeout", lo=1, hi=60)
    assert err.field == "ring_timeout"
    assert str(err) == "ring_timeout must be a whole number of seconds from 1 to 60"


# ---------------------------------------------------------------- domain


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("acme.vats.example.ru", "acme.vats.example.ru"),
        ("ACME.Example.COM", "acme.example.com"),
        ("  a.b  ", "a.b"),
        ("my-company.example.org", "my-company.example.org"),
        ("x1.y2.z3.example", "x1.y2.z3.example"),
        ("вац.рф", "xn--80ad5d.xn--p1ai"),
        ("a" * 63 + ".ru", "a" * 63 + ".ru"),
    ],
)
def test_domains(raw, clean):
    assert rules.validate_domain(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        "",
        None,
        "localhost",
        "acme",
        ".example.com",
        "example.com.",
        "a..b",
        "-a.com",
        "a-.com",
        "a_b.com",
        "a b.com",
        "user@example.com",
        "10.0.0.1",
        "a" * 64 + ".ru",
        ".".join(["abcdefghi"] * 26),
        "exa mple.com",
        "example.com/x",
        "example.com:5060",
    ],
)
def test_bad_domains(raw):
    err = _error(rules.validate_domain, raw)
    assert err.field == "domain"


# ---------------------------------------------------------------- timezone


@pytest.mark.parametrize("tz", ["Europe/Moscow", "Asia/Yekaterinburg", "UTC", " Europe/Kaliningrad "])
def test_timezones(tz):
    assert rules.validate_timezone(tz) == tz.strip()


@pytest.mark.parametrize("tz", ["", None, "Mars/Olympus", "Europe", "../../etc/passwd", "/etc/localtime", "MSK+3"])
def test_bad_timezones(tz):
    err = _error(rules.validate_timezone, tz)
    assert err.field == "timezone"


# ---------------------------------------------------------------- name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Иванов Пётр", "Иванов Пётр"),
        ("  Иванов    Пётр  ", "Иванов Пётр"),
        ("Анна", "Анна"),
        ("O'Brien", "O'Brien"),
        ("王小明", "王小明"),
    ],
)
def test_names(raw, clean):
    assert rules.validate_name(raw) == clean


@pytest.mark.parametrize("raw", ["", "   ", None, "Иванов\nПётр", "a\x00b", "tab\there", "bell\x07", "x" * 101])
def test_bad_names(raw):
    err = _error(rules.validate_name, raw)
    assert err.field == "name"


def test_name_custom_field_and_length():
    assert rules.validate_name("Manager", field="position", max_len=10) == "Manager"
    err = _error(rules.validate_name, "Senior sales manager", field="position", max_len=10)
    assert err.field == "position"
    assert "at most 10" in str(err)


# ---------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ivanov@example.com", "ivanov@example.com"),
        ("  Ivanov.Petr@Example.COM ", "Ivanov.Petr@example.com"),
        ("a+tag@mail.example.ru", "a+tag@mail.example.ru"),
        ("user@почта.рф", "user@xn--80a1acny.xn--p1ai"),
    ],
)
def test_emails(raw, clean):
    assert rules.validate_email(raw) == clean


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_empty_email_is_none(raw):
    assert rules.validate_email(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "ivanov",
        "ivanov@",
        "@example.com",
        "a@b@example.com",
        "ivanov@localhost",
        "iva nov@example.com",
        "ivanov@exa mple.com",
        ".ivanov@example.com",
        "ivanov.@example.com",
        "iva..nov@example.com",
        "ivanov@example..com",
        "ivanov@exa\nmple.com",
        "a\x00@example.com",
        "<ivanov>@example.com",
        "x" * 65 + "@example.com",
        "x@" + "a" * 250 + ".com",
    ],
)
def test_bad_emails(raw):
    err = _error(rules.validate_email, raw)
    assert err.field == "email"
    assert "not a valid e-mail address" in str(err)


# ---------------------------------------------------------------- properties (hypothesis)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_validate_extension_only_raises_validation_error(text):
    try:
        out = rules.validate_extension(text)
    except ValidationError as err:
        assert err.field == "extension"
        return
    assert out.isascii() and out.isdigit()
    assert not out.startswith("0")
    assert out not in rules.RESERVED_EXTENSIONS and out not in rules.FEATURE_CODES
    assert rules.EXTENSION_MIN_LEN <= len(out) <= rules.EXTENSION_MAX_LEN


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sets(st.sampled_from(["user", "user2", "ivanov.petr", "anna", "a" * 32])))
def test_suggest_login_always_valid_and_free(name, taken):
    login = rules.suggest_login(name, taken)
    assert rules.LOGIN_RE.match(login)
    assert rules.validate_login(login) == login
    assert login not in taken


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x400, max_codepoint=0x45F), max_size=40))
def test_transliterated_russian_is_ascii(text):
    from fsd.domain.translit import transliterate

    assert transliterate(text).isascii()


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=100, max_value=1200).map(str), max_size=400), st.integers(10, 1100))
def test_next_free_extension_property(taken, start):
    ext = rules.next_free_extension(taken, start=start)
    assert ext not in taken
    assert rules.validate_extension(ext) == ext
    assert int(ext) >= start
    # it is the lowest: nothing valid and free of the same width lies between start and ext
    for n in range(max(start, 10 ** (len(ext) - 1)), int(ext)):
        candidate = str(n)
        if len(candidate) != len(ext) or candidate in taken:
            continue
        with pytest.raises(ValidationError):
            rules.validate_extension(candidate)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_phone_and_password_validators_only_raise_validation_error(text):
    for fn in (
        rules.normalize_phone,
        rules.validate_password,
        rules.validate_domain,
        rules.validate_email,
        rules.validate_timezone,
        rules.validate_name,
        rules.validate_login,
    ):
        try:
            fn(text)
        except ValidationError:
            pass


def test_error_messages_quote_input_safely():
    err = _error(rules.validate_email, "x\x07y@" + "a" * 300)
    msg = str(err)
    assert "\x07" not in msg
    assert len(msg) < 120
    err = _error(rules.validate_timezone, "Bad\x00Zone")
    assert "\x00" not in str(err) and "Bad?Zone" in str(err)
