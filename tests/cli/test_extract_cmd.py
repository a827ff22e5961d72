"""`tokenclub extract`: JSON lines for machines, tables for people, exit status by outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def test_json_lines_for_documents_and_failures(tmp_path: Path) -> None:
    good, empty, junk = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(good), str(empty), str(junk), "--json"])
    assert result.exit_code == 1  # something failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    documents = [line for line in lines if "error" not in line]
    assert [(d["source"], d["format"], d["title"], d["text"], d["metadata"]) for d in documents] == [
        (f"{good}#L1", "jsonl", "제목", "본문 하나", {"id": "1"}),
        (f"{good}#L2", "jsonl", None, "본문 둘", {}),
    ]
    assert documents[0]["byte_size"] == good.stat().st_size and len(documents[0]["sha256"]) == 64
    failures = [line for line in lines if "error" in line]
    assert [f["source"] for f in failures] == [str(empty), str(junk)]
    assert failures[0] == {"source": str(empty), "error": "empty file"}
    assert failures[1]["error"].startswith("not text: binary data")
    assert result.stderr.rstrip().endswith("2 documents, 2 failures")


def test_exit_status_0_only_when_everything_was_read(tmp_path: Path) -> None:
    good, _, _ = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(good), "--json"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


def test_names_with_control_characters_are_escaped_for_people(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short names: the table fits whatever width the console has
    folder = Path("up")
    folder.mkdir()
    (folder / "\x1b[31mred[bold]\u202etxt.txt").write_text("빨간 이름의 파일", encoding="utf-8")
    (folder / "bad\x07.bin").write_bytes(bytes(range(32)) * 4)
    result = CliRunner().invoke(app, ["extract", str(folder)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\x07" not in result.stderr
    assert "\\x1b[31mred[bold]\\u202etxt.txt" in result.stdout
    assert "bad\\x07.bin" in result.stderr
    machine = CliRunner().invoke(app, ["extract", str(folder), "--json"])
    sources = [json.loads(line)["source"] for line in machine.stdout.splitlines()]
    assert sources == [f"{folder}/\x1b[31mred[bold]\u202etxt.txt", f"{folder}/bad\x07.bin"]


def test_table_for_people(tmp_path: Path) -> None:
    good, _, _ = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(good)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "documents" in result.stdout and "본문" not in result.stdout  # titles and sizes, not texts
    assert "제목" in result.stdout and "jsonl" in result.stdout
    assert result.stderr.strip() == "2 documents, 0 failures"


def test_nothing_read_says_so(tmp_path: Path) -> None:
    _, empty, junk = write_files(tmp_path)
    result = CliRunner().invoke(app, ["extract", str(empty), str(junk), "--json"])
    assert result.exit_code == 1
    assert [json.loads(line)["source"] for line in result.stdout.splitlines()] == [str(empty), str(junk)]
    assert result.stderr.rstrip().endswith("error: nothing could be read (0 documents, 2 failures)")


def test_sql_dump_reports_the_text_column_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short name: the table fits whatever width the console has
    dump = Path("cms_dump.sql")
    dump.write_text(
        "CREATE TABLE `articles` (`id` int, `title` varchar(100), `body` text);\n"
        "INSERT INTO `articles` VALUES (1,'제목','첫 기사 본문'),(2,'둘','둘째 기사 본문');\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["extract", str(dump)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"{dump}#articles: body (named)" in result.stdout
    machine = CliRunner().invoke(app, ["extract", str(dump), "--json", "--text-field", "title"])
    lines = [json.loads(line) for line in machine.stdout.splitlines()]
    assert [(d["source"], d["text"], d["metadata"]["text_column_rule"]) for d in lines] == [
        (f"{dump}#articles:1", "제목", "given"),
        (f"{dump}#articles:2", "둘", "given"),
    ]
