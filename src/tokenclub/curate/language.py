"""Language filter: keep documents written (mostly) in Korean.

A share of Hangul among letters needs no model download and no per-language statistics, and
is exact where it matters: Korean is the only language written in Hangul. The share is taken
over letters only, so digits, punctuation, emoji and whitespace neither help nor hurt.

One Hangul syllable carries about as much text as two to three Latin letters, so a document
that is half Korean and half English by content has a share near 0.4 (본 논문에서는 대규모 언어
모델을 제안한다 / we propose a large language model: 18 syllables against 28 letters). The
default threshold of 0.2 keeps such bilingual and code-heavy Korean documents and drops
English, Japanese or Chinese text with a sprinkling of Korean. A text without any letter
(empty, digits, symbols) is left to the quality filter, whose reason says what is wrong.
"""

from __future__ import annotations

import re

from tokenclub.curate.step import DocumentFilter

DEFAULT_MIN_HANGUL_SHARE = 0.2

# Assigned Hangul letters: jamo, compatibility jamo, extended jamo A/B, syllables.
_HANGUL_RUN = re.compile("[\u1100-\u11ff\u3131-\u318e\ua960-\ua97c\uac00-\ud7a3\ud7b0-\ud7c6\ud7cb-\ud7fb]+")


def _hangul(text: str) -> int:
    return sum(map(len, _HANGUL_RUN.findall(text)))


def hangul_share(text: str) -> float:
    """Hangul letters divided by all letters (Unicode category L*); 0.0 without letters."""
    letters = sum(map(str.isalpha, text))
    if letters == 0:
        return 0.0
    return _hangul(text) / letters


class LanguageFilter(DocumentFilter):
    """Drops documents whose Hangul share is below `min_hangul_share`."""

    name = "language"

    def __init__(self, min_hangul_share: float = DEFAULT_MIN_HANGUL_SHARE) -> None:
        if not 0.0 <= min_hangul_share <= 1.0:
            raise ValueError(f"min_hangul_share must lie in [0, 1], got {min_hangul_share}")
        self.min_hangul_share = min_hangul_share

    def reason_to_drop(self, text: str) -> str | None:
        # Letters are at most the characters, and float division is monotone, so a Hangul share
        # of all characters that reaches the threshold decides without counting the letters (a
        # pass over every character): Korean prose has about seven syllables in ten characters.
        hangul = _hangul(text)
        if hangul and hangul / len(text) >= self.min_hangul_share:
            return None
        letters = sum(map(str.isalpha, text))
        if letters == 0 or hangul / letters >= self.min_hangul_share:
            return None
        return "language:not_korean"
