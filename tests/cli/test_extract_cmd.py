"""`tokenclub extract`: JSON lines for machines, tables for people, exit status by outcome."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from tokenclub.cli.extract_cmd import extract_command

app = typer.Typer()
app.command("extract")(extract_command)


@app.callback()
def _root() -> None:
    """Keeps `extract` a named subcommand, as it is under the real `tokenclub` app."""


def write_files(folder: Path) -> tuple[Path, Path, Path]:
    good = folder / "dump.jsonl"
    good.write_text(
        '{"title": "제목", "text": "본문 하나", "id": 1}\n{"text": "본문 둘"}\n', encoding="utf-8"
    )
    empty = folder / "empty.txt"
    empty.write_bytes(b"")
    junk = folder / "junk.bin"
    junk.write_bytes(bytes(range(32)) * 10)
    return good, empty, junk


def test_json_lines_on_stdout_failures_on_stderr(tmp_path: Path) -> None:
    good, empty, junk = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(good), str(empty), str(junk), "--json"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["source"], d["format"], d["title"], d["text"], d["metadata"]) for d in lines] == [
        (f"{good}#L1", "jsonl", "제목", "본문 하나", {"id": "1"}),
        (f"{good}#L2", "jsonl", None, "본문 둘", {}),
    ]
    assert lines[0]["byte_size"] == good.stat().st_size and len(lines[0]["sha256"]) == 64
    assert "empty file" in result.stderr and "not text: binary data" in result.stderr
    assert result.stderr.rstrip().endswith("2 documents, 2 failures")


def test_table_for_people(tmp_path: Path) -> None:
    good, _, _ = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(good)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "documents" in result.stdout and "본문" not in result.stdout  # titles and sizes, not texts
    assert "제목" in result.stdout and "jsonl" in result.stdout
    assert result.stderr.strip() == "2 documents, 0 failures"


def test_exit_status_1_only_when_nothing_could_be_read(tmp_path: Path) -> None:
    _, empty, junk = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(empty), str(junk), "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.rstrip().endswith("error: nothing could be read (0 documents, 2 failures)")
