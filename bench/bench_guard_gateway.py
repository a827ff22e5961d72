"""What the leak guard adds to a gateway reply: guard on versus guard off, in the same run.

Two `tokenclub serve` processes (one worker, SQLite) sit in front of one fake upstream on
127.0.0.1: one whose home holds a guard index of all petitions in the corpora folder (about
3,000 documents, 4 M characters), one with a fresh home (no index: the guard passes everything
untouched, which is the reference). Replies are fresh Korean text (KLUE NLI premises), so
they pass the guard and are checked to arrive unchanged. Measured from a client at
concurrency 1, in interleaved rounds (off then on, on then off, …):

- non-streamed: request latency;
- streamed, upstream as fast as it can send: time to the first text and to the end;
- streamed, upstream pacing one 2-character token every `--pace-ms` (a model generating
  100 tokens/s): the time to the first text shows the hold-back the guard needs
  (`width + stride − 2` guard letters must follow a letter before it is sent while no chain
  of index hits is open; further back to the start of an open one);
- in-process, the guard's own work per request on the same index (prompt check, whole-reply
  scan, a stream per event through the gateway's `ReplyStream`), which a busy machine's noise
  cannot hide.

    .venv/bin/python bench/bench_guard_gateway.py            # the table (about a minute)
    .venv/bin/python bench/bench_guard_gateway.py --quick    # a smoke run
    .venv/bin/python bench/bench_guard_gateway.py --cpu-only # the in-process table alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from rich.console import Console
from rich.table import Table

from bench_gateway import build_guard_index, clean_env, free_port, provision
from tokenclub.settings import Settings

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
INSTANT, PACED = "instant", "paced"
PROMPT = "한국의 숙박 시설 후기를 짧게 정리해 주세요."
PIECE_CHARS = 2
REPLY_PIECES = {INSTANT: 200, PACED: 60}
START_TIMEOUT_S = 120.0

SHORT_TOKENS = 10  # the gateway bench's reply (`bench_gateway.py`)


def fresh_reply() -> str:
    """Korean text the index never saw: KLUE NLI premises, 400 characters of them."""
    path = CORPORA / "klue" / "klue_benchmark" / "klue-nli-v1.1" / "klue-nli-v1.1_dev.json"
    premises = dict.fromkeys(row["premise"] for row in json.loads(path.read_text(encoding="utf-8")))
    return " ".join(premises)[: PIECE_CHARS * max(REPLY_PIECES.values())]


def pieces(model: str) -> list[str]:
    text = fresh_reply()[: PIECE_CHARS * REPLY_PIECES[model]]
    return [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]


# ---------------------------------------------------------------------------------------------
# The fake upstream (a child process): chat completions with usage, streamed or not.
# ---------------------------------------------------------------------------------------------


def upstream_app(pace_s: float) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        model = body["model"]
        parts = pieces(model)
        usage = {"prompt_tokens": 20, "completion_tokens": len(parts), "total_tokens": 20 + len(parts)}
        base = {"id": "bench", "created": 0, "model": model}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(parts)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}

        async def events() -> AsyncIterator[bytes]:
            for i, part in enumerate(parts):
                delta = {"role": "assistant", "content": part} if i == 0 else {"content": part}
                chunk = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
                if model == PACED:
                    await asyncio.sleep(pace_s)
            end = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**base, 'choices': [end]})}\n\n".encode()
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def serve_upstream(port: int, pace_ms: float) -> None:
    uvicorn.run(upstream_app(pace_ms / 1000), host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------------------------------------
# The gateways.
# ---------------------------------------------------------------------------------------------


def build_index(home: Path) -> dict[str, Any]:
    """The gateway benchmark's guard index in `home`, with its build time and hold-back."""
    from tokenclub.guard.config import GuardSettings
    from tokenclub.guard.detection.scanner import holdback

    started = time.perf_counter()
    stats = build_guard_index(home)
    return stats | {
        "build_s": time.perf_counter() - started,
        "holdback": holdback(GuardSettings().index_params()),
    }


@dataclass
class Gateway:
    label: str
    port: int
    key: str
    process: subprocess.Popen[bytes]
    log: Path


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text(errors='replace')[-3000:]}")


def start_gateway(label: str, home: Path, upstream: str) -> Gateway:
    key = provision(home, Settings(home=home).resolved_database_url, guard=False)
    port = free_port()
    env = clean_env(
        TOKENCLUB_HOME=str(home),
        TOKENCLUB_MODEL_NAME=INSTANT,
        TOKENCLUB_MODELS=json.dumps({PACED: {"url": upstream + "/v1", "model": PACED}}),
        TOKENCLUB_RATE_LIMIT_RPM=str(10**9),
        TOKENCLUB_RATE_LIMIT_TPM=str(10**15),
    )
    cli = str(Path(sys.executable).with_name("tokenclub"))
    argv = [cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--upstream", upstream + "/v1"]
    log = home.parent / f"{label}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}/healthz", process, log)
    return Gateway(label, port, key, process, log)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------------
