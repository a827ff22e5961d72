"""Reading a request body as JSON without letting a hostile one cost more than a short 4xx:
a size cap enforced while reading, a nesting cap, and no lone surrogates (text the ledger,
the guard or the upstream could not encode)."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from tokenclub.gateway.errors import ApiError, bad_request

MAX_DEPTH = 64
"""Deeper than any real request (a JSON schema in a tool definition nests a dozen levels)."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def needs_walk(raw: bytes) -> bool:
    """Whether a body could hold what `check_tree` refuses: more brackets than the depth
    limit, or a surrogate escape (strict UTF-8 cannot carry a surrogate; only `\\udXXX` can).
    Most requests have neither and skip the walk (two C-speed scans instead)."""
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH or _SURROGATE_ESCAPE.search(raw) is not None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"request body is larger than {limit} bytes", "invalid_request_error", "request_too_large"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _path(trail: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in trail).lstrip(".") or "body"


def check_tree(value: Any) -> None:
    """Walk a parsed body once (iteratively): nesting within `MAX_DEPTH`, every string and key
    encodable as UTF-8."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, trail = stack.pop()
        if len(trail) > MAX_DEPTH:
            raise bad_request(f"request body is nested deeper than {MAX_DEPTH} levels", "too_deep")
        if isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError:
                raise bad_request(
                    f"{_path(trail)}: invalid Unicode (a lone surrogate escape)", "invalid_unicode"
                ) from None
        elif isinstance(node, dict):
            for key, item in node.items():
                stack.append((key, trail))
                stack.append((item, (*trail, key)))
        elif isinstance(node, list):
            stack.extend((item, (*trail, i)) for i, item in enumerate(node))


async def json_body(request: Request, limit: int) -> Any:
    """The body parsed and checked, or a 400/413 that says briefly why not."""
    raw = await read_body(request, limit)
    try:
        # Decoded strictly first: `json.loads` of bytes would let encoded surrogates through.
        value = json.loads(raw.decode())
    except RecursionError:
        raise bad_request(f"request body is nested deeper than {MAX_DEPTH} levels", "too_deep") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "it is not UTF-8"
        raise bad_request(f"request body is not valid JSON: {message}", "invalid_json") from None
    if needs_walk(raw):
        check_tree(value)
    return value
