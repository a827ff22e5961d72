"""Building a settlement's inputs directly in the database: partners, credited tokens, usage."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from tokenclub.accounts import partners
from tokenclub.accounts.customers import create_customer, customer_of_partner
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument, LedgerTransaction, Upload, UsageEvent
from tokenclub.ledger.chart import API_REVENUE_KRW, RECEIVABLE_KRW, customer_account, system_account
from tokenclub.ledger.posting import Leg, post
from tokenclub.ledger.pricing import PriceList
from tokenclub.settlement.periods import RecordKind, add_record
from tokenclub.settlement.settle import Terms

TERMS = Terms(Decimal("0.3"), 1_000, PriceList(2_000, 8_000))
OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
OCT_15 = datetime(2026, 10, 15, tzinfo=UTC)
NOV_10 = datetime(2026, 11, 10, tzinfo=UTC)
DEC_10 = datetime(2026, 12, 10, tzinfo=UTC)
LATER = datetime(2027, 6, 1, tzinfo=UTC)


def approved_partner(session: Session, name: str) -> int:
    view = partners.apply(session, name, threshold_words=0)
    partners.decide(session, view.id, partners.PartnerStatus.APPROVED, 0)
    return view.id


def credit(session: Session, partner_id: int, tokens: int, at: datetime) -> None:
    """An accepted document of `tokens` tokens, stored at `at`."""
    seed = f"{partner_id}:{tokens}:{at.isoformat()}"
    digest = hashlib.sha256(seed.encode()).hexdigest()
    session.merge(
        Upload(
            id=digest,
            partner_id=partner_id,
            status="done",
            files="[]",
            batch_size=1,
            tokenizer_fingerprint="t",
        )
    )
    session.flush()
    session.add(
        CorpusDocument(
            doc_id=digest,
            dedup_key=digest,
            upload_id=digest,
            partner_id=partner_id,
            batch_seq=0,
            source="test",
            words=tokens,
            tokens=tokens,
            tokenizer_fingerprint="t",
            minhash=b"",
            created_at=at,
        )
    )
    session.flush()


def paying_customer(session: Session, name: str = "paying customer") -> int:
    return create_customer(session, name).id


def paid_usage(session: Session, customer_id: int, krw: int, at: datetime, key: str) -> None:
    """What the gateway posts for a paid request: receivable debit, API revenue credit."""
    posting = post(
        session,
        key,
        "api_usage",
        [Leg(customer_account(customer_id, RECEIVABLE_KRW), krw), Leg(system_account(API_REVENUE_KRW), -krw)],
    )
    tx = session.get(LedgerTransaction, posting.transaction_id)
    assert tx is not None
    tx.created_at = at
    session.flush()


def free_usage(
    session: Session, partner_id: int, prompt: int, completion: int, at: datetime, request: str
) -> None:
    """A usage event of a partner's key that used only free tokens."""
    customer = customer_of_partner(session, partner_id).id
    _, key = create_key(session, customer)
    session.add(
        UsageEvent(
            request_id=request,
            customer_id=customer,
            key_id=key.id,
            model="m",
            endpoint="chat",
            prompt_tokens=prompt,
            completion_tokens=completion,
            free_prompt_tokens=prompt,
            free_completion_tokens=completion,
            status="ok",
            created_at=at,
        )
    )
    session.flush()


def october(db: Database) -> dict[str, int]:
    """Three partners of 1,000 credited tokens each by October's end, one with a November
    document on top, paid usage in and out of October, and the operator's records."""
    with db.transaction() as session:
        ids = {name: approved_partner(session, name) for name in ("가람", "나래", "다솜")}
        for pid in ids.values():
            credit(session, pid, 1_000, OCT_15)
        credit(session, ids["가람"], 5_000, NOV_10)
        customer = paying_customer(session)
        paid_usage(session, customer, 400_000, OCT_1, "u1")
        paid_usage(session, customer, 300_000, OCT_15, "u2")
        paid_usage(session, customer, 99_999, NOV_10, "u3")
        add_record(session, "2026-10", RecordKind.REVENUE, 300_001, "enterprise contract")
        add_record(session, "2026-10", RecordKind.COST, 100_003, "GPU rental")
        ids["customer"] = customer
    return ids
