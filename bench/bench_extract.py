"""Extraction throughput on the petitions corpus, against naive reading in the same run.

Throughput is MB of input per CPU-second (`time.process_time`, one core), best of several
runs. The naive references do the least that could be called reading: `read().decode()`
for text, `json.loads` per line for JSONL. What `iter_extract` adds on top (hashing the
file, sniffing, strict decoding with detection, NFC, control-byte checks, field choice,
metadata, one dataclass per record) is the price the ratio shows.

Plain text is the petitions' contents joined into one file, in UTF-8 and in CP949 (the
petitions CP949 cannot encode are left out of that one), written to a temporary folder.
The SQL dumps hold the same petitions as a mysqldump (extended INSERTs of 100 rows, with
backslash escapes) and as a pg_dump (one COPY block); their naive references are one regular
expression over the decoded file for the INSERT tuples, and `split('\t')` per COPY line.

    .venv/bin/python bench/bench_extract.py [--corpora /work/shared/corpora] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tokenclub.extract.document import ExtractedDocument
from tokenclub.extract.reader import iter_extract

DEFAULT_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def _best_cpu_seconds(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Fastest CPU time of `repeat` runs, and what the run counted (to check both agree)."""
    best = float("inf")
    count = 0
    for _ in range(repeat):
        start = time.process_time()
        count = run()
        best = min(best, time.process_time() - start)
    return best, count


def _ours(paths: list[Path]) -> Callable[[], int]:
    def run() -> int:
        return sum(isinstance(item, ExtractedDocument) for path in paths for item in iter_extract(path))

    return run


def _naive_text(path: Path, codec: str) -> Callable[[], int]:
    def run() -> int:
        with path.open("rb") as fh:
            fh.read().decode(codec)
        return 1

    return run


def _naive_jsonl(paths: list[Path]) -> Callable[[], int]:
    def run() -> int:
        count = 0
        for path in paths:
            with path.open("rb") as fh:
                for line in fh:
                    if json.loads(line)["content"].strip():
                        count += 1
        return count

    return run


_MYSQL_ROW = re.compile(r"\((\d+),'((?:[^'\\]|\\.)*)','((?:[^'\\]|\\.)*)'\)")


def _naive_mysql(path: Path) -> Callable[[], int]:
    def run() -> int:
        text = path.read_bytes().decode("utf-8")
        return sum(1 for match in _MYSQL_ROW.finditer(text) if match.group(3).strip())

    return run


def _naive_copy(path: Path) -> Callable[[], int]:
    def run() -> int:
        count = 0
        inside = False
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("COPY "):
                    inside = True
                elif line == "\\.\n":
                    inside = False
                elif inside and line.rstrip("\n").split("\t")[2].strip():
                    count += 1
        return count

    return run


def _mysql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _copy_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _sql_dumps(petitions: list[Path], folder: Path) -> tuple[Path, Path]:
    rows = [json.loads(line) for path in petitions for line in path.open(encoding="utf-8")]
    mysql = folder / "petitions-mysql.sql"
    with mysql.open("w", encoding="utf-8") as out:
        out.write("-- MySQL dump 10.13\n/*!40101 SET NAMES utf8mb4 */;\n")
        out.write("CREATE TABLE `petitions` (`id` int, `title` text, `content` longtext);\n")
        for start in range(0, len(rows), 100):
            tuples = ",".join(
                f"({n},{_mysql_literal(row['title'])},{_mysql_literal(row['content'])})"
                for n, row in enumerate(rows[start : start + 100], start=start)
            )
            out.write(f"INSERT INTO `petitions` VALUES {tuples};\n")
    postgres = folder / "petitions-pg.sql"
    with postgres.open("w", encoding="utf-8") as out:
        out.write("--\n-- PostgreSQL database dump\n--\nSET standard_conforming_strings = on;\n")
        out.write("CREATE TABLE public.petitions (id integer, title text, content text);\n")
        out.write("COPY public.petitions (id, title, content) FROM stdin;\n")
        for n, row in enumerate(rows):
            out.write(f"{n}\t{_copy_field(row['title'])}\t{_copy_field(row['content'])}\n")
        out.write("\\.\n")
    return mysql, postgres


def _text_files(petitions: list[Path], folder: Path) -> tuple[Path, Path]:
    contents = [json.loads(line)["content"] for path in petitions for line in path.open(encoding="utf-8")]
    utf8 = folder / "petitions.txt"
    utf8.write_text("\n\n".join(contents), encoding="utf-8")
    encodable = []
    for text in contents:
        try:
            encodable.append(text.encode("cp949"))
        except UnicodeEncodeError:
            continue
    cp949 = folder / "petitions-cp949.txt"
    cp949.write_bytes(b"\n\n".join(encodable))
    return utf8, cp949


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    petitions = sorted((args.corpora / "petitions").glob("*.jsonl"))
    if not petitions:
        raise SystemExit(f"no petitions under {args.corpora}")

    table = Table(title="extraction throughput (MB of input per CPU-second, one core)")
    for column in ("input", "MB", "iter_extract", "naive", "naive reference", "ratio"):
        table.add_column(column, justify="left" if column in ("input", "naive reference") else "right")

    with tempfile.TemporaryDirectory() as folder:
        utf8, cp949 = _text_files(petitions, Path(folder))
        mysql, postgres = _sql_dumps(petitions, Path(folder))
        cases = [
            ("text, UTF-8", [utf8], _naive_text(utf8, "utf-8"), "read().decode('utf-8')"),
            ("text, CP949", [cp949], _naive_text(cp949, "cp949"), "read().decode('cp949')"),
            ("JSONL, 5 files", petitions, _naive_jsonl(petitions), "json.loads per line"),
            ("SQL, mysqldump INSERTs", [mysql], _naive_mysql(mysql), "one regex over the text"),
            ("SQL, pg_dump COPY", [postgres], _naive_copy(postgres), "split('\\t') per line"),
        ]
        for label, paths, naive, reference in cases:
            size = sum(path.stat().st_size for path in paths) / 1e6
            ours_s, ours_count = _best_cpu_seconds(_ours(paths), args.repeat)
            naive_s, naive_count = _best_cpu_seconds(naive, args.repeat)
            if ours_count != naive_count:
                raise SystemExit(
                    f"{label}: iter_extract read {ours_count} documents, the reference {naive_count}"
                )
            table.add_row(
                label,
                f"{size:.1f}",
                f"{size / ours_s:,.0f}",
                f"{size / naive_s:,.0f}",
                reference,
                f"{naive_s / ours_s:.2f}",
            )
    Console().print(table)
    Console().print("ratio = iter_extract throughput / naive throughput (1.00 = as fast as naive reading)")


if __name__ == "__main__":
    main()
