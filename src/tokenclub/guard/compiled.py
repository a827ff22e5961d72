"""The guard's inner loops, compiled (numba): reading letters, rolling gram hashes, filter bits.

A streamed reply is scanned in batches of a few dozen characters, and in NumPy each batch paid
a few dozen calls' fixed cost (about 1 µs each) for a few hundred operations of work: that
fixed cost, not the work, was the stream's price. Each loop here does one batch's step in one
call. The arithmetic is the NumPy code's own, modulo 2^64 throughout (every operand is a
`uint64`; a Python integer would widen the expression to a float), so keys and bits are
identical (`tests/guard/test_hashing.py`, `tests/guard/test_bloom.py`).

Compiled on first use and cached beside this file (`cache=True`): a fresh checkout's first
call takes a second or two per loop, later processes load the cached code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

F = TypeVar("F", bound=Callable[..., Any])

UNFILLED = 255  # a table's letter count for a code point whose page is not filled yet


def _compiled(function: F) -> F:
    return cast(F, numba.njit(cache=True, nogil=True)(function))


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S6, _S23, _S27, _S30, _S31, _S32 = (np.uint64(v) for v in (6, 23, 27, 30, 31, 32))
_LOW6, _LOW32, _ONE, _WORDS = np.uint64(63), np.uint64(0xFFFFFFFF), np.uint64(1), np.uint64(8)


@_compiled
def _finish(raw: np.uint64, key: np.uint64) -> np.uint64:
    """SplitMix64's finaliser of the keyed polynomial (`hashing.GramHash.finish`)."""
    z = raw ^ key
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@_compiled
def gather_letters(
    code_points: U32, lengths: U8, starts: I64, flat: U32, offset: int
) -> tuple[U32, U32, I64, bool]:
    """Each code point's letters from the table (`normalize._Table`), forwards and with each
    character's letters reversed, and every letter's character offset; False (and nothing)
    when a code point's page is not filled yet, or filled after this `flat` was taken."""
    total = 0
    for i in range(code_points.shape[0]):
        count = lengths[code_points[i]]
        if count == UNFILLED or starts[code_points[i]] + count > flat.shape[0]:
            empty = np.empty(0, np.uint32)
            return empty, empty, np.empty(0, np.int64), False
        total += count
    letters = np.empty(total, np.uint32)
    backward = np.empty(total, np.uint32)
    owners = np.empty(total, np.int64)
    at = 0
    for i in range(code_points.shape[0]):
        point = code_points[i]
        count = lengths[point]
        first = starts[point]
        for j in range(count):
            letters[at + j] = flat[first + j]
            backward[at + j] = flat[first + count - 1 - j]
            owners[at + j] = offset + i
        at += count
    return letters, backward, owners, True


Ring = tuple[U64, U64, np.uint64, np.uint64, np.uint64, bool]
"""A rolling hasher's state and constants (`hashing.RollingHasher`): the last `width` letters as a
ring, [polynomial, where the ring's oldest letter is], `multiply`, `weight`, the key, and whether
grams are read backwards."""


@_compiled
def rolled_keys(ring: Ring, letters: U32) -> U64:
    """Keys of the grams ending at each new letter. Forwards the polynomial rolls as
    ``G ← G·B + c_new − c_old·B^w`` (`multiply` B, `weight` B^w); backwards, for grams read
    backwards, as ``R ← (R − c_old)·B⁻¹ + c_new·B^(w−1)`` (`multiply` B⁻¹, `weight` B^(w−1)).
    The ring's letters and state are updated in place."""
    window, state, multiply, weight, key, backward = ring
    width = window.shape[0]
    raw, head = state[0], np.int64(state[1])
    keys = np.empty(letters.shape[0], np.uint64)
    for i in range(letters.shape[0]):
        letter = np.uint64(letters[i])
        if backward:
            raw = (raw - window[head]) * multiply + letter * weight
        else:
            raw = raw * multiply + letter - window[head] * weight
        window[head] = letter
        head = (head + 1) % width
        keys[i] = _finish(raw, key)
    state[0], state[1] = raw, np.uint64(head)
    return keys


