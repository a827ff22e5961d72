"""Settings come from TOKENCLUB_* variables with the documented defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import run_cli
from tokenclub.curate.language import DEFAULT_MIN_HANGUL_SHARE
from tokenclub.errors import InvalidInputError
from tokenclub.settings import Settings, get_settings


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


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("POOL_RATE", "1.5", "TOKENCLUB_POOL_RATE=1.5 is not allowed: use a number >= 0 and <= 1"),
        ("CREDIT_RATIO", "abc", "TOKENCLUB_CREDIT_RATIO=abc is not allowed: use a number >= 0"),
        (
            "LOG_LEVEL",
            "loud",
            "TOKENCLUB_LOG_LEVEL=loud is not allowed: use one of debug, info, warning, error",
        ),
        ("OPERATOR_TOKEN", "secret", "TOKENCLUB_OPERATOR_TOKEN is not allowed: use text length >= 16"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"TOKENCLUB_{name}", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidInputError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("args", "variable", "value", "line"),
    [
        (
            ("init",),
            "TOKENCLUB_POOL_RATE",
            "1.5",
            "TOKENCLUB_POOL_RATE=1.5 is not allowed: use a number >= 0 and <= 1",
        ),
        (
            ("serve", "--upstream", "http://127.0.0.1:9/v1"),
            "TOKENCLUB_GUARD_POLICY",
            "loose",
            "TOKENCLUB_GUARD_POLICY=loose is not allowed: use one of block, redact",
        ),
    ],
)
def test_the_cli_prints_it_and_exits_1(
    tmp_path: Path, args: tuple[str, ...], variable: str, value: str, line: str
) -> None:
    result = run_cli(tmp_path, *args, env_extra={variable: value})
    assert result.returncode == 1
    assert result.stderr == f"error: {line}\n"
