"""The gateway's key check: `accounts.keys.authenticate` as one prebuilt Core statement.

It runs on every request, so it skips the ORM (object loading, identity map) that the
account commands use; the answer is the same active-key-or-None.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, bindparam, select

from tokenclub.accounts.keys import KEY_PREFIX, KeyView, Scope, hash_key
from tokenclub.db.schema import ApiKey
from tokenclub.gateway.errors import ApiError

_KEYS = cast(Table, ApiKey.__table__)
_KEY_BY_HASH = select(
    _KEYS.c.id,
    _KEYS.c.customer_id,
    _KEYS.c.name,
    _KEYS.c.display_prefix,
    _KEYS.c.created_at,
    _KEYS.c.revoked_at,
    _KEYS.c.scopes,
).where(_KEYS.c.key_hash == bindparam("key_hash"))


def active_key(conn: Connection, plain: str) -> KeyView | None:
    """The active (not revoked) key matching a presented secret, or None; a key without the
    inference scope (one made for uploads or statements) is refused with 403."""
    if not plain.startswith(KEY_PREFIX):
        return None
    row = conn.execute(_KEY_BY_HASH, {"key_hash": hash_key(plain)}).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    key = KeyView(*row)
    if not key.allows(Scope.INFERENCE):
        raise ApiError(
            403, "this API key has no inference scope", "invalid_request_error", "insufficient_scope"
        )
    return key
