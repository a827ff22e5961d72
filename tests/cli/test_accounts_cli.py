"""The stable command surface of the foundation, run as a real program."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import run_cli, run_json
from tokenclub.db.migrate import head_revision


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert run_cli(path, "init").returncode == 0
    return path


def test_init_is_idempotent_and_creates_home(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first = run_json(home, "init")
    second = run_json(home, "init")
    assert first == second
    assert first["revision"] == head_revision()
    assert (home / "tokenclub.db").is_file()


def test_partner_key_balance_flow(home: Path) -> None:
    added = run_json(home, "partner", "add", "연합뉴스 아카이브", "--org-type", "media")
    assert {k: added[k] for k in ("id", "name", "status")} == {
        "id": 1,
        "name": "연합뉴스 아카이브",
        "status": "applied",
    }
    refused = run_cli(home, "key", "create", "--partner", "1", "--json")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: partner 1 is not approved (status applied)"
    assert run_cli(home, "partner", "approve", "1").returncode == 0
    listed = run_json(home, "partner", "list")
    assert [(p["id"], p["status"], p["tier"]) for p in listed] == [(1, "approved", "contributor")]
    key = run_json(home, "key", "create", "--partner", "1")
    assert key["key"].startswith("tcsk-") and key["id"] == 1
    keys = run_json(home, "key", "list", "--partner", "1")
    assert [(k["id"], k["active"], k["prefix"]) for k in keys] == [(1, True, key["key"][:13])]
    assert key["key"] not in (home / "tokenclub.db").read_bytes().decode("latin-1")
    revoked = run_json(home, "key", "revoke", "1")
    assert revoked["active"] is False
    balance = run_json(home, "balance", "--partner", "1")
    assert balance == {
        "customer_id": 1,
        "free_tokens_granted": 0,
        "free_tokens_used": 0,
        "free_tokens_left": 0,
        "paid_tokens": 0,
        "receivable_krw": 0,
        "payable_krw": 0,
        "spending_left_krw": 0,
    }
    assert run_json(home, "ledger", "audit") == {"ok": True, "problems": [], "usage_anomalies": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("partner", "approve", "9"), "error: partner 9 does not exist"),
        (("balance", "--partner", "9"), "error: partner 9 does not exist"),
        (("key", "revoke", "3"), "error: API key 3 does not exist"),
        (("balance",), "error: give exactly one of --partner or --customer"),
    ],
)
def test_errors_are_one_line_with_nonzero_exit(home: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli(home, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_commands_before_init_say_what_to_do(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "empty", "partner", "list")
    assert result.returncode == 1
    assert "run `tokenclub init` first" in result.stderr


def test_duplicate_partner_writes_nothing(home: Path) -> None:
    run_json(home, "partner", "add", "A")
    dup = run_cli(home, "partner", "add", "A")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert [p["name"] for p in run_json(home, "partner", "list")] == ["A"]
    assert [c["name"] for c in run_json(home, "customer", "list")] == ["A"]


@pytest.mark.postgres
def test_cli_runs_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    run_json(tmp_path, "init", database_url=pg_url)
    added = run_json(tmp_path, "partner", "add", "PG 파트너", database_url=pg_url)
    listed = run_json(tmp_path, "partner", "list", database_url=pg_url)
    assert added["id"] in [p["id"] for p in listed]
    assert not (tmp_path / "tokenclub.db").exists()


def test_customer_credit_line_and_usage_listing(home: Path) -> None:
    added = run_json(home, "customer", "add", "유료 고객", "--spending-limit-krw", "5000")
    assert run_json(home, "balance", "--customer", str(added["id"]))["spending_left_krw"] == 5_000
    raised = run_json(home, "customer", "credit", "--customer", str(added["id"]), "--krw", "2500")
    assert raised["spending_left_krw"] == 7_500
    assert run_json(home, "usage", "--customer", str(added["id"])) == []
    refused = run_cli(home, "customer", "credit", "--customer", "99", "--krw", "1")
    assert (refused.returncode, refused.stderr.strip()) == (1, "error: customer 99 does not exist")


def test_rejection_note_is_shown(home: Path) -> None:
    run_json(home, "partner", "add", "작은 출판사")
    note = "최소 기여량 미달 (1억 어절 필요)"
    rejected = run_json(home, "partner", "reject", "1", "--note", note)
    assert (rejected["status"], rejected["decision_note"]) == ("rejected", note)
    assert run_json(home, "partner", "show", "1")["decision_note"] == note
    assert [p["decision_note"] for p in run_json(home, "partner", "list")] == [note]
    shown = run_cli(home, "partner", "show", "1", env_extra={"COLUMNS": "200"})
    assert note in shown.stdout
    listed = run_cli(home, "partner", "list", env_extra={"COLUMNS": "250"})
    assert note in listed.stdout
