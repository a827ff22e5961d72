"""Shard sizes as people write them (`256MiB`, `200MB`), shared by the CLI and the portal form."""

from __future__ import annotations

import re

from tokenclub.errors import InvalidInputError

_SIZE = re.compile(r"^\s*(\d+)\s*(|b|kb|kib|mb|mib|gb|gib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "kib": 2**10, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


def parse_size(raw: str, field: str = "--shard-size") -> int:
    """`268435456`, `256MiB`, `200MB`, `1GB` → bytes; `field` names the input in the error."""
    match = _SIZE.match(raw)
    if match is None or int(match.group(1)) <= 0:
        raise InvalidInputError(f"{field} {raw!r} is not a positive size such as 256MiB or 200MB")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]
