"""The command registry: `--help` lists every command without importing any command module."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tokenclub.cli.main import COMMANDS, app, load_command

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
PROBE = """
import json, sys
sys.argv = ["tokenclub", *sys.argv[1:]]
from tokenclub.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted(
    name for name in sys.modules
    if name.split(".")[0] in HEAVY or (name.startswith("tokenclub.cli.") and name.endswith("_cmd"))
)
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
"""


def _probe(*args: str) -> tuple[str, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    source = f"HEAVY = {HEAVY!r}\n{PROBE}"
    run = subprocess.run(
        [sys.executable, "-c", source, *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    text, _, last = run.stdout.rstrip().rpartition("\n")
    return text, json.loads(last)


def test_help_imports_no_heavy_module_and_no_command_module() -> None:
    text, result = _probe("--help")
    assert result == {"code": 0, "loaded": []}
    for name in [*COMMANDS, "init"]:
        assert f" {name} " in text


def test_a_group_help_imports_only_its_own_module() -> None:
    text, result = _probe("ledger", "--help")
    assert result["code"] == 0
    assert [name for name in result["loaded"] if name.endswith("_cmd")] == ["tokenclub.cli.ledger_cmd"]
    assert "audit" in text


LIGHT_GROUPS = [
    *("key", "partner", "customer", "guard", "audit", "ingest", "corpus", "serve"),
    *("ledger", "balance", "usage", "period", "revenue", "cost", "settle", "statement", "export", "model"),
]


@pytest.mark.parametrize("name", LIGHT_GROUPS)
def test_light_group_help_imports_no_array_http_database_or_migration_module(name: str) -> None:
    _, result = _probe(name, "--help")
    assert result["code"] == 0
    heavy = {"numpy", "pyarrow", "httpx", "tokenizers", "sqlalchemy", "alembic"}
    assert [m for m in result["loaded"] if m.split(".")[0] in heavy] == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_loads_and_prints_its_help_under_its_name(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], prog_name="tokenclub")
    assert result.exit_code == 0, result.output
    assert f"Usage: tokenclub {name} " in result.output


def test_an_unknown_command_is_refused() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def _subcommands() -> list[tuple[str, str]]:
    found = []
    for name, lazy in sorted(COMMANDS.items()):
        module, attribute = lazy.target.split(":")
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            found += [(name, sub) for sub in getattr(typer.main.get_command(target), "commands", {})]
    return found


@pytest.mark.parametrize(("group", "name"), _subcommands())
def test_every_subcommand_prints_its_help(group: str, name: str) -> None:
    """Each command's option types are importable where typer reads them (not only for a type
    checker), though the command imports its services only when it runs."""
    result = CliRunner().invoke(app, [group, name, "--help"], prog_name="tokenclub")
    assert result.exit_code == 0, result.output
    assert f"tokenclub {group} {name}" in result.output


@pytest.mark.parametrize("name", [name for name, lazy in COMMANDS.items() if lazy.target.endswith("_app")])
def test_every_row_of_a_group_listing_is_one_line(name: str) -> None:
    """A docstring wrapped in the source must not break its row in the group's `--help`."""
    group = load_command(name, COMMANDS[name])
    rows = dict(_rows(group))
    for row, short in rows.items():
        assert short and "\n" not in short, row
    text = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "500"}).output
    listed = [short for row, short in rows.items() if " " not in row]  # a nested group lists its own
    assert listed
    for short in listed:
        assert short in text


def _rows(group: Any, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for name, sub in group.commands.items():
        found.append((prefix + name, sub.short_help))
        found += _rows(sub, f"{prefix}{name} ") if hasattr(sub, "commands") else []
    return found
