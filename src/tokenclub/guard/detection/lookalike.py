"""Character data for the guard's views, read from maintained packages (never typed by hand).

- **Look-alikes** (`confusable-homoglyphs`: Unicode's confusables.txt as JSON): a letter of
  another script that Unicode lists as confusable with a Hangul letter or an ASCII letter or
  digit is read as that letter (丨 → ㅣ, 一 → ㅡ, Cyrillic а → a, 〇 → o). Only non-ASCII,
  non-Hangul letters and numbers are folded, so ordinary text keeps its letters.
- **Hanja readings** (`pyhanja`'s dictionary, libhangul's hanja table): each Han character's
  Hangul reading (大 → 대, 韓 → 한), at a word's start and inside one (羅 → 나 / 라), and every
  reading the dictionary lists with its initial-sound-law variants (列 → 열 / 렬, 金 → 금 / 김),
  among which the views let the index choose.
- **Jamo** (the syllable arithmetic's letters, U+3131–U+3163): what an unknown symbol inside
  typed-out jamo may stand for; the index chooses.
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
def _dictionary() -> dict[str, list[str]]:
    """Each single Han character → its one-syllable Hangul readings, in the order pyhanja's
    dictionary lists them."""
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
    return readings


@cache
def hanja_readings() -> dict[str, tuple[str, str]]:
    """Each Han character → its Hangul reading at the start of a word and inside one.

    Korean writes some readings differently at a word's start (the initial sound rule: 羅 is 라
    inside a word, 나 at its start); the dictionary lists both, so the reading inside a word is
    the one with ㄹ (else ㄴ), and the one at the start the same syllable with ㄴ or ㅇ."""
    return {hanja: _word_forms(found) for hanja, found in _dictionary().items()}


@cache
def hanja_candidates() -> dict[str, tuple[str, ...]]:
    """Each Han character → every reading it may have in running text, the likeliest first: the
    dictionary's readings and their initial-sound-law variants (a reading with ㄹ is written
    with ㄴ or ㅇ at a word's start, one with ㄴ with ㅇ; 列 → 렬 / 열, 女 → 녀 / 여)."""
    candidates: dict[str, tuple[str, ...]] = {}
    for hanja, found in _dictionary().items():
        forms: list[str] = []
        for reading in (form for hangul in found for form in (hangul, *_softened(hangul))):
            if reading not in forms:
                forms.append(reading)
        candidates[hanja] = tuple(forms)
    return candidates


def _softened(syllable: str) -> tuple[str, ...]:
    """The initial-sound-law form of a reading at a word's start: before ㅣ or a y-vowel ㄹ and
    ㄴ become ㅇ (렬 → 열, 녀 → 여), before any other vowel ㄹ becomes ㄴ (락 → 낙)."""
    lead = _lead(syllable)
    if lead not in (_RIEUL, _NIEUN):
        return ()
    vowel = unicodedata.name(syllable).split()[-1]  # e.g. RYEOL: lead, vowel, tail in Latin
    y_vowel = vowel.removeprefix("R" if lead == _RIEUL else "N")[:1] in ("Y", "I")
    if lead == _NIEUN and not y_vowel:
        return ()
    return (chr(0xAC00 + (_IEUNG if y_vowel else _NIEUN) * 588 + _rest(syllable)),)


JAMO = tuple(chr(cp) for cp in range(0x3131, 0x3164))
"""The compatibility jamo, consonants and vowels (U+3131–U+3163): what a symbol inside typed-out
jamo may stand for."""


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


def load_tables() -> None:
    """Read every table above once (~1.5 s for the Hanja dictionary), so a server pays it at
    start-up rather than in its first reply with a Han character."""
    lookalikes()
    hanja_readings()
    hanja_candidates()
    romanized_syllables()
