"""Pure domain rules of fsd: validation and generation of tenant, employee and department values.

No I/O here. Every rule violation raises fsd.errors.ValidationError(message, field=...) whose English
message names the rule; the message is shown verbatim in the CLI, the cabinet and the API.

Field names used in errors (the services map them to form inputs): extension, login, password,
length, mobile, number, forward_mode, forward_delay, tariff, role, domain, timezone, email, strategy,
no_answer_action, plus whatever `field=` the caller passes to validate_name / validate_seconds.
"""

import hashlib
import re
import secrets
import string
import unicodedata
import zoneinfo

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fsd.domain.translit import transliterate
from fsd.errors import ValidationError

__all__ = [
    "EXTENSION_MAX_LEN",
    "EXTENSION_MIN_LEN",
    "FEATURE_CODES",
    "FORWARD_DEFAULT_DELAY",
    "FORWARD_MODES",
    "LOGIN_MAX_LEN",
    "LOGIN_RE",
    "NO_ANSWER_ACTIONS",
    "PASSWORD_ALPHABET",
    "PASSWORD_MIN_LEN",
    "RESERVED_EXTENSIONS",
    "ROLES",
    "STAR_CODES",
    "STRATEGIES",
    "check_tariff",
    "configure_password_hasher",
    "generate_password",
    "hash_password",
    "needs_rehash",
    "next_free_extension",
    "normalize_phone",
    "sip_a1_hash",
    "suggest_login",
    "transliterate",
    "validate_did",
    "validate_domain",
    "validate_email",
    "validate_extension",
    "validate_forwarding",
    "validate_login",
    "validate_name",
    "validate_no_answer_action",
    "validate_password",
    "validate_role",
    "validate_seconds",
    "validate_strategy",
    "validate_timezone",
]

# ---------------------------------------------------------------------------------------------
# Extensions
# ---------------------------------------------------------------------------------------------

#: Emergency and information-service numbers that may never be an extension (customer seed §1.1).
RESERVED_EXTENSIONS: frozenset[str] = frozenset(
    {"112", "101", "102", "103", "04", "104", "100", "115", "121", "123", "109", "125", "149", "141"}
)

#: Digit feature codes dialled from any phone of any tenant; they are taken in every tenant, so no
#: employee or department may use them. Kept few and outside the usual 2xx-4xx extension range.
FEATURE_CODES: dict[str, str] = {
    "555": "voicemail box",
    "777": "callback queue status",
    "999": "echo test",
}

#: Star codes (never collide with extensions, which are digits only). Informative for the router.
STAR_CODES: dict[str, str] = {
    "*97": "voicemail box",
    "*8": "call pickup",
}

#: Extensions are 2..8 digits: 2 allows short numbers like "20", 8 stays well below the length of an
#: external number (so the router can always tell an extension from a PSTN number).
EXTENSION_MIN_LEN = 2
EXTENSION_MAX_LEN = 8

_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)
_SHOW_MAX = 60


def _show(value) -> str:
    """User input quoted back in an error message: control characters as '?', at most 60 characters."""
    text = "".join("?" if unicodedata.category(c) in ("Cc", "Cs") else c for c in str(value))
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 1] + "\u2026"


def validate_extension(ext: str) -> str:
    """Check an internal number and return it stripped of surrounding whitespace."""
    if ext is None:
        raise ValidationError("extension is required", field="extension")
    ext = str(ext).strip()
    if not ext:
        raise ValidationError("extension is required", field="extension")
    if not _DIGITS_RE.fullmatch(ext):
        raise ValidationError("extension must contain digits only", field="extension")
    if ext in RESERVED_EXTENSIONS:
        raise ValidationError(f"extension {ext} is reserved for emergency and service numbers", field="extension")
    if ext.startswith("0"):
        raise ValidationError("extension must not start with 0", field="extension")
    if not EXTENSION_MIN_LEN <= len(ext) <= EXTENSION_MAX_LEN:
        raise ValidationError(
            f"extension must be {EXTENSION_MIN_LEN} to {EXTENSION_MAX_LEN} digits long", field="extension"
        )
    if ext in FEATURE_CODES:
        raise ValidationError(f"extension {ext} is a feature code ({FEATURE_CODES[ext]})", field="extension")
    return ext


def _is_valid_extension(ext: str) -> bool:
    try:
        validate_extension(ext)
    except ValidationError:
        return False
    return True


