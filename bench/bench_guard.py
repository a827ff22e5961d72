"""The leak guard on the open corpus: recall, false positives, size, scan speed, build speed.

Indexed: four months of petitions (2017-08, 2019-04, 2019-05, 2019-06; CC0 as declared by
ko-nlp/Korpora). Held out as fresh text: the 2019-07 petitions, cut into replies of 300
tokens, less every reply that shares an exact run of 46 or more guard letters with the indexed
months (reposts and quoted boilerplate are real copies, found with an exact all-position
46-gram table), plus NSMC reviews, KLUE-NLI premises and chatbot answers as short replies.
Tokens are counted with the shipped tokenizer.

References in the same run, over the same guard letters: a Python `set` of the same strided
gram keys (exact membership, the smallest exact structure a Python service would hold), and a
suffix array of the guard text (pydivsufsort; the infini-gram end of the trade-off: exact
matches of any length). Recall is measured with copies of exactly the guaranteed length.

Accumulation (the per-key tally of runs below the leak length, `guard/detection/accumulate.py`): the
held-out month cut into replies of 50, 100 and 300 tokens plus the short replies are credited
as the gateway credits delivered replies; simulated ordinary keys each send N of them (drawn at
random) within one window, and the table gives the share of keys and of requests that cross the
default soft and hard budgets. The attack side: clauses of at most 40 guard letters (below
even the strict threshold) of one partner's petitions requested one per request, in order,
until the key is refused.

Joins (pieces of one passage sent over several replies, `guard/detection/fragments.py`): neighbouring
pieces of indexed petitions (16–21 characters each, inside a short framing sentence, every
piece below the leak length) are tested for a join, by piece length; the false side takes the
fragments of the ordinary replies above: replies whose own fragments join each other (a reply
that would be stopped alone) and simulated customers whose requests draw ordinary replies at
random (how often one is stopped for joining the customer's earlier replies).

Size against the leak length: the default index shape rebuilt for longer guaranteed lengths,
with its size, recall and false positives, to show where the size target would be met.

Run: ``.venv/bin/python bench/bench_guard.py`` (about four minutes on two cores).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
import statistics
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pydivsufsort
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from tokenclub.guard.config import GuardSettings
from tokenclub.guard.detection.accumulate import Budget, reply_credits
from tokenclub.guard.detection.fragments import Fragment, fragments_of, joins
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.hashing import GramHash
from tokenclub.guard.indexing.build import LETTERS_PER_TOKEN
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, document_keys, open_index, writer
from tokenclub.guard.normalize import guard_text, normalize
from tokenclub.guard.state.fragment_store import KEPT
from tokenclub.tokenizer_store import default_tokenizer_path

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
INDEXED = ("2017-08", "2019-04", "2019-05", "2019-06")
HELD_OUT = "2019-07"
REPLY_TOKENS = 300
RECALL_SAMPLES = 2_000
DISGUISE_SAMPLES = 300
SCAN_REPLIES = 40
SA_REPLIES = 5
FRESH_PER_SOURCE = 3_000
CONTEXT = "요청하신 내용을 정리하면 다음과 같습니다. "
TAIL = " 이상이 주요 내용입니다."


def petitions(month: str) -> list[str]:
    path = CORPORA / "petitions" / f"petitions_{month}.jsonl"
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["content"] for line in fh]


def short_fresh() -> list[str]:
    with gzip.open(CORPORA / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as fh:
        reviews = [json.loads(line)["review"] for line, _ in zip(fh, range(FRESH_PER_SOURCE), strict=False)]
    with (CORPORA / "chatbot" / "ChatbotData.csv").open(encoding="utf-8") as fh:
        answers = [row["A"] for row, _ in zip(csv.DictReader(fh), range(FRESH_PER_SOURCE), strict=False)]
    nli = json.loads(
        (CORPORA / "klue" / "klue_benchmark" / "klue-nli-v1.1" / "klue-nli-v1.1_dev.json").read_text()
    )
    return reviews + answers + list(dict.fromkeys(row["premise"] for row in nli))


# Disguises, written here and not taken from the guard (syllable arithmetic for the jamo).
LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
TAILS = ("", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")


def jamo(text: str) -> str:
    out = []
    for char in text:
        code = ord(char) - 0xAC00
        out.append(
            LEADS[code // 588] + VOWELS[code % 588 // 28] + TAILS[code % 28] if 0 <= code < 11172 else char
        )
    return "".join(out)


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


DISGUISES: dict[str, Callable[[str], str]] = {
    "spaced": lambda t: " ".join(c for c in t if not c.isspace()),
    "unspaced": lambda t: "".join(t.split()),
    "punctuated": lambda t: "·".join(t.split()) + "…",
    "nfd": lambda t: unicodedata.normalize("NFD", t),
    "compatibility_jamo": jamo,
    "full_width": full_width,
    "zero_width": lambda t: "\u200b".join(t),
    "upper_case": str.upper,
}


def exact_table(texts: Sequence[str], width: int) -> np.ndarray:
    spec = GramHash(width, seed=99)
    keys = []
    for text in texts:
        letters = normalize(text).letters
        keys.append(spec.at(letters, np.arange(max(0, len(letters) - width + 1), dtype=np.int64)))
    return np.unique(np.concatenate(keys))


def shares_run(text: str, table: np.ndarray, width: int) -> bool:
    letters = normalize(text).letters
    keys = GramHash(width, seed=99).at(letters, np.arange(max(0, len(letters) - width + 1), dtype=np.int64))
    found = table[np.minimum(np.searchsorted(table, keys), len(table) - 1)]
    return bool((found == keys).any())


def token_pieces(tokenizer: Tokenizer, text: str, limit: int) -> list[str]:
    """The text cut into the pieces its first `limit` tokens cover (how a model streams it)."""
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets[:limit]
    ends = [start for start, _ in offsets[1:]] + [offsets[-1][1]] if offsets else []
    return [text[start:end] for (start, _), end in zip(offsets, ends, strict=True)]


def copy_of_length(rng: random.Random, texts: Sequence[str], letters: int) -> str:
    """A verbatim run of whole characters holding exactly `letters` guard letters."""
    while True:
        text = rng.choice(texts)
        owners = normalize(text).owners
        if len(owners) <= letters + 1:
            continue
        first = rng.randrange(1, len(owners) - letters)
        if owners[first - 1] < owners[first] and owners[first + letters - 1] < owners[first + letters]:
            return text[int(owners[first]) : int(owners[first + letters])]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def build_guard(
    root: Path, texts: list[str], tokens: list[int], params: IndexParams
) -> tuple[GuardIndex, float]:
    capacity = math.ceil(sum(tokens) * LETTERS_PER_TOKEN / params.stride)
    started = time.perf_counter()
    with writer(root, params, capacity) as index:
        for first in range(0, len(texts), 256):
            index.add(
                texts[first : first + 256],
                [1 + first // 256 % 3] * len(texts[first : first + 256]),
                tokens[first : first + 256],
            )
    elapsed = time.perf_counter() - started
    opened = open_index(root)
    assert opened is not None
    return opened, elapsed


def set_bytes(keys: set[int]) -> int:
    return sys.getsizeof(keys) + sum(sys.getsizeof(k) for k in keys)


def letter_bytes(texts: Sequence[str]) -> bytes:
    """The guard letters of the corpus, one byte each (the 255 most common; the rest share one)."""
    stream = "\n".join(guard_text(t) for t in texts)
    common = [c for c, _ in Counter(stream).most_common(255)]
    table = {ord(c): i for i, c in enumerate(common)}
    return bytes(table.get(ord(c), 255) for c in stream)


@dataclass
class Corpus:
    texts: list[str]
    tokens: list[int]
    megabytes: float
    fresh_replies: list[str]
    short_replies: list[str]
    streams: list[list[str]]


def measure(root: Path, corpus: Corpus, params: IndexParams) -> dict[str, float]:
    """Every figure of one index configuration."""
    index, build_s = build_guard(root, corpus.texts, corpus.tokens, params)
    scanner = LeakScanner(index)
    rng = random.Random(7)
    spans = [copy_of_length(rng, corpus.texts, params.guaranteed_length()) for _ in range(RECALL_SAMPLES)]
    disguised = [
        sum(scanner.scan(CONTEXT + f(c) + TAIL).leaked for c in spans[:DISGUISE_SAMPLES]) / DISGUISE_SAMPLES
        for f in DISGUISES.values()
    ]
    whole, streamed, held = [], [], []
    for pieces in corpus.streams:
        text = "".join(pieces)
        started = time.perf_counter()
        scanner.scan(text)
        whole.append(time.perf_counter() - started)
        stream = scanner.stream("block")
        released = []
        started = time.perf_counter()
        for piece in pieces:
            released.append(len(stream.feed(piece)))
        stream.finish()
        streamed.append(time.perf_counter() - started)
        if stream.blocked:
            continue  # a (false) leak: the delay of a passing reply is what is measured
        ends = np.cumsum([len(piece) for piece in pieces])
        held += (np.arange(1, len(pieces) + 1) - np.searchsorted(ends, np.cumsum(released), "right")).tolist()
    return {
        "recall": sum(scanner.scan(CONTEXT + c + TAIL).leaked for c in spans) / len(spans),
        "disguised": min(disguised),
        "fp_long": sum(scanner.scan(r).leaked for r in corpus.fresh_replies),
        "fp_short": sum(scanner.scan(r).leaked for r in corpus.short_replies),
        "bytes_per_token": index.nbytes / sum(corpus.tokens),
        "whole_ms": median_ms(whole),
        "streamed_ms": median_ms(streamed),
        "held_tokens": statistics.median(held) if held else math.nan,
        "build_mb_s": corpus.megabytes / build_s,
        "guaranteed": params.guaranteed_length(),
    }


LEAK_LENGTHS = (50, 75, 100, 150, 200)
CURVE_SAMPLES = 500


def size_curve(root: Path, corpus: Corpus) -> Table:
    """Index size against the configured leak length (default width, hits and bits): how far the
    leak length would have to rise for the size target."""
    shape = IndexParams.for_leak_length(LEAK_LENGTHS[0], seed=0)
    bits = f"{shape.member_bits:g}+{shape.partner_bits:g}"
    grid = Table(title=f"index size against the leak length (width 26, 5 hits, {bits} bits per gram)")
    for column in (
        "leak length (letters)",
        "stride",
        "bytes per token",
        "recall",
        "false positives (long / short)",
    ):
        grid.add_column(column, justify="right")
    rng = random.Random(3)
    for length in LEAK_LENGTHS:
        params = IndexParams.for_leak_length(length, seed=length)
        index, _ = build_guard(root / f"curve-{length}", corpus.texts, corpus.tokens, params)
        scanner = LeakScanner(index)
        copies = [copy_of_length(rng, corpus.texts, params.guaranteed_length()) for _ in range(CURVE_SAMPLES)]
        recall = sum(scanner.scan(CONTEXT + c + TAIL).leaked for c in copies) / len(copies)
        long = sum(scanner.scan(r).leaked for r in corpus.fresh_replies)
        short = sum(scanner.scan(r).leaked for r in corpus.short_replies)
        grid.add_row(
            f"{params.guaranteed_length()}",
            f"{params.stride}",
            f"{index.nbytes / sum(corpus.tokens):.3f}",
            f"{recall:.1%}",
            f"{long} / {short}",
        )
    grid.caption = (
        f"{CURVE_SAMPLES} verbatim copies of each guaranteed length; the same held-out and short fresh "
        "replies as above. A Hangul syllable is 2–3 guard letters."
    )
    return grid


KEYS = 20_000
VOLUMES = (100, 1_000, 3_000)
ATTACK_CLAUSES = 300
# (soft, hard, allowance); the second is the default
BUDGETS = (
    (400, 800, 0.1),
    (800, 1_600, 0.1),
    (1_600, 3_200, 0.1),
    (1_600, 3_200, 0.05),
    (1_600, 3_200, 0.02),
)
REPLY_LENGTHS = (50, 100, 300)
CLAUSE_LETTERS = 40


def clauses(text: str) -> list[str]:
    """Consecutive runs of whole words of at most `CLAUSE_LETTERS` guard letters."""
    out: list[str] = []
    current: list[str] = []
    for word in text.split():
        if current and len(guard_text(" ".join([*current, word]))) > CLAUSE_LETTERS:
            out.append(" ".join(current))
            current = []
        current.append(word)
    return out


def credit_matrix(index: GuardIndex, replies: Sequence[str], budget: Budget) -> np.ndarray:
    """Letters each reply is credited per partner (rows: replies, columns: partner ids)."""
    matrix = np.zeros((len(replies), max(index.partners, default=0) + 1))
    for row, reply in enumerate(replies):
        for partner, letters in reply_credits(index, reply, budget).items():
            matrix[row, partner] = letters
    return matrix


def crossing(matrix: np.ndarray, budget: Budget, volume: int) -> tuple[float, float, float, float]:
    """Keys of `volume` random requests: the share crossing the soft and the hard budget, and
    the share of their requests answered strict and refused (judged on the tally before each)."""
    rng = np.random.default_rng(20190701)
    soft_keys = hard_keys = strict = refused = 0
    for _ in range(0, KEYS, 500):  # 500 keys at a time bounds the memory
        draws = rng.integers(0, len(matrix), (500, volume))
        running = np.cumsum(matrix[draws], axis=1).max(axis=2)
        before = np.concatenate([np.zeros((500, 1)), running[:, :-1]], axis=1)
        soft, hard = before >= budget.soft, before >= budget.hard
        soft_keys += int(soft.any(1).sum())
        hard_keys += int(hard.any(1).sum())
        strict += int((soft & ~hard).sum())
        refused += int(hard.sum())
    return soft_keys / KEYS, hard_keys / KEYS, strict / (KEYS * volume), refused / (KEYS * volume)


def clause_credits(
    index: GuardIndex, texts: Sequence[str], owner: Sequence[int], budget: Budget, partner: int
) -> list[tuple[int, int]]:
    """(credit, guard letters) of the first `ATTACK_CLAUSES` clauses of one partner's petitions."""
    out: list[tuple[int, int]] = []
    for text in (t for t, o in zip(texts, owner, strict=True) if o == partner):
        for clause in clauses(text):
            out.append((reply_credits(index, clause, budget).get(partner, 0), len(guard_text(clause))))
            if len(out) == ATTACK_CLAUSES:
                return out
    return out


