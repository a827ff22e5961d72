"""A partner withdraws: no more uploads, out of the training dump; its text stays guarded until released."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli, run_json
from tests.guard.homes import THRESHOLD, make_home
from tests.ingest.fixtures import petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.errors import StateError
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path


def test_withdrawal_takes_a_partner_out_of_training_and_the_guard(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rows_a, rows_b = petitions(300, 6), petitions(306, 6)
    make_home(home, [rows_a, rows_b]).dispose()
    span_a, span_b = rows_a[0]["content"][100:220], rows_b[0]["content"][100:220]  # 89+ NFKC letters
    assert run_json(home, "guard", "check", span_a)["partner_id"] == 1
    dumped = run_cli(home, "corpus", "dump", "--json").stdout.splitlines()

    withdrawn = run_json(home, "partner", "withdraw", "1")
    assert withdrawn["status"] == "withdrawn" and withdrawn["withdrawn_at"] is not None
    assert withdrawn["guard_index"]["protected"] is True
    assert run_json(home, "guard", "check", span_a)["partner_id"] == 1  # still guarded
    kept = run_cli(home, "corpus", "dump", "--json").stdout.splitlines()
    assert (len(dumped), len(kept)) == (11, 6)  # 5 of partner 1's 6 petitions were accepted
    assert kept == [line for line in dumped if '"partner_id": 2' in line]
    assert run_cli(home, "corpus", "dump", "--json", "--include-withdrawn").stdout.splitlines() == dumped
    # withdrawing again changes nothing; a rebuild keeps the withdrawn text protected
    assert run_json(home, "partner", "withdraw", "1")["withdrawn_at"] == withdrawn["withdrawn_at"]
    assert run_json(home, "guard", "rebuild")["partners"] == 2
    assert run_json(home, "guard", "check", span_a)["partner_id"] == 1
    # only the operator's release takes it out, and only for a withdrawn partner
    not_withdrawn = run_cli(home, "guard", "release", "--partner", "2")
    assert not_withdrawn.returncode != 0 and "partner 2 has not withdrawn" in not_withdrawn.stderr
    released = run_json(home, "guard", "release", "--partner", "1")
    assert (released["released"], released["partners"]) == ([1], 1)
    assert run_json(home, "guard", "check", span_a)["verdict"] == "pass"
    assert run_json(home, "guard", "check", span_b)["partner_id"] == 2
    assert run_json(home, "guard", "rebuild")["partners"] == 1  # later rebuilds leave it out

    refused = run_cli(home, "ingest", "--partner", "1", str(write_jsonl(tmp_path / "more.jsonl", rows_a)))
    assert refused.returncode != 0 and "partner 1 is not approved (status withdrawn)" in refused.stderr


def test_only_an_approved_partner_can_withdraw(db: Database) -> None:
    with db.transaction() as session:
        applied = partners.apply(session, "신청만 한 곳", threshold_words=THRESHOLD).id
        with pytest.raises(StateError, match="is applied: only an approved partner can withdraw"):
            partners.withdraw(session, applied, THRESHOLD)
        assert partners.withdrawn_partners(session) == []


def test_withdrawn_partner_cannot_ingest(db: Database, tmp_path: Path) -> None:
    with db.transaction() as session:
        pid = partners.apply(session, "가나신문", threshold_words=THRESHOLD).id
        partners.decide(session, pid, partners.PartnerStatus.APPROVED, THRESHOLD)
        partners.withdraw(session, pid, THRESHOLD)
        assert partners.withdrawn_partners(session) == [pid]
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())
    upload = write_jsonl(tmp_path / "up.jsonl", petitions(0, 2))
    with pytest.raises(StateError, match="not approved"):
        ingest(db, tmp_path / "home", IngestJob(pid, (upload,), spec, Fraction(1), batch_size=8, workers=1))
