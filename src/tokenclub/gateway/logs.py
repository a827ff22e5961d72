"""The gateway's logging: access lines (already JSON) as they are, other records with time,
level and logger; both on stderr, at the level `TOKENCLUB_LOG_LEVEL` or `serve --log-level` sets."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Set up the `tokenclub` loggers once per process (a second call only changes the level)."""
    root = logging.getLogger("tokenclub")
    access = logging.getLogger("tokenclub.access")
    root.setLevel(level.upper())
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        access_handler = logging.StreamHandler(sys.stderr)
        access_handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(access_handler)
        access.propagate = False
