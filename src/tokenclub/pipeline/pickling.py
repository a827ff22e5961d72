"""What may cross to another process: kept apart from the executors so that a process that
imports no Arrow (the guard's indexing worker) can ask it too."""

from __future__ import annotations

import pickle


def sendable(value: object) -> bool:
    """Whether `value` can be sent to another process (a store holding a live client cannot)."""
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True
