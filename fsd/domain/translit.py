"""Transliteration of people's names to lowercase Latin, for generated logins.

Cyrillic follows ICAO Doc 9303 as used in Russian foreign passports since 2014 (the successor of
ГОСТ Р 52535.1-2006), with one deliberate change: the hard sign ъ is dropped (as in ГОСТ 52535.1)
instead of ICAO's "ie", so «Подъячев» gives "podiachev", not "podieiachev".

    а a  б b  в v  г g  д d  е e  ё e  ж zh з z  и i  й i  к k  л l  м m  н n  о o  п p
    р r  с s  т t  у u  ф f  х kh ц ts ч ch ш sh щ shch ъ -  ы y  ь -  э e  ю iu я ia
    Ukrainian/Belarusian: і i  ї i  є ie  ґ g  ў u
    (plus Kazakh ә ғ қ ң ө ұ ү һ and Serbian/Macedonian ђ ј љ њ ћ џ ѕ to their usual Latin forms)

Every other script: lowercased, decomposed (NFKD) and stripped of combining marks ("Zoë" → "zoe"),
plus a few Latin letters that do not decompose (ß ss, æ ae, ø o, ł l, đ d, þ th, œ oe, ı i).
Characters with no Latin form (e.g. CJK) are kept; callers that need ASCII filter them out.
"""

import unicodedata

CYRILLIC: dict[str, str] = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "e",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "i",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "iu",
    "я": "ia",
    # Ukrainian and Belarusian letters
    "і": "i",
    "ї": "i",
    "є": "ie",
    "ґ": "g",
    "ў": "u",
    # a few more Cyrillic letters (Kazakh, Serbian, Macedonian), so such names still give a login
    "ә": "a",
    "ғ": "g",
    "қ": "k",
    "ң": "n",
    "ө": "o",
    "ұ": "u",
    "ү": "u",
    "һ": "h",
    "ђ": "dj",
    "ј": "j",
    "љ": "lj",
    "њ": "nj",
    "ћ": "c",
    "џ": "dz",
    "ѕ": "dz",
}

# Latin letters that NFKD does not split into base letter + combining mark.
LATIN_SPECIAL: dict[str, str] = {
    "ß": "ss",
    "æ": "ae",
    "ø": "o",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "œ": "oe",
    "ı": "i",
    "ħ": "h",
}


def transliterate(text: str) -> str:
    """Return `text` lowercased in Latin letters: «Иванов Пётр» → "ivanov petr"."""
    if not text:
        return ""
    out: list[str] = []
    for ch in text.lower():
        if ch in CYRILLIC:
            out.append(CYRILLIC[ch])
        elif ch in LATIN_SPECIAL:
            out.append(LATIN_SPECIAL[ch])
        else:
            for part in unicodedata.normalize("NFKD", ch):
                if unicodedata.combining(part):
                    continue
                part = part.lower()
                out.append(CYRILLIC.get(part, LATIN_SPECIAL.get(part, part)))
    return "".join(out)
