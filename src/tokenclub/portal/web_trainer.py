"""The trainer's pages: snapshots and exports, creating an export, and downloading its files.

Trainers and operators only (`require` refuses partners with 403); the actor is re-checked by
`export.access.authorize`, the one place that decides who takes training data out, and every
export and every file downloaded is written to the export log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from tokenclub.accounts.users import Role
from tokenclub.errors import InvalidInputError
from tokenclub.export import access
from tokenclub.portal import exports
from tokenclub.portal.sessions import Login
from tokenclub.portal.state import PortalState, portal_state
from tokenclub.portal.web import PortalDenied, page, require

router = APIRouter(prefix="/portal/trainer")
trainer = require(Role.TRAINER, Role.OPERATOR)
FORMATS = ("parquet", "megatron", "mds")


def _authorize(session: Session, actor: str) -> access.Role:
    """The export role of the session's user; a refusal is a 403 page, not a bad request."""
    try:
        return access.authorize(session, actor)
    except access.AccessDeniedError as exc:
        raise PortalDenied(403, str(exc)) from exc


@router.get("", response_class=HTMLResponse)
def trainer_page(request: Request, login: Login = Depends(trainer)) -> Response:
    from tokenclub.export.snapshot import list_snapshots, withdrawn_since

    state = portal_state(request)
    with state.db.transaction() as session:
        _authorize(session, login.user.email)
        snapshots = [
            {**view.as_dict(), "withdrawn_since": withdrawn_since(session, view.id)}
            for view in list_snapshots(session)
        ]
        rows = exports.listed_exports(session)
    return page(
        request,
        "trainer.html",
        login,
        snapshots=list(reversed(snapshots)),
        exports=list(reversed(rows)),
        formats=FORMATS,
        default_shard=f"{state.settings.export_shard_bytes // 2**20}MiB"
        if state.settings.export_shard_bytes % 2**20 == 0
        else str(state.settings.export_shard_bytes),
    )


def _form_int(raw: str, field: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInputError(f"{field} {raw!r} is not a whole number") from exc


def _create(state: PortalState, actor: str, form: dict[str, Any]) -> int:
    """Authorize, freeze a new snapshot when asked, write the export; returns its id."""
    from tokenclub.corpus.store import CorpusStore
    from tokenclub.curate.quality import QualitySettings
    from tokenclub.export.formats import parse_formats
    from tokenclub.export.run import ExportRequest, run_export
    from tokenclub.export.sizes import parse_size
    from tokenclub.export.snapshot import create_snapshot
    from tokenclub.pipeline.steps import PipelineSpec
    from tokenclub.storage import store_child
    from tokenclub.tokenizer_store import resolve_tokenizer

    settings = state.settings
    if not form["formats"]:
        raise InvalidInputError("formats: choose at least one of parquet, megatron, mds")
    names = parse_formats(form["formats"])
    shard_raw = form["shard_size"].strip()
    shard_bytes = parse_size(shard_raw, "shard_size") if shard_raw else settings.export_shard_bytes
    seed = _form_int(form["seed"], "seed")
    snapshot_id = _form_int(form["snapshot"], "snapshot")
    tokenizer = resolve_tokenizer(settings)
    with state.db.transaction() as session:
        role = _authorize(session, actor)
        if snapshot_id is None:
            spec = PipelineSpec.for_tokenizer(tokenizer, settings.hangul_threshold, QualitySettings())
            view = create_snapshot(session, actor, spec)
            access.log_action(
                session, actor, role, "snapshot", snapshot_id=view.id, detail={"documents": view.documents}
            )
            snapshot_id = view.id
    manifest = run_export(
        state.db,
        CorpusStore(store_child(settings.home, settings.store_url, "corpus")),
        store_child(settings.home, settings.store_url, "exports"),
        tokenizer,
        actor,
        role,
        ExportRequest(snapshot_id, names, shard_bytes, seed),
    )
    return int(manifest["export_id"])


@router.post("/exports")
def create_export(
    request: Request,
    login: Login = Depends(trainer),
    snapshot: str = Form(""),
    formats: list[str] = Form([]),
    seed: str = Form(""),
    shard_size: str = Form(""),
) -> Response:
    """Write an export in this request (the export streams; its row says `writing` meanwhile)."""
    state = portal_state(request)
    form = {"snapshot": snapshot, "formats": formats, "seed": seed, "shard_size": shard_size}
    export_id = _create(state, login.user.email, form)
    return RedirectResponse(f"/portal/trainer/exports/{export_id}", status_code=303)


@router.get("/exports/{export_id}", response_class=HTMLResponse)
def export_page(request: Request, export_id: int, login: Login = Depends(trainer)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        _authorize(session, login.user.email)
        row, manifest, files = exports.export_detail(session, export_id)
    return page(
        request,
        "trainer_export.html",
        login,
        export=row,
        manifest=manifest,
        summary=exports.summary(manifest),
        files=files,
    )


@router.get("/exports/{export_id}/files/{name:path}")
def download(request: Request, export_id: int, name: str, login: Login = Depends(trainer)) -> Response:
    """Stream one file of a finished export from its store; the download is logged first."""
    state = portal_state(request)
    actor = login.user.email
    with state.db.transaction() as session:
        role = _authorize(session, actor)
        file, chunks, snapshot_id = exports.open_file(session, export_id, name)
        access.log_action(
            session,
            actor,
            role,
            "download",
            snapshot_id=snapshot_id,
            export_id=export_id,
            detail={"file": file.path, "bytes": file.bytes, "via": "portal"},
        )
    filename = file.path.rsplit("/", 1)[-1]
    return StreamingResponse(
        chunks,
        media_type="application/json" if file.kind == "manifest" else "application/octet-stream",
        headers={
            "content-length": str(file.bytes),
            "content-disposition": f'attachment; filename="{filename}"',
            "x-checksum-sha256": file.sha256,
            "cache-control": "no-store",
        },
    )
