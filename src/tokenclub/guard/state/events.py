"""Recording guard events and counting, per partner, the attempts on its text that were stopped."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardEvent

Stage = Literal["prompt", "output"]
Action = Literal["blocked", "redacted", "refused", "strict", "logged"]
EXHAUSTED = "exhausted"
"""The verdict of a reply blocked for carrying more of a document its customer is at its limit of."""
STRIKES = (EXHAUSTED, "capped")
"""The blocks that count toward refusing a customer who holds pieces of an exhausted or capped document."""
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


def blocks_by_document(
    session: Session,
    verdicts: Sequence[str],
    since: datetime,
    customer_id: int | None = None,
    documents: Collection[int] | None = None,
) -> dict[tuple[int, int], int]:
    """Replies blocked for one of `verdicts` since `since`, per (customer, document): the verdicts
    whose reasons name one document ("document N"), of every customer or of one, of every
    document or of those named."""
    query = (
        select(GuardEvent.customer_id, GuardEvent.reasons, func.count())
        .where(
            GuardEvent.stage == "output",
            GuardEvent.verdict.in_(verdicts),
            GuardEvent.action == "blocked",
            GuardEvent.created_at >= since,
        )
        .group_by(GuardEvent.customer_id, GuardEvent.reasons)
    )
    if customer_id is not None:
        query = query.where(GuardEvent.customer_id == customer_id)
    if documents is not None:
        query = query.where(GuardEvent.reasons.in_([json.dumps([f"document {doc}"]) for doc in documents]))
    found: dict[tuple[int, int], int] = {}
    for customer, reasons, count in session.execute(query):
        named = [r for r in json.loads(reasons or "[]") if str(r).startswith("document ")]
        if customer is not None and len(named) == 1:
            place = (int(customer), int(named[0].removeprefix("document ")))
            found[place] = found.get(place, 0) + int(count)
    return found