# The client.
# ---------------------------------------------------------------------------------------------


@dataclass
class Timings:
    first_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)


def call(
    client: httpx.Client, gateway: Gateway, model: str, stream: bool, expected: str
) -> tuple[float, float]:
    """One chat completion: (ms to the first text, ms to the end); the text must be `expected`."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 256,
        "stream": stream,
    }
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {gateway.key}"}
    started = time.perf_counter()
    if not stream:
        reply = client.post(url, json=body, headers=headers)
        took = (time.perf_counter() - started) * 1000
        text = reply.json()["choices"][0]["message"]["content"]
        if text != expected:
            raise AssertionError(f"{gateway.label}: reply changed: {reply.text[:300]}")
        return took, took
    first = 0.0
    text = ""
    with client.stream("POST", url, json=body, headers=headers) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices") or ():
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and not text:
                    first = (time.perf_counter() - started) * 1000
                text += piece
    if text != expected:
        raise AssertionError(f"{gateway.label}: streamed reply changed: {text[:300]!r}")
    return first, (time.perf_counter() - started) * 1000


CASES = (
    ("non-stream", INSTANT, False),
    ("stream, instant upstream", INSTANT, True),
    ("stream, paced upstream", PACED, True),
)


def measure(
    gateways: list[Gateway], rounds: int, per_round: dict[str, int]
) -> dict[tuple[str, str], Timings]:
    results = {(case, g.label): Timings() for case, _, _ in CASES for g in gateways}
    expected = {model: "".join(pieces(model)) for model in (INSTANT, PACED)}
    with httpx.Client(timeout=60) as client:
        for gateway in gateways:  # warm-up: connections, imports, page cache of the index
            for _, model, stream in CASES:
                call(client, gateway, model, stream, expected[model])
        for round_ in range(rounds):
            # Off first in even rounds, on first in odd ones: whichever goes second inherits the
            # other's leftover work (settlements, WAL checkpoints), so a fixed order biases.
            order = gateways if round_ % 2 == 0 else gateways[::-1]
            for case, model, stream in CASES:
                for gateway in order:
                    timings = results[(case, gateway.label)]
                    for _ in range(per_round[model]):
                        first, total = call(client, gateway, model, stream, expected[model])
                        timings.first_ms.append(first)
                        timings.total_ms.append(total)
    return results


def p(values: list[float], q: float) -> float:
    """Nearest-rank percentile: a latency that happened."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def report(results: dict[tuple[str, str], Timings], index: dict[str, Any], pace_ms: float) -> Table:
    table = Table(title="leak guard in the gateway: guard on (index) vs off (no index), c=1, same run")
    for column in ("reply", "measure", "n", "off p50 ms", "on p50 ms", "added p50 ms", "off p99", "on p99"):
        table.add_column(column, justify="left" if column in ("reply", "measure") else "right")
    for case, model, stream in CASES:
        off, on = results[(case, "off")], results[(case, "on")]
        label = f"{case} ({REPLY_PIECES[model]} tokens{f', {pace_ms:g} ms each' if model == PACED else ''})"
        measures = [("first text", off.first_ms, on.first_ms)] if stream else []
        measures.append(("whole reply", off.total_ms, on.total_ms))
        for name, a, b in measures:
            table.add_row(
                label,
                name,
                str(len(b)),
                f"{statistics.median(a):.2f}",
                f"{statistics.median(b):.2f}",
                f"{statistics.median(b) - statistics.median(a):+.2f}",
                f"{p(a, 99):.2f}",
                f"{p(b, 99):.2f}",
            )
    table.caption = (
        f"index: {index['documents']} petitions, {index['characters'] / 1e6:.1f} M characters, "
        f"{index['grams']} grams, {index['bytes'] / 2**20:.1f} MiB, built in {index['build_s']:.1f} s; "
        f"hold-back {index['holdback']} guard letters while no chain of hits is open "
        f"(leaks of {index['guaranteed_length']} letters are always caught)"
    )
    return table


