"""The operator console: applications, partners and users, ingest jobs, revenue and costs,
period closes, guard events, the ledger audit. Every change an
operator makes is written to the audit trail in the same transaction as the change."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from tokenclub.accounts import audit, partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.accounts.users import Role, list_users, set_active, set_password
from tokenclub.db.portal_schema import PartnerApplication
from tokenclub.errors import InvalidInputError
from tokenclub.guard.state.events import list_events
from tokenclub.ledger.posting import audit as ledger_audit
from tokenclub.portal import partner_data, sessions
from tokenclub.portal.sessions import Login
from tokenclub.portal.state import portal_state
from tokenclub.portal.web import page, require
from tokenclub.settings import get_settings
from tokenclub.settlement import periods
from tokenclub.settlement.periods import RecordKind
from tokenclub.settlement.settle import Terms, close_period

router = APIRouter(prefix="/portal")
operator = require(Role.OPERATOR)


@router.get("/ops", response_class=HTMLResponse)
def overview(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        applied = partners.list_partners(session, state.threshold_words, PartnerStatus.APPLIED.value)
        jobs, _ = partner_data.list_contributions(session, None, limit=10)
        problems = ledger_audit(session)
    return page(request, "ops/overview.html", login, applied=applied, jobs=jobs, problems=problems)


@router.get("/ops/applications", response_class=HTMLResponse)
def applications(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        rows = partners.list_partners(session, state.threshold_words)
        declared = {a.partner_id: a.estimated_words for a in session.scalars(select(PartnerApplication))}
    return page(request, "ops/applications.html", login, partners=rows, declared=declared)


@router.post("/ops/applications/{partner_id}/decide")
def decide(
    partner_id: int,
    request: Request,
    login: Login = Depends(operator),
    decision: str = Form(...),
    note: str = Form(""),
) -> Response:
    if decision not in ("approve", "reject"):
        raise InvalidInputError("decision: approve or reject")
    state = portal_state(request)
    status = PartnerStatus.APPROVED if decision == "approve" else PartnerStatus.REJECTED
    with state.db.transaction() as session:
        before = partners.show(session, partner_id, state.threshold_words).as_dict()
        after = partners.decide(session, partner_id, status, state.threshold_words, note.strip()).as_dict()
        audit.record(
            session,
            login.user.id,
            f"application.{decision}",
            f"partner:{partner_id}",
            before,
            {**after, "note": note.strip()},
        )
    return RedirectResponse("/portal/ops/applications", status_code=303)


@router.get("/ops/users", response_class=HTMLResponse)
def users_page(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        rows = [u.as_dict() for u in list_users(session)]
    return page(request, "ops/users.html", login, users=rows)


@router.post("/ops/users/{user_id}/reset-password")
def reset_password(
    user_id: int, request: Request, login: Login = Depends(operator), password: str = Form(...)
) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        user = set_password(session, user_id, password)
        ended = sessions.end_sessions(session, user_id)
        audit.record(
            session,
            login.user.id,
            "user.reset_password",
            f"user:{user_id}",
            None,
            {"email": user.email, "sessions_ended": ended},
        )
    return RedirectResponse("/portal/ops/users", status_code=303)


@router.post("/ops/users/{user_id}/active")
def toggle_active(
    user_id: int, request: Request, login: Login = Depends(operator), active: str = Form(...)
) -> Response:
    state = portal_state(request)
    if user_id == login.user.id:
        raise InvalidInputError("an operator cannot disable their own account")
    with state.db.transaction() as session:
        user = set_active(session, user_id, active == "yes")
        if not user.active:
            sessions.end_sessions(session, user_id)
        audit.record(
            session,
            login.user.id,
            "user.active",
            f"user:{user_id}",
            {"active": not user.active},
            {"active": user.active},
        )
    return RedirectResponse("/portal/ops/users", status_code=303)


@router.get("/ops/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, login: Login = Depends(operator), before: str | None = None) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        rows, more = partner_data.list_contributions(session, None, limit=100, before=before)
    return page(request, "ops/jobs.html", login, jobs=rows, more=more)


@router.get("/ops/settlement", response_class=HTMLResponse)
def settlement_page(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        views = periods.list_periods(session)
        closed = {view.name for view in views if view.closed}
        records = [
            {**r.as_dict(), "period_open": r.period not in closed} for r in periods.list_records(session)
        ]
    return page(request, "ops/settlement.html", login, periods=[v.as_dict() for v in views], records=records)


@router.post("/ops/settlement/records")
def add_record(
    request: Request,
    login: Login = Depends(operator),
    period: str = Form(...),
    kind: str = Form(...),
    krw: str = Form(...),
    note: str = Form(...),
) -> Response:
    if kind not in set(RecordKind):
        raise InvalidInputError(f"kind: {kind!r} is not revenue or cost")
    try:
        amount = int(krw.replace(",", "").strip())
    except ValueError as exc:
        raise InvalidInputError(f"krw: {krw!r} is not a whole number of won") from exc
    state = portal_state(request)
    with state.db.transaction() as session:
        record = periods.add_record(session, period.strip(), RecordKind(kind), amount, note)
        audit.record(
            session,
            login.user.id,
            f"settlement.{kind}",
            f"period:{period.strip()}",
            None,
            {"id": record.id, "krw": amount, "note": record.note},
        )
    return RedirectResponse("/portal/ops/settlement", status_code=303)


@router.post("/ops/settlement/records/{record_id}/void")
def void_record(
    record_id: int,
    request: Request,
    login: Login = Depends(operator),
    kind: str = Form(...),
    reason: str = Form(...),
) -> Response:
    """Void a wrong record of an open period; the record stays, marked, and the pool ignores it."""
    if kind not in set(RecordKind):
        raise InvalidInputError(f"kind: {kind!r} is not revenue or cost")
    state = portal_state(request)
    with state.db.transaction() as session:
        who = f"user:{login.user.id} {login.user.email}"
        before, after = periods.void_record(session, record_id, RecordKind(kind), reason, who)
        audit.record(
            session,
            login.user.id,
            f"settlement.{kind}.void",
            f"record:{record_id}",
            before.as_dict(),
            after.as_dict(),
        )
    return RedirectResponse("/portal/ops/settlement", status_code=303)


@router.post("/ops/settlement/close")
def close(request: Request, login: Login = Depends(operator), period: str = Form(...)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        result = close_period(session, period.strip(), Terms.from_settings(get_settings()))
        summary = result.as_dict()
        summary.pop("payouts", None)
        audit.record(session, login.user.id, "settlement.close", f"period:{period.strip()}", None, summary)
    return RedirectResponse("/portal/ops/settlement", status_code=303)


@router.get("/ops/guard", response_class=HTMLResponse)
def guard_page(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        events = list_events(session, limit=200)
    return page(request, "ops/guard.html", login, events=events)


@router.get("/ops/ledger", response_class=HTMLResponse)
def ledger_page(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        problems = ledger_audit(session)
    return page(request, "ops/ledger.html", login, problems=problems)


@router.get("/ops/audit", response_class=HTMLResponse)
def audit_page(request: Request, login: Login = Depends(operator)) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        rows = [e.as_dict() for e in audit.entries(session)]
    return page(request, "ops/audit.html", login, entries=rows)
