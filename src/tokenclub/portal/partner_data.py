"""What a partner may read about itself, shaped once for the data API and the portal pages.

Every query here takes the partner's id and filters by it; a contribution or statement of
another partner is answered as missing, so ids cannot be probed across partners.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub.accounts.customers import balance_summary, customer_of_partner
from tokenclub.accounts.partners import get_partner
from tokenclub.db.portal_schema import Contribution, DataUpload
from tokenclub.db.schema import ApiKey, Upload, UsageEvent
from tokenclub.db.settlement_schema import SettlementClosing, SettlementPeriod
from tokenclub.db.types import utcnow
from tokenclub.errors import NotFoundError
from tokenclub.guard.state.events import stopped_attempts
from tokenclub.ingest.decisions import decision_count, decisions_page


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def contribution_dict(contribution: Contribution, upload: DataUpload, receipt: str | None) -> dict[str, Any]:
    return {
        "id": contribution.id,
        "object": "contribution",
        "partner_id": contribution.partner_id,
        "status": contribution.status,
        "filename": upload.filename,
        "bytes": upload.bytes,
        "sha256": upload.sha256,
        "created_at": int(contribution.created_at.timestamp()),
        "started_at": _iso(contribution.started_at),
        "finished_at": _iso(contribution.finished_at),
        "attempts": contribution.attempts,
        "progress": {
            "documents_seen": contribution.documents_seen,
            "documents_accepted": contribution.documents_accepted,
            "batches_done": contribution.batches_done,
        },
        "error": contribution.error or None,
        "receipt": json.loads(receipt) if receipt else None,
    }


def get_contribution(session: Session, partner_id: int, contribution_id: str) -> dict[str, Any]:
    row = session.execute(
        select(Contribution, DataUpload, Upload.receipt)
        .join(DataUpload, DataUpload.id == Contribution.data_upload_id)
        .outerjoin(Upload, Upload.id == Contribution.upload_id)
        .where(Contribution.id == contribution_id, Contribution.partner_id == partner_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"contribution {contribution_id} does not exist")
    return contribution_dict(row[0], row[1], row[2])


def list_contributions(
    session: Session, partner_id: int | None, *, limit: int = 20, before: str | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, `limit` at a time before the contribution `before`; and whether more exist.

    `partner_id` None lists every partner's (the operator's view).
    """
    query = (
        select(Contribution, DataUpload, Upload.receipt)
        .join(DataUpload, DataUpload.id == Contribution.data_upload_id)
        .outerjoin(Upload, Upload.id == Contribution.upload_id)
    )
    if partner_id is not None:
        query = query.where(Contribution.partner_id == partner_id)
    if before is not None:
        anchor = session.get(Contribution, before)
        if anchor is None or (partner_id is not None and anchor.partner_id != partner_id):
            raise NotFoundError(f"contribution {before} does not exist")
        query = query.where(
            (Contribution.created_at < anchor.created_at)
            | ((Contribution.created_at == anchor.created_at) & (Contribution.id < anchor.id))
        )
    rows = session.execute(
        query.order_by(Contribution.created_at.desc(), Contribution.id.desc()).limit(limit + 1)
    ).all()
    return [contribution_dict(c, u, r) for c, u, r in rows[:limit]], len(rows) > limit


def decisions(
    session: Session,
    partner_id: int,
    contribution_id: str,
    *,
    after: int | None,
    limit: int,
    rejected_only: bool,
) -> dict[str, Any]:
    """One page of a contribution's per-document decisions, in document order."""
    contribution = session.scalar(
        select(Contribution).where(Contribution.id == contribution_id, Contribution.partner_id == partner_id)
    )
    if contribution is None:
        raise NotFoundError(f"contribution {contribution_id} does not exist")
    if contribution.upload_id is None:
        return {"object": "list", "data": [], "has_more": False, "total": 0, "last_id": None}
    rows = decisions_page(
        session, contribution.upload_id, after=after, limit=limit + 1, rejected_only=rejected_only
    )
    data = [
        {
            "object": "contribution.decision",
            "ordinal": r.ordinal,
            "doc_id": r.doc_id,
            "source": r.source,
            "decision": "accepted" if r.reason is None else "rejected",
            "reason": r.reason,
            "words": r.words,
            "tokens": r.tokens,
        }
        for r in rows[:limit]
    ]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "total": decision_count(session, contribution.upload_id),
        "last_id": data[-1]["ordinal"] if data else None,
    }


def account(session: Session, partner_id: int) -> dict[str, Any]:
    partner = get_partner(session, partner_id)
    customer = customer_of_partner(session, partner_id)
    balance = balance_summary(session, customer.id)
    return {
        "object": "account",
        "partner_id": partner.id,
        "name": partner.name,
        "status": partner.status,
        "accepted_words": partner.accepted_words,
        "balance": balance,
        "guard": {"stopped_attempts": stopped_attempts(session, partner_id).get(partner_id, 0)},
    }


def usage_by_day_and_key(session: Session, partner_id: int, days: int = 30) -> list[dict[str, Any]]:
    """Requests and tokens per UTC day and key over the last `days` days."""
    customer = customer_of_partner(session, partner_id)
    since = utcnow() - timedelta(days=days)
    day = func.date(UsageEvent.created_at)
    rows = session.execute(
        select(
            day.label("day"),
            ApiKey.display_prefix,
            ApiKey.name,
            func.count(),
            func.sum(UsageEvent.prompt_tokens + UsageEvent.completion_tokens),
            func.sum(UsageEvent.krw),
        )
        .join(ApiKey, ApiKey.id == UsageEvent.key_id)
        .where(UsageEvent.customer_id == customer.id, UsageEvent.created_at >= since)
        .group_by(day, ApiKey.display_prefix, ApiKey.name)
        .order_by(day.desc(), ApiKey.display_prefix)
    ).all()
    return [
        {
            "day": str(d),
            "key": prefix,
            "key_name": name,
            "requests": n,
            "tokens": int(t or 0),
            "krw": int(k or 0),
        }
        for d, prefix, name, n, t, k in rows
    ]


def closed_periods(session: Session) -> list[dict[str, Any]]:
    """Periods whose statements are published: every closed period, newest first."""
    rows = session.execute(
        select(
            SettlementPeriod.name,
            SettlementPeriod.starts_at,
            SettlementPeriod.ends_at,
            SettlementClosing.closed_at,
        )
        .join(SettlementClosing, SettlementClosing.period_id == SettlementPeriod.id)
        .order_by(SettlementPeriod.starts_at.desc())
    ).all()
    return [
        {
            "object": "statement",
            "period": name,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
            "closed_at": closed.isoformat(),
        }
        for name, starts, ends, closed in rows
    ]
