"""Partner pages: dashboard, uploads with a progress bar, receipts with their decisions, usage,
statements, keys, team and withdrawal. Every query is filtered by the session's own partner."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tokenclub.accounts import audit, keys, partners
from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.accounts.users import Role, add_user, list_users
from tokenclub.db.schema import ApiKey
from tokenclub.errors import InvalidInputError, NotFoundError
from tokenclub.export.registry import models_trained_on
from tokenclub.export.snapshot import partner_snapshots
from tokenclub.portal import partner_data, statements, uploads
from tokenclub.portal.api import receive_part, upload_object
from tokenclub.portal.sessions import Login
from tokenclub.portal.state import PortalState, portal_state
from tokenclub.portal.web import PARTNER_ROLES, PortalDenied, page, require

router = APIRouter(prefix="/portal/partner")
member = require(*PARTNER_ROLES)
admin = require(Role.PARTNER_ADMIN)
LIVE = (PartnerStatus.APPROVED, PartnerStatus.WITHDRAWN)


def partner_of(session: Session, login: Login) -> int:
    """The session's partner, which must have been approved (a withdrawn one keeps reading)."""
    assert login.user.partner_id is not None
    partner = partners.get_partner(session, login.user.partner_id)
    if partner.status not in LIVE:
        raise PortalDenied(403, "your application has not been approved; see /portal/status")
    return partner.id


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, login: Login = Depends(member)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        assert login.user.partner_id is not None
        if partners.get_partner(session, login.user.partner_id).status not in LIVE:
            return RedirectResponse("/portal/status", status_code=303)
        partner_id = partner_of(session, login)
        account = partner_data.account(session, partner_id)
        recent, _ = partner_data.list_contributions(session, partner_id, limit=5)
        snapshots = partner_snapshots(session, partner_id)
        models = [m.as_dict() for m in models_trained_on(session, partner_id)]
    return page(
        request,
        "partner/dashboard.html",
        login,
        account=account,
        contributions=recent,
        snapshots=snapshots,
        models=models,
    )


@router.get("/uploads", response_class=HTMLResponse)
def uploads_page(request: Request, login: Login = Depends(member), before: str | None = None) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        rows, more = partner_data.list_contributions(session, partner_id, limit=50, before=before)
    return page(
        request,
        "partner/uploads.html",
        login,
        contributions=rows,
        more=more,
        part_bytes=min(state.limits.max_part_bytes, 8 * 1024 * 1024),
        max_bytes=state.limits.max_upload_bytes,
    )


class StartUpload(BaseModel):
    filename: str
    bytes: int
    mime_type: str = Field(default="application/octet-stream", max_length=128)


class FinishUpload(BaseModel):
    part_ids: list[str]


def _live_partner(state: PortalState, login: Login) -> int:
    with state.db.transaction() as session:
        return partner_of(session, login)


@router.post("/uploads")
def start_upload(body: StartUpload, request: Request, login: Login = Depends(member)) -> dict[str, Any]:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        upload = uploads.create_upload(
            session,
            partner_id,
            filename=body.filename,
            purpose="user_data",
            size=body.bytes,
            mime_type=body.mime_type or "application/octet-stream",
            limits=state.limits,
        )
    return upload_object(upload)


@router.post("/uploads/{upload_id}/parts")
async def upload_part(upload_id: str, request: Request, login: Login = Depends(member)) -> dict[str, Any]:
    from fastapi.concurrency import run_in_threadpool

    state = portal_state(request)
    partner_id = await run_in_threadpool(_live_partner, state, login)
    return await receive_part(state, request, upload_id, partner_id)


@router.post("/uploads/{upload_id}/complete")
def finish_upload(
    upload_id: str, body: FinishUpload, request: Request, login: Login = Depends(member)
) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _live_partner(state, login)
    upload, contribution = uploads.complete(
        state.db, state.home, upload_id, partner_id, body.part_ids, sealing=state.sealing
    )
    return upload_object(upload, contribution.id)


@router.get("/contributions/{contribution_id}", response_class=HTMLResponse)
def contribution_page(
    contribution_id: str,
    request: Request,
    login: Login = Depends(member),
    after: int | None = Query(None, ge=-1),
    rejected: int = 0,
) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        contribution = partner_data.get_contribution(session, partner_id, contribution_id)
        page_of = partner_data.decisions(
            session, partner_id, contribution_id, after=after, limit=100, rejected_only=bool(rejected)
        )
    return page(
        request,
        "partner/contribution.html",
        login,
        c=contribution,
        decisions=page_of,
        rejected=bool(rejected),
    )


