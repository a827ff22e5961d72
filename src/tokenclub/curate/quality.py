"""Quality filter: heuristic rules after Gopher, C4 and FineWeb, tuned for Korean.

A word is an eojeol (a whitespace-separated unit), a line is a non-blank line and a paragraph
is a block between blank lines. Partners are paid for what passes, so every rule aims at text
that no reader would call a document (boilerplate pages, keyword spam, number dumps, menus)
and leaves alone the layout of real books, reports, bills and petitions. Rules the web-scale
filters use that would drop real Korean documents are left out or loosened, with the reason
next to each setting; `docs/quality.md` has the measured false-drop rates.

Rules run cheapest first and the first hit names the reason, e.g. ``"quality:too_short"``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from tokenclub.curate.step import DocumentFilter


class QualitySettings(BaseModel):
    """Every threshold of `QualityFilter`; `docs/quality.md` has the measurements behind them."""

    model_config = ConfigDict(frozen=True)

    min_words: int = Field(
        default=30,
        ge=0,
        description="Fewer eojeol than this (about Gopher's 50 English words) and also fewer "
        "than `min_chars` characters is too short to be a document.",
    )
    min_chars: int = Field(
        default=150,
        ge=0,
        description="Non-space characters that make a text long enough even with few spaces: "
        "unspaced informal writing (세아이의엄마입니다이렇게글을남기게된이유는) is still text.",
    )
    max_symbol_word_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Largest share of words without a letter (numbers, symbols). Gopher asks "
        "80 % of words to have a letter; Korean reports carry tables of figures, so half.",
    )
    max_boilerplate_share: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Largest share of characters in boilerplate lines: short lines with a cookie, "
        "JavaScript, lorem ipsum or copyright notice, and lines made only of interface words "
        "(로그인, 공유하기, 좋아요). A news article's copyright footer stays far below.",
    )
    max_bullet_line_share: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Gopher's limit on lines that start with a bullet, applied only together "
        "with `max_bullet_line_words`: Korean reports (개조식) are written in bullets.",
    )
    max_bullet_line_words: float = Field(
        default=4.0,
        ge=0,
        description="Mean eojeol per bullet line below which a mostly-bullet text is a menu or "
        "a tag list rather than a report.",
    )
    max_table_line_share: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Largest share of lines that are table rows (cells split by | or tabs, or "
        "mostly numbers); reports with tables between paragraphs stay well below.",
    )
    min_structure_lines: int = Field(
        default=5,
        ge=1,
        description="Lines a text needs before the bullet and table rules judge its layout: "
        "one long line with a few | in it is prose.",
    )
    max_duplicate_line_share: float = Field(
        default=0.3, ge=0, le=1, description="Gopher: share of lines that repeat an earlier line."
    )
    max_duplicate_line_char_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Gopher: share of characters in lines that repeat an earlier line (the bill "
        "with its old/new comparison table: 0.14).",
    )
    max_duplicate_paragraph_share: float = Field(
        default=0.3, ge=0, le=1, description="Gopher: share of paragraphs that repeat an earlier one."
    )
    max_duplicate_paragraph_char_share: float = Field(
        default=0.2, ge=0, le=1, description="Gopher: share of characters in repeated paragraphs."
    )
    min_word_diversity: float = Field(
        default=3.0,
        ge=0,
        description="Least distinct words / √words (Guiraud's index). Keyword spam reuses a small "
        "vocabulary (20 keywords over 300 words: 1.2); real texts of 30+ eojeol score 4.7 and "
        "more, and the index grows with length, so long books are safe.",
    )
    max_top_ngram_share: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.2, 4: 0.2},
        description="Largest share of words covered by the most frequent word n-gram, counted "
        "when it occurs 3+ times (Gopher 0.20/0.18/0.16 of characters).",
    )
    max_duplicate_ngram_share: dict[int, float] = Field(
        default_factory=lambda: {5: 0.6, 10: 0.55},
        description="Largest share of words inside a word n-gram seen earlier in the document. "
        "Gopher stops at 0.15-0.10; a bill quotes its amendments in the old/new comparison "
        "table (0.44), so only text repeated about 2.5 times over is dropped.",
    )


_BULLET = re.compile(r"(?:[□■○●◦◎◇◆▷▶▸►▣☐☑※★☆✓✔❍❏•·ㆍ‧∙]|[-*+>]\s)")
_TABLE_CELL = re.compile(r"\||\t")
# A notice may sit anywhere in a short line; interface words only make a line of their own
# (좋아요 and 댓글 are everyday words in prose).
_NOTICE = re.compile(
    r"""(?ix)
      lorem\s+ipsum | 로렘\s*입숨
    | cookies? | 쿠키(?:를|\s*정책|\s*설정|\s*사용|에\s*동의)
    | javascript | 자바\s*스크립트
    | all\s+rights\s+reserved | copyright | ⓒ | ©
    | 무단\s*(?:전재|복제|배포) | 재배포\s*금지
    """
)
_UI_WORD = (
    r"(?:로그인|로그아웃|회원\s*가입|아이디\s*찾기|비밀번호\s*찾기|본문\s*바로\s*가기|메뉴\s*바로\s*가기"
    r"|사이트\s*맵|맨\s*위로|top|이용\s*약관|개인\s*정보\s*(?:처리|취급)\s*방침|공유\s*하기|스크랩"
    r"|좋아요|구독|댓글|이전\s*글|다음\s*글|목록|인쇄|검색|홈|login|sign\s*(?:in|up)|share|search)"
)
_UI_LINE = re.compile(rf"(?i){_UI_WORD}(?:[\s|·/>]+{_UI_WORD})*")
_BOILERPLATE_LINE_WORDS = 20
_HASH_MULTIPLIER = np.uint64(0x100000001B3)
# Twice is how people write (수 있도록 도와주세요 … 수 있도록 도와주세요); spam repeats more.
_MIN_TOP_NGRAM_COUNT = 3


def _has_letter(word: str) -> bool:
    return any(map(str.isalpha, word))


# Words holding neither an ASCII letter nor a Hangul syllable: the only ones that can lack a
# letter, so only they need the character-by-character test (Korean prose has few).
_LETTERLESS_CANDIDATE = re.compile(r"(?<!\S)[^\sA-Za-z\uac00-\ud7a3]+(?!\S)")


def _letterless_words(text: str) -> int:
    """How many of `text.split()` hold no letter."""
    return sum(not _has_letter(word) for word in _LETTERLESS_CANDIDATE.findall(text))


def _duplicate_shares(items: list[str]) -> tuple[float, float]:
    """Share of items, and of their characters, that repeat an earlier item."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    total_chars = sum(map(len, items))
    return count / len(items), (chars / total_chars if total_chars else 0.0)


