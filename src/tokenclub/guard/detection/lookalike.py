"""Character data for the guard's views, read from maintained packages (never typed by hand).

- **Look-alikes** (`confusable-homoglyphs`: Unicode's confusables.txt as JSON): a letter of
  another script that Unicode lists as confusable with a Hangul letter or an ASCII letter or
  digit is read as that letter (丨 → ㅣ, 一 → ㅡ, Cyrillic а → a, 〇 → o). Only non-ASCII,
  non-Hangul letters and numbers are folded, so ordinary text keeps its letters.
- **Hanja readings** (`pyhanja`'s dictionary, libhangul's hanja table): each Han character's
  Hangul reading (大 → 대, 韓 → 한), at a word's start and inside one (羅 → 나 / 라).
- **Romanization** (`anyascii`): the Revised Romanization's letter-by-letter transliteration
  of every Hangul syllable (값 → gabs), inverted: a hyphen-separated group that spells exactly
  one syllable is read back as it.
"""

from __future__ import annotations

import importlib.resources
import json
import unicodedata
from functools import cache

_HANGUL_LETTERS = range(0x3131, 0x318F)
_SYLLABLES = range(0xAC00, 0xD7A4)


def _is_hangul(char: str) -> bool:
    cp = ord(char)
    return cp in _HANGUL_LETTERS or cp in _SYLLABLES or 0x1100 <= cp < 0x1200


def _target(homoglyph: str) -> str | None:
    """What a look-alike is read as: a Hangul compatibility letter, else an ASCII letter or digit."""
    if len(homoglyph) != 1:
        return None
    if ord(homoglyph) in _HANGUL_LETTERS:
        return homoglyph
    if homoglyph.isascii() and homoglyph.isalnum():
        return homoglyph.casefold()
    return None


@cache
def lookalikes() -> dict[str, str]:
    """Each foldable character → the Hangul or ASCII letter Unicode lists it as confusable with."""
    data = json.loads(
        importlib.resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    table: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii() or _is_hangul(char):
            continue
        if unicodedata.category(char)[0] not in "LN":
            continue
        targets = [t for h in homoglyphs if (t := _target(h["c"])) is not None]
        hangul = [t for t in targets if ord(t) in _HANGUL_LETTERS]
        chosen = hangul or targets
        if chosen:
            table[char] = chosen[0]
    return table


@cache
def hanja_readings() -> dict[str, tuple[str, str]]:
    """Each Han character → its Hangul reading at the start of a word and inside one.

    Korean writes some readings differently at a word's start (the initial sound rule: 羅 is 라
    inside a word, 나 at its start); the dictionary lists both, so the reading inside a word is
    the one with ㄹ (else ㄴ), and the one at the start the same syllable with ㄴ or ㅇ."""
    text = importlib.resources.files("pyhanja.data").joinpath("hanja.txt").read_text("utf-8")
    readings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        hangul, _, rest = line.partition(":")
        hanja = rest.partition(":")[0]
        if len(hangul) == 1 and len(hanja) == 1 and 0xAC00 <= ord(hangul) < 0xD7A4:
            found = readings.setdefault(hanja, [])
            if hangul not in found:
                found.append(hangul)
    return {hanja: _word_forms(found) for hanja, found in readings.items()}


_RIEUL, _NIEUN, _IEUNG = 5, 2, 11  # lead consonant indexes in the syllable arithmetic


def _lead(syllable: str) -> int:
    return (ord(syllable) - 0xAC00) // 588


def _rest(syllable: str) -> int:
    return (ord(syllable) - 0xAC00) % 588


def _word_forms(found: list[str]) -> tuple[str, str]:
    """(reading at a word's start, reading inside a word) from a character's readings."""
    inside = next((r for r in found if _lead(r) == _RIEUL), None)
    inside = inside or next((r for r in found if _lead(r) == _NIEUN), found[0])
    softer = (_NIEUN, _IEUNG) if _lead(inside) == _RIEUL else (_IEUNG,) if _lead(inside) == _NIEUN else ()
    start = next((r for r in found if _lead(r) in softer and _rest(r) == _rest(inside)), inside)
    return start, inside


@cache
def romanized_syllables() -> dict[str, str]:
    """Lower-case transliteration → syllable, for the transliterations only one syllable has."""
    from anyascii import anyascii

    seen: dict[str, list[str]] = {}
    for cp in _SYLLABLES:
        syllable = chr(cp)
        seen.setdefault(anyascii(syllable).lower(), []).append(syllable)
    return {latin: found[0] for latin, found in seen.items() if len(found) == 1}
