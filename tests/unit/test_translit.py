import pytest

from fsd.domain.translit import transliterate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Иванов Пётр", "ivanov petr"),
        ("Щукин Ёжик", "shchukin ezhik"),
        ("ЩУКИН ЁЖИК", "shchukin ezhik"),
        ("Юлия Хмельницкая", "iuliia khmelnitskaia"),
        ("Ульяна", "uliana"),
        ("Эдуард", "eduard"),
        ("Подъячев", "podiachev"),
        ("Цой Виктор", "tsoi viktor"),
        ("Чайковский", "chaikovskii"),
        ("Шишкин", "shishkin"),
        ("Рыжий", "ryzhii"),
        ("Жуков", "zhukov"),
        ("Фёдор", "fedor"),
        ("Ёлкин", "elkin"),
        ("й", "i"),
        ("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "abvgdeezhziiklmnoprstufkhtschshshchyeiuia"),
        # Ukrainian / Belarusian
        ("Ґалій", "galii"),
        ("Їжакевич", "izhakevich"),
        ("Євген", "ievgen"),
        ("Іван", "ivan"),
        ("Ўладзімір", "uladzimir"),
        ("Қазақстан Әлия", "kazakstan aliia"),
        ("Ђорђе Љубић Њушка Џон", "djordje ljubic njushka dzon"),
        # other Latin scripts: diacritics stripped
        ("Kowalski", "kowalski"),
        ("O'Brien", "o'brien"),
        ("Zoë", "zoe"),
        ("François Müller", "francois muller"),
        ("Łukasz Wałęsa", "lukasz walesa"),
        ("Straße", "strasse"),
        ("Søren Ærø", "soren aero"),
        ("Dvořák", "dvorak"),
        ("", ""),
        ("123 !?", "123 !?"),
    ],
)
def test_transliterate(text, expected):
    assert transliterate(text) == expected


def test_transliterate_decomposed_input():
    # "й" and "ё" typed as base letter + combining mark must give the same result as the precomposed ones
    assert transliterate("и\u0306") == transliterate("й") == "i"
    assert transliterate("Пе\u0308тр") == "petr"


def test_transliterate_output_is_lowercase_ascii_for_cyrillic_and_latin():
    text = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ ÀÉÎÕÜÇÑ"
    out = transliterate(text)
    assert out.isascii()
    assert out == out.lower()


def test_transliterate_keeps_unknown_scripts():
    assert transliterate("王") == "王"