def until_refused(sequence: Sequence[tuple[int, int]], hard: int) -> int:
    """Guard letters an attacker is sent before the tally reaches `hard`."""
    tally = letters = 0
    for credit, size in sequence:
        if tally >= hard:
            return letters
        tally += credit
        letters += size
    raise ValueError(f"{len(sequence)} clauses do not reach a budget of {hard}")


def main() -> None:
    console = Console(width=160)  # the tables are wide; a pipe would wrap them at 80
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    texts = [t for month in INDEXED for t in petitions(month)]
    tokens = [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    total_tokens = sum(tokens)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    default = IndexParams.for_leak_length(50, seed=20190501)
    compact = IndexParams.for_leak_length(50, width=26, hits=3, member_bits=10.0, partner_bits=2.0, seed=5)
    console.print(f"indexed: {len(texts):,} petitions, {megabytes:.1f} MB, {total_tokens:,} tokens")

    shortest = 46  # no configuration here flags a run shorter than this
    copies = exact_table(texts, shortest)
    replies = []
    for text in petitions(HELD_OUT):
        pieces = token_pieces(tokenizer, text, 10**9)
        replies += ["".join(pieces[i : i + REPLY_TOKENS]) for i in range(0, len(pieces), REPLY_TOKENS)]
    fresh = [r for r in replies if r.strip() and not shares_run(r, copies, shortest)]
    streams = [p for p in (token_pieces(tokenizer, t, 1000) for t in petitions(HELD_OUT)) if len(p) == 1000]
    corpus = Corpus(texts, tokens, megabytes, fresh, short_fresh(), streams[:SCAN_REPLIES])

    budget = GuardSettings().budget()
    assert budget is not None
    held_out = [token_pieces(tokenizer, text, 10**9) for text in petitions(HELD_OUT)]
    ordinary = [
        reply
        for length in REPLY_LENGTHS
        for pieces in held_out
        for reply in ("".join(pieces[i : i + length]) for i in range(0, len(pieces), length))
        if reply.strip() and not shares_run(reply, copies, shortest)
    ] + corpus.short_replies
    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            "default": measure(Path(tmp) / "default", corpus, default),
            "compact": measure(Path(tmp) / "compact", corpus, compact),
        }
        index = open_index(Path(tmp) / "default")
        assert index is not None
        owner = [1 + first // 256 % 3 for first in range(len(texts))]
        credited = {}
        credit_ms = math.nan
        for allowance in sorted({a for _, _, a in BUDGETS}):
            trial = replace(budget, allowance=allowance)
            started = time.perf_counter()
            matrix = credit_matrix(index, ordinary, trial)
            if allowance == budget.allowance:
                credit_ms = (time.perf_counter() - started) * 1000 / len(ordinary)
            attacks = [clause_credits(index, texts, owner, trial, partner) for partner in (1, 2, 3)]
            credited[allowance] = (matrix, attacks)
        joins_measured = measure_joins(index, texts, ordinary)
        curve = size_curve(Path(tmp), corpus)

    started = time.perf_counter()
    keys, _ = document_keys(default, texts)
    reference = set(keys.tolist())
    set_build_s = time.perf_counter() - started
    set_scan = []
    spec = GramHash(default.width, default.seed)
    for pieces in corpus.streams:
        started = time.perf_counter()
        letters = normalize("".join(pieces)).letters
        starts = np.arange(max(0, len(letters) - default.width + 1), dtype=np.int64)
        _hits = [k in reference for k in spec.at(letters, starts).tolist()]
        set_scan.append(time.perf_counter() - started)

    started = time.perf_counter()
    guard_bytes = letter_bytes(texts)
    suffix_array = pydivsufsort.divsufsort(guard_bytes)
    sa_build_s = time.perf_counter() - started
    sa_scan = []
    for pieces in corpus.streams[:SA_REPLIES]:
        query = letter_bytes(["".join(pieces)])
        started = time.perf_counter()
        for start in range(max(0, len(query) - shortest + 1)):
            pydivsufsort.sa_search(guard_bytes, suffix_array, query[start : start + shortest])
        sa_scan.append(time.perf_counter() - started)

    d, c = figures["default"], figures["compact"]
    grid = Table(title="leak guard on the open corpus (issue 6 targets)")
    for column in ("figure", "guard, default", "guard, compact", "Python set", "suffix array", "target"):
        grid.add_column(column, justify="left" if column == "figure" else "right")

    def row(label: str, key: str, fmt: str, set_value: str, sa_value: str, target: str) -> None:
        grid.add_row(label, format(d[key], fmt), format(c[key], fmt), set_value, sa_value, target)

    nf, ns = len(fresh), len(corpus.short_replies)
    row("guaranteed leak length (letters)", "guaranteed", ".0f", "any", "any", "≈ 50")
    row(f"recall, {RECALL_SAMPLES:,} verbatim copies of that length", "recall", ".2%", "100%", "100%", "100%")
    row("recall, disguised copies (worst of 8 kinds)", "disguised", ".2%", "100%", "100%", "≥ 99%")
    row(
        f"false positives in {nf:,} held-out replies of {REPLY_TOKENS} tokens",
        "fp_long",
        ".0f",
        "0",
        "0",
        f"≤ {nf / 1000:.1f}",
    )
    row(f"false positives in {ns:,} short fresh replies", "fp_short", ".0f", "0", "0", f"≤ {ns / 1000:.1f}")
    row(
        "index bytes per indexed token",
        "bytes_per_token",
        ".3f",
        f"{set_bytes(reference) / total_tokens:.1f}",
        f"{(suffix_array.nbytes + len(guard_bytes)) / total_tokens:.1f}",
        "≤ 0.25",
    )
    row(
        "scan ms / 1,000 tokens, whole reply (median)",
        "whole_ms",
        ".3f",
        f"{median_ms(set_scan):.3f}",
        f"{median_ms(sa_scan):.1f}",
        "≤ 2",
    )
    row("scan ms / 1,000 tokens, streamed token by token", "streamed_ms", ".1f", "", "", "≤ 2")
    row("stream delay of passing replies, tokens held back (median)", "held_tokens", ".0f", "", "", "")
    row(
        "index build MB/s",
        "build_mb_s",
        ".2f",
        f"{megabytes / set_build_s:.2f}",
        f"{megabytes / sa_build_s:.2f}",
        "",
    )
    console.print(grid)
    console.print(
        f"default: width {default.width}, stride {default.stride}, {default.hits} hits, "
        f"{default.member_bits:g}+{default.partner_bits:g} bits per gram; compact: width {compact.width}, "
        f"stride {compact.stride}, {compact.hits} hits, "
        f"{compact.member_bits:g}+{compact.partner_bits:g} bits. "
        f"Held-out replies left out as real copies (a shared run of {shortest}+ letters): "
        f"{len(replies) - nf:,} of {len(replies):,}. Set: the default's strided keys as Python ints; suffix "
        "array: int32 over the guard letters, one byte each."
    )
    console.print(accumulation_table(budget, ordinary, credited, credit_ms))
    console.print(join_table(joins_measured))
    console.print(curve)


JOIN_PAIRS = 1_000
CUSTOMERS = 40
CUSTOMER_REQUESTS = 250
JOIN_FRAME = ("요청하신 구절은 이렇습니다 → ", " (끝) 더 필요하시면 말씀해 주세요.")


def neighbour_pieces(rng: random.Random, texts: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of neighbouring pieces of 16–21 characters, each below the leak length."""
    out: list[tuple[str, str]] = []
    while len(out) < JOIN_PAIRS:
        text = texts[rng.randrange(len(texts))]
        if len(text) < 200:
            continue
        start, first, second = rng.randrange(len(text) - 100), rng.randint(16, 21), rng.randint(16, 21)
        a, b = text[start : start + first], text[start + first : start + first + second]
        if max(len(guard_text(a)), len(guard_text(b))) < 50:
            out.append((a, b))
    return out


def measure_joins(index: GuardIndex, texts: Sequence[str], ordinary: Sequence[str]) -> dict[str, Any]:
    rng = random.Random(11)
    scanner = LeakScanner(index)
    before, after = JOIN_FRAME
    by_length: dict[str, list[int]] = {"30–33": [0, 0], "34–39": [0, 0], "40–49": [0, 0]}
    for a, b in neighbour_pieces(rng, texts):
        first, second = before + a + after, before + b + after
        shortest = min(len(guard_text(a)), len(guard_text(b)))
        if shortest < 30 or scanner.scan(first).leaked or scanner.scan(second).leaked:
            continue
        bucket = "30–33" if shortest < 34 else "34–39" if shortest < 40 else "40–49"
        found = joins(fragments_of(index, second), fragments_of(index, first), index)
        by_length[bucket][0] += 1
        by_length[bucket][1] += bool(found)
    started = time.perf_counter()
    fragments = [fragments_of(index, reply) for reply in ordinary]
    fragment_ms = (time.perf_counter() - started) * 1000 / len(ordinary)
    alone = sum(bool(joins(own, [], index)) for own in fragments if len(own) > 1)
    stopped = requests = 0
    started = time.perf_counter()
    for _ in range(CUSTOMERS):
        kept: list[Fragment] = []
        for _ in range(CUSTOMER_REQUESTS):
            own = fragments[rng.randrange(len(fragments))]
            requests += 1
            if joins(own, kept[-KEPT:], index):
                stopped += 1
            else:
                kept += own
    request_ms = (time.perf_counter() - started) * 1000 / requests
    return {
        "by_length": by_length,
        "replies": len(ordinary),
        "with_fragments": sum(bool(own) for own in fragments),
        "fragments": sum(len(own) for own in fragments),
        "alone": alone,
        "requests": requests,
        "stopped": stopped,
        "fragment_ms": fragment_ms,
        "request_ms": request_ms,
    }


def join_table(measured: dict[str, Any]) -> Table:
    grid = Table(title="joins: pieces of one passage over several replies (guard/detection/fragments.py)")
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    for bucket, (pairs, found) in measured["by_length"].items():
        rate = found / pairs if pairs else math.nan
        grid.add_row(f"neighbouring pieces of {bucket} letters joined", f"{found:,} / {pairs:,} ({rate:.1%})")
    replies = measured["replies"]
    grid.add_row(
        "ordinary replies with a fragment",
        f"{measured['with_fragments']:,} / {replies:,} ({measured['fragments']:,} fragments)",
    )
    grid.add_row("ordinary replies whose own fragments join (stopped alone)", f"{measured['alone']:,}")
    stopped, requests = measured["stopped"], measured["requests"]
    grid.add_row(
        f"ordinary requests stopped as joins ({CUSTOMERS} customers × {CUSTOMER_REQUESTS} requests)",
        f"{stopped:,} / {requests:,} ({stopped / requests:.3%})",
    )
    grid.add_row("fragments of a reply, ms (mean)", f"{measured['fragment_ms']:.3f}")
    grid.add_row(
        f"join tests of a request against ≤ {KEPT} earlier fragments, ms (mean)",
        f"{measured['request_ms']:.2f}",
    )
    grid.caption = (
        f"{JOIN_PAIRS:,} neighbouring pairs drawn; pairs where a piece is under 30 letters or leaks alone "
        "(the framing happens to go on like the source) are left out. Customers: each request is a reply "
        f"drawn at random from the ordinary replies, tested both ways against the customer's last {KEPT} "
        "fragments (the gateway's limit), as the gateway does. Target: ≤ 0.1 % of requests."
    )
    return grid


def accumulation_table(
    budget: Budget,
    ordinary: Sequence[str],
    credited: dict[float, tuple[np.ndarray, list[list[tuple[int, int]]]]],
    credit_ms: float,
) -> Table:
    grid = Table(
        title=f"accumulation per partner per {budget.window_s} s window: chains of {budget.min_hits}+ "
        f"hits (default: soft {budget.soft}, hard {budget.hard}, allowance {budget.allowance:g})"
    )
    columns = (
        "soft / hard budget (letters), allowance",
        "ordinary key: requests per window",
        "keys crossing soft",
        "keys crossing hard",
        "requests answered strict",
        "requests refused",
        "attacker: letters sent before refused (per partner)",
    )
    for column in columns:
        grid.add_column(column, justify="right")
    for soft, hard, allowance in BUDGETS:
        trial = replace(budget, soft=soft, hard=hard, allowance=allowance)
        matrix, attacks = credited[allowance]
        stolen = "/".join(f"{until_refused(a, hard):,}" for a in attacks)
        for volume in VOLUMES:
            keys_soft, keys_hard, strict, refused = crossing(matrix, trial, volume)
            grid.add_row(
                f"{soft:,} / {hard:,}, {allowance:g}",
                f"{volume:,}",
                f"{keys_soft:.3%}",
                f"{keys_hard:.3%}",
                f"{strict:.4%}",
                f"{refused:.4%}",
                stolen,
            )
    earning = int((credited[budget.allowance][0].sum(1) > 0).sum())
    grid.caption = (
        f"{KEYS:,} simulated keys per row, requests drawn from {len(ordinary):,} fresh replies "
        f"(held-out petitions of {'/'.join(map(str, REPLY_LENGTHS))} tokens and the short replies), "
        f"{earning:,} of which earn any credit at the default allowance; crediting costs "
        f"{credit_ms:.2f} ms per reply. "
        f"Attacker: {CLAUSE_LETTERS}-letter clauses of one partner's petitions in order. Target: "
        "≤ 0.1 % of ordinary keys and requests."
    )
    return grid


if __name__ == "__main__":
    main()
