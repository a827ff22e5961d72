"""Settings come from TOKENCLUB_* variables with the documented defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenclub.curate.language import DEFAULT_MIN_HANGUL_SHARE
from tokenclub.settings import Settings


def test_defaults_match_the_measured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOME", "DATABASE_URL", "HANGUL_THRESHOLD", "CREDIT_RATIO"):
        monkeypatch.delenv(f"TOKENCLUB_{name}", raising=False)
    settings = Settings(_env_file=None)
    assert settings.hangul_threshold == DEFAULT_MIN_HANGUL_SHARE
    assert settings.member_threshold_words == 100_000_000
    assert settings.resolved_database_url == f"sqlite:///{(Path('.tokenclub') / 'tokenclub.db').resolve()}"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOKENCLUB_HOME", str(tmp_path))
    monkeypatch.setenv("TOKENCLUB_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("TOKENCLUB_CREDIT_RATIO", "0.5")
    settings = Settings(_env_file=None)
    assert settings.home == tmp_path
    assert settings.resolved_database_url.startswith("postgresql+psycopg://")
    assert settings.credit_ratio == 0.5
