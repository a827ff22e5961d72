"""Opening the platform's home: the data folder and the database inside or beside it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import select

from tokenclub.db.engine import Database
from tokenclub.db.migrate import current_revision, head_revision, upgrade
from tokenclub.db.schema import Customer
from tokenclub.errors import StateError
from tokenclub.ledger.posting import ensure_customer_accounts, ensure_system_accounts
from tokenclub.settings import Settings


@dataclass(frozen=True, slots=True)
class InitResult:
    home: str
    database: str
    revision: str


def init_home(settings: Settings) -> InitResult:
    """Create the home folder (0700) and bring the database to the newest schema (idempotent).

    With encryption at rest on and no key from a KMS or the environment, the master key file
    is created too (0600), once: an existing one is never replaced.
    """
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(settings.home, 0o700)
    if settings.encrypt_at_rest and not settings.kms and settings.master_key is None:
        from tokenclub.atrest.keys import new_key_file
        from tokenclub.atrest.objects import key_file_path

        new_key_file(key_file_path(settings))
    db = Database(settings.resolved_database_url)
    try:
        revision = upgrade(db.engine)
        with db.transaction() as session:
            ensure_system_accounts(session)
            for customer_id in session.scalars(select(Customer.id)):
                ensure_customer_accounts(session, customer_id)
    finally:
        db.dispose()
    return InitResult(
        home=str(settings.home.resolve()),
        database=db.engine.url.render_as_string(hide_password=True),
        revision=revision,
    )


def open_database(settings: Settings) -> Database:
    """The database, refusing to work on one that `tokenclub init` has not prepared."""
    if settings.database_url is None and not (settings.home / "tokenclub.db").exists():
        raise StateError(f"no database in {settings.home}; run `tokenclub init` first")
    db = Database(settings.resolved_database_url)
    if current_revision(db.engine) != head_revision():
        db.dispose()
        raise StateError("the database schema is not up to date; run `tokenclub init`")
    return db
