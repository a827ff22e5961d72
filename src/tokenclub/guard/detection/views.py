"""One reply matched in several canonical views at once, whole or streamed.

The reply's escapes are decoded first (JSON `\\uXXXX`, HTML entities and tags, percent-encoding;
`guard/detection/transforms.py`); the decoded text is then scanned in these views, each by its own
`StreamScanner` on the same index (the plain and reversed views read the decoded text once
between them, `read_both`: one normalisation, one hash pass and one look-up per batch):

- **plain**: the guard letters (look-alike letters already folded, `guard/normalize.py`); it
  alone tests joins with the customer's earlier pieces;
- **reversed**: the same letters hashed backwards, for text written in reverse;
- **hanja**: Han characters read as Hangul, a character with several readings the way the
  index confirms (once a Han character appears);
- **hangul**: Hangul only, dropping Latin, digit and other filler between syllables (once eight
  short non-Hangul runs sit between Hangul characters within 72 characters);
- **filler**: a character repeated at a regular stride removed (once one appears);
- **base64**: base64 runs decoded (once a run of 16+ base64 characters appears);
- **romanized**: transliterated Korean read back as Hangul (once hyphenated Latin groups appear);
- **lookalike**: symbols inside typed-out jamo read as the jamo the index confirms (once a word
  of typed-out jamo holds another character).

A stream is scanned in batches (decoded, fed to every view, triggers checked), not per token,
`BATCH` characters at first and more as the reply grows (`BATCH_LIMIT`): the views see the
same text in fewer pieces and nothing unscanned is released; a trigger then sees text not yet
out, so a cut can come earlier, never later.

A view that waits for its trigger starts on the whole decoded text so far, so it misses nothing
that came before. What may be released is the least that every view allows (each maps its own
hold-back to the reply's offsets); a leak in any view blocks the reply at the earliest cut, or
under the redact policy every view's leaks are cut out. Triggers are checked at a batch once
`CHECK_EVERY` decoded characters have come since the last check, and while a lazy view waits
nothing within `LAZY_HOLD` characters of the last check is released, so the text a trigger
needed is still held when the view starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tokenclub.guard.compiled import (
    HINT_FILLER,
    HINT_HAN,
    HINT_HYPHEN,
    HINT_JAMO,
    HINT_RUN,
    HINT_WORDS,
    U32,
    window_hints,
)
from tokenclub.guard.detection.fragments import Fragment, Join
from tokenclub.guard.detection.scanner import (
    REDACTION,
    LeakSpan,
    Policy,
    StreamScanner,
    feed_both,
    read_both,
)
from tokenclub.guard.detection.transforms import (
    FILLER_RULE,
    Base64Runs,
    Decoder,
    Filler,
    HangulOnly,
    HanjaRead,
    LookalikeRead,
    Romanized,
    Transform,
    lookalike_seen,
)
from tokenclub.guard.indexing.index import GuardIndex, IndexParams
from tokenclub.guard.normalize import LETTERS, code_points

CHECK_EVERY = 8
BATCH = 32
"""Reply characters gathered before they are decoded and scanned in one piece: each scan of
each view has a fixed cost (a few dozen NumPy calls) many times that of a token's letters, so a
stream scanned token by token cost 15–20 times the whole reply. Nothing unscanned is released,
so a batch only holds text back longer (the first `BATCH` characters, about 13 tokens)."""
BATCH_LIMIT = 128
"""The largest batch. A stream's batch grows with what it has scanned (a quarter of it,
`BATCH_GROWTH`) from `BATCH` up to this: the first tokens wait no longer than before, while a
long reply pays the fixed cost per batch less often (a 750-character reply: 12 scans, not 24;
docs/leak-guard.md). The operator sets it (`TOKENCLUB_GUARD_STREAM_BATCH`); `BATCH` keeps
every batch small at about 1.5× the streamed cost."""
BATCH_GROWTH = 4
LAZY_HOLD = 24
"""Decoded characters held back behind the last trigger check while some lazy view has not
started: a trigger needs up to this much disguised text (four fillers 8 apart), and what the
started view then finds from the copy's first character must not be out already."""
_CONTEXT = 64
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}")
_HYPHENATED = re.compile(r"[A-Za-z]{1,7}(?:-[A-Za-z]{1,7}){3,}")
_SANDWICH = re.compile(r"[가-힣ㄱ-ㆎ][\W_]*[^\W가-힣ㄱ-ㆎ]{1,3}[\W_]*(?=[가-힣ㄱ-ㆎ])")
_OTHER_WORD = re.compile(r"[^\W가-힣ㄱ-ㆎ]")
"""A word character outside Hangul (a letter, digit or `_`): each run between Hangul has one."""


