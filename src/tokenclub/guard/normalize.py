"""The guard normalization: one canonical letter stream for text and its cheap disguises.

Matching runs on letters and digits only. Each code point maps on its own to zero or more
letters, so the stream of a text is the concatenation of the streams of its pieces: however
a reply is chunked, the letters are the same, and every letter knows the offset of the
character it came from (a leak is cut in the original text, not in the stream).

A code point's letters are: compatibility decomposition (NFKD, which folds full-width forms,
circled and parenthesised letters, ligatures and compatibility jamo), case folding, then only
letters and numbers are kept — whitespace, punctuation, symbols, combining marks, controls,
zero-width and filler characters disappear. Dropping combining marks also defeats
diacritic noise; NFKD is used instead of NFKC because composition is undone below anyway and
the two agree on letters once marks are gone.

Hangul becomes one jamo stream written in compatibility letters (ㄱ, ㅏ, …): a precomposed
syllable, its conjoining jamo (NFD), and the letters typed out one by one all give the same
letters. Leading and trailing forms of a consonant are the same letter; double consonants,
consonant clusters and compound vowels split into their basic letters (ㄲ → ㄱㄱ, ㄳ → ㄱㅅ,
ㅘ → ㅗㅏ), so the two ways of typing them agree. The split is read from the Unicode character
names, so archaic jamo follow the same rule. Arae-a (ㆍ, U+119E) counts as punctuation:
Korean documents use it as a middle dot. A letter of another script that Unicode lists as
confusable with a Hangul or ASCII letter is read as that letter first (丨 → ㅣ, Cyrillic а → a;
`guard/detection/lookalike.py`).
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import numpy.typing as npt

from tokenclub.guard.compiled import UNFILLED, gather_letters
from tokenclub.guard.detection.lookalike import lookalikes

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

_CONJOINING_JAMO = (range(0x1100, 0x1200), range(0xA960, 0xA980), range(0xD7B0, 0xD800))
_JAMO_PREFIXES = ("HANGUL CHOSEONG ", "HANGUL JUNGSEONG ", "HANGUL JONGSEONG ")
_DROPPED_JAMO = frozenset({"FILLER", "ARAEA"})
_COMPOUND_VOWELS = {
    "WA": ("O", "A"),
    "WAE": ("O", "AE"),
    "OE": ("O", "I"),
    "WEO": ("U", "EO"),
    "WE": ("U", "E"),
    "WI": ("U", "I"),
    "YI": ("EU", "I"),
}
_PAGE_BITS = 8


def _basic_letters(name: str) -> list[str]:
    """`SSANGKIYEOK-SIOS` → KIYEOK KIYEOK SIOS: the basic letters one types for a jamo."""
    letters: list[str] = []
    for part in name.split("-"):
        if part.startswith("SSANG"):
            letters += [part[5:], part[5:]]
        else:
            letters += _COMPOUND_VOWELS.get(part, (part,))
    return letters


@cache
def _jamo_letters() -> dict[str, str]:
    """Each conjoining jamo → its compatibility letters ('' for fillers and arae-a)."""
    table: dict[str, str] = {}
    for block in _CONJOINING_JAMO:
        for cp in block:
            name = unicodedata.name(chr(cp), "")
            prefix = next((p for p in _JAMO_PREFIXES if name.startswith(p)), None)
            if prefix is None:
                continue
            letter_name = name[len(prefix) :]
            if letter_name in _DROPPED_JAMO:
                table[chr(cp)] = ""
                continue
            try:
                table[chr(cp)] = "".join(
                    unicodedata.lookup(f"HANGUL LETTER {part}") for part in _basic_letters(letter_name)
                )
            except KeyError:
                table[chr(cp)] = chr(cp)
    return table


def guard_letters(char: str) -> str:
    """The guard letters of one code point (the whole normalization is this, per character)."""
    if 0xD800 <= ord(char) < 0xE000:
        return ""
    jamo = _jamo_letters()
    char = lookalikes().get(char, char)
    out: list[str] = []
    for part in unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold()):
        if part in jamo:
            out.append(jamo[part])
        elif unicodedata.category(part)[0] in "LN":
            out.append(part)
    return "".join(out)


class _Table:
    """`guard_letters` for every code point, filled lazily a page of 256 at a time.

    `lengths[cp]` is the number of letters (`UNFILLED`: page not filled yet) and `starts[cp]`
    their position in `flat`; a text is then read in one compiled pass (`gather_letters`).
    """

    def __init__(self) -> None:
        self.lengths = np.full(0x110000, UNFILLED, dtype=np.uint8)
        self.starts = np.zeros(0x110000, dtype=np.int64)
        self.flat = np.zeros(0, dtype=np.uint32)
        self._lock = threading.Lock()

    def read(self, code_points: U32, offset: int) -> tuple[U32, U32, I64]:
        """(letters, each character's letters reversed, owners), filling pages as needed."""
        letters, backward, owners, complete = gather_letters(
            code_points, self.lengths, self.starts, self.flat, offset
        )
        if complete:
            return letters, backward, owners
        self.fill(code_points)
        return self.read(code_points, offset)

    def fill(self, code_points: U32) -> None:
        """Fill the pages of the code points that are not filled yet."""
        unfilled = self.lengths[code_points] == UNFILLED
        with self._lock:
            for page in np.unique(code_points[unfilled] >> _PAGE_BITS).tolist():
                self._fill(int(page))

    def _fill(self, page: int) -> None:
        """Fill one page: `flat` first, then where each letter starts, then the counts, so a
        reader that sees a count finds its letters (or, with the old `flat`, sees them past its
        end and comes back for the new one)."""
        first = page << _PAGE_BITS
        if self.lengths[first] != UNFILLED:
            return
        pieces = [guard_letters(chr(cp)) for cp in range(first, first + (1 << _PAGE_BITS))]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        letters = np.frombuffer("".join(pieces).encode("utf-32-le"), dtype="<u4").astype(np.uint32)
        offsets = len(self.flat) + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        self.flat = np.concatenate((self.flat, letters))
        self.starts[first : first + len(pieces)] = offsets
        self.lengths[first : first + len(pieces)] = lengths.astype(np.uint8)


LETTERS = _Table()
"""Every code point's guard letters, filled as texts need them."""


def code_points(text: str) -> U32:
    """The text's code points (lone surrogates included) as a read-only array (no copy where
    the machine is little-endian)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint32, copy=False)


@dataclass(frozen=True, slots=True)
class Normalized:
    """Guard letters of a text and, for each letter, the offset of the character it came from."""

    letters: U32
    owners: I64

    @property
    def text(self) -> str:
        return self.letters.astype("<u4").tobytes().decode("utf-32-le")

    def __len__(self) -> int:
        return len(self.letters)


def normalize(text: str, offset: int = 0, backwards: bool = False) -> Normalized:
    """The guard stream of `text` (with `backwards`, each character's letters reversed); owners
    count from `offset` (the text's place in a stream)."""
    letters, backward, owners = LETTERS.read(code_points(text), offset)
    return Normalized(backward if backwards else letters, owners)


def normalize_both(text: str, offset: int = 0) -> tuple[U32, U32, I64]:
    """`normalize` read both ways at once: (letters, each character's letters reversed, owners).
    The plain and reversed views of a reply read the same characters in one pass."""
    return LETTERS.read(code_points(text), offset)


_HANGUL_LETTERS = (0x3131, 0x318E)  # the compatibility letters the jamo of a syllable become


def nfkc_starts(letters: U32, owners: I64, before: int = -1) -> npt.NDArray[np.bool_]:
    """Which guard letters begin a letter of the NFKC count (case-folded letters and digits, a
    Hangul syllable one letter), the count the leak definition is written in; `before`: the
    owner of the letter before the first. A syllable's two or three jamo share one character,
    so only the first begins a letter; every other guard letter is one (a ligature's two
    letters are two, as NFKC writes them). Jamo typed one character each count one each, where
    NFKC would join some of them: the count errs long, on the safe side."""
    previous = np.empty(len(owners), dtype=np.int64)
    if len(owners):
        previous[0] = before
        previous[1:] = owners[:-1]
    hangul = (letters >= _HANGUL_LETTERS[0]) & (letters <= _HANGUL_LETTERS[1])
    begins: npt.NDArray[np.bool_] = (owners != previous) | ~hangul
    return begins


def guard_text(text: str) -> str:
    """The guard stream as a string (for people, tests and the audit's comparisons)."""
    return normalize(text).text


@lru_cache(maxsize=1 << 16)
def char_letters(char: str) -> tuple[int, ...]:
    """`guard_letters` of one character as code points, memoised for the transforms' per-character tests."""
    return tuple(map(ord, guard_letters(char)))