class _Words:
    """The words of one document as integer ids, for vectorized n-gram statistics.

    Shares count words, not characters as in Gopher: eojeol lengths vary with their particles,
    and one repeated URL would otherwise outweigh a paragraph of prose.

    Both statistics are monotone in n: an n-gram that occurs k times begins with an (n-1)-gram
    that occurs at least k times. So once some n is found with no n-gram repeated (often enough),
    no longer n-gram is, and its share is 0 without hashing: most Korean documents repeat no
    eojeol three times or no 5-gram at all (a document is asked n = 2, 3, 4, then 5 and 10).
    """

    def __init__(self, words: list[str]) -> None:
        vocabulary = {word: index for index, word in enumerate(dict.fromkeys(words))}  # first-seen order
        self.ids = np.fromiter(map(vocabulary.__getitem__, words), np.uint64, len(words))
        self.distinct = len(vocabulary)
        self._longest = (0, np.zeros(len(words) + 1, np.uint64))
        most = int(np.bincount(self.ids.view(np.int64)).max()) if words else 0
        self._rare_from: float = 1 if most < _MIN_TOP_NGRAM_COUNT else math.inf
        """The least n known to have no n-gram occurring `_MIN_TOP_NGRAM_COUNT` times."""
        self._unique_from: float = 1 if most < 2 else math.inf
        """The least n known to have no n-gram occurring twice."""

    def _ngram_hashes(self, n: int) -> npt.NDArray[np.uint64]:
        """Each n-gram's hash, extended from the longest grams hashed so far (the rules ask for
        n = 2, 3, 4, 5 and 10 in turn, so each word is folded in once per length, not per rule)."""
        length, hashes = self._longest
        if n < length:
            length, hashes = 0, np.zeros(len(self.ids) + 1, np.uint64)
        for offset in range(length, n):
            count = len(self.ids) - offset
            hashes = hashes[:count] * _HASH_MULTIPLIER + self.ids[offset : offset + count] + np.uint64(1)
        self._longest = (n, hashes)
        return hashes

    def top_ngram_share(self, n: int) -> float:
        """Words covered by the most frequent n-gram, counted only if it repeats 3+ times."""
        if len(self.ids) < n or n >= self._rare_from:
            return 0.0
        ordered = np.sort(self._ngram_hashes(n))
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1], [True])))
        top = int(np.diff(starts).max())
        if top < _MIN_TOP_NGRAM_COUNT:
            self._rare_from = min(self._rare_from, n)
            return 0.0
        return top * n / len(self.ids)

    def duplicate_ngram_share(self, n: int) -> float:
        """Words inside an n-gram that already occurred earlier in the document."""
        if len(self.ids) < n or n >= self._unique_from:
            return 0.0
        hashes = self._ngram_hashes(n)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        later = ordered[1:] == ordered[:-1]  # in sorted order, a copy after the n-gram's first place
        if not later.any():
            self._unique_from = min(self._unique_from, n)
            return 0.0
        repeat = np.zeros(len(hashes), np.int64)
        repeat[order[1:][later]] = 1
        # A repeated n-gram starting at i covers words i .. i+n-1: a running sum over a window.
        window = np.convolve(repeat, np.ones(n, np.int64))
        return int(np.count_nonzero(window)) / len(self.ids)