def hints(points: U32) -> int:
    """What a window holds that some lazy view's trigger needs (`compiled.window_hints`)."""
    while (found := window_hints(points, LETTERS.lengths, *FILLER_RULE)) < 0:
        LETTERS.fill(points)
    return found


def _sandwiched(text: str, _: U32, count: int = 8) -> bool:
    """Whether `count` short non-Hangul runs sit between Hangul characters within 72 characters
    (`_dense`); first whether the text has `count` word characters outside Hangul at all (each
    run holds one), which ordinary Korean text mostly has not."""
    if len(_OTHER_WORD.findall(text)) < count:
        return False
    return _dense(_SANDWICH, text, count)


def _dense(pattern: re.Pattern[str], text: str, count: int = 8, span: int = 72) -> bool:
    """Whether `count` matches fall within some `span` characters (filler every few characters,
    not the odd date or name between Hangul words)."""
    starts = [match.start() for match in pattern.finditer(text)]
    return any(starts[i + count - 1] - starts[i] < span for i in range(len(starts) - count + 1))


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """A lazily started view: its name, when it starts (`seen`, of a window's text and its code
    points), and its transform of the decoded text; `hint`: what a window must hold for the
    trigger to fire (`hints`), so a window without it is not tried."""

    name: str
    seen: Callable[[str, U32], bool]
    make: Callable[[GuardIndex], Transform]  # the index: for views whose reading it chooses
    hint: int


LAZY_VIEWS = (
    ViewSpec("hanja", lambda text, _: _HAN.search(text) is not None, HanjaRead, HINT_HAN),
    ViewSpec("hangul", _sandwiched, lambda _: HangulOnly(), HINT_WORDS),
    ViewSpec("filler", lambda text, _: True, lambda _: Filler(), HINT_FILLER),  # the hint is the rule
    ViewSpec("base64", lambda text, _: _BASE64.search(text) is not None, lambda _: Base64Runs(), HINT_RUN),
    ViewSpec(
        "romanized", lambda text, _: _HYPHENATED.search(text) is not None, lambda _: Romanized(), HINT_HYPHEN
    ),
    ViewSpec("lookalike", lambda text, _: lookalike_seen(text), LookalikeRead, HINT_JAMO),
)
VIEW_NAMES = ("plain", "reversed", *(spec.name for spec in LAZY_VIEWS))


class _View:
    """One view: a transform of the decoded text (None: the decoded text itself) and its scanner."""

    def __init__(self, name: str, transform: Transform | None, scanner: StreamScanner) -> None:
        self.name = name
        self.transform = transform
        self.scanner = scanner
        self.produced = 0

    def feed(self, decoded: str) -> None:
        text = self.transform.feed(decoded) if self.transform is not None else decoded
        self.produced += len(text)
        self.scanner.feed(text)

    def finish(self) -> None:
        if self.transform is not None:
            text = self.transform.flush()
            self.produced += len(text)
            self.scanner.feed(text)
        self.scanner.finish()

    def decoded_at(self, offset: int, decoded_length: int) -> int:
        """The decoded-text offset of view character `offset` (past the end: what the view waits on)."""
        if self.transform is None:
            return offset
        if offset < self.produced:
            return self.transform.origins[offset]
        return min(self.transform.waiting, decoded_length)


