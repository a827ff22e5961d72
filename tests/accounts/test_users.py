"""Portal users: argon2 hashes, roles tied to partners, the operator's reset."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tokenclub.accounts.partners import apply
from tokenclub.accounts.users import Role, add_user, set_password, verify_login
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import User
from tokenclub.errors import InvalidInputError


def test_password_is_stored_as_argon2id_and_verifies(db: Database) -> None:
    with db.transaction() as session:
        user = add_user(session, " Op@Example.org ", "correct horse battery", Role.OPERATOR)
    assert user.email == "op@example.org" and user.role is Role.OPERATOR
    with db.transaction() as session:
        stored = session.scalars(select(User)).one()
        assert stored.password_hash.startswith("$argon2id$")
        assert "correct horse" not in stored.password_hash
        assert verify_login(session, "OP@example.org", "correct horse battery") is not None
        assert verify_login(session, "op@example.org", "correct horse batterY") is None
        assert verify_login(session, "nobody@example.org", "correct horse battery") is None


def test_roles_and_partners_must_agree(db: Database) -> None:
    with db.transaction() as session:
        partner = apply(session, "한겨레", threshold_words=1)
        with pytest.raises(InvalidInputError, match="needs a partner"):
            add_user(session, "a@b.kr", "0123456789", Role.PARTNER_ADMIN)
        with pytest.raises(InvalidInputError, match="belongs to no partner"):
            add_user(session, "a@b.kr", "0123456789", Role.OPERATOR, partner_id=partner.id)
        with pytest.raises(InvalidInputError, match="at least 10"):
            add_user(session, "a@b.kr", "short", Role.TRAINER)
        with pytest.raises(InvalidInputError, match="not an address"):
            add_user(session, "not-mail", "0123456789", Role.TRAINER)
        add_user(session, "a@b.kr", "0123456789", Role.PARTNER_MEMBER, partner_id=partner.id)
        with pytest.raises(InvalidInputError, match="already exists"):
            add_user(session, "A@B.kr", "0123456789", Role.TRAINER)


def test_reset_password_replaces_the_old_one(db: Database) -> None:
    with db.transaction() as session:
        user = add_user(session, "t@x.kr", "first password", Role.TRAINER)
        set_password(session, user.id, "second password")
        assert verify_login(session, "t@x.kr", "first password") is None
        assert verify_login(session, "t@x.kr", "second password") is not None
