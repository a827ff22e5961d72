"""What a key may read about its own account: usage events and, for partners, guard counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.accounts.keys import KeyView
from tokenclub.db.schema import Customer, UsageEvent
from tokenclub.gateway.auth import current_key
from tokenclub.gateway.errors import ApiError
from tokenclub.gateway.observe import context
from tokenclub.gateway.usage import usage_event_dict
from tokenclub.guard.service import partner_stats

router = APIRouter(prefix="/v1", tags=["Account"])


@router.get("/usage")
async def usage(
    request: Request, limit: int = Query(100), key: KeyView = Depends(current_key)
) -> dict[str, Any]:
    """The key's customer's latest usage events, newest first."""
    context(request.state).key_prefix = key.display_prefix

    def read(session: Session) -> list[dict[str, Any]]:
        rows = session.scalars(
            select(UsageEvent)
            .where(UsageEvent.customer_id == key.customer_id)
            .order_by(UsageEvent.id.desc())
            .limit(max(1, min(limit, 1000)))
        )
        return [usage_event_dict(row) for row in rows]

    return {"object": "list", "data": await request.app.state.gateway.in_db(read)}


@router.get("/guard/stats")
async def guard_stats(request: Request, key: KeyView = Depends(current_key)) -> dict[str, Any]:
    """A partner's own count of stopped attempts on its text; other keys get 403."""
    context(request.state).key_prefix = key.display_prefix

    def read(session: Session) -> dict[str, Any]:
        partner_id = session.scalar(select(Customer.partner_id).where(Customer.id == key.customer_id))
        if partner_id is None:
            raise ApiError(
                403, "guard statistics are for partners' keys", "invalid_request_error", "not_a_partner"
            )
        return partner_stats(session, partner_id)

    stats: dict[str, Any] = await request.app.state.gateway.in_db(read)
    return stats