def cpu_costs(home: Path, repeats: int) -> dict[str, float]:
    """The guard's own work per request, in-process on the same index (µs, median): robust
    where the end-to-end rows drown in a busy machine's noise. The last two rows are all of a
    short reply's work on the event loop under the default settings (accumulation and coverage
    on): the scan and the joins, credits and grams read for the tally."""
    from tokenclub.gateway.formats import CHAT
    from tokenclub.gateway.streaming import ReplyStream
    from tokenclub.guard.config import GuardSettings
    from tokenclub.guard.indexing.parts import guard_root
    from tokenclub.guard.service import GatewayGuard

    guard = GatewayGuard(guard_root(home))
    settings = GuardSettings()
    full = GatewayGuard(guard_root(home), budget=settings.budget(), limits=settings.limits())
    parts = pieces(INSTANT)
    reply = "".join(parts)
    short = parts[:SHORT_TOKENS]

    def prompt() -> None:
        guard.check_prompt(PROMPT)

    def whole() -> None:
        guard.scan_reply({"choices": [{"index": 0, "message": {"content": reply}}]}, "chat", False)

    def streamed() -> None:
        stream = ReplyStream(CHAT, INSTANT, 1, guard)
        for part in parts:
            stream.feed({"choices": [{"index": 0, "delta": {"content": part}}]})
        stream.finish()

    def short_whole() -> None:
        data = {"id": "chatcmpl-short", "choices": [{"index": 0, "message": {"content": "".join(short)}}]}
        full.check_prompt(PROMPT)
        full.scan_reply(data, "chat", False)
        full.reply_credits(data, "chat")
        full.reply_grams(data, "chat")

    def short_streamed() -> None:
        full.check_prompt(PROMPT)
        stream = ReplyStream(CHAT, INSTANT, 1, full)
        for part in short:
            stream.feed({"choices": [{"index": 0, "delta": {"content": part}}]})
        stream.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        stream.credits(), stream.grams(), stream.fragments()

    costs = {}
    for name, work, per in (
        ("prompt check", prompt, 1),
        (f"whole-reply scan ({len(parts)} tokens)", whole, 1),
        (f"stream, per event ({PIECE_CHARS} characters), as the gateway feeds it", streamed, len(parts)),
        (f"a request's guard work, {SHORT_TOKENS}-token reply, whole, defaults", short_whole, 1),
        (f"a request's guard work, {SHORT_TOKENS}-token reply, streamed, defaults", short_streamed, 1),
    ):
        work()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            work()
            times.append((time.perf_counter() - started) * 1e6 / per)
        costs[name] = statistics.median(times)
    return costs


def print_costs(console: Console, costs: dict[str, float]) -> None:
    cpu = Table(title="the guard's own work, in-process, same index")
    cpu.add_column("step")
    cpu.add_column("µs (median)", justify="right")
    for name, micros in costs.items():
        cpu.add_row(name, f"{micros:.1f}")
    console.print(cpu)


@contextmanager
def running(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round (a smoke run)")
    parser.add_argument("--rounds", type=int, default=6, help="an even number keeps the order balanced")
    parser.add_argument("--pace-ms", type=float, default=10.0, help="paced upstream: ms per token")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--cpu-only", action="store_true", help="only the in-process table (no gateways)")
    args = parser.parse_args()
    rounds, per_round = (2, {INSTANT: 5, PACED: 2}) if args.quick else (args.rounds, {INSTANT: 40, PACED: 4})
    console = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="tc-bench-guard-") as tmp:
        work = Path(tmp)
        if args.cpu_only:
            build_index(work / "home-on")
            print_costs(console, cpu_costs(work / "home-on", 20 if args.quick else 200))
            return
        port = free_port()
        argv = [sys.executable, __file__, "--serve-upstream", str(port), "--pace-ms", str(args.pace_ms)]
        with running(argv, work / "upstream.log") as upstream:
            upstream_url = f"http://127.0.0.1:{port}"
            index = build_index(work / "home-on")
            gateways: list[Gateway] = []
            try:
                wait_ready(upstream_url + "/docs", upstream, work / "upstream.log")
                gateways = [
                    start_gateway("off", work / "home-off", upstream_url),
                    start_gateway("on", work / "home-on", upstream_url),
                ]
                health = httpx.get(f"http://127.0.0.1:{gateways[1].port}/healthz").json()["guard"]
                if health["status"] != "active":
                    raise RuntimeError(f"the guard is not active in the 'on' gateway: {health}")
                results = measure(gateways, rounds, per_round)
                costs = cpu_costs(work / "home-on", 20 if args.quick else 200)
            finally:
                for gateway in gateways:
                    stop(gateway.process)
    console.print(report(results, index, args.pace_ms))
    print_costs(console, costs)
    if args.json:
        figures = {
            f"{case}/{label}": {"first_ms": t.first_ms, "total_ms": t.total_ms}
            for (case, label), t in results.items()
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"index": index, "cpu_us": costs, "timings": figures}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-upstream":
        serve_upstream(int(sys.argv[2]), float(sys.argv[4]))
    else:
        main()
