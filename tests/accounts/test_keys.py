"""API keys are shown once, stored as hashes, recognisable by prefix, and revocable."""

from __future__ import annotations

from sqlalchemy import select

from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import KEY_PREFIX, authenticate, create_key, hash_key, list_keys, revoke_key
from tokenclub.db.engine import Database
from tokenclub.db.schema import ApiKey


def test_key_is_stored_only_as_hash_and_authenticates(db: Database) -> None:
    with db.transaction() as session:
        cid = create_customer(session, "c").id
        plain, view = create_key(session, cid, "laptop")
    assert plain.startswith(KEY_PREFIX) and len(plain) == len(KEY_PREFIX) + 43
    with db.transaction() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert stored.key_hash == hash_key(plain)
        assert plain not in (stored.key_hash, stored.display_prefix, stored.name)
        assert stored.display_prefix == plain[: len(KEY_PREFIX) + 8]
        found = authenticate(session, plain)
        assert found is not None and found.id == view.id and found.customer_id == cid
        assert authenticate(session, plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None
        assert authenticate(session, "sk-" + plain) is None


def test_revoked_key_no_longer_authenticates(db: Database) -> None:
    with db.transaction() as session:
        cid = create_customer(session, "c").id
        plain, view = create_key(session, cid)
        keep, _ = create_key(session, cid)
    with db.transaction() as session:
        first = revoke_key(session, view.id)
        second = revoke_key(session, view.id)
        assert first.revoked_at == second.revoked_at is not None
        assert authenticate(session, plain) is None
        assert authenticate(session, keep) is not None
        assert [k.revoked_at is None for k in list_keys(session, cid)] == [False, True]


def test_scopes_default_to_inference_and_are_validated(db: Database) -> None:
    import pytest

    from tokenclub.accounts.keys import Scope
    from tokenclub.errors import InvalidInputError

    with db.transaction() as session:
        cid = create_customer(session, "c").id
        _, plain_view = create_key(session, cid)
        _, data_view = create_key(session, cid, "uploader", ["data", "account", "data"])
        assert plain_view.allows(Scope.INFERENCE) and not plain_view.allows(Scope.DATA)
        assert data_view.scopes == "data,account" and not data_view.allows(Scope.INFERENCE)
        assert data_view.as_dict()["scopes"] == ["data", "account"]
        with pytest.raises(InvalidInputError, match="unknown scope 'admin'"):
            create_key(session, cid, scopes=["admin"])
        with pytest.raises(InvalidInputError, match="at least one scope"):
            create_key(session, cid, scopes=[])
