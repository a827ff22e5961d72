"""`tokenclub ingest`, `corpus dump` and `tokenizer` as a partner and an operator run them."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select

from tests.cli.helpers import run_cli, run_json
from tests.conftest import CORPORA
from tests.ingest.fixtures import petitions, write_jsonl
from tokenclub.db.engine import Database
from tokenclub.db.schema import Upload
from tokenclub.tokenizer_store import default_tokenizer_path

RECEIPT_KEYS = {
    "upload_id",
    "documents_seen",
    "documents_accepted",
    "rejected",
    "pii",
    "words",
    "tokens",
    "credited_tokens",
    "tokenizer",
    "errors",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    for args in (("init",), ("partner", "add", "A"), ("partner", "approve", "1"), ("partner", "add", "B")):
        assert run_cli(path, *args).returncode == 0
    return path


def test_ingest_prints_a_receipt_and_credits_the_balance(home: Path, tmp_path: Path) -> None:
    upload = write_jsonl(tmp_path / "petitions.jsonl", petitions(500, 25))
    receipt = run_json(home, "ingest", "--partner", "1", str(upload), str(CORPORA / "samples" / "hwpx"))
    assert receipt.keys() >= RECEIPT_KEYS
    assert receipt["documents_seen"] == 25 + 4
    assert receipt["errors"] == []
    assert receipt["tokenizer"]["fingerprint"] == run_json(home, "tokenizer", "show")["fingerprint"]
    balance = run_json(home, "balance", "--partner", "1")
    assert balance["free_tokens_granted"] == balance["free_tokens_left"] == receipt["credited_tokens"] > 0
    dumped = [json.loads(line) for line in run_cli(home, "corpus", "dump", "--json").stdout.splitlines()]
    assert len(dumped) == receipt["documents_accepted"]
    assert sum(doc["tokens"] for doc in dumped) == receipt["tokens"]
    assert {doc["partner_id"] for doc in dumped} == {1}
    assert run_cli(home, "corpus", "dump", "--partner", "2", "--json").stdout == ""
    people = run_cli(home, "ingest", "--partner", "1", str(CORPORA / "samples" / "hwpx"), str(upload))
    assert people.returncode == 0 and "receipt" in people.stdout and receipt["upload_id"] in people.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--partner", "2"), "error: partner 2 is not approved (status applied)"),
        (("--partner", "9"), "error: partner 9 does not exist"),
    ],
)
def test_ingest_refusals_are_one_line(
    home: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    upload = write_jsonl(tmp_path / "p.jsonl", petitions(0, 2))
    result = run_cli(home, "ingest", *args, str(upload))
    assert (result.returncode, result.stderr.strip()) == (1, message)


def test_ingest_of_nothing_readable_exits_nonzero_with_the_file_named(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.4 truncated")
    result = run_cli(home, "ingest", "--partner", "1", str(bad), "--json")
    assert result.returncode == 1
    receipt = json.loads(result.stdout)
    assert [e["source"] for e in receipt["errors"]] == ["scan.pdf"]
    assert "nothing could be read" in result.stderr
    assert run_json(home, "balance", "--partner", "1")["free_tokens_granted"] == 0


@pytest.mark.parametrize("value", ["25", "many"])
def test_a_bad_guard_setting_is_named_before_anything_is_written(
    home: Path, tmp_path: Path, value: str
) -> None:
    """The guard's settings are read before the upload is stored: a leak length shorter than
    the index's gram (26 letters, five hits) names the variable and writes nothing."""
    upload = write_jsonl(tmp_path / "p.jsonl", petitions(0, 2))
    before = sorted(p.relative_to(home) for p in home.rglob("*") if "tokenclub.db" not in p.name)
    result = run_cli(
        home, "ingest", "--partner", "1", str(upload), env_extra={"TOKENCLUB_GUARD_LEAK_LENGTH": value}
    )
    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"error: TOKENCLUB_GUARD_LEAK_LENGTH={value} is not allowed: use an integer >= 30",
    )
    assert sorted(p.relative_to(home) for p in home.rglob("*") if "tokenclub.db" not in p.name) == before
    db = Database(f"sqlite:///{home / 'tokenclub.db'}")
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0
    db.dispose()