class QualityFilter(DocumentFilter):
    """Drops documents that break one of the rules in `QualitySettings`."""

    name = "quality"

    def __init__(self, settings: QualitySettings | None = None) -> None:
        self.settings = settings or QualitySettings()

    def reason_to_drop(self, text: str) -> str | None:
        s = self.settings
        words = text.split()
        if not words or (
            len(words) < s.min_words and len(text) - sum(map(text.count, " \t\n")) < s.min_chars
        ):
            return "quality:too_short"
        if _letterless_words(text) / len(words) > s.max_symbol_word_share:
            return "quality:symbol_heavy"
        lines = [line for line in (raw.strip() for raw in text.split("\n")) if line]
        return self._layout(lines) or self._repetition(text, lines, words)

    def _layout(self, lines: list[str]) -> str | None:
        s = self.settings
        boilerplate = sum(
            len(line)
            for line in lines
            if _UI_LINE.fullmatch(line)
            or (len(line.split()) <= _BOILERPLATE_LINE_WORDS and _NOTICE.search(line))
        )
        if boilerplate / sum(map(len, lines)) > s.max_boilerplate_share:
            return "quality:boilerplate"
        if len(lines) < s.min_structure_lines:
            return None
        bullets = [len(line.split()) for line in lines if _BULLET.match(line)]
        if len(bullets) / len(lines) > s.max_bullet_line_share and (
            sum(bullets) / len(bullets) < s.max_bullet_line_words
        ):
            return "quality:bullets"
        if sum(map(_is_table_row, lines)) / len(lines) > s.max_table_line_share:
            return "quality:table"
        return None

    def _repetition(self, text: str, lines: list[str], words: list[str]) -> str | None:
        s = self.settings
        share, chars = _duplicate_shares(lines)
        if share > s.max_duplicate_line_share or chars > s.max_duplicate_line_char_share:
            return "quality:duplicate_lines"
        paragraphs = [p for p in (raw.strip() for raw in text.split("\n\n")) if p]
        share, chars = _duplicate_shares(paragraphs)
        if share > s.max_duplicate_paragraph_share or chars > s.max_duplicate_paragraph_char_share:
            return "quality:duplicate_paragraphs"
        if len(words) < s.min_words:
            return None
        ids = _Words(words)
        if ids.distinct / math.sqrt(len(words)) < s.min_word_diversity:
            return "quality:low_diversity"
        if any(ids.top_ngram_share(n) > limit for n, limit in s.max_top_ngram_share.items()):
            return "quality:top_ngram"
        if any(ids.duplicate_ngram_share(n) > limit for n, limit in s.max_duplicate_ngram_share.items()):
            return "quality:duplicate_ngrams"
        return None


def _is_table_row(line: str) -> bool:
    """A row of cells: two or more | or tab separators, or three+ words mostly without letters."""
    if len(_TABLE_CELL.findall(line)) >= 2:
        return True
    words = line.split()
    return len(words) >= 3 and sum(not _has_letter(w) for w in words) * 2 > len(words)
