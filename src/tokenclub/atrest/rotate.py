"""Master key rotation for the key file: add a key, re-wrap every header, drop the old keys."""

from __future__ import annotations

from typing import Any

from tokenclub.atrest.keys import load_key_file
from tokenclub.atrest.objects import key_file_path, rewrap_files
from tokenclub.errors import StateError
from tokenclub.settings import Settings
from tokenclub.storage import open_root, store_child


def rotate_key_file(settings: Settings) -> dict[str, Any]:
    """Rotate the key file's master key over the raw and corpus stores; returns the counts.

    The new key is saved before any header changes and the old ones are dropped only after
    all headers are re-wrapped: a crash in between leaves a key file that opens everything.
    A KMS rotates its own keys, and a key from the environment cannot be rewritten here.
    """
    if settings.kms or settings.master_key is not None:
        raise StateError("the master key comes from a KMS or TOKENCLUB_MASTER_KEY; rotate it there")
    path = key_file_path(settings)
    old = load_key_file(path)
    new = old.with_new_key()
    new.save()
    counts: dict[str, dict[str, int]] = {}
    for name in ("raw", "corpus"):
        fs, root = open_root(store_child(settings.home, settings.store_url, name))
        rewrapped, current = rewrap_files(fs, root, new, new)
        counts[name] = {"rewrapped": rewrapped, "already_current": current}
    new.only_current().save()
    return {"key_file": str(path), "key_id": new.current, "retired": sorted(old.keys), **counts}
