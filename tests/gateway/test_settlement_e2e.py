"""End to end: three partners ingest, a customer pays for usage through the gateway, the month
closes, and the partners' statements match the ledger to the won."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from openai import OpenAI

from tests.gateway.conftest import MODEL, PRICES, Customer
from tests.ingest.fixtures import petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.customers import balance_summary, customer_of_partner
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.ledger.posting import audit
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.settlement.settle import Terms, close_period
from tokenclub.settlement.statement import build_statement
from tokenclub.tokenizer_store import default_tokenizer_path


def test_gateway_revenue_is_shared_by_credited_tokens(
    db: Database, gateway: str, make_customer: Callable[..., Customer], tmp_path: Path
) -> None:
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    credited: dict[int, int] = {}
    for i, name in enumerate(("한빛일보", "새봄출판", "가온대학교")):
        with db.transaction() as session:
            pid = partners.apply(session, name, threshold_words=10**8).id
            partners.decide(session, pid, PartnerStatus.APPROVED, 10**8)
        upload = write_jsonl(tmp_path / f"{i}.jsonl", petitions(600 + 40 * i, 10 + 10 * i))
        job = IngestJob(pid, (upload,), spec, Fraction(1), batch_size=16, workers=1)
        credited[pid] = ingest(db, tmp_path / "home", job)["credited_tokens"]
    assert all(credited.values())

    payer = make_customer("paying customer", credit_krw=1_000_000)
    client = OpenAI(base_url=gateway, api_key=payer.key, max_retries=0)
    for _ in range(30):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "요약해 주세요."}])
    with db.transaction() as session:
        receivable = balance_summary(session, payer.id)["receivable_krw"]
    assert receivable > 0

    now = datetime.now(UTC)
    month = f"{now.year:04d}-{now.month:02d}"
    after = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    terms = Terms(Decimal("0.5"), 0, PRICES)
    with db.transaction() as session:
        settled = close_period(session, month, terms, now=after)
    assert settled.revenue_krw == receivable
    pool = receivable // 2
    assert settled.pool_krw == pool
    assert sum(line.allocated_krw for line in settled.lines) == pool
    with db.transaction() as session:
        for pid, tokens in credited.items():
            statement = build_statement(session, pid, month)
            payable = balance_summary(session, customer_of_partner(session, pid).id)["payable_krw"]
            assert statement.tokens == tokens
            assert statement.paid_krw == payable
            assert abs(statement.paid_krw * sum(credited.values()) - pool * tokens) < sum(credited.values())
        assert audit(session) == []
