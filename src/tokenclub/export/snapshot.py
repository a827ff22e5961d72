"""Snapshots: the accepted documents of partners still in training, frozen at one moment.

A snapshot lists committed corpus parts in a fixed order with their per-part counts; exports
read exactly those parts through the corpus store, so the same snapshot always yields the same
documents in the same order. Partners that withdrew are left out when the snapshot is taken;
snapshots taken before keep them (they describe what was, and models may have seen it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub import __version__
from tokenclub.accounts.partners import WITHDRAWN_IDS, withdrawn_partners
from tokenclub.db.export_schema import Snapshot, SnapshotPart, SnapshotPartner
from tokenclub.db.schema import CorpusDocument, Partner
from tokenclub.errors import NotFoundError, StateError

if TYPE_CHECKING:
    from tokenclub.pipeline.steps import PipelineSpec


def curation_rules(spec: PipelineSpec) -> dict[str, Any]:
    """The curation rules in force when a snapshot is taken: steps in order, their settings, and
    the tokenizer; enough to tell two snapshots curated differently apart."""
    return {
        "tokenclub": __version__,
        "steps": [step.name for step in spec()],
        "hangul_threshold": spec.hangul_threshold,
        "quality": spec.quality.model_dump(mode="json"),
        "tokenizer_fingerprint": spec.tokenizer_fingerprint,
    }


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One corpus part of a snapshot, in order."""

    upload_id: str
    batch_seq: int
    partner_id: int
    documents: int
    tokens: int


@dataclass(frozen=True, slots=True)
class SnapshotView:
    id: int
    created_at: datetime
    created_by: str
    tokenizer_fingerprint: str
    curation: dict[str, Any]
    excluded_partners: list[int]
    documents: int
    tokens: int
    partners: dict[int, tuple[int, int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "tokenizer_fingerprint": self.tokenizer_fingerprint,
            "curation": self.curation,
            "excluded_partners": self.excluded_partners,
            "documents": self.documents,
            "tokens": self.tokens,
            "partners": {
                str(pid): {"documents": docs, "tokens": tokens}
                for pid, (docs, tokens) in sorted(self.partners.items())
            },
        }


def create_snapshot(session: Session, actor: str, spec: PipelineSpec) -> SnapshotView:
    """Freeze the committed parts of every partner that has not withdrawn (one consistent read)."""
    parts = session.execute(
        select(
            CorpusDocument.upload_id,
            CorpusDocument.batch_seq,
            CorpusDocument.partner_id,
            func.count(),
            func.sum(CorpusDocument.tokens),
        )
        .where(CorpusDocument.partner_id.not_in(WITHDRAWN_IDS))
        .group_by(CorpusDocument.upload_id, CorpusDocument.batch_seq, CorpusDocument.partner_id)
        .order_by(CorpusDocument.upload_id, CorpusDocument.batch_seq)
    ).all()
    if not parts:
        raise StateError(
            "the corpus holds no accepted documents of a partner in training: nothing to snapshot"
        )
    snapshot = Snapshot(
        created_by=actor.strip(),
        tokenizer_fingerprint=spec.tokenizer_fingerprint,
        curation=json.dumps(curation_rules(spec), ensure_ascii=False, sort_keys=True),
        excluded_partners=json.dumps(withdrawn_partners(session)),
        documents=sum(int(row[3]) for row in parts),
        tokens=sum(int(row[4]) for row in parts),
    )
    session.add(snapshot)
    session.flush()
    per_partner: dict[int, list[int]] = {}
    for position, (upload_id, seq, partner_id, documents, tokens) in enumerate(parts):
        session.add(
            SnapshotPart(
                snapshot_id=snapshot.id,
                position=position,
                upload_id=upload_id,
                batch_seq=seq,
                partner_id=partner_id,
                documents=int(documents),
                tokens=int(tokens),
            )
        )
        totals = per_partner.setdefault(int(partner_id), [0, 0])
        totals[0] += int(documents)
        totals[1] += int(tokens)
    for partner_id, (documents, tokens) in sorted(per_partner.items()):
        session.add(
            SnapshotPartner(
                snapshot_id=snapshot.id, partner_id=partner_id, documents=documents, tokens=tokens
            )
        )
    session.flush()
    return get_snapshot(session, snapshot.id)


def get_snapshot(session: Session, snapshot_id: int) -> SnapshotView:
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFoundError(f"snapshot {snapshot_id} does not exist")
    partners = {
        row.partner_id: (row.documents, row.tokens)
        for row in session.scalars(select(SnapshotPartner).where(SnapshotPartner.snapshot_id == snapshot_id))
    }
    return SnapshotView(
        id=snapshot.id,
        created_at=snapshot.created_at,
        created_by=snapshot.created_by,
        tokenizer_fingerprint=snapshot.tokenizer_fingerprint,
        curation=json.loads(snapshot.curation),
        excluded_partners=json.loads(snapshot.excluded_partners),
        documents=snapshot.documents,
        tokens=snapshot.tokens,
        partners=partners,
    )


def list_snapshots(session: Session) -> list[SnapshotView]:
    return [get_snapshot(session, sid) for sid in session.scalars(select(Snapshot.id).order_by(Snapshot.id))]


def snapshot_parts(session: Session, snapshot_id: int) -> list[PartInfo]:
    """The snapshot's parts in its fixed order."""
    get_snapshot(session, snapshot_id)
    return [
        PartInfo(row.upload_id, row.batch_seq, row.partner_id, row.documents, row.tokens)
        for row in session.scalars(
            select(SnapshotPart)
            .where(SnapshotPart.snapshot_id == snapshot_id)
            .order_by(SnapshotPart.position)
        )
    ]


def withdrawn_since(session: Session, snapshot_id: int) -> list[dict[str, Any]]:
    """Partners in the snapshot that have withdrawn since: the note older exports carry."""
    rows = session.execute(
        select(Partner.id, Partner.withdrawn_at)
        .join(SnapshotPartner, SnapshotPartner.partner_id == Partner.id)
        .where(SnapshotPartner.snapshot_id == snapshot_id, Partner.id.in_(WITHDRAWN_IDS))
        .order_by(Partner.id)
    )
    return [{"partner_id": pid, "withdrawn_at": at.isoformat() if at else None} for pid, at in rows]


def partner_snapshots(session: Session, partner_id: int) -> list[dict[str, Any]]:
    """The snapshots that hold this partner's documents, with its own counts only."""
    rows = session.execute(
        select(Snapshot.id, Snapshot.created_at, SnapshotPartner.documents, SnapshotPartner.tokens)
        .join(SnapshotPartner, SnapshotPartner.snapshot_id == Snapshot.id)
        .where(SnapshotPartner.partner_id == partner_id)
        .order_by(Snapshot.id)
    )
    return [
        {"snapshot_id": sid, "created_at": at.isoformat(), "documents": docs, "tokens": tokens}
        for sid, at, docs, tokens in rows
    ]
