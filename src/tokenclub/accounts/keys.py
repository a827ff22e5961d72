"""API keys: shown once, stored as a hash, prefixed so leaked keys are recognisable.

Each key carries scopes: `inference` (the OpenAI-compatible endpoints), `data` (uploads and
contributions) and `account` (balance and statements), so a key given to an app cannot upload
or read statements. Keys issued before scopes existed have `inference` only.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.accounts.customers import get_customer
from tokenclub.db.schema import ApiKey
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, NotFoundError

KEY_PREFIX = "tcsk-"
SECRET_BYTES = 32
DISPLAY_LENGTH = len(KEY_PREFIX) + 8


class Scope(StrEnum):
    INFERENCE = "inference"
    DATA = "data"
    ACCOUNT = "account"


DEFAULT_SCOPES: tuple[Scope, ...] = (Scope.INFERENCE,)


def parse_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    """Validated scopes in a fixed order; an unknown or empty set is an error naming it."""
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(Scope))
    if unknown:
        raise InvalidInputError(f"unknown scope {unknown[0]!r}: choose from {', '.join(Scope)}")
    if not wanted:
        raise InvalidInputError("a key needs at least one scope")
    return tuple(s for s in Scope if s in wanted)


def hash_key(key: str) -> str:
    """Keys carry 256 random bits, so a plain SHA-256 is enough; no salt or stretching is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyView:
    id: int
    customer_id: int
    name: str
    display_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: str = Scope.INFERENCE.value

    def allows(self, scope: Scope) -> bool:
        return scope.value in self.scopes.split(",")

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "name": self.name,
            "prefix": self.display_prefix,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.revoked_at is None,
            "scopes": self.scopes.split(","),
        }


def _view(key: ApiKey) -> KeyView:
    return KeyView(
        key.id, key.customer_id, key.name, key.display_prefix, key.created_at, key.revoked_at, key.scopes
    )


def create_key(
    session: Session, customer_id: int, name: str = "", scopes: Iterable[str] = DEFAULT_SCOPES
) -> tuple[str, KeyView]:
    """Issue a new key; the plain key is returned here and never again."""
    get_customer(session, customer_id)
    if len(name) > 200:
        raise InvalidInputError("key name must be at most 200 characters")
    granted = parse_scopes(scopes)
    plain = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    key = ApiKey(
        customer_id=customer_id,
        name=name,
        display_prefix=plain[:DISPLAY_LENGTH],
        key_hash=hash_key(plain),
        scopes=",".join(granted),
    )
    session.add(key)
    session.flush()
    return plain, _view(key)


def list_keys(session: Session, customer_id: int | None = None) -> list[KeyView]:
    query = select(ApiKey).order_by(ApiKey.id)
    if customer_id is not None:
        query = query.where(ApiKey.customer_id == customer_id)
    return [_view(k) for k in session.scalars(query)]


def revoke_key(session: Session, key_id: int) -> KeyView:
    """Revoke a key; revoking a revoked key keeps its first revocation time."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id} does not exist")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return _view(key)


def authenticate(session: Session, plain: str) -> KeyView | None:
    """The active key matching a presented secret, or None."""
    if not plain.startswith(KEY_PREFIX):
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plain)))
    if key is None or key.revoked_at is not None:
        return None
    return _view(key)
