"""Portal sessions and login throttling, kept in the database so several server processes agree.

The cookie carries a random secret; the table keeps only its SHA-256 (a stolen database does not
open sessions). Each session has its own CSRF token, which every form posts back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tokenclub.accounts.users import Role, UserView, verify_login, view
from tokenclub.db.portal_schema import LoginFailure, PortalSession, User
from tokenclub.db.types import utcnow
from tokenclub.errors import TokenclubError

SESSION_TTL = timedelta(hours=8)
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_FAILURES = 5


class LoginThrottledError(TokenclubError):
    """Too many failed logins for one address in the window."""


@dataclass(frozen=True, slots=True)
class Login:
    """A live session: who is logged in and the CSRF token of their forms."""

    user: UserView
    csrf_token: str

    @property
    def role(self) -> Role:
        return self.user.role


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def log_in(
    session: Session, email: str, password: str, ttl: timedelta = SESSION_TTL
) -> tuple[str, Login] | None:
    """A new session's cookie secret and login, or None for wrong credentials or a disabled user.

    After `THROTTLE_FAILURES` failures in `THROTTLE_WINDOW` the address is refused, even with
    the right password, until the window has passed.
    """
    address = email.strip().lower()
    now = utcnow()
    recent = session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.email == address, LoginFailure.at > now - THROTTLE_WINDOW)
    )
    if (recent or 0) >= THROTTLE_FAILURES:
        raise LoginThrottledError(
            f"too many failed logins for {address}; try again in {THROTTLE_WINDOW.seconds // 60} minutes"
        )
    user = verify_login(session, address, password)
    if user is None or not user.active:
        session.add(LoginFailure(email=address, at=now))
        session.flush()
        return None
    session.execute(delete(LoginFailure).where(LoginFailure.email == address))
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(PortalSession(id_hash=_hash(secret), user_id=user.id, csrf_token=csrf, expires_at=now + ttl))
    session.flush()
    return secret, Login(view(user), csrf)


def current(session: Session, secret: str | None) -> Login | None:
    """The login a cookie secret opens, or None when it is unknown, expired or its user disabled."""
    if not secret:
        return None
    row = session.get(PortalSession, _hash(secret))
    if row is None:
        return None
    if row.expires_at <= utcnow():
        session.delete(row)
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return Login(view(user), row.csrf_token)


def csrf_ok(login: Login, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(login.csrf_token, presented)


def log_out(session: Session, secret: str | None) -> None:
    if secret:
        session.execute(delete(PortalSession).where(PortalSession.id_hash == _hash(secret)))


def end_sessions(session: Session, user_id: int) -> int:
    """End every session of a user (after a password reset or when disabling them)."""
    result = session.execute(delete(PortalSession).where(PortalSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)
