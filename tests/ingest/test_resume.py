"""SIGKILL at any moment, run the same command again: same receipt, same credit, as if never killed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.helpers import BIN, run_cli, run_json
from tests.ingest.fixtures import petitions, write_jsonl

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    env.update(TOKENCLUB_HOME=str(home), TOKENCLUB_BATCH_SIZE="8", TOKENCLUB_WORKERS="1")
    return env


def _prepare(home: Path) -> None:
    env = _env(home)
    for args in (("init",), ("partner", "add", "A"), ("partner", "approve", "1")):
        subprocess.run([str(BIN), *args], env=env, check=True, capture_output=True, timeout=60)


def _committed_batches(home: Path) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'tokenclub.db'}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM upload_batches").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _ingest_json(home: Path, upload: Path) -> dict[str, object]:
    env = _env(home)
    result = subprocess.run(
        [str(BIN), "ingest", "--partner", "1", str(upload), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    receipt: dict[str, object] = json.loads(result.stdout)
    return receipt


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("up") / "petitions.jsonl", petitions(0, 160))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, upload: Path) -> tuple[dict[str, object], object]:
    home = tmp_path_factory.mktemp("ref")
    _prepare(home)
    receipt = _ingest_json(home, upload)
    return receipt, run_json(home, "balance", "--partner", "1")


@pytest.mark.parametrize("kill_after_batches", [0, 1, 7, 15])
def test_killed_ingest_resumes_to_the_same_receipt(
    tmp_path: Path, upload: Path, reference: tuple[dict[str, object], object], kill_after_batches: int
) -> None:
    home = tmp_path / "home"
    _prepare(home)
    proc = subprocess.Popen(
        [str(BIN), "ingest", "--partner", "1", str(upload), "--json"],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while (
        _committed_batches(home) < kill_after_batches and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    if kill_after_batches == 0:
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    interrupted_at = _committed_batches(home)
    receipt = _ingest_json(home, upload)
    expected_receipt, expected_balance = reference
    assert receipt == expected_receipt
    assert run_json(home, "balance", "--partner", "1") == expected_balance
    assert run_json(home, "ledger", "audit") == {"ok": True, "problems": [], "usage_anomalies": 0}
    dumped = run_cli(home, "corpus", "dump", "--json").stdout.splitlines()
    assert len(dumped) == expected_receipt["documents_accepted"]
    assert interrupted_at < 20, "the kill came after the upload had finished"
