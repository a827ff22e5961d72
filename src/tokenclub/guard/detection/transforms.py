"""Streaming text maps behind the guard's views: escapes decoded, filler removed, Hanja read, …

A transform takes text in pieces and gives the *view text* each piece makes, and for every view
character the input offset it came from (`origins`), so a leak found in a view is cut in the
reply itself. `waiting` is the input offset of the first input character whose view text is not
final yet (a piece may end inside an escape or before a filler can be told apart): nothing from
there on may be released. Every map is decided from a bounded window, so the view text never
depends on how the input was cut into pieces.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import html
import json
import re
import unicodedata
import urllib.parse
from array import array
from collections.abc import Sequence

import numpy as np

from tokenclub.guard.compiled import UNFILLED, filler_drops
from tokenclub.guard.detection.lookalike import JAMO, hanja_candidates, hanja_readings, romanized_syllables
from tokenclub.guard.hashing import gram_hash
from tokenclub.guard.indexing.index import GuardIndex
from tokenclub.guard.normalize import LETTERS, char_letters, code_points, normalize

_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
    r"|\\u[0-9a-fA-F]{4}"
    r"|&#[0-9]{1,7};?|&#[xX][0-9a-fA-F]{1,6};?|&[A-Za-z][A-Za-z0-9]{1,31};"
    r"|</?[A-Za-z][^<>]{0,200}>"
    r"|(?:%[0-9A-Fa-f]{2})+"
)
_TRIGGERS = re.compile(r"[\\&<%]")  # the first characters of every escape
_REACH = {"<": 210, "\\": 12, "&": 40, "%": 3}  # how far an escape can reach from its first char
_HAN_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_WORD_CHAR = re.compile(r"[가-힣\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_ROMAN_GROUP = re.compile(r"[A-Za-z]+|[0-9]")
FILLER_PERIODS = range(2, 9)
FILLER_REPEATS = 4
FILLER_SPAN = (FILLER_REPEATS - 1) * FILLER_PERIODS[-1]
"""Letters from a filler run's first letter to its last, at most: how far `Filler` looks ahead
and behind."""
FILLER_RULE = (FILLER_PERIODS[0], FILLER_PERIODS[-1], FILLER_REPEATS)
"""The shortest and longest period and the repeats, as the compiled filler loops take them."""


class Transform:
    """The identity; subclasses override `_take`."""

    def __init__(self) -> None:
        self.origins = array("q")
        self.waiting = 0
        self._buffer = ""
        self._start = 0  # input offset of the buffer's first character

    def feed(self, chunk: str) -> str:
        self._buffer += chunk
        return self._map(final=False)

    def flush(self) -> str:
        return self._map(final=True)

    def _map(self, final: bool) -> str:
        out, origins, used, waiting = self._take(self._buffer, self._start, final)
        if isinstance(origins, range):  # most batches: 0.5 µs, where `extend` takes 2.5 at 60
            self.origins.frombytes(np.arange(origins.start, origins.stop, dtype=np.int64).tobytes())
        else:
            self.origins.extend(origins)
        self._buffer = self._buffer[used:]
        self._start += used
        self.waiting = waiting
        return out

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        """(view text, its origins, input characters used up, new `waiting`)."""
        return buffer, range(base, base + len(buffer)), len(buffer), base + len(buffer)


class Decoder(Transform):
    """JSON `\\uXXXX` escapes, HTML entities, percent-encoded UTF-8 decoded; HTML tags dropped."""

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        if _TRIGGERS.search(buffer) is None:
            return super()._take(buffer, base, final)
        matches = list(_ESCAPE.finditer(buffer))
        hold = len(buffer)
        if not final:
            covered: set[int] = set()
            for match in matches:
                if match.end() == len(buffer):
                    hold = min(hold, match.start())
                covered.update(range(match.start(), match.end()))
            for position in range(max(0, len(buffer) - 210), len(buffer)):
                char = buffer[position]
                if char in _REACH and position not in covered and len(buffer) - position < _REACH[char]:
                    hold = min(hold, position)
                    break
        for match in reversed(matches):  # a percent run held back takes the run before it along
            if match.end() == hold and match.group().startswith("%") and not final:
                hold = match.start()
        out: list[str] = []
        origins: list[int] = []
        at = 0
        for match in matches:
            if match.end() > hold:
                break
            out.append(buffer[at : match.start()])
            origins += range(base + at, base + match.start())
            decoded = _decode(match.group())
            out.append(decoded)
            origins += [base + match.start()] * len(decoded)
            at = match.end()
        out.append(buffer[at:hold])
        origins += range(base + at, base + hold)
        return "".join(out), origins, hold, base + hold


def _decode(escape: str) -> str:
    if escape.startswith("<"):
        return ""
    if escape.startswith("\\"):
        try:
            decoded: str = json.loads(f'"{escape}"')
        except json.JSONDecodeError:
            return escape
        return decoded
    if escape.startswith("&"):
        return html.unescape(escape)
    return urllib.parse.unquote(escape, errors="ignore")


class HangulOnly(Transform):
    """Only Hangul: Latin, digits, Han and tags between the syllables go (vectorised)."""

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        cps = code_points(buffer)
        keep = (
            ((cps >= 0xAC00) & (cps < 0xD7A4))
            | ((cps >= 0x3131) & (cps < 0x318F))
            | ((cps >= 0x1100) & (cps < 0x1200))
            | ((cps >= 0xA960) & (cps < 0xA980))
            | ((cps >= 0xD7B0) & (cps < 0xD800))
        )
        chosen = np.flatnonzero(keep)
        out = cps[chosen].astype("<u4").tobytes().decode("utf-32-le")
        return out, (chosen + base).tolist(), len(buffer), base + len(buffer)


class _IndexRead(Transform):
    """A reading chosen by the index: text is decided `BLOCK` characters at a time, once the
    `AHEAD` characters after the block are known (or the reply has ended), from the block with
    `BEHIND` characters of decided text before it and those undecided ones after it. Decisions
    fall at fixed offsets, so the view text does not depend on how the input was cut into
    pieces. Characters that read as themselves whatever is chosen (`_settled`) go out before
    their block is decided, up to the first one that does not."""

    BLOCK = 128
    BEHIND = 32
    AHEAD = 32

    def __init__(self, index: GuardIndex | None) -> None:
        """`index` None: nothing is confirmed, every reading stays the first guess."""
        super().__init__()
        self.index = index
        self._spec = gram_hash(index.params.width, index.params.seed) if index is not None else None
        self._before = ""  # the last `BEHIND` characters of decided view text
        self._early = 0  # characters of the undecided block already given out

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        out: list[str] = []
        origins: list[int] = []
        used = 0
        while used < len(buffer) and (final or len(buffer) - used >= self.BLOCK + self.AHEAD):
            block = buffer[used : used + self.BLOCK]
            after = buffer[used + self.BLOCK : used + self.BLOCK + self.AHEAD]
            read = self._decide(self._before, block, after)
            out.append(read[self._early :])
            origins += range(base + used + self._early, base + used + len(block))
            self._before = (self._before + read)[-self.BEHIND :]
            used += len(block)
            self._early = 0
        settled = self._settled(buffer[used : used + self.BLOCK])
        if settled > self._early:
            out.append(buffer[used + self._early : used + settled])
            origins += range(base + used + self._early, base + used + settled)
            self._early = settled
        return "".join(out), origins, used, base + used + self._early

    def _settled(self, pending: str) -> int:
        """How many of the undecided characters read as themselves whatever is chosen."""
        return 0

    def _decide(self, before: str, block: str, after: str) -> str:
        """The block's view text (one character for each of its characters)."""
        raise NotImplementedError

    def _hits(self, text: str) -> int:
        """Grams of the text (at every position) that the index holds and that count (none
        beside common or public text: `GuardIndex.counted`), and that have another such gram
        `stride` letters before or after (as a copy does): a chance hit of the filter (about 2 %
        of look-ups) seldom has one."""
        if self.index is None or self._spec is None:
            return 0
        letters = normalize(text).letters
        width, stride = self._spec.width, self.index.params.stride
        if len(letters) < width:
            return 0
        keys = self._spec.at(letters, np.arange(len(letters) - width + 1, dtype=np.int64))
        held = self.index.counted(keys)
        paired = np.zeros(len(held), dtype=np.bool_)
        paired[stride:] |= held[:-stride]
        paired[:-stride] |= held[stride:]
        return int(np.count_nonzero(held & paired))


