"""Who may call what: API keys (a prebuilt Core statement, as `accounts.keys.authenticate`
answers but without the ORM, since it runs on every request) and the operator token, both as
FastAPI dependencies.

The paid endpoints take only the presented key (`bearer`) as a dependency: they check it inside
the admission's transaction with the rate limit and the hold (`active_key`), one unit of
database work instead of two.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from datetime import UTC
from typing import Any, NamedTuple, cast

from anyio import to_thread
from fastapi import Depends, Request
from sqlalchemy import Connection, Table, bindparam, select

from tokenclub.accounts.keys import KEY_PREFIX, KeyView, Scope, hash_key
from tokenclub.db.engine import Database
from tokenclub.db.prebuilt import driver_row
from tokenclub.db.schema import ApiKey
from tokenclub.gateway.errors import INVALID_KEY, ApiError
from tokenclub.ledger.posting import Gate, Rider

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


NO_INFERENCE = ApiError(
    403, "this API key has no inference scope", "invalid_request_error", "insufficient_scope"
)


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
        raise NO_INFERENCE
    return key


_HAS_INFERENCE = "',' || scopes || ',' LIKE '%%,inference,%%'"
"""A key row's scopes (comma-separated) name the inference scope."""
_COUNTED_KEY = f"""WITH k AS (
    SELECT id, customer_id, name, display_prefix, created_at, revoked_at, scopes
    FROM api_keys WHERE key_hash = %(key_hash)s
), counted AS (
    INSERT INTO rate_counters (key_id, "window", requests, tokens)
    SELECT id, %(window)s, 1, 0 FROM k
    WHERE revoked_at IS NULL AND {_HAS_INFERENCE}
    ON CONFLICT (key_id, "window") DO UPDATE
    SET requests = rate_counters.requests + excluded.requests
    RETURNING requests, tokens
)
SELECT k.*, counted.requests, counted.tokens FROM k LEFT JOIN counted ON true"""


def counted_key(conn: Connection, plain: str, window: int) -> tuple[KeyView, int, int] | None:
    """`active_key` and the request counted in the key's rate window (`ratelimit.py`'s counter
    row), in one PostgreSQL statement: the key, and its requests and tokens in the window after
    this one. A revoked or unknown key is None and counts nothing; a key without the inference
    scope counts nothing and is refused with 403."""
    if not plain.startswith(KEY_PREFIX):
        return None
    row = driver_row(conn, _COUNTED_KEY, {"key_hash": hash_key(plain), "window": window})
    if row is None or row[5] is not None:
        return None
    created_at = row[4].astimezone(UTC)
    key = KeyView(row[0], row[1], row[2], row[3], created_at, None, row[6])
    if not key.allows(Scope.INFERENCE):
        raise NO_INFERENCE
    return key, int(row[7]), int(row[8])


_ACTIVE_OWNED_KEY = f"""k AS (
    SELECT name, display_prefix, created_at, scopes FROM api_keys
    WHERE key_hash = %(k_hash)s AND id = %(k_id)s AND customer_id = %(k_customer)s
        AND revoked_at IS NULL AND {_HAS_INFERENCE}
), """
_KEY_COLUMNS = ("name", "display_prefix", "created_at", "scopes")
KEY_FIELDS = len(_KEY_COLUMNS)
"""Values `active_key_gate`'s rider returns."""
_KEY_FIELDS = Rider("", {}, "".join(f", (SELECT {name} FROM k)" for name in _KEY_COLUMNS))


class Owner(NamedTuple):
    """Whose a key is: neither ever changes for a key."""

    customer_id: int
    key_id: int


def active_key_gate(plain: str, owner: Owner) -> tuple[Gate, Rider]:
    """A posting written only while the presented key is still `owner`'s, active and with the
    inference scope (`ledger.posting.Gate`: `active_key`'s checks in the posting's own
    statement), and a rider returning the key's other fields, for `gated_key`."""
    params = {"k_hash": hash_key(plain), "k_id": owner.key_id, "k_customer": owner.customer_id}
    return Gate(_ACTIVE_OWNED_KEY, "k", params), _KEY_FIELDS


def gated_key(owner: Owner, values: Sequence[Any]) -> KeyView:
    """The key a gated posting was written for, from what its `active_key_gate` rider returned."""
    name, display_prefix, created_at, scopes = values
    return KeyView(
        owner.key_id, owner.customer_id, name, display_prefix, created_at.astimezone(UTC), None, scopes
    )


_OWNER_BY_HASH = select(_KEYS.c.customer_id, _KEYS.c.id).where(_KEYS.c.key_hash == bindparam("key_hash"))
OWNERS_KEPT = 100_000
"""Keys whose customer a worker remembers (about 100 bytes each)."""


class KeyOwners:
    """Which customer a presented key belongs to, remembered per worker: a key's customer never
    changes, so the answer is cached without expiry and only decides the request's lane of
    database work (`gateway/dbwork.py`). Whether the key is still active, and its scopes, are
    checked in the admission's transaction on every request, so a revoked key is refused at
    once however long its owner is remembered. Unknown keys are not remembered (one may be
    issued later)."""

    def __init__(self, db: Database, kept: int = OWNERS_KEPT) -> None:
        self.db = db
        self.kept = kept
        self._owners: dict[str, Owner] = {}

    async def customer(self, plain: str) -> int | None:
        """The customer of a key that exists (revoked or not), or None."""
        if not plain.startswith(KEY_PREFIX):
            return None
        hashed = hash_key(plain)
        found = self._owners.get(hashed)
        if found is None:
            found = await to_thread.run_sync(self._look_up, hashed)
            if found is None:
                return None
            if len(self._owners) >= self.kept:
                self._owners.clear()
            self._owners[hashed] = found
        return found.customer_id

    def remembered(self, plain: str) -> Owner | None:
        """The owner of a key `customer` looked up before, without looking it up."""
        return self._owners.get(hash_key(plain)) if plain.startswith(KEY_PREFIX) else None

    def _look_up(self, hashed: str) -> Owner | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(_OWNER_BY_HASH, {"key_hash": hashed}).one_or_none()
            return None if row is None else Owner(int(row[0]), int(row[1]))


async def bearer(request: Request) -> str:
    """The presented API key (dependency); 401 when there is none. A coroutine, though it
    awaits nothing: FastAPI runs a plain function dependency on a worker thread, a hop per
    request."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing API key: send Authorization: Bearer <key>",
            "invalid_request_error",
            "invalid_api_key",
        )
    return token.strip()


async def current_key(request: Request, secret: str = Depends(bearer)) -> KeyView:
    """The active key behind the request (dependency of the endpoints that charge nothing)."""
    key: KeyView | None = await request.app.state.gateway.in_db(
        lambda session: active_key(session.connection(), secret)
    )
    if key is None:
        raise INVALID_KEY
    return key


def is_operator(request: Request) -> bool:
    """Whether the request carries the operator token (as a bearer token, or as the password of
    HTTP basic authentication, which a browser opening the docs sends), or none is set."""
    expected: str | None = request.app.state.gateway.config.operator_token
    if expected is None:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(token.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def operator(request: Request) -> None:
    """Guards the operator's endpoints (metrics, API docs) when an operator token is set."""
    if not is_operator(request):
        raise ApiError(
            401,
            "this endpoint needs the operator token (TOKENCLUB_OPERATOR_TOKEN) as a bearer token",
            "invalid_request_error",
            "invalid_operator_token",
            headers={"WWW-Authenticate": 'Basic realm="tokenclub operator"'},
        )
