"""Build the default tokenizer and report what docs/tokenizer.md records about it.

Trains the 32k byte-level BPE on `default_training_texts`, saves it atomically, and measures:
training time (wall and CPU), file size, fingerprint, and tokens per eojeol on held-out text
that training never saw. With --check, trains a second time in a fresh process with one
Rayon thread and requires the same fingerprint.

    .venv/bin/python scripts/build_tokenizer.py OUT.json [--corpora /work/shared/corpora] [--check] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tokenclub.tokenizer import (
    NSMC_STRIDE,
    TokenCounter,
    build_default_tokenizer,
    count_words,
)


def _held_out(root: Path) -> dict[str, list[str]]:
    """Text of the same registers as the training set, none of it trained on."""

    def petitions() -> Iterator[str]:
        with (root / "petitions" / "petitions_2019-07.jsonl").open(encoding="utf-8") as fh:
            yield from (json.loads(line)["content"] for line in fh)

    def reviews() -> Iterator[str]:
        with gzip.open(root / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as fh:
            lines = islice(fh, NSMC_STRIDE // 2, None, NSMC_STRIDE)  # between the trained ones
            yield from (json.loads(line)["review"] for line in lines)

    def treebank() -> Iterator[str]:
        with (root / "ud-korean-kaist" / "ko_kaist-ud-test.conllu").open(encoding="utf-8") as fh:
            yield from (line[len("# text = ") :].rstrip("\n") for line in fh if line.startswith("# text = "))

    return {
        "petitions 2019-07 (formal prose)": list(petitions()),
        "UD Korean-KAIST test (written)": list(treebank()),
        "nsmc reviews, untrained (informal)": list(reviews()),
    }


def _rebuild_fingerprint(root: Path, out: Path) -> str:
    code = (
        "import sys; from tokenclub.tokenizer import build_default_tokenizer as build; "
        "print(build(sys.argv[1], sys.argv[2]))"
    )
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "PYTHONHASHSEED": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(root), str(out)], check=True, capture_output=True, text=True, env=env
    )
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write tokenizer.json")
    parser.add_argument("--corpora", type=Path, default=Path("/work/shared/corpora"))
    parser.add_argument("--check", action="store_true", help="train again in a fresh process and compare")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()

    wall, cpu = time.perf_counter(), time.process_time()
    digest = build_default_tokenizer(args.corpora, args.out)
    report: dict[str, object] = {
        "path": str(args.out),
        "fingerprint": digest,
        "train_wall_s": round(time.perf_counter() - wall, 1),
        "train_cpu_s": round(time.process_time() - cpu, 1),
        "cpu_count": os.cpu_count(),
        "file_bytes": args.out.stat().st_size,
    }
    counter = TokenCounter(args.out)
    report["vocab_size"] = counter.tokenizer.get_vocab_size()
    held_out = {}
    for name, texts in _held_out(args.corpora).items():
        words = sum(count_words(text) for text in texts)
        tokens = sum(counter.count(texts))
        held_out[name] = {
            "texts": len(texts),
            "eojeol": words,
            "tokens": tokens,
            "ratio": round(tokens / words, 3),
        }
    report["held_out"] = held_out
    if args.check:
        with tempfile.TemporaryDirectory() as scratch:
            report["reproducible"] = (
                _rebuild_fingerprint(args.corpora, Path(scratch) / "again.json") == digest
            )

    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return
    console = Console()
    summary = Table(title="default tokenizer", show_header=False)
    for key, value in report.items():
        if key != "held_out":
            summary.add_row(key, str(value))
    console.print(summary)
    ratios = Table(title="tokens per eojeol on held-out text")
    for column in ("text", "texts", "eojeol", "tokens", "tokens/eojeol"):
        ratios.add_column(column, justify="left" if column == "text" else "right")
    for name, row in held_out.items():
        ratios.add_row(
            name, f"{row['texts']:,}", f"{row['eojeol']:,}", f"{row['tokens']:,}", f"{row['ratio']:.3f}"
        )
    console.print(ratios)


if __name__ == "__main__":
    main()