@router.get("/contributions/{contribution_id}.json")
def contribution_json(contribution_id: str, request: Request, login: Login = Depends(member)) -> JSONResponse:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        return JSONResponse(partner_data.get_contribution(session, partner_id, contribution_id))


@router.get("/usage", response_class=HTMLResponse)
def usage_page(request: Request, login: Login = Depends(member)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        rows = partner_data.usage_by_day_and_key(session, partner_id)
        account = partner_data.account(session, partner_id)
    return page(request, "partner/usage.html", login, rows=rows, account=account)


@router.get("/statements", response_class=HTMLResponse)
def statements_page(request: Request, login: Login = Depends(member)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_of(session, login)
        periods = partner_data.closed_periods(session)
    return page(request, "partner/statements.html", login, periods=periods)


@router.get("/statements/{period}/{fmt}")
def statement_download(period: str, fmt: str, request: Request, login: Login = Depends(member)) -> Response:
    if fmt not in statements.MEDIA:
        raise InvalidInputError(f"format {fmt!r} is not csv, html or pdf")
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        return statements.statement_file(session, partner_id, period, fmt)


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request, login: Login = Depends(member)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        customer = customer_of_partner(session, partner_id)
        rows = [k.as_dict() for k in keys.list_keys(session, customer.id)]
    return page(request, "partner/keys.html", login, keys=rows, scopes=list(keys.Scope), new_key=None)


@router.post("/keys", response_class=HTMLResponse)
async def key_create(request: Request, login: Login = Depends(admin)) -> Response:
    form = await request.form()
    name = str(form.get("name") or "")
    chosen = [str(s) for s in form.getlist("scope")]
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(_create_key, request, login, name, chosen)


def _create_key(request: Request, login: Login, name: str, scopes: list[str]) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        customer = customer_of_partner(session, partner_id)
        plain, _ = keys.create_key(session, customer.id, name, scopes)
    with state.db.transaction() as session:
        rows = [k.as_dict() for k in keys.list_keys(session, customer.id)]
    return page(request, "partner/keys.html", login, keys=rows, scopes=list(keys.Scope), new_key=plain)


@router.post("/keys/{key_id}/revoke")
def key_revoke(key_id: int, request: Request, login: Login = Depends(admin)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        customer = customer_of_partner(session, partner_id)
        key = session.get(ApiKey, key_id)
        if key is None or key.customer_id != customer.id:
            raise NotFoundError(f"API key {key_id} does not exist")
        keys.revoke_key(session, key_id)
    return RedirectResponse("/portal/partner/keys", status_code=303)


@router.get("/team", response_class=HTMLResponse)
def team_page(request: Request, login: Login = Depends(member)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        users = [u.as_dict() for u in list_users(session, partner_id)]
    return page(request, "partner/team.html", login, users=users)


@router.post("/team", response_class=HTMLResponse)
def team_add(
    request: Request,
    login: Login = Depends(admin),
    email: str = Form(...),
    name: str = Form(""),
    password: str = Form(...),
    role: str = Form("partner_member"),
) -> Response:
    state = portal_state(request)
    if role not in (Role.PARTNER_MEMBER, Role.PARTNER_ADMIN):
        raise InvalidInputError(f"role {role!r} is not partner_member or partner_admin")
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        user = add_user(session, email, password, Role(role), name=name, partner_id=partner_id)
        audit.record(session, login.user.id, "user.invite", f"user:{user.id}", None, user.as_dict())
    return RedirectResponse("/portal/partner/team", status_code=303)


@router.post("/withdraw")
def withdraw(request: Request, login: Login = Depends(admin), confirm: str = Form("")) -> Response:
    if confirm != "yes":
        raise InvalidInputError("confirm: tick the box to withdraw")
    state = portal_state(request)
    with state.db.transaction() as session:
        partner_id = partner_of(session, login)
        before = partners.show(session, partner_id, state.threshold_words).as_dict()
        after = partners.withdraw(session, partner_id, state.threshold_words).as_dict()
        audit.record(session, login.user.id, "partner.withdraw", f"partner:{partner_id}", before, after)
    return RedirectResponse("/portal/partner", status_code=303)
