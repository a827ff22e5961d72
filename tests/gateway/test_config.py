"""Which models a gateway serves: the upstream's own list unless a name or a map is given."""

from __future__ import annotations

import logging

import pytest

from tests.gateway.fake_upstream import UPSTREAM_MODELS, free_port
from tokenclub.gateway.config import served_routes
from tokenclub.settings import Settings


def test_without_name_or_map_the_upstream_names_its_models(
    upstream_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENCLUB_MODEL_NAME", raising=False)
    monkeypatch.delenv("TOKENCLUB_MODELS", raising=False)
    routes = served_routes(Settings(_env_file=None), upstream_url + "/v1/", "smollm2-135m-instruct")
    assert sorted(routes) == sorted(UPSTREAM_MODELS)
    assert {(r.base_url, r.upstream_model) for r in routes.values()} == {
        (upstream_url + "/v1", name) for name in UPSTREAM_MODELS
    }


def test_a_model_name_set_in_the_environment_is_kept(
    upstream_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENCLUB_MODEL_NAME", "house-model")
    settings = Settings(_env_file=None)
    assert list(served_routes(settings, upstream_url + "/v1", settings.model_name)) == ["house-model"]


def test_an_upstream_that_cannot_list_is_served_under_the_default_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("TOKENCLUB_MODEL_NAME", raising=False)
    monkeypatch.delenv("TOKENCLUB_MODELS", raising=False)
    caplog.set_level(logging.WARNING, logger="tokenclub.gateway")
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert list(served_routes(Settings(_env_file=None), url, "fallback")) == ["fallback"]
    assert f"cannot list the models of {url}" in caplog.text
