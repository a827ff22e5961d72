"""What the API layer adds per request, in-process: the body checks, request parsing and the
access-log line with its metrics, each against `json.loads` of the same body (the reference,
which every JSON API pays anyway), measured in the same run.

    .venv/bin/python bench/bench_gateway_api.py            # a few seconds
    .venv/bin/python bench/bench_gateway_api.py --repeat 50000
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from tokenclub.gateway.body import check_tree, needs_walk
from tokenclub.gateway.formats import CHAT
from tokenclub.gateway.metrics import Metrics
from tokenclub.gateway.observe import RequestContext, RequestObserver
from tokenclub.gateway.requests import parse_request

QUESTION = "서울은 어떤 도시인가요? 역사와 문화, 교통을 간단히 설명해 주세요."
TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
BODIES: dict[str, dict[str, Any]] = {
    "chat, 2 messages": {
        "model": "m",
        "messages": [
            {"role": "system", "content": "간결하게 답하세요."},
            {"role": "user", "content": QUESTION},
        ],
        "max_tokens": 64,
    },
    "chat, tools, 4 turns": {
        "model": "m",
        "tools": [TOOL],
        "messages": [
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"서울"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "맑음, 21도"},
            {"role": "user", "content": [{"type": "text", "text": "내일은?"}]},
        ],
    },
}


def _micros(work: Callable[[], object], repeat: int) -> float:
    """Median µs per call over five timed batches."""
    batches = [timeit.timeit(work, number=repeat) / repeat * 1e6 for _ in range(5)]
    return statistics.median(batches)


def _access_line() -> Callable[[], None]:
    logger = logging.getLogger("tokenclub.access")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    metrics = Metrics()
    observer = RequestObserver(lambda *_: None, lambda: metrics)  # type: ignore[arg-type]
    ctx = RequestContext("0" * 32, "chat", "tcsk-abcdefgh", "m", "", 40, 10)
    scope = {"method": "POST", "path": "/v1/chat/completions"}
    return lambda: observer._finish(scope, ctx, 200, 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20_000, help="calls per timed batch")
    args = parser.parse_args()
    table = Table(title="API layer per request, in-process (median of 5 batches)")
    for column in ("body", "step", "µs", "× json.loads"):
        table.add_column(column, justify="left" if column in ("body", "step") else "right")
    for name, body in BODIES.items():
        raw = json.dumps(body, ensure_ascii=False).encode()
        reference = _micros(lambda raw=raw: json.loads(raw), args.repeat)  # type: ignore[misc]
        parsed = json.loads(raw)
        steps: dict[str, Callable[[], object]] = {
            "json.loads (reference)": lambda raw=raw: json.loads(raw),  # type: ignore[misc]
            "strict UTF-8 + pre-scan": lambda raw=raw: (raw.decode(), needs_walk(raw)),  # type: ignore[misc]
            "full tree walk (hostile-looking bodies only)": lambda parsed=parsed: check_tree(parsed),  # type: ignore[misc]
            "parse_request": lambda parsed=parsed: parse_request(parsed, CHAT, 512, 4096),  # type: ignore[misc]
            "access line + request metrics": _access_line(),
        }
        for step, work in steps.items():
            micros = reference if step.startswith("json.loads") else _micros(work, args.repeat)
            table.add_row(name, step, f"{micros:.1f}", f"{micros / reference:.2f}")
        table.add_section()
    Console().print(table)


if __name__ == "__main__":
    main()