@_compiled
def bloom_contains(words: U64, blocks: np.uint64, salts: U64, keys: U64) -> npt.NDArray[np.bool_]:
    """Whether the blocked filter of one shard (`bloom.BlockedBloom`) holds each key: the high
    32 bits pick the block, each salt times the low 32 bits a bit in it."""
    found = np.empty(keys.shape[0], np.bool_)
    for i in range(keys.shape[0]):
        key = keys[i]
        first = (((key >> _S32) * blocks) >> _S32) * _WORDS
        low = key & _LOW32
        held = True
        for salt in salts:
            position = ((low * salt) & _LOW32) >> _S23
            if not (words[first + (position >> _S6)] >> (position & _LOW6)) & _ONE:
                held = False
                break
        found[i] = held
    return found


@_compiled
def bloom_add(words: U64, blocks: np.uint64, salts: U64, keys: U64) -> None:
    """Set each key's bits in the filter of one shard, in place (`bloom_contains`'s bits)."""
    for i in range(keys.shape[0]):
        key = keys[i]
        first = (((key >> _S32) * blocks) >> _S32) * _WORDS
        low = key & _LOW32
        for salt in salts:
            position = ((low * salt) & _LOW32) >> _S23
            words[first + (position >> _S6)] |= _ONE << (position & _LOW6)


@_compiled
def repeated_at_stride(code_points: U32, lengths: U8, shortest: int, longest: int, repeats: int) -> int:
    """Whether, among the characters that have guard letters (`lengths`: the letters table's
    counts), one comes `repeats` times, each step `period − 1` or `period` characters (at least
    2), for some period from `shortest` to `longest`: the filler trigger's rule, tried at every
    character and every mix of the two steps. 1 or 0; −1 when a code point's page of the
    table is not filled yet."""
    letters = np.empty(code_points.shape[0], np.uint32)
    count = 0
    for point in code_points:
        if lengths[point] == UNFILLED:
            return -1
        if lengths[point]:
            letters[count] = point
            count += 1
    path = np.empty(repeats, np.int64)  # the places of a run being tried, and its steps taken
    steps = np.empty(repeats, np.int64)
    for start in range(count):
        again = False  # most characters do not recur within a step: no run starts there
        for step in range(2, longest + 1):
            if start + step < count and letters[start + step] == letters[start]:
                again = True
                break
        if not again:
            continue
        for period in range(shortest, longest + 1):
            low = max(2, period - 1)
            path[0], depth, steps[1] = start, 1, low
            while depth > 0:  # depth-first over the steps, `low` before `period`
                if depth == repeats:
                    return 1
                if steps[depth] > period:
                    depth -= 1
                    if depth > 0:
                        steps[depth] += 1
                    continue
                at = path[depth - 1] + steps[depth]
                if at < count and letters[at] == letters[start]:
                    path[depth] = at
                    depth += 1
                    if depth < repeats:
                        steps[depth] = low
                else:
                    steps[depth] += 1
    return 0


_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN_INVERSE = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))  # undoes the multiply


PART_KEYS = 16384
"""Keys a part of `distinct_documents` holds at most on average: its table (twice as many slots,
16 bytes a slot: 512 KB) stays in the core's cache. One table for a whole batch of 700,000 keys
missed the cache at nearly every key and took twice as long; parts of 2,048 keys took longer
again (the split writes to too many places at once)."""


HINT_HAN = 1  # a Han character
HINT_RUN = 2  # a run of 16 characters of the base64 alphabet
HINT_HYPHEN = 4  # a hyphen between two ASCII letters
HINT_JAMO = 8  # a compatibility jamo (ㄱ–ㅣ)
HINT_WORDS = 16  # 8 characters that may be word characters outside Hangul
HINT_FILLER = 32  # a character recurring at a regular stride (`window_hints`)


