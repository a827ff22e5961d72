"""Dedup signature throughput and accuracy, against datasketch's MinHash in the same run.

Throughput is MB of raw UTF-8 text per CPU-second (`time.process_time`, one core): the figure
that decides how many cores near-dedup of 10¹² tokens needs. The target is at least twice
datatrove's MinHash, which runs at about 2.7 MB per CPU-second on Korean text (a figure quoted
from the project brief, not measured here: datatrove is not a dependency). datasketch gets the
same normalized text and the same character 5-gram shingles, so the comparison isolates the
hashing.

Accuracy: petitions with a share of their eojeol replaced by eojeol of another petition, the
exact shingle Jaccard against both estimates (128 permutations each).

    .venv/bin/python bench/bench_dedup.py [--corpora /work/shared/corpora] [--reviews 50000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasketch import MinHash
from rich.console import Console
from rich.table import Table

from tokenclub.curate.dedup import (
    SHINGLE_CHARS,
    DedupSignatureStep,
    MinHasher,
    jaccard_estimate,
    normalize_for_dedup,
)

DATATROVE_MB_PER_CPU_S = 2.7
BATCH = 256
PERMUTATIONS = 128


def _petitions(root: Path) -> list[str]:
    texts: list[str] = []
    for path in sorted((root / "petitions").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts.extend(json.loads(line)["content"] for line in fh)
    return texts


def _reviews(root: Path, limit: int) -> list[str]:
    texts: list[str] = []
    with gzip.open(root / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            if len(texts) == limit:
                break
            texts.append(json.loads(line)["review"])
    return texts


def _shingles(text: str) -> list[bytes]:
    normalized = normalize_for_dedup(text)
    if len(normalized) < SHINGLE_CHARS:
        return [normalized.encode("utf-8")]
    return [
        normalized[i : i + SHINGLE_CHARS].encode("utf-8") for i in range(len(normalized) - SHINGLE_CHARS + 1)
    ]


def _datasketch(texts: Sequence[str]) -> list[MinHash]:
    signatures = []
    for text in texts:
        minhash = MinHash(num_perm=PERMUTATIONS, seed=1)
        minhash.update_batch(_shingles(text))
        signatures.append(minhash)
    return signatures


def _batches(texts: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), BATCH):
        yield texts[start : start + BATCH]


def _cpu_seconds(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def _throughput(texts: Sequence[str]) -> list[tuple[str, float]]:
    """CPU seconds per implementation over the same texts."""
    hasher = MinHasher(num_perm=PERMUTATIONS)
    step = DedupSignatureStep(hasher)
    hasher.signature("warm up the code point table")
    tables = [
        pa.table(
            {"doc_id": [str(i) for i in range(len(b))], "text": list(b), "reject_reason": [None] * len(b)}
        )
        for b in _batches(texts)
    ]
    return [
        (
            "tokenclub signatures",
            _cpu_seconds(lambda: [hasher.signatures(b) for b in _batches(texts)]),
        ),
        (
            "tokenclub step (key+bands)",
            _cpu_seconds(lambda: [step.process(t) for t in tables]),
        ),
        ("datasketch MinHash", _cpu_seconds(lambda: _datasketch(texts))),
    ]


def _edited(text: str, donor: str, share: float, rng: random.Random) -> str:
    words, spare = text.split(), donor.split()
    for position in rng.sample(range(len(words)), int(len(words) * share)):
        words[position] = rng.choice(spare)
    return " ".join(words)


def _accuracy(texts: Sequence[str], pairs: int) -> list[tuple[float, float, float, float]]:
    """Per edit share: mean exact Jaccard, mean |error| of tokenclub and of datasketch, max |error|."""
    rng = random.Random(0)
    hasher = MinHasher(num_perm=PERMUTATIONS)
    long_texts = [t for t in texts if len(t) >= 1000]
    rows = []
    for share in (0.05, 0.1, 0.2, 0.4):
        exact, ours, theirs = [], [], []
        for index in range(pairs):
            original, donor = long_texts[index], long_texts[-1 - index]
            edited = _edited(original, donor, share, rng)
            a, b = set(_shingles(original)), set(_shingles(edited))
            exact.append(len(a & b) / len(a | b))
            ours.append(jaccard_estimate(*hasher.signatures([original, edited])))
            da, db = _datasketch([original, edited])
            theirs.append(float(da.jaccard(db)))
        truth = np.array(exact)
        ours_error, theirs_error = np.abs(np.array(ours) - truth), np.abs(np.array(theirs) - truth)
        rows.append((share, float(truth.mean()), float(ours_error.mean()), float(theirs_error.mean())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=Path("/work/shared/corpora"))
    parser.add_argument("--reviews", type=int, default=50_000, help="nsmc reviews for the short-text row")
    parser.add_argument("--pairs", type=int, default=100, help="edited petition pairs per edit share")
    args = parser.parse_args()

    console = Console(width=120)
    corpora = [
        ("petitions", _petitions(args.corpora)),
        ("nsmc reviews", _reviews(args.corpora, args.reviews)),
    ]

    table = Table(
        title=f"Dedup signatures, {PERMUTATIONS} permutations, char {SHINGLE_CHARS}-grams, one core"
    )
    for column in (
        "corpus",
        "implementation",
        "docs",
        "MB",
        "CPU s",
        "MB/CPU-s",
        "× datasketch",
        "× datatrove*",
    ):
        table.add_column(column, justify="left" if column in ("corpus", "implementation") else "right")
    for corpus, texts in corpora:
        megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        results = _throughput(texts)
        reference = dict(results)["datasketch MinHash"]
        for name, seconds in results:
            rate = megabytes / seconds
            table.add_row(
                corpus,
                name,
                f"{len(texts):,}",
                f"{megabytes:.1f}",
                f"{seconds:.2f}",
                f"{rate:.1f}",
                f"{reference / seconds:.1f}",
                f"{rate / DATATROVE_MB_PER_CPU_S:.1f}",
            )
    console.print(table)
    console.print(
        f"* against datatrove's reported {DATATROVE_MB_PER_CPU_S} MB per CPU-second (not measured here)"
    )

    accuracy = Table(title=f"Jaccard estimates on {args.pairs} edited petitions per row (128 permutations)")
    for column in ("eojeol replaced", "mean exact J", "tokenclub mean |err|", "datasketch mean |err|"):
        accuracy.add_column(column, justify="right")
    for share, truth, ours, theirs in _accuracy(corpora[0][1], args.pairs):
        accuracy.add_row(f"{share:.0%}", f"{truth:.3f}", f"{ours:.4f}", f"{theirs:.4f}")
    console.print(accuracy)


if __name__ == "__main__":
    main()