class ViewScanner:
    """`StreamScanner`'s interface over every view: `feed` returns what is safe to send now."""

    def __init__(
        self,
        index: GuardIndex | None,
        params: IndexParams,
        policy: Policy = "block",
        strict: bool = False,
        marker: str = REDACTION,
        earlier: list[Fragment] | None = None,
        own: int | None = None,
        batch_limit: int = BATCH_LIMIT,
        leak_letters: int = 0,
    ) -> None:
        self.index = index
        self.leak_letters = leak_letters
        self.own = own
        self.params = params
        self.policy = policy
        self.strict = strict
        self.marker = marker
        self.blocked = False
        self.cut: int | None = None
        self._decoder = Decoder()
        self._decoded: list[str] = []
        self._recent = ""  # decoded text from `_CONTEXT` characters before the last check
        self._decoded_length = 0
        self._checked = 0
        self._pending = ""
        self._released = 0
        self._received = 0
        self._scanned = 0  # reply characters handed to the decoder
        self.batch = BATCH
        self.batch_limit = batch_limit
        self._due = 0  # characters to gather before the next scan, once one was made (`_batch`)
        self._next = 0  # characters received before `feed` looks at the batch again
        self._emitted: list[tuple[int, int]] = []
        self._paired = index is not None  # the plain and reversed views share one reading
        if self._paired:
            primary, backward = read_both(index, params, policy, strict, marker, earlier, own, leak_letters)
            self._views = [_View("plain", None, primary), _View("reversed", None, backward)]
        else:
            primary = StreamScanner(
                index, params, policy, strict, marker, earlier, own=own, leak_letters=leak_letters
            )
            self._views = [_View("plain", None, primary)]
        self.holdback = primary.holdback
        self._waiting = list(LAZY_VIEWS) if index is not None else []

    def _scanner(self) -> StreamScanner:
        return StreamScanner(
            self.index,
            self.params,
            self.policy,
            self.strict,
            self.marker,
            None,
            False,
            self.own,
            leak_letters=self.leak_letters,
        )

    @property
    def views(self) -> tuple[str, ...]:
        """Names of the views running on this reply."""
        return tuple(view.name for view in self._views)

    @property
    def joins(self) -> list[Join]:
        return self._views[0].scanner.joins

    @property
    def sent_pieces(self) -> list[Fragment]:
        return self._views[0].scanner.sent_pieces

    @property
    def quiet(self) -> bool:
        """Whether the text received so far holds no counted gram of any document as it is:
        all of it scanned, the decoder changed nothing (every escape it decodes is longer than
        what it stands for, so equal lengths mean no change) and the plain reading found no
        gram the index counts that a document has (chance hits of the filters aside), either
        way. Then coverage, joins and credits, which read the same grams of the same letters,
        find nothing in it either."""
        return (
            self._paired
            and self._scanned == self._received == self._decoded_length
            and not self._views[0].scanner.in_documents
        )

    @property
    def room(self) -> int:
        """Characters `feed` takes before its next scan: text shorter than this is only held."""
        return self._next_scan - self._received

    @property
    def _next_scan(self) -> int:
        """Characters received at which `feed` scans next."""
        return self._scanned + max(self.batch, self._due)

    @property
    def spans(self) -> tuple[LeakSpan, ...]:
        """Leaks found in any view, in the reply's offsets."""
        found = []
        for view in self._views:
            for span in view.scanner.spans:
                start, end = self._raw(view, span.start), self._raw_end(view, span.end)
                found.append(LeakSpan(start, max(end, start + 1), span.matched, span.partner_ids))
        return tuple(sorted(found, key=lambda span: span.start))

    def feed(self, chunk: str) -> str:
        if self.blocked:
            return ""
        self._pending += chunk
        self._received += len(chunk)
        if self._received < self._next:  # most calls, cheaply
            return ""
        gathered = self._received - self._scanned
        if gathered < self.batch or gathered < self._due:
            self._next = self._next_scan
            return ""
        self._scan_pending()
        if self._decoded_length - self._checked >= CHECK_EVERY:
            self._check()
        return self._after_feed(final=False)

    def finish(self) -> str:
        if self.blocked:
            return ""
        self._scan_pending()
        self._add(self._decoder.flush())
        self._check()
        for view in self._views:
            view.finish()
        return self._after_feed(final=True)

    def _batch(self) -> int:
        """Characters to gather before the next scan (`BATCH_LIMIT`); never fewer than `batch`
        while `batch_limit` is at least `batch`."""
        return min(self.batch_limit, max(self.batch, self._scanned // BATCH_GROWTH))

    def _scan_pending(self) -> None:
        """Decode and scan what was received since the last scan, in one piece."""
        if self._received > self._scanned:
            self._add(self._decoder.feed(self._pending[self._scanned - self._released :]))
            self._scanned = self._received
            self._due = self._batch()
            self._next = self._next_scan

    def _add(self, decoded: str) -> None:
        if not decoded:
            return
        self._decoded.append(decoded)
        self._recent += decoded
        self._decoded_length += len(decoded)
        lazy = self._views
        if self._paired:
            plain, backward, *lazy = self._views
            feed_both(plain.scanner, backward.scanner, decoded)
            plain.produced += len(decoded)
            backward.produced += len(decoded)
        for view in lazy:
            view.feed(decoded)

    def _check(self) -> None:
        """Start the lazy views whose trigger the decoded text since the last check shows."""
        if not self._waiting or self._checked >= self._decoded_length:
            self._checked = self._decoded_length
            return
        window = self._recent
        self._recent = window[-_CONTEXT:]
        self._checked = self._decoded_length
        points = code_points(window)
        held = hints(points)
        if not held:  # most windows of ordinary text
            return
        started = [spec for spec in self._waiting if spec.hint & held and spec.seen(window, points)]
        if not started:
            return
        text = "".join(self._decoded)
        self._decoded = [text]
        for spec in started:
            self._waiting.remove(spec)
            assert self.index is not None  # lazy views wait only when there is an index
            view = _View(spec.name, spec.make(self.index), self._scanner())
            view.feed(text)
            self._views.append(view)

    def _raw(self, view: _View, offset: int) -> int:
        """The reply offset of view character `offset`."""
        decoded = view.decoded_at(offset, self._decoded_length)
        if decoded < len(self._decoder.origins):
            return self._decoder.origins[decoded]
        return self._decoder.waiting

    def _raw_end(self, view: _View, end: int) -> int:
        """The reply offset just past view characters [.., end): past the whole escape, run or
        group the last of them came from (a base64 run's letters all come from its start)."""
        if end <= 0:
            return self._raw(view, 0)
        last = view.decoded_at(end - 1, self._decoded_length)
        after = end
        while after < view.produced and view.decoded_at(after, self._decoded_length) <= last:
            after += 1
        decoded = view.decoded_at(after, self._decoded_length)
        origins = self._decoder.origins
        if 0 < decoded <= len(origins):
            previous = origins[decoded - 1]
            while decoded < len(origins) and origins[decoded] <= previous:
                decoded += 1
        return origins[decoded] if decoded < len(origins) else self._decoder.waiting

    def _limit(self, final: bool) -> int:
        if final:
            return self._received
        hold = LAZY_HOLD if self._waiting else 0
        limit = self._raw(_CHECKED, max(0, self._checked - hold))
        for view in self._views:
            limit = min(limit, self._raw(view, view.scanner._released))
        return limit

    def _after_feed(self, final: bool) -> str:
        cuts = [
            self._raw(v, v.scanner.cut)
            for v in self._views
            if v.scanner.blocked and v.scanner.cut is not None
        ]
        if cuts:
            self.blocked = True
            self.cut = max(self._released, min(cuts))
            return self._take(self.cut)
        return self._release(self._limit(final))

    def _regions(self) -> list[tuple[int, int]]:
        """Every view's redacted regions in reply offsets, merged."""
        found = sorted(
            (self._raw(view, r.start), self._raw_end(view, r.end))
            for view in self._views
            for r in view.scanner._regions
        )
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def _release(self, limit: int) -> str:
        out: list[str] = []
        for start, end in self._regions():
            if end <= self._released or start >= max(limit, self._released + 1):
                continue
            out += [self._take(max(start, self._released)), self.marker]
            self._skip(end)
        if limit > self._released:
            out.append(self._take(limit))
        return "".join(out)

    def _take(self, end: int) -> str:
        piece = self._pending[: max(0, end - self._released)]
        self._skip(end)
        return piece

    def _skip(self, end: int) -> None:
        if end > self._released:
            self._pending = self._pending[end - self._released :]
            self._released = end


_CHECKED = _View("checked", None, StreamScanner(None, IndexParams.for_leak_length(seed=0)))
"""A stand-in view whose offsets are decoded offsets: `_raw(_CHECKED, n)` maps decoded → reply."""