@_compiled
def trigger_hints(code_points: U32) -> int:
    """What a window of text holds that some lazy view's trigger needs (`HINT_*` bits), in one
    pass: a trigger whose hint is missing cannot fire, and its regular expression is not run.
    `HINT_WORDS` counts ASCII letters, digits and `_` and every other character outside ASCII
    and Hangul (syllables, ㄱ–ㆎ), so it is never below the count of such word characters."""
    hints = 0
    run = 0
    words = 0
    n = code_points.shape[0]
    for i in range(n):
        c = code_points[i]
        han = 0x3400 <= c <= 0x4DBF or 0x4E00 <= c <= 0x9FFF or 0xF900 <= c <= 0xFAFF
        if han or 0x20000 <= c <= 0x2FA1F:
            hints |= HINT_HAN
        letter = (65 <= c <= 90) or (97 <= c <= 122)
        alnum = letter or (48 <= c <= 57)
        run = run + 1 if alnum or c == 43 or c == 47 else 0
        if run >= 16:
            hints |= HINT_RUN
        if c == 45 and 0 < i < n - 1:
            before, after = code_points[i - 1], code_points[i + 1]
            if ((65 <= before <= 90) or (97 <= before <= 122)) and (
                (65 <= after <= 90) or (97 <= after <= 122)
            ):
                hints |= HINT_HYPHEN
        if 0x3131 <= c <= 0x3163:
            hints |= HINT_JAMO
        if c < 128:
            words += alnum or c == 95
        elif not (0xAC00 <= c <= 0xD7A3 or 0x3131 <= c <= 0x318E):
            words += 1
    if words >= 8:
        hints |= HINT_WORDS
    return hints


@_compiled
def window_hints(code_points: U32, lengths: U8, shortest: int, longest: int, repeats: int) -> int:
    """`trigger_hints`, and `HINT_FILLER` when `repeated_at_stride` finds the filler rule's
    run (`Filler`'s units and rule; as a regular expression it cost 34 µs at 110 letters):
    every lazy view's hint for one window in one call, as a stream checks a window at every
    batch; −1 when a code point's page of the letters table is not filled yet."""
    filler = repeated_at_stride(code_points, lengths, shortest, longest, repeats)
    if filler < 0:
        return -1
    return trigger_hints(code_points) | (HINT_FILLER if filler else 0)


@_compiled
def filler_drops(chars: U32, start: int, end: int, shortest: int, longest: int, repeats: int) -> U8:
    """For each of chars[start:end], 1 when it is a filler: one of `repeats` equal characters,
    each step P or P − 1 (at least 2) for some period P from `shortest` to `longest` (the
    filler view's rule; `chars` holds the look-behind and look-ahead it needs). A character
    with fewer than `repeats` copies within reach is none, without the stride test."""
    n = chars.shape[0]
    span = (repeats - 1) * longest
    drops = np.zeros(max(0, end - start), np.uint8)
    for i in range(start, end):
        char = chars[i]
        near = 0
        for k in range(max(0, i - span), min(n, i + span + 1)):
            if chars[k] == char:
                near += 1
        if near < repeats:
            continue
        for period in range(shortest, longest + 1):
            run = 1
            for direction in (-1, 1):
                j = i
                while run < repeats:
                    moved = False
                    for step in (period, period - 1):
                        k = j + direction * step
                        if step > 1 and 0 <= k < n and chars[k] == char:
                            j = k
                            moved = True
                            break
                    if not moved:
                        break
                    run += 1
            if run >= repeats:
                drops[i - start] = 1
                break
    return drops


@_compiled
def distinct_documents(keys: U64, owner: I64) -> tuple[U64, I64]:
    """Each distinct key of a batch and the number of documents that hold it, in no order
    (`commonness.repeated`). `owner` must not decrease (a batch's keys in document order), so a
    key's documents are counted by remembering the last one seen.

    The keys are first split into parts by the high bits of the key times an odd constant
    (stably: each part stays in document order), then each part is counted in an
    open-addressing table twice its size, slotted by the next bits, so keys that differ only in
    low or only in high bits still spread."""
    n = keys.shape[0]
    part_bits = 0
    while (PART_KEYS << part_bits) < n:
        part_bits += 1
    mixed = np.empty(n, np.uint64)
    sizes = np.zeros((1 << part_bits) + 1, np.int64)
    for i in range(n):
        mixed[i] = keys[i] * _GOLDEN64
        sizes[(np.int64(mixed[i] >> _S32) >> (32 - part_bits)) + 1] += 1
    for part in range(1 << part_bits):
        sizes[part + 1] += sizes[part]
    parted = np.empty(n, np.uint64)  # each part's keys (mixed), then their documents, in order
    parted_owner = np.empty(n, np.uint64)
    filled = sizes[:-1].copy()
    for i in range(n):
        into = np.int64(mixed[i] >> _S32) >> (32 - part_bits)
        parted[filled[into]], parted_owner[filled[into]] = mixed[i], owner[i]
        filled[into] += 1
    largest = 1
    for part in range(1 << part_bits):
        largest = max(largest, sizes[part + 1] - sizes[part])
    bits = 1
    while (1 << bits) < 2 * largest:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    # a slot is two words side by side (in one cache line): the key, then its last document in
    # the high half and its count of documents in the low half (0: a free slot)
    table = np.zeros(2 << bits, np.uint64)
    unique = np.empty(n, np.uint64)
    documents = np.empty(n, np.int64)
    distinct = 0
    for part in range(1 << part_bits):
        for at in range(sizes[part], sizes[part + 1]):
            key, document = parted[at], parted_owner[at]
            slot = np.int64((key << np.uint64(part_bits)) >> shift)
            while table[2 * slot + 1] and table[2 * slot] != key:
                slot = (slot + 1) & mask
            seen = table[2 * slot + 1]
            if not seen:
                table[2 * slot], table[2 * slot + 1] = key, (document << _S32) | _ONE
            elif seen >> _S32 != document:
                table[2 * slot + 1] = (document << _S32) | ((seen & _LOW32) + _ONE)
        for cell in range(1 << bits):
            if table[2 * cell + 1]:
                unique[distinct] = table[2 * cell] * _GOLDEN_INVERSE
                documents[distinct] = table[2 * cell + 1] & _LOW32
                distinct += 1
                table[2 * cell + 1] = 0
    return unique[:distinct], documents[:distinct]


