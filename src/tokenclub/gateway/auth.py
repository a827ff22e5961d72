"""The gateway's key check: `accounts.keys.authenticate` as one prebuilt Core statement.

It runs on every request, so it skips the ORM (object loading, identity map) that the
account commands use; the answer is the same active-key-or-None.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, bindparam, select

from tokenclub.accounts.keys import KEY_PREFIX, KeyView, hash_key
from tokenclub.db.schema import ApiKey

_KEYS = cast(Table, ApiKey.__table__)
_KEY_BY_HASH = select(
    _KEYS.c.id,
    _KEYS.c.customer_id,
    _KEYS.c.name,
    _KEYS.c.display_prefix,
    _KEYS.c.created_at,
    _KEYS.c.revoked_at,
).where(_KEYS.c.key_hash == bindparam("key_hash"))


def active_key(conn: Connection, plain: str) -> KeyView | None:
    """The active (not revoked) key matching a presented secret, or None."""
    if not plain.startswith(KEY_PREFIX):
        return None
    row = conn.execute(_KEY_BY_HASH, {"key_hash": hash_key(plain)}).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return KeyView(*row)