class HanjaRead(_IndexRead):
    """Han characters read as Hangul syllables (one character each: offsets unchanged).

    First guess: the form for a word's start unless a syllable or Han character comes right
    before. Then, for a character with several readings (金 → 금 / 김, 列 → 렬 / 열, the
    initial-sound law and the dictionary's other readings), the index chooses: the reading
    whose grams around it the index holds most, each character in turn, twice over."""

    REACH = 24  # characters each side whose grams a reading changes (a gram is 26 letters)
    PASSES = 2

    def __init__(self, index: GuardIndex | None = None) -> None:
        """Without an index (the red team's judge) the first guess is the reading."""
        super().__init__(index)
        self._readings = hanja_readings()
        self._candidates = hanja_candidates()

    def _decide(self, before: str, block: str, after: str) -> str:
        if self._settled(block) == len(block):
            return block
        text = list(before + self._first_guess(before, block) + self._first_guess(block[-1:], after))
        start = len(before)
        choices = (
            [
                (at, found)
                for at in range(start, start + len(block))
                if len(found := self._candidates.get((before + block + after)[at], ())) > 1
            ]
            if self.index is not None
            else []
        )
        for _ in range(self.PASSES):
            changed = False
            for at, found in choices:
                lo, hi = max(0, at - self.REACH), at + self.REACH + 1
                current = text[at]
                scores = {}
                for reading in {*found, current}:
                    text[at] = reading
                    scores[reading] = self._hits("".join(text[lo:hi]))
                best = max(found, key=scores.__getitem__)
                text[at] = best if scores[best] > scores[current] else current
                changed |= text[at] != current
            if not changed:
                break
        return "".join(text[start : start + len(block)])

    def _settled(self, pending: str) -> int:
        """Everything before the first character with a reading reads as itself."""
        return next((at for at, char in enumerate(pending) if char in self._readings), len(pending))

    def _first_guess(self, before: str, text: str) -> str:
        out = list(text)
        previous = before[-1:]
        for at, char in enumerate(text):
            forms = self._readings.get(char)
            if forms is not None:
                prior = text[at - 1] if at else previous
                out[at] = forms[1] if prior and _WORD_CHAR.match(prior) else forms[0]
        return "".join(out)


