"""Only trainers and operators take training data out, and every time is logged."""

from __future__ import annotations

import pytest

from tokenclub.accounts.partners import apply
from tokenclub.accounts.users import Role as UserRole
from tokenclub.accounts.users import add_user, set_active
from tokenclub.db.engine import Database
from tokenclub.export.access import AccessDeniedError, Role, authorize, log_action, read_log

PASSWORD = "correct horse battery"


def test_roles_come_from_portal_users(db: Database) -> None:
    with db.transaction() as session:
        partner = apply(session, "한겨레", threshold_words=1000)
        add_user(session, "kim@lab.kr", PASSWORD, UserRole.TRAINER)
        add_user(session, "ops@coop.kr", PASSWORD, UserRole.OPERATOR)
        add_user(session, "desk@paper.kr", PASSWORD, UserRole.PARTNER_ADMIN, partner_id=partner.id)
        gone = add_user(session, "old@lab.kr", PASSWORD, UserRole.TRAINER)
        set_active(session, gone.id, False)
        assert authorize(session, "kim@lab.kr") is Role.TRAINER
        assert authorize(session, " KIM@lab.kr ") is Role.TRAINER
        assert authorize(session, "ops@coop.kr") is Role.OPERATOR
        with pytest.raises(AccessDeniedError, match=r"'desk@paper.kr' is neither a trainer nor an operator"):
            authorize(session, "desk@paper.kr")
        with pytest.raises(AccessDeniedError, match=r"'old@lab.kr' is no active portal user"):
            authorize(session, "old@lab.kr")
        with pytest.raises(AccessDeniedError, match=r"'kim' is no active portal user"):
            authorize(session, "kim")
        with pytest.raises(AccessDeniedError, match="an actor is required"):
            authorize(session, " ")


def test_log_records_who_did_what_newest_first(db: Database) -> None:
    with db.transaction() as session:
        log_action(session, "kim", Role.TRAINER, "export", detail={"formats": ["parquet"]})
        log_action(session, "ops", Role.OPERATOR, "download", detail={"destination": "s3://x"})
        rows = read_log(session)
    assert [(r["actor"], r["role"], r["action"]) for r in rows] == [
        ("ops", "operator", "download"),
        ("kim", "trainer", "export"),
    ]
    assert rows[1]["detail"] == {"formats": ["parquet"]} and rows[0]["at"] >= rows[1]["at"]
