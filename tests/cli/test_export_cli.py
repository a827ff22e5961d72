"""`tokenclub export …` and `tokenclub model …` end to end, as a trainer, an operator and a stranger."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.cli.helpers import run_cli
from tests.export.homes import two_partner_home

KIM, OPS = "kim@lab.kr", "ops@coop.kr"


def _json(home: Path, *args: str) -> Any:
    result = run_cli(home, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _error(home: Path, *args: str) -> str:
    result = run_cli(home, *args)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def test_export_download_registry_and_partner_view(tmp_path: Path) -> None:
    home = tmp_path / "home"
    two_partner_home(home).dispose()
    for email, role in ((KIM, "trainer"), (OPS, "operator")):
        _json(home, "user", "add", email, "--role", role, "--password", "correct horse battery")
    assert _error(home, "export", "create", "--as", "stranger") == (
        "error: 'stranger' is no active portal user (tokenclub user add …): "
        "training data leaves only for training"
    )
    assert _error(home, "export", "create", "--as", KIM, "-f", "csv") == (
        "error: unknown export format csv (choose from parquet, megatron, mds)"
    )
    manifest = _json(home, "export", "create", "--as", KIM, "-f", "parquet,megatron", "--shard-size", "50kB")
    assert (manifest["export_id"], manifest["snapshot_id"], manifest["documents"]) == (1, 1, 57)
    assert {f["format"] for f in manifest["files"]} == {"parquet", "megatron"}
    assert (
        _error(home, "export", "create", "--as", KIM, "--snapshot", "9") == "error: snapshot 9 does not exist"
    )

    dest = tmp_path / "downloaded"
    got = _json(home, "export", "download", "1", "--to", str(dest), "--as", OPS)
    assert got["files"] == len(manifest["files"]) + 1
    assert json.loads((dest / "manifest.json").read_text()) == manifest

    assert _json(home, "partner", "withdraw", "1")["status"] == "withdrawn"
    second = _json(home, "export", "create", "--as", KIM, "-f", "mds")
    assert (second["snapshot_id"], list(second["partners"])) == (2, ["2"])
    listed = _json(home, "export", "list", "--as", OPS)
    assert [w["partner_id"] for w in listed[0]["withdrawn_since"]] == [1]
    assert listed[0]["note"].startswith("partner(s) 1 withdrew after this snapshot")
    assert listed[1]["note"] == ""

    model = _json(
        home, "model", "register", "ko-llm-1", "--snapshot", "1", "--served-as", "ko-chat", "--as", KIM
    )
    assert (model["snapshot_id"], model["served_as"]) == (1, "ko-chat")
    assert [m["name"] for m in _json(home, "model", "list")] == ["ko-llm-1"]
    view = _json(home, "export", "partner", "2")
    assert [s["snapshot_id"] for s in view["snapshots"]] == [1, 2]
    assert [m["name"] for m in view["models"]] == ["ko-llm-1"]
    assert all(set(s) == {"snapshot_id", "created_at", "documents", "tokens"} for s in view["snapshots"])

    log = _json(home, "export", "log", "--as", OPS)
    assert [(e["actor"], e["action"]) for e in reversed(log)] == [
        (KIM, "snapshot"),
        (KIM, "export"),
        (OPS, "download"),
        (KIM, "snapshot"),
        (KIM, "export"),
        (KIM, "model_register"),
    ]


def test_ray_executor_without_the_ray_extra_says_so_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    two_partner_home(home).dispose()
    _json(home, "user", "add", KIM, "--role", "trainer", "--password", "correct horse battery")
    shadow = tmp_path / "no-ray" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    path = os.pathsep.join([str(shadow.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    result = run_cli(
        home, "export", "create", "--as", KIM, "--executor", "ray", env_extra={"PYTHONPATH": path}
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: Ray is not installed: pip install 'tokenclub[ray]'\n"
    assert _json(home, "export", "snapshots", "--as", KIM) == []  # nothing was frozen or written
    misuse = run_cli(home, "export", "create", "--as", KIM, "--workers", "2")
    assert misuse.returncode == 2 and "--ray-address and --workers need --executor ray" in misuse.stderr
