"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tokenclub.db.engine import Database
from tokenclub.db.migrate import alembic_config, current_revision, head_revision, upgrade
from tokenclub.db.schema import Base


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db: Database) -> None:
    assert upgrade(db.engine) == head_revision()
    assert upgrade(db.engine) == head_revision()
    assert current_revision(db.engine) == head_revision()


def test_head_read_from_the_files_is_alembics_head() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
