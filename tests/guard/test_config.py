"""The guard's settings: a value the index cannot be built with is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenclub.errors import InvalidInputError
from tokenclub.guard.config import guard_settings
from tokenclub.guard.service import GatewayGuard


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("LEAK_LENGTH", "29", "an integer >= 30"),
        ("LEAK_LENGTH", "fifty", "an integer >= 30"),
        ("MEMBER_BITS", "0.5", "a number >= 6 and <= 32"),
        ("MEMBER_BITS", "64", "a number >= 6 and <= 32"),
        ("LEAK_LETTERS", "-1", "an integer >= 0"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(f"TOKENCLUB_GUARD_{name}", value)
    with pytest.raises(InvalidInputError) as raised:
        guard_settings()
    assert str(raised.value) == f"TOKENCLUB_GUARD_{name}={value} is not allowed: use {allowed}"


@pytest.mark.parametrize(("length", "stride"), [(30, 1), (50, 5), (125, 20)])
def test_every_allowed_leak_length_builds_an_index_shape(
    monkeypatch: pytest.MonkeyPatch, length: int, stride: int
) -> None:
    monkeypatch.setenv("TOKENCLUB_GUARD_LEAK_LENGTH", str(length))
    params = guard_settings().index_params()
    assert (params.stride, params.guaranteed_length()) == (stride, 26 + 5 * stride - 1)


def test_the_verdict_in_nfkc_letters_reaches_the_gateways_scanner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENCLUB_GUARD_LEAK_LETTERS", "45")
    assert GatewayGuard.from_settings(tmp_path).scanner.leak_letters == 45