_JAMO_CHAR = re.compile(r"[\u3131-\u318e\u1100-\u11ff]")
_JAMO_VOWEL = re.compile(r"[\u314f-\u3163\u1161-\u11a7]")
_WORD = re.compile(r"\S+")
_SYLLABLE = re.compile(r"[가-힣]")
_JAMO_PAIR = re.compile(r"[\u3131-\u3163]\S?[\u3131-\u3163]")
_SINGLE_JAMO = tuple(j for j in JAMO if len(char_letters(j)) == 1)  # a symbol stands for one letter
_VOWELS = tuple(j for j in _SINGLE_JAMO if _JAMO_VOWEL.match(j))
_CONSONANTS = tuple(j for j in _SINGLE_JAMO if not _JAMO_VOWEL.match(j))


class LookalikeRead(_IndexRead):
    """Typed-out jamo with symbols standing in for some letters (〇 for ㅇ, 口 for ㅁ: look-alikes
    Unicode does not list): each symbol inside a word of typed-out jamo is read as the jamo the
    index confirms, without a table of look-alikes. A symbol stands for one letter throughout
    the reply; where it stands tells a consonant from a vowel (`_classes`), and each round tries
    every symbol against every single-letter jamo of its class, keeping the (symbol, jamo) that
    adds the most held grams in pairs a stride apart, while that gains at least `GAIN` (two
    pairs: one pair by chance comes up about once in ten tries). When no single symbol gains
    (two frequent symbols break nearly every gram), the two most frequent are tried together.
    At most `SYMBOLS` symbols, the most frequent; a block without symbols costs nothing more."""

    GAIN = 4
    SYMBOLS = 4
    AHEAD = 160  # typed-out jamo take about 2.5 characters a syllable: a sentence or two

    def __init__(self, index: GuardIndex) -> None:
        super().__init__(index)
        self._read: dict[str, str] = {}  # symbol → jamo, kept for the rest of the reply

    def _decide(self, before: str, block: str, after: str) -> str:
        window = before + block + after
        symbols = _symbols(window)
        counts = collections.Counter(symbols.values())
        open_symbols = [s for s, _ in counts.most_common(self.SYMBOLS) if s not in self._read]
        if open_symbols:
            classes = _classes(window, symbols)
            score = self._hits(self._apply(window, symbols, self._read))
            while open_symbols:
                tries = [{s: j} for s in open_symbols for j in classes[s]]
                found = self._best(window, symbols, tries, score)
                if found is None and len(open_symbols) > 1:  # two unknowns break every gram
                    first, second = open_symbols[:2]
                    tries = [{first: a, second: b} for a in classes[first] for b in classes[second]]
                    found = self._best(window, symbols, tries, score)
                if found is None:
                    break
                score, chosen = found
                self._read.update(chosen)
                open_symbols = [s for s in open_symbols if s not in chosen]
        start = len(before)
        return self._apply(window, symbols, self._read)[start : start + len(block)]

    def _best(
        self, window: str, symbols: dict[int, str], tries: list[dict[str, str]], score: int
    ) -> tuple[int, dict[str, str]] | None:
        """The try that adds the most paired hits to `score`, if it adds `GAIN`."""
        best: tuple[int, dict[str, str]] | None = None
        for chosen in tries:
            found = self._hits(self._apply(window, symbols, {**self._read, **chosen}))
            if found >= score + self.GAIN and (best is None or found > best[0]):
                best = (found, chosen)
        return best

    @staticmethod
    def _apply(window: str, symbols: dict[int, str], read: dict[str, str]) -> str:
        out = list(window)
        for at, symbol in symbols.items():
            if symbol in read:
                out[at] = read[symbol]
        return "".join(out)