@_compiled
def sketch_estimate(rows: U8, salts: U64, keys: U64) -> U8:
    """The count-min sketch's estimate of each key (`commonness.DocumentFrequency`): the least
    of its counters, one a row at ``splitmix(key ^ salt) mod width``."""
    width = np.uint64(rows.shape[1])
    found = np.empty(keys.shape[0], np.uint8)
    for i in range(keys.shape[0]):
        least = np.uint8(255)
        for row in range(rows.shape[0]):
            least = min(least, rows[row, _finish(keys[i], salts[row]) % width])
        found[i] = least
    return found


@_compiled
def read_both_ways(
    code_points: U32,
    lengths: U8,
    starts: I64,
    flat: U32,
    offset: int,
    ahead: Ring,
    behind: Ring,
    skip: int,
    members: tuple[U64, np.uint64, U64],
    sketch: tuple[U8, U64, int],
) -> tuple[U32, I64, U64, I64, npt.NDArray[np.bool_], bool]:
    """`gather_letters`, then the letters fed to a forward hasher and each character's letters
    reversed to a backward one (`ahead`, `behind`), then the keys looked up in a filter (`members`: the
    words, blocks and salts of `bloom_contains`; no words, no look-up) and the held ones in
    the commonness sketch (`sketch`: its rows, salts and the estimate from which a gram is
    common; no rows, none is): a streamed batch's whole reading in one call. Returns the
    letters, their owners, the forward then the backward keys of the grams complete (the
    first `skip` of each direction are not), where among them the filter's keys are and
    which of those are common; False (and no hasher touched) when `gather_letters` found a
    page not filled."""
    letters, backward, owners, complete = gather_letters(code_points, lengths, starts, flat, offset)
    if not complete:
        nothing = np.empty(0, np.int64)
        return letters, owners, np.empty(0, np.uint64), nothing, np.empty(0, np.bool_), False
    count = letters.shape[0]
    first = min(skip, count)
    kept = count - first
    keys = np.empty(2 * kept, np.uint64)
    keys[:kept] = rolled_keys(ahead, letters)[first:]
    keys[kept:] = rolled_keys(behind, backward)[first:]
    words, blocks, salts = members
    if words.shape[0] == 0:
        return letters, owners, keys, np.empty(0, np.int64), np.empty(0, np.bool_), True
    held = bloom_contains(words, blocks, salts, keys)
    positions = np.empty(int(held.sum()), np.int64)
    at = 0
    for i in range(held.shape[0]):
        if held[i]:
            positions[at] = i
            at += 1
    rows, sketch_salts, common = sketch
    shared = np.zeros(positions.shape[0], np.bool_)
    if rows.shape[0] and positions.shape[0]:
        estimates = sketch_estimate(rows, sketch_salts, keys[positions])
        for i in range(positions.shape[0]):
            shared[i] = estimates[i] >= common
    return letters, owners, keys, positions, shared, True
