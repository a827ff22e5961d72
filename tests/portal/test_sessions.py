"""Sessions: hashed secrets, expiry, CSRF tokens, throttled logins."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tokenclub.accounts.users import Role, add_user
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import PortalSession
from tokenclub.portal.sessions import (
    THROTTLE_FAILURES,
    LoginThrottledError,
    csrf_ok,
    current,
    end_sessions,
    log_in,
)


def test_login_opens_a_session_stored_only_as_hash(db: Database) -> None:
    with db.transaction() as session:
        add_user(session, "op@x.kr", "operator password", Role.OPERATOR)
        opened = log_in(session, "op@x.kr", "operator password")
        assert opened is not None
        secret, login = opened
        assert session.scalars(select(PortalSession.id_hash)).one() != secret
        again = current(session, secret)
        assert again is not None and again.user.email == "op@x.kr" and again.role is Role.OPERATOR
        assert csrf_ok(again, login.csrf_token) and not csrf_ok(again, "x") and not csrf_ok(again, None)
        assert current(session, secret + "x") is None
        assert end_sessions(session, login.user.id) == 1
        assert current(session, secret) is None


def test_expired_session_is_refused(db: Database) -> None:
    with db.transaction() as session:
        add_user(session, "op@x.kr", "operator password", Role.OPERATOR)
        opened = log_in(session, "op@x.kr", "operator password", ttl=timedelta(seconds=-1))
        assert opened is not None
        assert current(session, opened[0]) is None


def test_failed_logins_are_throttled_even_with_the_right_password(db: Database) -> None:
    with db.transaction() as session:
        add_user(session, "op@x.kr", "operator password", Role.OPERATOR)
    for _ in range(THROTTLE_FAILURES):
        with db.transaction() as session:
            assert log_in(session, "op@x.kr", "wrong password") is None
    with db.transaction() as session, pytest.raises(LoginThrottledError, match="too many failed logins"):
        log_in(session, "op@x.kr", "operator password")