def _symbols(text: str) -> dict[int, str]:
    """Offset → character of each character in a word of typed-out jamo (no syllable, a third or
    more jamo, some consonant and some vowel among at least three: ㅋㅋ!! is not one) that is
    not read as a jamo already: a letter, digit or symbol anywhere, punctuation between jamo."""
    found: dict[int, str] = {}
    for word in _WORD.finditer(text):
        read = "".join(map(_read_as, word.group()))
        jamo = len(_JAMO_CHAR.findall(read))
        vowels = len(_JAMO_VOWEL.findall(read))
        if jamo < 3 or not 0 < vowels < jamo or not 3 * jamo >= len(read) > jamo or _SYLLABLE.search(read):
            continue
        inner = word.group().strip(_EDGE_PUNCTUATION)
        for at, char in enumerate(inner, word.start() + word.group().index(inner[:1])):
            if not _JAMO_CHAR.match(_read_as(char)):
                found[at] = char
    return found


def _classes(window: str, symbols: dict[int, str]) -> dict[str, tuple[str, ...]]:
    """The jamo each symbol may stand for, by where it stands in typed-out syllables: next to a
    known vowel (before it: a syllable's first consonant; after it: a final one) a consonant;
    after a known consonant and not before a vowel, a vowel; unclear: either."""
    votes: dict[str, list[int]] = {}
    for at, symbol in symbols.items():
        left = _read_as(window[at - 1]) if at else " "
        right = _read_as(window[at + 1]) if at + 1 < len(window) else " "
        consonant = bool(_JAMO_VOWEL.match(left) or _JAMO_VOWEL.match(right))
        vowel = bool(_JAMO_CHAR.match(left)) and not _JAMO_VOWEL.match(left) and not _JAMO_VOWEL.match(right)
        tally = votes.setdefault(symbol, [0, 0])
        tally[0] += consonant
        tally[1] += vowel
    out: dict[str, tuple[str, ...]] = {}
    for symbol, (consonants, vowels) in votes.items():
        if consonants > vowels:
            out[symbol] = _CONSONANTS
        elif vowels > consonants:
            out[symbol] = _VOWELS
        else:
            out[symbol] = _CONSONANTS + _VOWELS
    return out


