"""How long the CLI takes to start: `tokenclub --help` and light commands against `python -c pass`.

Each row is a fresh subprocess, run repeatedly in interleaved rounds (every row once per round),
so a busy minute on the shared machine moves every row alike; the reference row is the bare
interpreter's own start-up, and every other row is also shown as its ratio to it. The
`heavy modules` column lists which of the modules a command should not need at start-up it
imported (run once more with `-X importtime`; `python -X importtime -m tokenclub.cli.main
--help 2>&1 | sort -t'|' -k2 -n | tail` shows where the time goes).

    .venv/bin/python bench/bench_cli.py                 # 15 rounds
    .venv/bin/python bench/bench_cli.py --rounds 5      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HEAVY = (
    "pyarrow",
    "numpy",
    "httpx",
    "tokenizers",
    "fastapi",
    "sqlalchemy",
    "pydantic",
    "alembic",
    "aiohttp",
    "uvicorn",
    "redis",
)
_SCRIPT = Path(sys.executable).with_name("tokenclub")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tokenclub.cli.main"]
"""The installed `tokenclub` program (it runs whatever tree `PYTHONPATH` puts first)."""


def _rows(home: Path) -> dict[str, list[str]]:
    return {
        "python -c pass (reference)": [sys.executable, "-c", "pass"],
        "tokenclub --help": [*CLI, "--help"],
        "tokenclub key --help": [*CLI, "key", "--help"],
        "tokenclub guard --help": [*CLI, "guard", "--help"],
        "tokenclub ingest --help": [*CLI, "ingest", "--help"],
        "tokenclub serve --help": [*CLI, "serve", "--help"],
        "tokenclub init --json (home exists)": [*CLI, "init", "--json"],
        "tokenclub ledger audit --json (empty)": [*CLI, "ledger", "audit", "--json"],
    }


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def _heavy(argv: list[str], env: dict[str, str]) -> list[str]:
    """The heavy top-level packages a run imported, read from `-X importtime`."""
    python = argv if argv[0] == sys.executable else [sys.executable, *argv]
    run = subprocess.run(
        [python[0], "-X", "importtime", *python[1:]], env=env, capture_output=True, text=True, check=False
    )
    loaded = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in run.stderr.splitlines()
        if line.startswith("import time:")
    }
    return [name for name in HEAVY if name in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
        env["TOKENCLUB_HOME"] = str(Path(tmp) / "home")
        rows = _rows(Path(tmp))
        subprocess.run([*CLI, "init"], env=env, capture_output=True, check=True)
        times: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, argv in rows.items():
                times[name].append(_timed(argv, env))
        heavy = {name: _heavy(argv, env) for name, argv in rows.items()}
    reference = statistics.median(next(iter(times.values())))
    table = Table(title=f"CLI start-up, {args.rounds} rounds (wall time of a fresh process)")
    for column in ("command", "median ms", "min ms", "÷ python -c pass", "heavy modules imported"):
        table.add_column(
            column, justify="left" if column in ("command", "heavy modules imported") else "right"
        )
    for name, samples in times.items():
        median = statistics.median(samples)
        table.add_row(
            name,
            f"{median * 1000:.0f}",
            f"{min(samples) * 1000:.0f}",
            f"{median / reference:.1f}×",
            ", ".join(heavy[name]) or "none",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