def test_missing_tokenizer_file_is_named(home: Path) -> None:
    result = run_cli(home, "tokenizer", "show", env_extra={"TOKENCLUB_TOKENIZER_PATH": "/nope/tok.json"})
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: tokenizer file /nope/tok.json does not exist (TOKENCLUB_TOKENIZER_PATH)"
    )


@pytest.mark.slow
def test_shipped_default_tokenizer_is_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "rebuilt.json"
    built = run_json(
        tmp_path, "tokenizer", "train", "--default", "--corpora", str(CORPORA), "--out", str(out)
    )
    assert built["vocab_size"] == 32_000
    assert out.read_bytes() == default_tokenizer_path().read_bytes()


def _sql_string(text: str) -> str:
    """A string literal as mysqldump writes it."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def write_mysqldump(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A dump in mysqldump's own layout: header comments, session settings, locks, one INSERT."""
    values = ",".join(
        f"({n},{_sql_string(title)},{_sql_string(content)},{_sql_string(note)})"
        for n, (title, content, note) in enumerate(rows, 1)
    )
    path.write_text(
        "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n"
        "--\n-- Host: localhost    Database: board\n"
        "-- ------------------------------------------------------\n"
        "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
        "/*!50503 SET NAMES utf8mb4 */;\n"
        "/*!40103 SET TIME_ZONE='+00:00' */;\n\n"
        "DROP TABLE IF EXISTS `posts`;\n"
        "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        "CREATE TABLE `posts` (\n"
        "  `id` int NOT NULL AUTO_INCREMENT,\n"
        "  `title` varchar(200) NOT NULL,\n"
        "  `content` mediumtext NOT NULL,\n"
        "  `answer_note` mediumtext,\n"
        "  PRIMARY KEY (`id`)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;\n"
        "/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
        "LOCK TABLES `posts` WRITE;\n"
        "/*!40000 ALTER TABLE `posts` DISABLE KEYS */;\n"
        f"INSERT INTO `posts` VALUES {values};\n"
        "/*!40000 ALTER TABLE `posts` ENABLE KEYS */;\n"
        "UNLOCK TABLES;\n"
        "-- Dump completed on 2024-05-01 12:00:00\n",
        encoding="utf-8",
    )
    return path


def test_ingest_text_field_names_the_sql_dump_column_that_becomes_the_documents(
    home: Path, tmp_path: Path
) -> None:
    rows = petitions(100, 6)
    notes = petitions(200, 6)
    dump = write_mysqldump(
        tmp_path / "board.sql",
        [(row["title"], row["content"], note["content"]) for row, note in zip(rows, notes, strict=True)],
    )
    receipt = run_json(home, "ingest", "--partner", "1", "--text-field", "answer_note", str(dump))
    assert receipt["documents_seen"] == 6
    assert receipt["errors"] == []
    assert receipt["sql_text_columns"] == {"posts: answer_note (given)": 6}
    dumped = [json.loads(line) for line in run_cli(home, "corpus", "dump", "--json").stdout.splitlines()]
    assert len(dumped) == receipt["documents_accepted"] > 0
    note_starts = {note["content"][:30] for note in notes}
    content_starts = {row["content"][:30] for row in rows}
    assert all(doc["text"][:30] in note_starts for doc in dumped)
    assert not any(doc["text"][:30] in content_starts for doc in dumped)
    default = run_cli(home, "extract", str(dump))
    assert "content (named)" in default.stdout


def test_the_ingest_command_freezes_what_its_imports_built_before_the_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The command's process does one ingest: the collector's full collections no longer
    traverse the objects that exist when it starts (the permanent generation is not)."""
    from tokenclub.cli import ingest_cmd
    from tokenclub.ingest import service

    frozen: list[int] = []

    def ingest(*_: object, **__: object) -> dict[str, object]:
        frozen.append(gc.get_freeze_count())
        return {}

    monkeypatch.setattr(service, "ingest", ingest)
    gc.unfreeze()
    try:
        ingest_cmd._ingest(cast(Any, None), tmp_path, cast(Any, None), None, True)
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 0
