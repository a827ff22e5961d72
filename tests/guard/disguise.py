"""The cheap disguises a copier uses to dodge exact matching, written independently of the guard.

Hangul is spelled out with the Unicode syllable arithmetic (syllable = 0xAC00 + (L·21 + V)·28 + T)
and the standard jamo order, not with anything from `tokenclub.guard`.
"""

from __future__ import annotations

import base64
import importlib.resources
import unicodedata
from collections.abc import Callable

LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
TAILS = ("", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")
SPLIT = {"ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ"}


def compatibility_jamo(text: str, split_compounds: bool = False) -> str:
    """Every syllable typed out letter by letter (한 → ㅎㅏㄴ)."""
    out = []
    for char in text:
        code = ord(char) - 0xAC00
        if 0 <= code < 11172:
            letters = LEADS[code // 588] + VOWELS[code % 588 // 28] + TAILS[code % 28]
            out.append("".join(SPLIT.get(c, c) for c in letters) if split_compounds else letters)
        else:
            out.append(char)
    return "".join(out)


def conjoining_jamo(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def zero_width(text: str) -> str:
    return "\u200b".join(text)


def spaced(text: str) -> str:
    return " ".join(c for c in text if not c.isspace())


def unspaced(text: str) -> str:
    return "".join(text.split())


def punctuated(text: str) -> str:
    return "·".join(text.split()).replace(".", "!") + "…"


def shouting(text: str) -> str:
    return text.upper()


def verbatim(text: str) -> str:
    return text


def split_compound_jamo(text: str) -> str:
    return compatibility_jamo(text, split_compounds=True)


def all_at_once(text: str) -> str:
    return zero_width(full_width(compatibility_jamo(punctuated(text))))


DISGUISES: dict[str, Callable[[str], str]] = {
    "verbatim": verbatim,
    "spaced": spaced,
    "unspaced": unspaced,
    "punctuated": punctuated,
    "nfd": conjoining_jamo,
    "compatibility_jamo": compatibility_jamo,
    "split_compound_jamo": split_compound_jamo,
    "full_width": full_width,
    "zero_width": zero_width,
    "upper_case": shouting,
    "all_at_once": all_at_once,
}


def _every(text: str, filler: str, step: int) -> str:
    """`filler` after every `step` characters (spaces dropped first)."""
    letters = unspaced(text)
    return filler.join(letters[i : i + step] for i in range(0, len(letters), step))


def filler_letter(text: str) -> str:
    return _every(text, "x", 2)


def filler_syllable(text: str) -> str:
    return _every(text, "음", 1)


def filler_word(text: str) -> str:
    return _every(text, " 그리고 ", 3)


def html_tags(text: str) -> str:
    return "".join(f"<span>{c}</span>" for c in text)


def html_entities(text: str) -> str:
    return "".join(f"&#{ord(c)};" for c in text)


def json_escapes(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def percent_encoded(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def base64_run(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def reversed_text(text: str) -> str:
    return text[::-1]


def _hanja_of() -> dict[str, str]:
    """Hangul syllable → a Han character read so, from the dictionary `pyhanja` ships."""
    table: dict[str, str] = {}
    for line in (
        importlib.resources.files("pyhanja.data").joinpath("hanja.txt").read_text("utf-8").splitlines()
    ):
        hangul, _, rest = line.partition(":")
        hanja = rest.partition(":")[0]
        if len(hangul) == 1 and len(hanja) == 1 and not line.startswith("#"):
            table.setdefault(hangul, hanja)
    return table


def hanja(text: str) -> str:
    table = _hanja_of()
    return "".join(table.get(c, c) for c in text)


LOOKALIKE_JAMO = {"ㅇ": "〇", "ㅣ": "丨", "ㅁ": "口"}


def lookalike_jamo(text: str) -> str:
    """Typed-out jamo with ㅇ, ㅣ, ㅁ written as the Han or symbol characters they look like."""
    return "".join(LOOKALIKE_JAMO.get(c, c) for c in compatibility_jamo(text))


def romanized(text: str) -> str:
    """Each syllable transliterated (Revised Romanization, letter by letter), hyphens between."""
    from anyascii import anyascii

    return " ".join("-".join(anyascii(c).lower() for c in word) for word in text.split())


VIEW_DISGUISES: dict[str, Callable[[str], str]] = {
    "filler_letter": filler_letter,
    "filler_syllable": filler_syllable,
    "filler_word": filler_word,
    "html_tags": html_tags,
    "html_entities": html_entities,
    "json_escapes": json_escapes,
    "percent_encoded": percent_encoded,
    "base64": base64_run,
    "reversed": reversed_text,
    "hanja": hanja,
    "lookalike_jamo": lookalike_jamo,
    "romanized": romanized,
}
"""Disguises that only the guard's canonical views undo (`guard/detection/views.py`)."""
ALL_DISGUISES = DISGUISES | VIEW_DISGUISES