def next_free_extension(taken: set[str], *, start: int = 200, width: int = 3) -> str:
    """Lowest valid extension of `width` digits, >= `start`, not in `taken`.

    `taken` is everything numbered in the tenant (employees, departments); feature codes and
    reserved numbers are skipped anyway. When all `width`-digit numbers from `start` up are used,
    the search continues with one more digit (from 10**width), up to EXTENSION_MAX_LEN digits.
    """
    used = {str(t).strip() for t in taken}
    width = max(width, EXTENSION_MIN_LEN)
    n = max(start, 10 ** (width - 1))
    while width <= EXTENSION_MAX_LEN:
        top = 10**width
        while n < top:
            candidate = str(n)
            if len(candidate) == width and candidate not in used and _is_valid_extension(candidate):
                return candidate
            n += 1
        width += 1
        n = max(start, 10 ** (width - 1))
    raise ValidationError("no free extension left", field="extension")


# ---------------------------------------------------------------------------------------------
# Logins
# ---------------------------------------------------------------------------------------------

LOGIN_MAX_LEN = 32
#: SIP-username-safe login: a Latin letter, then 1..31 of a-z 0-9 . _ -
LOGIN_RE = re.compile(r"^[a-z][a-z0-9._-]{1,31}\Z", re.ASCII)
_LOGIN_CHARS_RE = re.compile(r"[a-z0-9._-]*", re.ASCII)
_APOSTROPHES = str.maketrans("", "", "'`\u2019\u02bc\u2018")
_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)*", re.ASCII)


def validate_login(login: str) -> str:
    """Lowercase and strip a login; raise if it breaks LOGIN_RE (each part of the rule explained)."""
    if login is None:
        raise ValidationError("login is required", field="login")
    login = str(login).strip().lower()
    if not login:
        raise ValidationError("login is required", field="login")
    if len(login) > LOGIN_MAX_LEN:
        raise ValidationError(f"login must be at most {LOGIN_MAX_LEN} characters long", field="login")
    if len(login) < 2:
        raise ValidationError("login must be at least 2 characters long", field="login")
    if not ("a" <= login[0] <= "z"):
        raise ValidationError("login must start with a Latin letter (a-z)", field="login")
    if not _LOGIN_CHARS_RE.fullmatch(login):
        raise ValidationError("login may contain only Latin letters a-z, digits 0-9, '.', '_' and '-'", field="login")
    return login


def _with_suffix(base: str, suffix: str) -> str:
    room = LOGIN_MAX_LEN - len(suffix)
    return base[:room].rstrip(".-_") + suffix


def suggest_login(name: str, taken: set[str]) -> str:
    """A free login from a person's name: «Иванов Пётр» → "ivanov.petr", then "ivanov.petr2", ...

    Words are transliterated (see fsd.domain.translit) and joined with '.'; everything but Latin
    letters (and a hyphen inside a double name) is dropped. With nothing usable left the login is
    "user". `taken` is compared case-insensitively. The result always passes validate_login.
    """
    used = {str(t).strip().lower() for t in taken}
    text = (name or "").translate(_APOSTROPHES)
    words = _WORD_RE.findall(transliterate(text))
    base = ".".join(words)
    base = _with_suffix(base, "")
    if not LOGIN_RE.match(base):
        base = "user"
    if base not in used:
        return base
    n = 2
    while True:
        candidate = _with_suffix(base, str(n))
        if candidate not in used:
            return candidate
        n += 1


# ---------------------------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------------------------

_LOOKALIKES = set("0Oo1lIi|")
_PW_LOWER = "".join(c for c in string.ascii_lowercase if c not in _LOOKALIKES)
_PW_UPPER = "".join(c for c in string.ascii_uppercase if c not in _LOOKALIKES)
_PW_DIGITS = "".join(c for c in string.digits if c not in _LOOKALIKES)
#: Alphabet of generated passwords: letters and digits without look-alikes (0 O o 1 l I i).
#: No punctuation, so the password can be typed on a desk phone's keypad menu.
PASSWORD_ALPHABET = _PW_LOWER + _PW_UPPER + _PW_DIGITS
PASSWORD_MIN_LEN = 8
PASSWORD_MAX_LEN = 128
_PASSWORD_PRINTABLE = set(string.ascii_letters + string.digits + string.punctuation)


def generate_password(length: int = 12) -> str:
    """A random password (secrets) with at least one lowercase, one uppercase letter and one digit."""
    if not isinstance(length, int) or isinstance(length, bool) or not (PASSWORD_MIN_LEN <= length <= PASSWORD_MAX_LEN):
        raise ValidationError(f"password length must be {PASSWORD_MIN_LEN} to {PASSWORD_MAX_LEN}", field="length")
    rng = secrets.SystemRandom()
    chars = [secrets.choice(_PW_LOWER), secrets.choice(_PW_UPPER), secrets.choice(_PW_DIGITS)]
    chars += [secrets.choice(PASSWORD_ALPHABET) for _ in range(length - len(chars))]
    rng.shuffle(chars)
    return "".join(chars)


