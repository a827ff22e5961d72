"""The cheap disguises a copier uses to dodge exact matching, written independently of the guard.

Hangul is spelled out with the Unicode syllable arithmetic (syllable = 0xAC00 + (L·21 + V)·28 + T)
and the standard jamo order, not with anything from `tokenclub.guard`.
"""

from __future__ import annotations

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
