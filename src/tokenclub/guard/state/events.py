"""Recording guard events and counting, per partner, the attempts on its text that were stopped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardEvent

Stage = Literal["prompt", "output"]
Action = Literal["blocked", "redacted", "refused", "strict", "logged"]
STOPPED: tuple[Action, ...] = ("blocked", "redacted", "refused")
"""Actions that kept contributed text from the client (`strict` and `logged` only watched)."""


def record_event(
    session: Session,
    *,
    request_id: str,
    stage: Stage,
    verdict: str,
    action: Action,
    key_id: int | None = None,
    customer_id: int | None = None,
    matched_length: int = 0,
    partner_id: int | None = None,
    reasons: Sequence[str] = (),
) -> GuardEvent:
    """Add one event to the session (it commits with the caller's transaction)."""
    event = GuardEvent(
        request_id=request_id,
        key_id=key_id,
        customer_id=customer_id,
        stage=stage,
        verdict=verdict,
        action=action,
        matched_length=matched_length,
        partner_id=partner_id,
        reasons=json.dumps(list(reasons)),
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    partner_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest events first, as plain records: the operator's view of every guard decision."""
    query = select(GuardEvent).order_by(GuardEvent.id.desc()).limit(limit)
    if partner_id is not None:
        query = query.where(GuardEvent.partner_id == partner_id)
    if since is not None:
        query = query.where(GuardEvent.created_at >= since)
    return [
        {
            "id": event.id,
            "created_at": event.created_at.isoformat(),
            "request_id": event.request_id,
            "key_id": event.key_id,
            "customer_id": event.customer_id,
            "stage": event.stage,
            "verdict": event.verdict,
            "action": event.action,
            "matched_length": event.matched_length,
            "partner_id": event.partner_id,
            "reasons": json.loads(event.reasons or "[]"),
        }
        for event in session.scalars(query)
    ]


def stopped_attempts(
    session: Session, partner_id: int | None = None, since: datetime | None = None
) -> dict[int | None, int]:
    """Stopped events per partner whose text matched (None: text of no known partner).

    With `partner_id`, only that partner's count: what a partner may see of the guard.
    """
    query = select(GuardEvent.partner_id, func.count()).where(GuardEvent.action.in_(STOPPED))
    if partner_id is not None:
        query = query.where(GuardEvent.partner_id == partner_id)
    if since is not None:
        query = query.where(GuardEvent.created_at >= since)
    rows = session.execute(query.group_by(GuardEvent.partner_id)).all()
    return {partner: count for partner, count in rows}


def blocked_replies(session: Session, customer_id: int, verdicts: Sequence[str], since: datetime) -> int:
    """The most replies to the customer (any of its keys) blocked for one of `verdicts` since
    `since` with the same reasons (for these verdicts, one document)."""
    count = func.count().label("count")
    query = select(count).where(
        GuardEvent.customer_id == customer_id,
        GuardEvent.stage == "output",
        GuardEvent.verdict.in_(verdicts),
        GuardEvent.action == "blocked",
        GuardEvent.created_at >= since,
    )
    most = session.scalar(query.group_by(GuardEvent.reasons).order_by(count.desc()).limit(1))
    return int(most or 0)