def validate_password(pw: str) -> str:
    """A hand-set password: 8..128 printable ASCII characters (no spaces), 3 of 4 character classes."""
    if pw is None or pw == "":
        raise ValidationError("password is required", field="password")
    if len(pw) < PASSWORD_MIN_LEN:
        raise ValidationError(f"password must be at least {PASSWORD_MIN_LEN} characters long", field="password")
    if len(pw) > PASSWORD_MAX_LEN:
        raise ValidationError(f"password must be at most {PASSWORD_MAX_LEN} characters long", field="password")
    if any(c not in _PASSWORD_PRINTABLE for c in pw):
        raise ValidationError(
            "password may contain only Latin letters, digits and ASCII punctuation (no spaces), "
            "so that SIP phones can use it",
            field="password",
        )
    classes = sum(
        (
            any(c in string.ascii_lowercase for c in pw),
            any(c in string.ascii_uppercase for c in pw),
            any(c in string.digits for c in pw),
            any(c in string.punctuation for c in pw),
        )
    )
    if classes < 3:
        raise ValidationError(
            "password must contain at least 3 of: lowercase letters, uppercase letters, digits, symbols",
            field="password",
        )
    return pw


_HASHER = PasswordHasher()  # argon2id, argon2-cffi defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4)


def configure_password_hasher(
    *, time_cost: int | None = None, memory_cost: int | None = None, parallelism: int | None = None
) -> None:
    """Replace the argon2id parameters used by hash_password (all None: back to the defaults).

    For deployments on small hosts and for test suites that create many users; hashes made with
    other parameters still verify, and needs_rehash() reports them so they can be upgraded at sign-in.
    """
    global _HASHER
    kwargs = {
        k: v
        for k, v in (("time_cost", time_cost), ("memory_cost", memory_cost), ("parallelism", parallelism))
        if v is not None
    }
    _HASHER = PasswordHasher(**kwargs)


def hash_password(pw: str) -> str:
    """Slow salted argon2id hash for the cabinet sign-in."""
    return _HASHER.hash(pw)


