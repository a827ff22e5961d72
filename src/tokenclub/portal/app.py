"""Putting the data API and the portal pages on an app: `tokenclub serve` mounts them beside the
gateway; `tokenclub portal` serves them alone (no model server needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tokenclub.portal.state import PortalState
from tokenclub.settings import Settings, get_settings


def include_portal(app: FastAPI, settings: Settings) -> None:
    """Add the data API routes and the portal pages to `app`."""
    from tokenclub.portal import api, web

    app.state.portal = PortalState.from_settings(settings)
    app.include_router(api.router)
    web.mount(app)


def make_app() -> FastAPI:
    """The app factory of `tokenclub portal`: everything from TOKENCLUB_* settings."""
    return create_portal_app(get_settings())


def create_portal_app(settings: Settings) -> FastAPI:
    """The portal and the data API alone."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.portal.db.dispose()

    app = FastAPI(title="tokenclub portal", lifespan=lifespan, docs_url=None, redoc_url=None)
    include_portal(app, settings)
    return app
