"""The portal's plumbing and public pages: templates, language, sessions, CSRF, role checks.

Every page route declares the roles it serves through `require`, which reads the session
cookie (HTTP-only, SameSite=Lax, Secure unless turned off for plain-HTTP development) and
refuses other roles with 403; every POST checks the CSRF token of the session (or, before
login, a double-submit cookie).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from tokenclub.accounts.users import Role
from tokenclub.errors import TokenclubError
from tokenclub.portal import sessions
from tokenclub.portal.i18n import LANGS, translate
from tokenclub.portal.sessions import Login, LoginThrottledError
from tokenclub.portal.state import PortalState, portal_state

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, default=str)
SESSION_COOKIE = "tc_session"
CSRF_COOKIE = "tc_csrf"
LANG_COOKIE = "tc_lang"
PARTNER_ROLES = (Role.PARTNER_MEMBER, Role.PARTNER_ADMIN)


class PortalDenied(Exception):
    """A request the portal refuses: shown as a page with the status and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginNeeded(Exception):
    """No (or an expired) session: the browser is sent to the login page."""

    def __init__(self, expired: bool) -> None:
        super().__init__("login needed")
        self.expired = expired


def lang_of(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "ko"
    return wanted if wanted in LANGS else "ko"


def page(
    request: Request, template: str, login: Login | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page in the visitor's language, with the CSRF token its forms need."""
    lang = lang_of(request)
    csrf = login.csrf_token if login else request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "login": login,
            "lang": lang,
            "other_lang": "en" if lang == "ko" else "ko",
            "t": lambda key: translate(lang, key),
            "csrf": csrf,
            "Role": Role,
            **context,
        },
        status_code=status,
    )
    state = portal_state(request)
    if login is None and request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, secure=state.cookie_secure, samesite="strict", path="/portal"
        )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", path="/portal", max_age=365 * 86400)
    return response


def _login(state: PortalState, secret: str | None) -> Login | None:
    with state.db.transaction() as session:
        return sessions.current(session, secret)


def require(*roles: Role) -> Callable[[Request], Awaitable[Login]]:
    """A dependency: the logged-in user, who must hold one of `roles`; POSTs must carry the CSRF token."""

    async def check(request: Request) -> Login:
        state = portal_state(request)
        secret = request.cookies.get(SESSION_COOKIE)
        login = await run_in_threadpool(_login, state, secret)
        if login is None:
            raise LoginNeeded(expired=secret is not None)
        if login.role not in roles:
            raise PortalDenied(403, f"this page is not for the {login.role.value} role")
        if request.method == "POST":
            presented = request.headers.get("x-csrf-token")
            if presented is None and "form" in request.headers.get("content-type", ""):
                presented = str((await request.form()).get("csrf_token") or "") or None
            if not sessions.csrf_ok(login, presented):
                raise PortalDenied(403, "missing or wrong CSRF token; reload the page and try again")
        return login

    return check


async def public_csrf(request: Request) -> None:
    """Forms used before login carry the double-submit token of their cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    presented = str((await request.form()).get("csrf_token") or "")
    if not cookie or not secrets.compare_digest(cookie, presented):
        raise PortalDenied(403, "missing or wrong CSRF token; reload the page and try again")


router = APIRouter(prefix="/portal")


def home_of(login: Login) -> str:
    if login.role in PARTNER_ROLES:
        return "/portal/partner"
    if login.role is Role.OPERATOR:
        return "/portal/ops"
    return "/portal/trainer"


@router.get("/", response_class=HTMLResponse)
async def root(request: Request) -> Response:
    login = await run_in_threadpool(_login, portal_state(request), request.cookies.get(SESSION_COOKIE))
    return RedirectResponse(home_of(login) if login else "/portal/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, expired: int = 0) -> Response:
    return page(request, "login.html", None, expired=bool(expired))


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(public_csrf)])
def login_submit(request: Request, email: str = Form(...), password: str = Form(...)) -> Response:
    state = portal_state(request)
    try:
        with state.db.transaction() as session:
            opened = sessions.log_in(session, email, password, state.session_ttl)
    except LoginThrottledError as exc:
        return page(request, "login.html", None, status=429, error=str(exc))
    if opened is None:
        return page(request, "login.html", None, status=401, error=translate(lang_of(request), "bad_login"))
    secret, login = opened
    response = RedirectResponse(home_of(login), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        secure=state.cookie_secure,
        samesite="lax",
        path="/portal",
        max_age=int(state.session_ttl.total_seconds()),
    )
    return response


@router.post("/logout")
def logout(request: Request, _login: Login = Depends(require(*Role))) -> Response:
    state = portal_state(request)
    with state.db.transaction() as session:
        sessions.log_out(session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/portal/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/portal")
    return response


def mount(app: FastAPI) -> None:
    """Add the portal's pages, static files and error pages to `app`."""
    from tokenclub.portal import web_apply, web_ops, web_partner

    @app.exception_handler(PortalDenied)
    async def _denied(request: Request, exc: PortalDenied) -> Response:
        login = await run_in_threadpool(_login, portal_state(request), request.cookies.get(SESSION_COOKIE))
        return page(request, "error.html", login, status=exc.status, message=exc.message)

    @app.exception_handler(LoginNeeded)
    async def _login_needed(request: Request, exc: LoginNeeded) -> Response:
        if request.headers.get("accept", "").startswith("application/json"):
            return Response('{"error": "login needed"}', status_code=401, media_type="application/json")
        response = RedirectResponse("/portal/login" + ("?expired=1" if exc.expired else ""), status_code=303)
        if exc.expired:
            response.delete_cookie(SESSION_COOKIE, path="/portal")
        return response

    @app.exception_handler(TokenclubError)
    async def _known(request: Request, exc: TokenclubError) -> Response:
        from tokenclub.portal.api import api_error

        error = api_error(exc)
        if request.url.path.startswith("/portal/") and not request.headers.get("accept", "").startswith(
            "application/json"
        ):
            login = await run_in_threadpool(
                _login, portal_state(request), request.cookies.get(SESSION_COOKIE)
            )
            return page(request, "error.html", login, status=error.status, message=str(exc))
        return error.response()

    app.include_router(router)
    app.include_router(web_apply.router)
    app.include_router(web_partner.router)
    app.include_router(web_ops.router)
    app.mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static")
