"""Encryption at rest through the real program: init makes the key, ingest seals, dump and
rotation read it back, and nothing on disk holds the text in the clear."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from tests.cli.helpers import run_cli, run_json
from tests.ingest.fixtures import petitions, write_jsonl


def test_sealed_home_from_init_to_rotation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_json(home, "init")
    key_file = home / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    run_json(home, "partner", "add", "A")
    run_json(home, "partner", "approve", "1")
    rows = petitions(100, 30)
    receipt = run_json(home, "ingest", "--partner", "1", str(write_jsonl(tmp_path / "up.jsonl", rows)))
    assert receipt["documents_accepted"] > 0
    parts = sorted((home / "corpus").rglob("*.parquet"))
    assert parts and all(p.read_bytes().startswith(b"TCSEALv1") for p in parts)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in parts)
    sample = rows[0]["content"][:20].encode()
    assert not any(sample in p.read_bytes() for p in home.rglob("*") if p.is_file() and p.suffix != ".db")
    dumped = [json.loads(line) for line in run_cli(home, "corpus", "dump", "--json").stdout.splitlines()]
    assert len(dumped) == receipt["documents_accepted"]

    rotated = run_json(home, "keys", "rotate")
    assert rotated["corpus"] == {"rewrapped": len(parts), "already_current": 0}
    assert list(json.loads(key_file.read_text())["keys"]) == [rotated["key_id"]]
    again = [json.loads(line) for line in run_cli(home, "corpus", "dump", "--json").stdout.splitlines()]
    assert again == dumped

    wrong = base64.b64encode(b"w" * 32).decode()
    refused = run_cli(home, "corpus", "dump", "--json", env_extra={"TOKENCLUB_MASTER_KEY": wrong})
    assert refused.returncode == 1
    assert "does not open with master key" in refused.stderr
