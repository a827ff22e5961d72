"""What the portal's and data API's requests share: the database, the home, the limits, how
staged uploads are sealed, and the settings the export pages need (stores, tokenizer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import Request

from tokenclub.atrest.objects import Sealing, sealing_for
from tokenclub.db.engine import Database
from tokenclub.portal.uploads import Limits
from tokenclub.settings import Settings


@dataclass
class PortalState:
    db: Database
    home: Path
    limits: Limits
    threshold_words: int
    session_ttl: timedelta
    cookie_secure: bool
    settings: Settings
    sealing: Sealing | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PortalState:
        return cls(
            db=Database(settings.resolved_database_url),
            home=settings.home,
            limits=Limits(settings.upload_max_bytes, settings.upload_part_max_bytes),
            threshold_words=settings.member_threshold_words,
            session_ttl=timedelta(seconds=settings.session_ttl_s),
            cookie_secure=settings.cookie_secure,
            settings=settings,
            sealing=sealing_for(settings),
        )


def portal_state(request: Request) -> PortalState:
    state = request.app.state.portal
    assert isinstance(state, PortalState)
    return state
