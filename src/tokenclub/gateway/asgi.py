"""The app factory uvicorn workers import; everything comes from TOKENCLUB_* settings."""

from __future__ import annotations

from fastapi import FastAPI

from tokenclub.errors import StateError
from tokenclub.gateway.app import create_app
from tokenclub.gateway.config import gateway_config
from tokenclub.gateway.logs import configure_logging
from tokenclub.portal.app import include_portal
from tokenclub.settings import get_settings


def make_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    if not settings.upstream_url:
        raise StateError("TOKENCLUB_UPSTREAM_URL is not set")
    app = create_app(gateway_config(settings, settings.upstream_url, settings.model_name))
    include_portal(app, settings)
    return app
