"""Purpose limitation: who may take training data out, and the log of everyone who did.

Contributed text leaves the platform only as a training export. `authorize` is the one place
that decides whether an actor may create, download or register against exports: the actor is a
portal user (named by e-mail), active, whose role is trainer or operator. Roles live only in the
accounts table, so deactivating a user or changing a role takes effect for the CLI, the portal
and everything else at once.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.db.export_schema import ExportLog
from tokenclub.errors import InvalidInputError


class Role(StrEnum):
    TRAINER = "trainer"
    OPERATOR = "operator"


class AccessDeniedError(InvalidInputError):
    """The actor holds no role that may take training data out."""


def authorize(session: Session, actor: str) -> Role:
    """The role under which the portal user `actor` (an e-mail) may create and download exports,
    or AccessDeniedError."""
    from tokenclub.accounts.users import Role as UserRole
    from tokenclub.accounts.users import find_by_email

    name = actor.strip()
    if not name:
        raise AccessDeniedError("an actor is required (--as EMAIL): exports are purpose-limited")
    user = find_by_email(session, name)
    if user is None or not user.active:
        raise AccessDeniedError(
            f"{name!r} is no active portal user (tokenclub user add …): "
            "training data leaves only for training"
        )
    if user.role == UserRole.OPERATOR:
        return Role.OPERATOR
    if user.role == UserRole.TRAINER:
        return Role.TRAINER
    raise AccessDeniedError(
        f"{name!r} is neither a trainer nor an operator (role {user.role}): "
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
