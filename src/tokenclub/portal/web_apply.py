"""The public application form, and the page an applicant sees until an operator decides."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from tokenclub.accounts import partners
from tokenclub.accounts.partners import OrgType, PartnerStatus
from tokenclub.accounts.users import Role, add_user
from tokenclub.db.portal_schema import PartnerApplication
from tokenclub.errors import InvalidInputError
from tokenclub.portal.sessions import Login
from tokenclub.portal.state import portal_state
from tokenclub.portal.web import PARTNER_ROLES, page, public_csrf, require

router = APIRouter(prefix="/portal")


@router.get("/apply", response_class=HTMLResponse)
def apply_form(request: Request) -> Response:
    return page(request, "apply.html", None, org_types=list(OrgType), form={})


@router.post("/apply", response_class=HTMLResponse, dependencies=[Depends(public_csrf)])
def apply_submit(
    request: Request,
    org_name: str = Form(""),
    org_type: str = Form("other"),
    contact_name: str = Form(""),
    email: str = Form(""),
    password: str = Form(""),
    data_description: str = Form(""),
    estimated_words: str = Form("0"),
    licence: str = Form(""),
) -> Response:
    state = portal_state(request)
    form = {
        "org_name": org_name,
        "org_type": org_type,
        "contact_name": contact_name,
        "email": email,
        "data_description": data_description,
        "estimated_words": estimated_words,
    }
    try:
        if licence != "yes":
            raise InvalidInputError("licence: the terms must be accepted to apply")
        words = int(estimated_words.replace(",", "").strip() or "0")
        if words < 0:
            raise InvalidInputError("estimated_words: must not be negative")
        with state.db.transaction() as session:
            partner = partners.apply(
                session,
                org_name,
                threshold_words=state.threshold_words,
                contact=email.strip(),
                org_type=org_type,
                data_description=data_description,
            )
            user = add_user(
                session, email, password, Role.PARTNER_ADMIN, name=contact_name, partner_id=partner.id
            )
            session.add(
                PartnerApplication(partner_id=partner.id, estimated_words=words, applicant_user_id=user.id)
            )
    except (InvalidInputError, ValueError) as exc:
        message = str(exc) if isinstance(exc, InvalidInputError) else "estimated_words: not a number"
        return page(
            request, "apply.html", None, status=400, org_types=list(OrgType), form=form, error=message
        )
    return page(request, "applied.html", None)


@router.get("/status", response_class=HTMLResponse)
def application_status(request: Request, login: Login = Depends(require(*PARTNER_ROLES))) -> Response:
    state = portal_state(request)
    assert login.user.partner_id is not None
    with state.db.transaction() as session:
        partner = partners.get_partner(session, login.user.partner_id)
        status, note = partner.status, partner.decision_note
    return page(
        request,
        "status.html",
        login,
        status_name=status,
        note=note,
        approved=status == PartnerStatus.APPROVED,
    )
