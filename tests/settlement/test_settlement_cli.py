"""End to end through `tokenclub`: three partners ingest, a customer pays, the period closes,
statements match the ledger.

Most commands run `tokenclub.cli.main.main()` in this process (the same entry point, without
two seconds of interpreter start per call); the closing itself also runs as the installed
program in a subprocess.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.cli.helpers import run_json
from tests.ingest.fixtures import petitions, write_jsonl
from tests.settlement.fixtures import free_usage, paid_usage
from tokenclub.cli.main import main
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.settings import get_settings

JANUARY = "2020-01"
MID_JANUARY = datetime(2020, 1, 15, tzinfo=UTC)
PARTNERS = {1: ("한빛일보", 0), 2: ("새봄출판", 40), 3: ("가온대학교", 80)}


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@pytest.fixture(scope="module")
def cli() -> Iterator[Any]:
    """Run `tokenclub ARGS` in-process against a home; TOKENCLUB_* comes from the home alone."""

    def run(home: Path, *args: str) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("TOKENCLUB_")]:
                patch.delenv(name)
            patch.setenv("TOKENCLUB_HOME", str(home))
            patch.setattr(sys, "argv", ["tokenclub", *args])
            get_settings.cache_clear()
            code = 0
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    main()
                except SystemExit as exc:
                    code = int(exc.code or 0)
        get_settings.cache_clear()
        return Outcome(code, out.getvalue(), err.getvalue())

    yield run


@pytest.fixture(scope="module")
def contributed(tmp_path_factory: pytest.TempPathFactory, cli: Any) -> Path:
    """A home where three partners contributed in January 2020 and a customer paid for usage."""
    tmp_path = tmp_path_factory.mktemp("settlement")
    path = tmp_path / "home"
    assert cli(path, "init").code == 0
    tokens = {}
    for number, (name, first) in PARTNERS.items():
        assert cli(path, "partner", "add", name).code == 0
        assert cli(path, "partner", "approve", str(number)).code == 0
        upload = write_jsonl(tmp_path / f"p{number}.jsonl", petitions(first, 6))
        tokens[number] = cli(
            path, "ingest", "--partner", str(number), "--workers", "1", str(upload), "--json"
        )
    customer = cli(path, "customer", "add", "유료 고객", "--json").json()["id"]
    db = Database(f"sqlite:///{path / 'tokenclub.db'}")
    try:
        with db.transaction() as session:
            # The contributions and the API traffic happened in January 2020.
            session.execute(update(CorpusDocument).values(created_at=MID_JANUARY))
            paid_usage(session, customer, 1_234_567, MID_JANUARY, "settle:req-1")
            paid_usage(session, customer, 765_433, datetime(2020, 1, 31, 23, 59, tzinfo=UTC), "settle:req-2")
            paid_usage(session, customer, 50_000, datetime(2020, 2, 1, tzinfo=UTC), "settle:req-3")
            free_usage(session, 1, 300_000, 100_000, MID_JANUARY, "req-free")
    finally:
        db.dispose()
    (path / "tokens.json").write_text(json.dumps({n: r.json()["tokens"] for n, r in tokens.items()}))
    return path


@pytest.fixture
def home(contributed: Path, tmp_path: Path) -> Path:
    """A fresh copy of the contributed home for each test."""
    return Path(shutil.copytree(contributed, tmp_path / "home"))


def test_three_partners_settle_a_month_and_their_statements_match_the_ledger(
    home: Path, tmp_path: Path, cli: Any
) -> None:
    tokens = {int(k): v for k, v in json.loads((home / "tokens.json").read_text()).items()}
    added = cli(
        home, "revenue", "add", "--period", JANUARY, "--krw", "500000", "--note", "기업 계약", "--json"
    )
    assert added.json()["krw"] == 500_000
    assert (
        cli(home, "cost", "add", "--period", JANUARY, "--krw", "300000", "--note", "GPU", "--json").code == 0
    )
    settled = run_json(home, "settle", "--period", JANUARY)
    assert (settled["revenue_krw"], settled["cost_krw"]) == (2_000_000 + 500_000, 300_000)
    assert settled["pool_krw"] == 660_000  # 0.3 × 2,200,000
    payouts = {p["partner"]: p for p in settled["payouts"]}
    assert {p: payouts[p]["tokens"] for p in payouts} == tokens
    assert sum(p["krw"] for p in payouts.values()) == 660_000
    total = sum(tokens.values())
    for partner, payout in payouts.items():
        assert abs(payout["krw"] * total - 660_000 * tokens[partner]) < total
        assert payout["share"] == pytest.approx(tokens[partner] / total)
    assert cli(home, "settle", "--period", JANUARY, "--json").json() == settled
    refused = cli(home, "revenue", "add", "--period", JANUARY, "--krw", "1", "--note", "late")
    assert (refused.code, refused.stderr) == (
        1,
        f"error: period {JANUARY} is closed; record it in an open period\n",
    )
    for partner in tokens:
        statement = cli(home, "statement", "--partner", str(partner), "--period", JANUARY, "--json").json()
        balance = cli(home, "balance", "--partner", str(partner), "--json").json()
        assert statement["paid_krw"] == balance["payable_krw"] == payouts[partner]["paid_krw"] > 0
        assert statement["pool_krw"] == 660_000 and statement["tokens"] == tokens[partner]
    first = cli(home, "statement", "--partner", "1", "--period", JANUARY, "--json").json()
    assert (first["free_prompt_tokens"], first["free_usage_krw"]) == (300_000, 1_400)  # 600 + 800
    assert cli(home, "ledger", "audit", "--json").json()["ok"] is True

    for fmt in ("csv", "html", "pdf"):
        out = tmp_path / f"statement.{fmt}"
        args = ("statement", "--partner", "2", "--period", JANUARY, "--format", fmt, "--out", str(out))
        assert cli(home, *args).code == 0
    assert (tmp_path / "statement.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "statement.csv").read_text(encoding="utf-8-sig").startswith("field,value,note\n")
    page = (tmp_path / "statement.html").read_text(encoding="utf-8")
    assert "새봄출판" in page and "한빛일보" not in page and "가온대학교" not in page
    no_out = cli(home, "statement", "--partner", "2", "--period", JANUARY, "--format", "pdf")
    assert (no_out.code, no_out.stderr) == (1, "error: --format pdf needs --out PATH\n")
    people = cli(home, "settle", "--period", JANUARY)
    assert people.code == 0 and "payouts" in people.stdout and "already closed" in people.stdout


def test_periods_from_the_command_line(home: Path, cli: Any) -> None:
    opened = cli(home, "period", "open", "--start", "2020-02-01", "--end", "2020-02-14", "--json").json()
    assert opened == {
        "name": "2020-02-01..2020-02-14",
        "starts_at": "2020-02-01T00:00:00+00:00",
        "ends_at": "2020-02-15T00:00:00+00:00",
        "status": "open",
    }
    assert cli(home, "period", "open", JANUARY, "--json").json()["status"] == "open"
    overlap = cli(home, "period", "open", "2020-02")
    assert (overlap.code, overlap.stderr) == (
        1,
        "error: period 2020-02 would overlap period 2020-02-01..2020-02-14\n",
    )
    assert [p["name"] for p in cli(home, "period", "list", "--json").json()] == [
        JANUARY,
        "2020-02-01..2020-02-14",
    ]
    early = cli(home, "statement", "--partner", "1", "--period", JANUARY)
    assert (early.code, early.stderr) == (
        1,
        f"error: period {JANUARY} is open; statements are issued when it closes\n",
    )
    out_of_order = cli(home, "settle", "--period", "2020-02-01..2020-02-14")
    assert (out_of_order.code, out_of_order.stderr) == (
        1,
        f"error: period {JANUARY} is still open; close periods in order\n",
    )
    assert cli(home, "settle", "--period", JANUARY, "--json").json()["pool_krw"] == 600_000
    unknown = cli(home, "settle", "--period", "2020-02-01..2020-02-14", "--pool-basis", "sales")
    assert unknown.code == 2 and "sales" in unknown.stderr
    ranged = cli(
        home, "settle", "--period", "2020-02-01..2020-02-14", "--pool-basis", "revenue", "--json"
    ).json()
    assert (ranged["api_revenue_krw"], ranged["pool_krw"], ranged["pool_basis"]) == (
        50_000,
        15_000,
        "revenue",
    )


def test_revenue_and_cost_voids_from_the_command_line(home: Path, cli: Any) -> None:
    def add(kind: str, krw: str, note: str) -> int:
        added = cli(home, kind, "add", "--period", JANUARY, "--krw", krw, "--note", note, "--json")
        return int(added.json()["id"])

    revenue, cost = add("revenue", "500000", "기업 계약"), add("cost", "300000", "GPU")
    wrong_revenue, wrong_cost = add("revenue", "1000000", "중복 입력"), add("cost", "2500000", "오타")
    voided = cli(
        home, "revenue", "void", str(wrong_revenue), "--reason", "두 번 입력됨", "--by", "kim", "--json"
    )
    assert {k: voided.json()[k] for k in ("id", "kind", "krw", "status", "voided_by", "void_reason")} == {
        "id": wrong_revenue,
        "kind": "revenue",
        "krw": 1_000_000,
        "status": "voided",
        "voided_by": "kim",
        "void_reason": "두 번 입력됨",
    }
    by_default = cli(home, "cost", "void", str(wrong_cost), "--reason", "typo", "--json").json()
    assert by_default["voided_by"] == getpass.getuser()
    again = cli(home, "revenue", "void", str(wrong_revenue), "--reason", "again")
    assert again.code == 1 and again.stderr.startswith(
        f"error: record {wrong_revenue} was already voided at "
    )
    other_kind = cli(home, "cost", "void", str(revenue), "--reason", "x")
    assert (other_kind.code, other_kind.stderr) == (1, f"error: record {revenue} is revenue, not cost\n")
    missing = cli(home, "revenue", "void", "999999", "--reason", "x")
    assert (missing.code, missing.stderr) == (1, "error: record 999999 does not exist\n")
    assert cli(home, "revenue", "void", str(revenue)).code == 2  # --reason is required
    assert cli(home, "revenue", "void", "first", "--reason", "x").code == 2
    listed = cli(home, "revenue", "list", "--period", JANUARY, "--json").json()
    assert [(r["id"], r["krw"], r["status"]) for r in listed] == [
        (revenue, 500_000, "counted"),
        (wrong_revenue, 1_000_000, "voided"),
    ]
    table = cli(home, "cost", "list", "--period", JANUARY)
    assert table.code == 0 and "voided" in table.stdout and "typo" in table.stdout
    settled = run_json(home, "settle", "--period", JANUARY)
    assert (settled["manual_revenue_krw"], settled["cost_krw"]) == (500_000, 300_000)
    assert settled["pool_krw"] == 660_000  # 0.3 × (2,000,000 + 500,000 − 300,000)
    closed = cli(home, "cost", "void", str(cost), "--reason", "late")
    assert (closed.code, closed.stderr) == (
        1,
        f"error: period {JANUARY} is closed; its record {cost} can no longer be voided\n",
    )
    costs = cli(home, "cost", "list", "--json").json()
    assert [(r["id"], r["status"]) for r in costs] == [(cost, "counted"), (wrong_cost, "voided")]
