"""`tokenclub ingest`, `corpus dump` and `tokenizer` as a partner and an operator run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli, run_json
from tests.conftest import CORPORA
from tests.ingest.fixtures import petitions, write_jsonl
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
