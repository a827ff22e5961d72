"""Portal users: passwords hashed with argon2id, one role each, partner staff tied to a partner."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenclub.accounts.partners import get_partner
from tokenclub.db.portal_schema import User
from tokenclub.errors import InvalidInputError, NotFoundError

MIN_PASSWORD = 10
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()
# Verified against when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("tokenclub-no-such-user")


class Role(StrEnum):
    PARTNER_MEMBER = "partner_member"
    PARTNER_ADMIN = "partner_admin"
    OPERATOR = "operator"
    TRAINER = "trainer"

    @property
    def is_partner(self) -> bool:
        return self in (Role.PARTNER_MEMBER, Role.PARTNER_ADMIN)


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    email: str
    name: str
    role: Role
    partner_id: int | None
    active: bool
    created_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role.value,
            "partner_id": self.partner_id,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
        }


def view(user: User) -> UserView:
    return UserView(
        user.id, user.email, user.name, Role(user.role), user.partner_id, user.active, user.created_at
    )


def normal_email(email: str) -> str:
    clean = email.strip().lower()
    if not EMAIL.match(clean) or len(clean) > 320:
        raise InvalidInputError(f"e-mail {email!r} is not an address")
    return clean


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise InvalidInputError("password must be at most 1024 characters")


def add_user(
    session: Session,
    email: str,
    password: str,
    role: Role,
    *,
    name: str = "",
    partner_id: int | None = None,
    active: bool = True,
) -> UserView:
    """Create a user; partner staff need their partner, operators and trainers must have none."""
    address = normal_email(email)
    check_password(password)
    if role.is_partner and partner_id is None:
        raise InvalidInputError(f"role {role.value} needs a partner")
    if not role.is_partner and partner_id is not None:
        raise InvalidInputError(f"role {role.value} belongs to no partner")
    if partner_id is not None:
        get_partner(session, partner_id)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise InvalidInputError(f"a user with e-mail {address} already exists")
    user = User(
        email=address,
        name=name.strip()[:200],
        password_hash=_HASHER.hash(password),
        role=role.value,
        partner_id=partner_id,
        active=active,
    )
    session.add(user)
    session.flush()
    return view(user)


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return user


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def verify_login(session: Session, email: str, password: str) -> User | None:
    """The user these credentials open, or None; the hash is upgraded when argon2's defaults grow."""
    user = find_by_email(session, email)
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return user


def set_password(session: Session, user_id: int, password: str) -> UserView:
    """Reset a password (by an operator, or the user's own change)."""
    check_password(password)
    user = get_user(session, user_id)
    user.password_hash = _HASHER.hash(password)
    session.flush()
    return view(user)


def set_active(session: Session, user_id: int, active: bool) -> UserView:
    user = get_user(session, user_id)
    user.active = active
    session.flush()
    return view(user)


def list_users(session: Session, partner_id: int | None = None) -> list[UserView]:
    query = select(User).order_by(User.id)
    if partner_id is not None:
        query = query.where(User.partner_id == partner_id)
    return [view(u) for u in session.scalars(query)]


def operator_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.role == Role.OPERATOR)) or 0
