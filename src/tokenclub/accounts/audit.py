"""The audit trail of operators' actions: who did what to which object, when, before and after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.db.portal_schema import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditView:
    id: int
    at: datetime
    actor_user_id: int | None
    action: str
    target: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor_user_id": self.actor_user_id,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
        }


def record(
    session: Session, actor_user_id: int | None, action: str, target: str, before: Any, after: Any
) -> None:
    """Write one entry in the caller's transaction, so the action and its record commit together."""
    session.add(
        AuditEntry(
            actor_user_id=actor_user_id,
            action=action,
            target=target,
            before=json.dumps(before, ensure_ascii=False, default=str),
            after=json.dumps(after, ensure_ascii=False, default=str),
        )
    )
    session.flush()


def entries(session: Session, limit: int = 200, offset: int = 0) -> list[AuditView]:
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return [
        AuditView(r.id, r.at, r.actor_user_id, r.action, r.target, json.loads(r.before), json.loads(r.after))
        for r in rows
    ]
