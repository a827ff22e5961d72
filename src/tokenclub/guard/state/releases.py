"""Withdrawn partners whose text the operator has released from the guard index.

Withdrawal takes a partner out of future training, not out of the guard: a model trained on its
text may still be served, so the text stays indexed (and protected) until the operator releases
it with `tokenclub guard release --partner ID`, once no served model saw it. Releases are kept
beside the index (`<home>/guard/released.json`), so every later rebuild leaves those partners
out by itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tokenclub.guard.indexing.index import write_lock

RELEASED = "released.json"


def released_partners(root: Path) -> set[int]:
    """Partners whose text the operator released (their text leaves the index at rebuild)."""
    try:
        return {int(p) for p in json.loads((root / RELEASED).read_text())}
    except FileNotFoundError:
        return set()


def record_release(root: Path, partner_id: int) -> set[int]:
    """Add a release (atomically, under the writers' lock); returns every released partner."""
    with write_lock(root):
        released = released_partners(root) | {partner_id}
        tmp = root / f"{RELEASED}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(sorted(released)))
        os.replace(tmp, root / RELEASED)
    return released
