"""The model registry: which model was trained on which snapshot, and which of them are served.

It answers two questions for the rest of the platform: which partners' text a served model may
have seen (the leak guard keeps a withdrawn partner's text protected while that holds), and
which models a partner's data trained (its statements and the portal show them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenclub.db.export_schema import SnapshotPartner, TrainedModel
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, NotFoundError
from tokenclub.export.snapshot import get_snapshot


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    snapshot_id: int
    served_as: str | None
    registered_at: datetime
    registered_by: str
    retired_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "snapshot_id": self.snapshot_id,
            "served_as": self.served_as,
            "registered_at": self.registered_at.isoformat(),
            "registered_by": self.registered_by,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


def _view(model: TrainedModel) -> ModelView:
    return ModelView(
        model.name,
        model.snapshot_id,
        model.served_as,
        model.registered_at,
        model.registered_by,
        model.retired_at,
    )


def register_model(
    session: Session, name: str, snapshot_id: int, actor: str, served_as: str | None = None
) -> ModelView:
    """Record a model trained on a snapshot, optionally with the gateway model name serving it."""
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise InvalidInputError("model name must be 1..200 characters")
    get_snapshot(session, snapshot_id)
    model = TrainedModel(
        name=clean,
        snapshot_id=snapshot_id,
        served_as=(served_as or "").strip() or None,
        registered_by=actor.strip(),
    )
    try:
        with session.begin_nested():
            session.add(model)
            session.flush()
    except IntegrityError as exc:
        raise InvalidInputError(f"a model named {clean!r} is already registered") from exc
    return _view(model)


def _get(session: Session, name: str) -> TrainedModel:
    model = session.scalar(select(TrainedModel).where(TrainedModel.name == name))
    if model is None:
        raise NotFoundError(f"model {name!r} is not registered")
    return model


def serve_model(session: Session, name: str, served_as: str) -> ModelView:
    """Mark a registered model as served under a gateway model name."""
    model = _get(session, name)
    model.served_as = served_as.strip() or None
    model.retired_at = None
    session.flush()
    return _view(model)


def retire_model(session: Session, name: str) -> ModelView:
    """The model is no longer served; its snapshot stops holding withdrawn text in the guard."""
    model = _get(session, name)
    if model.served_as is not None:
        model.served_as = None
        model.retired_at = utcnow()
        session.flush()
    return _view(model)


def list_models(session: Session) -> list[ModelView]:
    return [_view(m) for m in session.scalars(select(TrainedModel).order_by(TrainedModel.id))]


def partners_in_served_models(session: Session) -> set[int]:
    """Partners whose documents are in the snapshot of at least one currently served model.

    The leak guard keeps a withdrawn partner's text protected exactly while its id is in here.
    """
    served = select(TrainedModel.snapshot_id).where(TrainedModel.served_as.is_not(None))
    return set(
        session.scalars(
            select(SnapshotPartner.partner_id).where(SnapshotPartner.snapshot_id.in_(served)).distinct()
        )
    )


def served_models_holding(session: Session, partner_id: int) -> list[str]:
    """Names of the served models whose snapshot holds this partner's documents: while any is
    left, a withdrawn partner's text must stay in the leak-guard index."""
    mine = select(SnapshotPartner.snapshot_id).where(SnapshotPartner.partner_id == partner_id)
    return list(
        session.scalars(
            select(TrainedModel.name)
            .where(TrainedModel.served_as.is_not(None), TrainedModel.snapshot_id.in_(mine))
            .order_by(TrainedModel.name)
        )
    )


def freed_by_retirement(session: Session, snapshot_id: int, withdrawn: set[int]) -> set[int]:
    """Withdrawn partners of a retired model's snapshot that no served model holds any more:
    their text may leave the leak-guard index."""
    in_snapshot = set(
        session.scalars(select(SnapshotPartner.partner_id).where(SnapshotPartner.snapshot_id == snapshot_id))
    )
    return (in_snapshot & withdrawn) - partners_in_served_models(session)


def models_trained_on(session: Session, partner_id: int) -> list[ModelView]:
    """The registered models whose snapshot holds this partner's documents (served or not)."""
    mine = select(SnapshotPartner.snapshot_id).where(SnapshotPartner.partner_id == partner_id)
    return [
        _view(m)
        for m in session.scalars(
            select(TrainedModel).where(TrainedModel.snapshot_id.in_(mine)).order_by(TrainedModel.id)
        )
    ]
