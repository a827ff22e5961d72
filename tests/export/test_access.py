"""Only trainers and operators take training data out, and every time is logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenclub.db.engine import Database
from tokenclub.export.access import AccessDeniedError, Role, authorize, log_action, read_log
from tokenclub.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, trainers="kim, lee", operators="ops")


def test_roles_come_from_one_function(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert authorize(settings, "kim") is Role.TRAINER
    assert authorize(settings, " lee ") is Role.TRAINER
    assert authorize(settings, "ops") is Role.OPERATOR
    with pytest.raises(AccessDeniedError, match="'partner-7' is neither a trainer nor an operator"):
        authorize(settings, "partner-7")
    with pytest.raises(AccessDeniedError, match="an actor is required"):
        authorize(settings, " ")
    with pytest.raises(AccessDeniedError):
        authorize(Settings(home=tmp_path), "kim")  # nobody is a trainer by default


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