def verify_password(stored_hash: str, pw: str) -> bool:
    """True if `pw` matches `stored_hash`; False on mismatch, garbage or empty hash (never raises)."""
    if not isinstance(stored_hash, str) or not stored_hash or not isinstance(pw, str):
        return False
    try:
        return _HASHER.verify(stored_hash, pw)
    except (VerificationError, InvalidHashError, TypeError, ValueError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True if the hash was made with other parameters than the current ones (or is unreadable)."""
    if not isinstance(stored_hash, str) or not stored_hash:
        return True
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except (InvalidHashError, TypeError, ValueError):
        return True


def sip_a1_hash(login: str, domain: str, password: str) -> str:
    """SIP digest HA1: md5 of "login:domain:password" (UTF-8), lowercase hex (FreeSWITCH `a1-hash`)."""
    data = f"{login}:{domain}:{password}".encode()
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------------------------
# Phone numbers and forwarding
# ---------------------------------------------------------------------------------------------

_PHONE_MAX_INPUT = 64
_PHONE_CHARS_RE = re.compile(r"\+?[0-9() .-]*[0-9][0-9() .-]*", re.ASCII)


def normalize_phone(number: str, *, region: str = "RU", field: str = "mobile") -> str:
    """An external number (mobile or landline) in E.164: "8 912 345-67-89" → "+79123456789"."""
    if number is None or not str(number).strip():
        raise ValidationError("phone number is required", field=field)
    text = str(number).strip()
    if len(text) > _PHONE_MAX_INPUT:
        raise ValidationError("phone number is too long", field=field)
    if not _PHONE_CHARS_RE.fullmatch(text):
        raise ValidationError(
            f"not a valid phone number: {_show(text)} (use digits, optionally a leading + and spaces, ( ) - .)",
            field=field,
        )
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"not a valid phone number: {_show(text)}", field=field) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(f"not a valid phone number: {_show(text)}", field=field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def validate_did(number: str) -> str:
    """A company number (DID) in E.164."""
    return normalize_phone(number, field="number")


FORWARD_MODES = ("off", "instant", "delayed")
FORWARD_DEFAULT_DELAY = 15
FORWARD_DELAY_MIN = 1
FORWARD_DELAY_MAX = 300


def validate_forwarding(mode: str, delay: int | None, mobile: str | None) -> tuple[str, int]:
    """Forwarding to the mobile: returns (mode, delay seconds).

    mode None means "off"; delay None or "" means 15 s; instant/delayed need a valid mobile number
    (any form normalize_phone accepts; store the normalised one).
    """
    mode = _choice("off" if mode is None else mode, FORWARD_MODES, "forwarding mode", "forward_mode")
    if delay is None or (isinstance(delay, str) and not delay.strip()):
        seconds = FORWARD_DEFAULT_DELAY
    else:
        seconds = validate_seconds(delay, field="forward_delay", lo=FORWARD_DELAY_MIN, hi=FORWARD_DELAY_MAX)
    if mode != "off":
        if mobile is None or not str(mobile).strip():
            raise ValidationError(f"forwarding '{mode}' requires a mobile phone number", field="mobile")
        normalize_phone(mobile, field="mobile")
    return mode, seconds


# ---------------------------------------------------------------------------------------------
# Tenant
# ---------------------------------------------------------------------------------------------


def check_tariff(current_count: int, max_users: int) -> None:
    """Raise when creating one more employee would exceed the tariff's `max_users` (None: no limit)."""
    if max_users is not None and current_count >= max_users:
        raise ValidationError(f"tariff limit reached: {current_count} of {max_users} users", field="tariff")


ROLES = ("admin", "user", "limited")


def _choice(value, allowed: tuple[str, ...], what: str, field: str) -> str:
    cleaned = value.strip().lower() if isinstance(value, str) else value
    if cleaned not in allowed:
        raise ValidationError(f"{what} must be one of {', '.join(allowed)}", field=field)
    return cleaned


def validate_role(role: str) -> str:
    return _choice(role, ROLES, "role", "role")


_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


def validate_domain(domain: str) -> str:
    """A tenant's SIP domain: lowercase hostname with at least one dot, <= 253 chars, not an IP address.

    Internationalised names (e.g. «вац.рф») are converted to their punycode (xn--) form.
    """
    text = (domain or "").strip().lower() if isinstance(domain, str) or domain is None else ""
    if not text:
        raise ValidationError("domain is required", field="domain")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValidationError(f"domain is not a valid host name: {_show(domain)}", field="domain") from exc
    if len(text) > 253:
        raise ValidationError("domain must be at most 253 characters long", field="domain")
    labels = text.split(".")
    if len(labels) < 2:
        raise ValidationError("domain must contain at least one dot (e.g. company.example.com)", field="domain")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise ValidationError(
                "domain labels must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
                field="domain",
            )
    if labels[-1].isdigit():
        raise ValidationError("domain must be a host name, not an IP address", field="domain")
    return text


def validate_timezone(tz: str) -> str:
    """An IANA time zone name that zoneinfo can load, e.g. "Europe/Moscow"."""
    text = tz.strip() if isinstance(tz, str) else ""
    if not text:
        raise ValidationError("timezone is required", field="timezone")
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(
            f"unknown timezone: {_show(text)} (use an IANA name like Europe/Moscow)", field="timezone"
        ) from exc
    return text


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def validate_name(name: str, *, field: str = "name", max_len: int = 100) -> str:
    """Strip, collapse inner whitespace, require non-empty, no control characters, <= max_len."""
    if name is None or not isinstance(name, str):
        raise ValidationError(f"{field} is required", field=field)
    if _has_control(name.strip()):
        raise ValidationError(f"{field} must not contain control characters", field=field)
    text = " ".join(name.split())
    if not text:
        raise ValidationError(f"{field} is required", field=field)
    if len(text) > max_len:
        raise ValidationError(f"{field} must be at most {max_len} characters long", field=field)
    return text


def validate_email(email: str | None) -> str | None:
    """A plausible e-mail address (one @, local part, domain with a dot); None or "" → None."""
    if email is None:
        return None
    text = str(email).strip()
    if not text:
        return None
    bad = ValidationError(f"not a valid e-mail address: {_show(text)}", field="email")
    if len(text) > 254 or _has_control(text) or any(c.isspace() for c in text):
        raise bad
    if text.count("@") != 1:
        raise bad
    local, host = text.split("@")
    if not local or len(local) > 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        raise bad
    if any(c in '<>()[]\\,;:"' for c in local):
        raise bad
    try:
        host = validate_domain(host)
    except ValidationError as exc:
        raise bad from exc
    return f"{local}@{host}"


# ---------------------------------------------------------------------------------------------
# Departments
# ---------------------------------------------------------------------------------------------

STRATEGIES = ("simultaneous", "evenly", "in_order", "cascade")
NO_ANSWER_ACTIONS = ("voicemail", "forward_external", "transfer_employee", "transfer_department")


def validate_strategy(s) -> str:
    return _choice(s, STRATEGIES, "strategy", "strategy")


def validate_no_answer_action(a) -> str:
    return _choice(a, NO_ANSWER_ACTIONS, "no-answer action", "no_answer_action")


_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)


def validate_seconds(value, *, field: str, lo: int, hi: int) -> int:
    """A whole number of seconds in [lo, hi]; accepts int, integral float, or a decimal string."""
    bad = ValidationError(f"{field} must be a whole number of seconds from {lo} to {hi}", field=field)
    if isinstance(value, bool) or value is None:
        raise bad
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise bad
        n = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _INT_RE.fullmatch(text) or len(text) > 12:
            raise bad
        n = int(text)
    else:
        raise bad
    if not lo <= n <= hi:
        raise bad
    return n