_EDGE_PUNCTUATION = "".join(chr(cp) for cp in range(0x3000) if unicodedata.category(chr(cp))[0] == "P")


@functools.cache
def _read_as(char: str) -> str:
    """What the guard letters already read a character as (丨 → ㅣ by Unicode's confusables)."""
    letters = char_letters(char)
    return chr(letters[0]) if len(letters) == 1 else char


def lookalike_seen(text: str) -> bool:
    """Whether a word of typed-out jamo holds some other character (`LookalikeRead`'s trigger);
    text without two jamo close together costs one regular expression."""
    return _JAMO_PAIR.search(text) is not None and bool(_symbols(text))


class Filler(Transform):
    """Drops a character that recurs at a regular stride: one of `FILLER_REPEATS` equal letters
    `P` apart (P in `FILLER_PERIODS`), counted over the characters that have guard letters
    (`compiled.filler_drops`). A character is decided once the `FILLER_SPAN` letters after it
    are known."""

    def __init__(self) -> None:
        super().__init__()
        self._chars = np.zeros(0, dtype=np.uint32)  # decided context + undecided, as code points
        self._offsets = np.zeros(0, dtype=np.int64)
        self._decided = 0  # chars[:decided] are decided (kept only as look-behind)

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        points = code_points(buffer)
        if (LETTERS.lengths[points] == UNFILLED).any():
            LETTERS.fill(points)
        lettered = np.flatnonzero(LETTERS.lengths[points])
        self._chars = np.concatenate((self._chars, points[lettered]))
        self._offsets = np.concatenate((self._offsets, lettered + base))
        end = len(self._chars) if final else len(self._chars) - FILLER_SPAN
        out, origins = "", []
        if end > self._decided:
            drops = filler_drops(self._chars, self._decided, end, *FILLER_RULE)
            kept = self._decided + np.flatnonzero(drops == 0)
            out = self._chars[kept].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
            origins = self._offsets[kept].tolist()
            self._decided = end
        keep = max(0, self._decided - FILLER_SPAN)
        self._chars, self._offsets = self._chars[keep:], self._offsets[keep:]
        self._decided -= keep
        undecided = self._offsets[self._decided :]
        waiting = int(undecided[0]) if len(undecided) else base + len(buffer)
        return out, origins, len(buffer), waiting


class Base64Runs(Transform):
    """Runs of 16+ base64 characters decoded as UTF-8; everything else leaves this view."""

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        out: list[str] = []
        origins: list[int] = []
        used = len(buffer)
        for match in _BASE64.finditer(buffer):
            if match.end() == len(buffer) and not final:
                used = match.start()
                break
            run = match.group().rstrip("=")
            run = run[: len(run) - len(run) % 4] if len(run) % 4 == 1 else run
            try:
                decoded = base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "ignore")
            except (binascii.Error, ValueError):
                continue
            out.append(decoded)
            origins += [base + match.start()] * len(decoded)
        if used == len(buffer) and not final:
            # a run may still start in the last 15 characters
            tail = re.search(r"[A-Za-z0-9+/]{1,15}$", buffer)
            used = tail.start() if tail else used
        return "".join(out), origins, used, base + used


class Romanized(Transform):
    """Latin groups that spell exactly one Hangul syllable in the Revised Romanization's
    transliteration (값 → gabs), read back as that syllable, and digits as they are (a date
    inside a copy); everything else leaves this view."""

    def __init__(self) -> None:
        super().__init__()
        self._syllables = romanized_syllables()

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, Sequence[int], int, int]:
        out: list[str] = []
        origins: list[int] = []
        used = len(buffer)
        for match in _ROMAN_GROUP.finditer(buffer):
            if match.end() == len(buffer) and not final:
                used = match.start()
                break
            group = match.group()
            syllable = group if group.isdigit() else self._syllables.get(group.lower())
            if syllable is not None:
                out.append(syllable)
                origins.append(base + match.start())
        return "".join(out), origins, used, base + used
