"""`tokenclub export …` and `tokenclub model …` end to end, as a trainer, an operator and a stranger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.helpers import run_cli
from tests.export.homes import two_partner_home

ROLES = {"TOKENCLUB_TRAINERS": "kim", "TOKENCLUB_OPERATORS": "ops"}


def _json(home: Path, *args: str) -> Any:
    result = run_cli(home, *args, "--json", env_extra=ROLES)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _error(home: Path, *args: str) -> str:
    result = run_cli(home, *args, env_extra=ROLES)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def test_export_download_registry_and_partner_view(tmp_path: Path) -> None:
    home = tmp_path / "home"
    two_partner_home(home).dispose()
    assert _error(home, "export", "create", "--as", "stranger") == (
        "error: 'stranger' is neither a trainer nor an operator (TOKENCLUB_TRAINERS, TOKENCLUB_OPERATORS): "
        "training data leaves only for training"
    )
    assert _error(home, "export", "create", "--as", "kim", "-f", "csv") == (
        "error: unknown export format csv (choose from parquet, megatron, mds)"
    )
    manifest = _json(
        home, "export", "create", "--as", "kim", "-f", "parquet,megatron", "--shard-size", "50kB"
    )
    assert (manifest["export_id"], manifest["snapshot_id"], manifest["documents"]) == (1, 1, 57)
    assert {f["format"] for f in manifest["files"]} == {"parquet", "megatron"}
    assert (
        _error(home, "export", "create", "--as", "kim", "--snapshot", "9")
        == "error: snapshot 9 does not exist"
    )

    dest = tmp_path / "downloaded"
    got = _json(home, "export", "download", "1", "--to", str(dest), "--as", "ops")
    assert got["files"] == len(manifest["files"]) + 1
    assert json.loads((dest / "manifest.json").read_text()) == manifest

    assert _json(home, "partner", "withdraw", "1")["status"] == "withdrawn"
    second = _json(home, "export", "create", "--as", "kim", "-f", "mds")
    assert (second["snapshot_id"], list(second["partners"])) == (2, ["2"])
    listed = _json(home, "export", "list", "--as", "ops")
    assert [w["partner_id"] for w in listed[0]["withdrawn_since"]] == [1]
    assert listed[0]["note"].startswith("partner(s) 1 withdrew after this snapshot")
    assert listed[1]["note"] == ""

    model = _json(
        home, "model", "register", "ko-llm-1", "--snapshot", "1", "--served-as", "ko-chat", "--as", "kim"
    )
    assert (model["snapshot_id"], model["served_as"]) == (1, "ko-chat")
    assert [m["name"] for m in _json(home, "model", "list")] == ["ko-llm-1"]
    view = _json(home, "export", "partner", "2")
    assert [s["snapshot_id"] for s in view["snapshots"]] == [1, 2]
    assert [m["name"] for m in view["models"]] == ["ko-llm-1"]
    assert all(set(s) == {"snapshot_id", "created_at", "documents", "tokens"} for s in view["snapshots"])

    log = _json(home, "export", "log", "--as", "ops")
    assert [(e["actor"], e["action"]) for e in reversed(log)] == [
        ("kim", "snapshot"),
        ("kim", "export"),
        ("ops", "download"),
        ("kim", "snapshot"),
        ("kim", "export"),
        ("kim", "model_register"),
    ]
