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
import html
import json
import re
import urllib.parse
from array import array

import numpy as np

from tokenclub.guard.detection.lookalike import hanja_readings, romanized_syllables
from tokenclub.guard.normalize import char_letters, code_points

_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
    r"|\\u[0-9a-fA-F]{4}"
    r"|&#[0-9]{1,7};?|&#[xX][0-9a-fA-F]{1,6};?|&[A-Za-z][A-Za-z0-9]{1,31};"
    r"|</?[A-Za-z][^<>]{0,200}>"
    r"|(?:%[0-9A-Fa-f]{2})+"
)
_TRIGGERS = "\\&<%"
_REACH = {"<": 210, "\\": 12, "&": 40, "%": 3}  # how far an escape can reach from its first char
_HAN_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_WORD_CHAR = re.compile(r"[가-힣\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_ROMAN_GROUP = re.compile(r"[A-Za-z]+")
FILLER_PERIODS = range(2, 9)
FILLER_REPEATS = 4
_LOOKAHEAD = (FILLER_REPEATS - 1) * FILLER_PERIODS[-1]


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
        self.origins.extend(origins)
        self._buffer = self._buffer[used:]
        self._start += used
        self.waiting = waiting
        return out

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
        """(view text, its origins, input characters used up, new `waiting`)."""
        return buffer, list(range(base, base + len(buffer))), len(buffer), base + len(buffer)


class Decoder(Transform):
    """JSON `\\uXXXX` escapes, HTML entities, percent-encoded UTF-8 decoded; HTML tags dropped."""

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
        if not any(t in buffer for t in _TRIGGERS):
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

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
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


class HanjaRead(Transform):
    """Han characters read as Hangul syllables (one character each: offsets unchanged), in the
    form for a word's start unless a syllable or Han character comes right before."""

    def __init__(self) -> None:
        super().__init__()
        self._readings = hanja_readings()
        self._previous = ""

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
        out = list(buffer)
        for match in _HAN_CHAR.finditer(buffer):
            forms = self._readings.get(match.group())
            if forms is not None:
                at = match.start()
                before = buffer[at - 1] if at else self._previous
                out[at] = forms[1] if before and _WORD_CHAR.match(before) else forms[0]
        if buffer:
            self._previous = buffer[-1]
        return "".join(out), list(range(base, base + len(buffer))), len(buffer), base + len(buffer)


class Filler(Transform):
    """Drops a character that recurs at a regular stride: one of `FILLER_REPEATS` equal letters
    `P` apart (P in `FILLER_PERIODS`), counted over the characters that have guard letters.
    A character is decided once the `_LOOKAHEAD` letters after it are known."""

    def __init__(self) -> None:
        super().__init__()
        self._units: list[tuple[str, int]] = []  # (character, offset): decided context + undecided
        self._decided = 0  # units[:decided] are decided (kept only as look-behind)

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
        self._units += [(c, o) for o, c in enumerate(buffer, base) if char_letters(c)]
        units = self._units
        chars = [c for c, _ in units]
        end = len(units) if final else len(units) - _LOOKAHEAD
        out: list[str] = []
        origins: list[int] = []
        for i in range(self._decided, max(self._decided, end)):
            if not _periodic(chars, i):
                out.append(units[i][0])
                origins.append(units[i][1])
        self._decided = max(self._decided, end)
        keep = max(0, self._decided - _LOOKAHEAD)
        self._units = units[keep:]
        self._decided -= keep
        waiting = self._units[self._decided][1] if self._decided < len(self._units) else base + len(buffer)
        return "".join(out), origins, len(buffer), waiting


def _periodic(chars: list[str], i: int) -> bool:
    """Whether chars[i] is one of `FILLER_REPEATS` equal characters at some stride P, each step
    P or P − 1 (a punctuation mark inside one stretch of source text shortens it by one)."""
    char, n = chars[i], len(chars)
    for period in FILLER_PERIODS:
        run = 1
        for direction in (-1, 1):
            j = i
            while run < FILLER_REPEATS:
                for step in (period, period - 1):
                    k = j + direction * step
                    if step > 1 and 0 <= k < n and chars[k] == char:
                        j = k
                        break
                else:
                    break
                run += 1
        if run >= FILLER_REPEATS:
            return True
    return False


class Base64Runs(Transform):
    """Runs of 16+ base64 characters decoded as UTF-8; everything else leaves this view."""

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
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
    transliteration (값 → gabs), read back as that syllable; everything else leaves this view."""

    def __init__(self) -> None:
        super().__init__()
        self._syllables = romanized_syllables()

    def _take(self, buffer: str, base: int, final: bool) -> tuple[str, list[int], int, int]:
        out: list[str] = []
        origins: list[int] = []
        used = len(buffer)
        for match in _ROMAN_GROUP.finditer(buffer):
            if match.end() == len(buffer) and not final:
                used = match.start()
                break
            syllable = self._syllables.get(match.group().lower())
            if syllable is not None:
                out.append(syllable)
                origins.append(base + match.start())
        return "".join(out), origins, used, base + used
