"""Where stores live: a local path or any fsspec URL (``s3://…``, ``gcs://…``, ``memory://…``).

One helper, so the raw store, the corpus store and the bulk jobs resolve a root alike and
workers on other machines reach the same files through the same URL.
"""

from __future__ import annotations

from pathlib import Path

import fsspec


def open_root(root: Path | str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the path inside it (no trailing slash) for a local path or an fsspec URL."""
    fs, path = fsspec.core.url_to_fs(str(root))
    return fs, path.rstrip("/")


def store_child(home: Path, store_url: str | None, name: str) -> str:
    """The root of one store (``raw``, ``corpus``): under `store_url` when one is set, else the home."""
    base = str(home) if store_url is None else store_url.rstrip("/")
    return f"{base}/{name}"
