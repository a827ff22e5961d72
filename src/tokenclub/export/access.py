"""Purpose limitation: who may take training data out, and the log of everyone who did.

Contributed text leaves the platform only as a training export. `authorize` is the one place
that decides whether an actor may create, download or register against exports; today it reads
the trainer and operator names from the settings, and it is where account roles plug in.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.db.export_schema import ExportLog
from tokenclub.errors import InvalidInputError
from tokenclub.settings import Settings


class Role(StrEnum):
    TRAINER = "trainer"
    OPERATOR = "operator"


class AccessDeniedError(InvalidInputError):
    """The actor holds no role that may take training data out."""


def _names(raw: str) -> set[str]:
    return {name.strip() for name in raw.split(",") if name.strip()}


def authorize(settings: Settings, actor: str) -> Role:
    """The role under which `actor` may create and download exports, or AccessDeniedError."""
    name = actor.strip()
    if not name:
        raise AccessDeniedError("an actor is required (--as NAME): exports are purpose-limited")
    if name in _names(settings.operators):
        return Role.OPERATOR
    if name in _names(settings.trainers):
        return Role.TRAINER
    raise AccessDeniedError(
        f"{name!r} is neither a trainer nor an operator (TOKENCLUB_TRAINERS, TOKENCLUB_OPERATORS): "
        "training data leaves only for training"
    )


def log_action(
    session: Session,
    actor: str,
    role: Role,
    action: str,
    *,
    snapshot_id: int | None = None,
    export_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record who did what with which snapshot or export (the time is the row's)."""
    session.add(
        ExportLog(
            actor=actor.strip(),
            role=role.value,
            action=action,
            snapshot_id=snapshot_id,
            export_id=export_id,
            detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        )
    )
    session.flush()


def read_log(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """The newest log entries first (operators read this; it names no document or text)."""
    rows = session.scalars(select(ExportLog).order_by(ExportLog.id.desc()).limit(limit))
    return [
        {
            "id": row.id,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "role": row.role,
            "action": row.action,
            "snapshot_id": row.snapshot_id,
            "export_id": row.export_id,
            "detail": json.loads(row.detail),
        }
        for row in rows
    ]
