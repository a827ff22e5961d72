"""What the API gateway costs: requests/s and added latency against calling the model directly.

One run starts a fast fake OpenAI-compatible upstream on 127.0.0.1 and, in front of it, each
target as a real server process with one worker: tokenclub's gateway (holds, metering and
settlement in SQLite, and in PostgreSQL when it answers; the leak guard active on an index of
the corpora folder's petitions unless --no-guard), a bare FastAPI pass-through on the
gateway's own upstream client (the same web stack with no database, to split framework cost
from ledger cost), and LiteLLM's proxy (`bash bench/setup_litellm.sh` installs it in its own
environment; it runs without a database because its database mode needs a Prisma engine
download that fails offline). A closed-loop load generator on raw keep-alive sockets sends chat
completions, non-streamed and streamed (asking for `stream_options.include_usage`), at
concurrency 1 and 50.

The machine is small and shared, so nothing here is compared across runs: the targets are
measured in interleaved rounds (every configuration once per round, in the same order), and
every "added" figure is against the direct upstream of the same run. The same direct rows
through httpx show the load generator's own ceiling.

    .venv/bin/python bench/bench_gateway.py                 # the full table (a few minutes)
    .venv/bin/python bench/bench_gateway.py --quick         # a smoke run
    .venv/bin/python bench/bench_gateway.py --profile bench/out/profile   # + py-spy on tokenclub
    .venv/bin/python bench/bench_gateway.py --profile DIR --profile-postgres   # the PostgreSQL gateway
    .venv/bin/python bench/bench_gateway.py --json bench/out/gateway.json
    .venv/bin/python bench/bench_gateway.py --pg-unflushed   # PostgreSQL without its WAL flush

`--pg-unflushed` is a diagnostic, never a deployment: the bench's PostgreSQL database commits
without waiting for the WAL flush (`ALTER DATABASE … SET synchronous_commit = off`), so the
PostgreSQL rows show the gateway's cost apart from this disk's flush (about 2.5 ms a durable
commit here, `pgbench`: docs/gateway.md).

Targets: tokenclub adds at most 3 ms (SQLite, issue 5) or 5 ms non-streamed and 6 ms streamed
(PostgreSQL, issue 19) at the median at concurrency 1, and serves at least 5x LiteLLM's
requests/s at concurrency 50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
PETITIONS = HERE.parents[1] / "shared" / "corpora" / "petitions"
"""Contributed text for the leak guard's index: every tokenclub row runs with the guard active."""
LITELLM_VENV = HERE / ".venv-litellm"
PG_ADMIN_URL = os.environ.get("TOKENCLUB_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MODEL = "bench-fast"
NO_USAGE_MODEL = "bench-llamalike"
"""The fake streams without a usage chunk for this model, as llama.cpp's server does, so the
gateway must count the reply itself (a tokenize call and a one-token prompt probe)."""
PROMPT = "서울의 인구와 한강에 대해 한 문장으로 알려 주세요."
REPLY_WORDS = [
    "서울은",
    "대한민국의",
    "수도이며",
    "한강이",
    "도시를",
    "가로지르고",
    "인구는",
    "약",
    "구백만",
    "명입니다.",
]
MAX_TOKENS = 16
TEMPLATE_TOKENS = 5
LITELLM_KEY = "sk-bench-litellm-master"
CONCURRENCIES = (1, 50)
ADDED_MS_TARGETS = {
    ("tokenclub", "non-stream"): 3.0,
    ("tokenclub", "stream"): 3.0,
    ("tokenclub-pg", "non-stream"): 5.0,
    ("tokenclub-pg", "stream"): 6.0,
}
"""Added p50 at c=1 the gateway must stay within: issue 5 on SQLite, issue 19 on PostgreSQL."""
MODES = ("non-stream", "stream")
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 120.0


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 framing shared by the fake upstream and the load generator.
#
# Both sides are hand-written on asyncio protocols on purpose: the fake must answer in far less
# time than any gateway adds, and the client must not be the bottleneck it measures (the httpx
# rows show how much sooner a convenient client saturates).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    start_line: str
    headers: dict[str, str]
    body: bytes
    size: int


def parse_message(buffer: bytearray) -> Message | None:
    """One complete HTTP/1.1 message from the front of `buffer`, or None while it is partial.

    Handles Content-Length and chunked bodies (no trailers), which is all that uvicorn, httpx
    and aiohttp send here.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    pos = end + 4
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
            start = line_end + 2
            if size == 0:
                if len(buffer) < start + 2:
                    return None
                return Message(lines[0], headers, bytes(body), start + 2)
            if len(buffer) < start + size + 2:
                return None
            body += buffer[start : start + size]
            pos = start + size + 2
    length = int(headers.get("content-length", "0"))
    if len(buffer) < pos + length:
        return None
    return Message(lines[0], headers, bytes(buffer[pos : pos + length]), pos + length)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---------------------------------------------------------------------------------------------
# The fake upstream.
# ---------------------------------------------------------------------------------------------


def _tokens(text: str) -> int:
    """The fake's "tokenizer": one token per whitespace-separated word, everywhere alike."""
    return len(text.split())


def _prompt_tokens(request: dict[str, Any]) -> int:
    return sum(_tokens(str(m.get("content", ""))) for m in request.get("messages", ())) + TEMPLATE_TOKENS


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _reply_pieces(request: dict[str, Any]) -> list[str]:
    words = REPLY_WORDS[: max(1, int(request.get("max_tokens") or len(REPLY_WORDS)))]
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


class FakeUpstream(asyncio.Protocol):
    """An OpenAI-compatible server that answers at once: chat completions with usage, streamed
    (one HTTP chunk per event, a usage chunk when asked for) or not, and llama.cpp's
    `/extras/tokenize/count`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (message := parse_message(self.buffer)) is not None:
            del self.buffer[: message.size]
            method, path = message.start_line.split(" ", 2)[:2]
            self._answer(method, path, message.body)
            if message.headers.get("connection", "").lower() == "close" and self.transport:
                self.transport.close()
                return

    def _send_json(self, payload: Any, status: str = "200 OK") -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        assert self.transport is not None
        self.transport.write(head.encode() + body)

    def _answer(self, method: str, path: str, raw: bytes) -> None:
        if method == "POST" and path == "/v1/chat/completions":
            request = json.loads(raw)
            if request.get("stream"):
                self._stream(request)
            else:
                self._send_json(self._completion(request))
        elif method == "POST" and path == "/extras/tokenize/count":
            self._send_json({"count": _tokens(json.loads(raw).get("input", ""))})
        elif method == "GET" and path in ("/v1/models", "/models"):
            self._send_json(
                {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
            )
        elif method == "GET" and path == "/health":
            self._send_json({"status": "ok"})
        else:
            self._send_json({"error": {"message": f"no route {method} {path}"}}, "404 Not Found")

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        text = "".join(_reply_pieces(request))
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", MODEL),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            ],
            "usage": _usage(_prompt_tokens(request), _tokens(text)),
        }

    def _stream(self, request: dict[str, Any]) -> None:
        model = request.get("model", MODEL)
        pieces = _reply_pieces(request)
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time())}
        events: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            events.append({**base, "model": model, "choices": [{"index": 0, "delta": delta}]})
        events.append(
            {**base, "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        )
        wants_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        if wants_usage and model != NO_USAGE_MODEL:
            usage = _usage(_prompt_tokens(request), len(pieces))
            events.append({**base, "model": model, "choices": [], "usage": usage})
        out = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
        out.extend(_chunk(f"data: {json.dumps(e, ensure_ascii=False)}\n\n".encode()) for e in events)
        out.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        assert self.transport is not None
        self.transport.writelines(out)


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _run_loop(main: Callable[[], Any]) -> None:
    """uvloop when it is installed (it is, with uvicorn[standard]), as every server here uses."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
        return
    uvloop.run(main())  # outside the try: an ImportError inside the run must not run it twice


def serve_upstream() -> None:
    """Child-process entry: serve the fake on a free port and print the port on stdout."""
    sock = _listening_socket()
    print(sock.getsockname()[1], flush=True)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FakeUpstream, sock=sock)
        async with server:
            await server.serve_forever()

    _run_loop(main)


def serve_passthrough(upstream: str) -> None:
    """Child-process entry: FastAPI and the gateway's own upstream client (`Upstream`, aiohttp)
    relaying to the upstream, with the same per-event JSON work as the gateway but no database."""
    from tokenclub.gateway.upstream import ModelRoute, Upstream

    route = ModelRoute(MODEL, upstream + "/v1", MODEL)
    client = Upstream({MODEL: route}, REQUEST_TIMEOUT_S)
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):
            return JSONResponse(await client.complete(route, "/chat/completions", body))

        async def events() -> AsyncIterator[bytes]:
            async for event in client.stream(route, "/chat/completions", body):
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    sock = _listening_socket()
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


# ---------------------------------------------------------------------------------------------
# The load generator.
# ---------------------------------------------------------------------------------------------


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection that carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Message] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        message = parse_message(self.buffer)
        if message is not None:
            del self.buffer[: message.size]
            if message.headers.get("connection", "").lower() == "close":
                self.closed = True
            self.waiter.set_result(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    async def request(self, payload: bytes) -> Message:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _connect(port: int) -> ClientConnection:
    _, protocol = await asyncio.get_running_loop().create_connection(ClientConnection, "127.0.0.1", port)
    return protocol


@dataclass
class Target:
    """A server to load: where it listens, how to call it, which modes it is measured in."""

    key: str
    label: str
    port: int
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    modes: tuple[str, ...] = MODES
    client: str = "raw"
    baseline: str = "direct"


def request_body(target: Target, mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if mode == "stream":
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def request_bytes(target: Target, mode: str) -> bytes:
    data = json.dumps(request_body(target, mode), ensure_ascii=False).encode()
    head = [
        "POST /v1/chat/completions HTTP/1.1",
        f"host: 127.0.0.1:{target.port}",
        "content-type: application/json",
        f"content-length: {len(data)}",
        *(f"{name}: {value}" for name, value in target.headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def valid_reply(status: int, body: bytes, mode: str) -> bool:
    """A reply counts only if it is the whole thing: 200, content, and usage for the caller."""
    if status != 200:
        return False
    if mode == "stream":
        return body.rstrip().endswith(b"data: [DONE]") and b'"usage"' in body and b'"content"' in body
    return b'"usage"' in body and b'"content"' in body


@dataclass
class Sample:
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0
    round_rps: list[float] = field(default_factory=list)
    first_error: str = ""

    def add(self, other: Sample) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        self.elapsed_s += other.elapsed_s
        self.errors += other.errors
        if other.elapsed_s > 0:
            self.round_rps.append(len(other.latencies_ms) / other.elapsed_s)
        self.first_error = self.first_error or other.first_error

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile (no interpolation, so p99 is a latency that happened)."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def load_raw(target: Target, mode: str, concurrency: int, total: int) -> Sample:
    """`total` requests from `concurrency` connections, back to back; connecting is not timed."""
    payload = request_bytes(target, mode)
    connections = [await _connect(target.port) for _ in range(concurrency)]
    sample = Sample()
    remaining = total

    async def worker(index: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            conn = connections[index]
            if conn.closed:
                conn = connections[index] = await _connect(target.port)
            started = time.perf_counter()
            try:
                reply = await asyncio.wait_for(conn.request(payload), REQUEST_TIMEOUT_S)
            except (ConnectionError, TimeoutError) as exc:
                sample.errors += 1
                sample.first_error = sample.first_error or repr(exc)
                conn.close()
                connections[index] = await _connect(target.port)
                continue
            took = (time.perf_counter() - started) * 1000
            status = int(reply.start_line.split(" ", 2)[1])
            if valid_reply(status, reply.body, mode):
                sample.latencies_ms.append(took)
            else:
                sample.errors += 1
                sample.first_error = sample.first_error or f"{status}: {reply.body[:300]!r}"

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    sample.elapsed_s = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return sample


async def load_httpx(target: Target, mode: str, concurrency: int, total: int) -> Sample:
    """The same load through httpx.AsyncClient, to show where a convenient client saturates."""
    body = request_body(target, mode)
    url = f"http://127.0.0.1:{target.port}/v1/chat/completions"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sample = Sample()
    remaining = total
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S, headers=target.headers) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    async with client.stream("POST", url, json=body) as response:
                        content = await response.aread()
                except httpx.HTTPError as exc:
                    sample.errors += 1
                    sample.first_error = sample.first_error or repr(exc)
                    continue
                took = (time.perf_counter() - started) * 1000
                if valid_reply(response.status_code, content, mode):
                    sample.latencies_ms.append(took)
                else:
                    sample.errors += 1
                    sample.first_error = sample.first_error or f"{response.status_code}: {content[:300]!r}"

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        sample.elapsed_s = time.perf_counter() - started
    return sample


async def load(target: Target, mode: str, concurrency: int, total: int) -> Sample:
    runner = load_httpx if target.client == "httpx" else load_raw
    return await runner(target, mode, concurrency, total)


# ---------------------------------------------------------------------------------------------
# Starting and stopping the servers.
# ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without TOKENCLUB_* or LiteLLM settings that would leak in."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TOKENCLUB_", "LITELLM_", "DATABASE_URL"))
    }
    env.update(extra)
    return env


def start(name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(name, process, log)


def start_reporting_port(
    name: str, argv: list[str], workdir: Path, env: dict[str, str]
) -> tuple[Server, int]:
    """Start a child of this script that prints the port it listens on as its first line."""
    server = start(name, argv, workdir, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        first = server.log.read_text(errors="replace").split("\n", 1)
        if len(first) == 2 and first[0].strip().isdigit():
            return server, int(first[0])
        if server.process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start:\n{server.tail()}")


def wait_ready(server: Server, url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(url, headers=headers, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not become ready at {url}:\n{server.tail()}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def build_guard_index(home: Path) -> dict[str, Any]:
    """Index every petition in the corpora folder in `home`'s leak guard (default settings),
    so each reply and prompt is scanned as in production; the index's stats, with the documents
    and characters indexed."""
    from tokenclub.guard.config import GuardSettings
    from tokenclub.guard.indexing.index import writer
    from tokenclub.guard.indexing.parts import guard_root

    docs = [
        json.loads(line)["content"]
        for path in sorted(PETITIONS.glob("*.jsonl"))
        for line in path.open(encoding="utf-8")
    ]
    if not docs:
        raise RuntimeError(f"no petitions under {PETITIONS} for the guard index")
    params = GuardSettings().index_params()
    capacity = sum(len(d) for d in docs) * 3 // params.stride  # ~2.4 guard letters a character
    with writer(guard_root(home), params, capacity) as index:
        for first in range(0, len(docs), 256):
            batch = docs[first : first + 256]
            index.add(batch, [1 + i % 3 for i in range(len(batch))])
        stats = index.stats()
    return stats | {"documents": len(docs), "characters": sum(len(d) for d in docs)}


def provision(home: Path, database_url: str, guard: bool) -> str:
    """Migrate a fresh database and open one customer with a huge free allowance; its key.
    With `guard`, the home also gets a leak guard index."""
    from tokenclub.accounts.customers import create_customer
    from tokenclub.accounts.keys import create_key
    from tokenclub.db.engine import Database
    from tokenclub.home import init_home
    from tokenclub.ledger.operations import grant_free_tokens
    from tokenclub.settings import Settings

    init_home(Settings(home=home, database_url=database_url))
    if guard:
        build_guard_index(home)
    db = Database(database_url)
    try:
        with db.transaction() as session:
            customer = create_customer(session, "bench")
            grant_free_tokens(session, customer.id, 10**13, f"bench-grant-{customer.id}")
            plain, _ = create_key(session, customer.id, "bench")
    finally:
        db.dispose()
    return plain


def start_tokenclub(
    name: str, workdir: Path, upstream: str, database_url: str, guard: bool
) -> tuple[Server, str, int]:
    """`tokenclub serve` with one worker, rate limits out of the way but still counted, and the
    leak guard active unless `guard` is off (checked on /healthz)."""
    home = workdir / f"home-{name}"
    secret = provision(home, database_url, guard)
    port = free_port()
    env = clean_env(
        TOKENCLUB_HOME=str(home),
        TOKENCLUB_DATABASE_URL=database_url,
        TOKENCLUB_MODEL_NAME=MODEL,
        TOKENCLUB_MODELS=json.dumps({NO_USAGE_MODEL: {"url": upstream + "/v1", "model": NO_USAGE_MODEL}}),
        TOKENCLUB_RATE_LIMIT_RPM=str(10**9),
        TOKENCLUB_RATE_LIMIT_TPM=str(10**15),
    )
    cli = str(Path(sys.executable).with_name("tokenclub"))
    argv = [cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--upstream", upstream + "/v1"]
    server = start(name, argv, workdir, env)
    wait_ready(server, f"http://127.0.0.1:{port}/healthz")
    status = httpx.get(f"http://127.0.0.1:{port}/healthz").json()["guard"]["status"]
    if status != ("active" if guard else "no index"):
        stop(server)
        raise RuntimeError(f"{name}: leak guard is {status!r}")
    return server, secret, port


def start_litellm(workdir: Path, upstream: str) -> tuple[Server, int]:
    """LiteLLM's proxy, one uvicorn worker, no database (master key only), logging quiet."""
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream + "/v1",
                    "api_key": "none",
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    # YAML is a superset of JSON, so the config needs no YAML writer.
    path = workdir / "litellm_config.yaml"
    path.write_text(json.dumps(config, indent=2))
    port = free_port()
    env = clean_env(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        DISABLE_SCHEMA_UPDATE="True",
    )
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        *("--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"),
        "--telemetry",
        "False",
    ]
    server = start("litellm", argv, workdir, env)
    wait_ready(server, f"http://127.0.0.1:{port}/health/liveliness")
    return server, port


@contextlib.contextmanager
def postgres_database(wanted: bool, unflushed: bool = False) -> Iterator[str | None]:
    """A database of our own on the local PostgreSQL, dropped afterwards; None if unreachable.
    `unflushed`: its commits do not wait for the WAL flush (`--pg-unflushed`)."""
    from sqlalchemy import create_engine, text

    if not wanted:
        yield None
        return
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            name = f"tc_bench_{uuid.uuid4().hex[:12]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            if unflushed:
                conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception:
        yield None
        return
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------------------------------------
# The database's share, measured without HTTP, threads or the event loop.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionCost:
    backend: str
    name: str
    median_ms: float
    statements: int


async def transaction_costs(database_url: str, secret: str, requests: int) -> list[TransactionCost]:
    """Run the gateway's own admission and settlement transactions back to back in this
    process and time each one: what a request costs in the database alone, and how many SQL
    statements it takes, so the end-to-end figures can be split into database and the rest.
    The key is looked up first, as a served request's lane is, so a worker that remembers it
    takes its path. Statements are counted at the driver on PostgreSQL (every psycopg execute,
    whatever sent it; BEGIN and COMMIT not among them) and, on SQLite, through SQLAlchemy's
    cursor events and on the prebuilt ones that go to the driver's cursor directly (when the
    gateway under test has them: a before/after run may point `PYTHONPATH` at an older export)."""
    import importlib.util
    from unittest import mock

    from sqlalchemy import event

    from tokenclub.gateway import billing
    from tokenclub.gateway.app import Admitted, Gateway, GatewayConfig
    from tokenclub.gateway.billing import RequestInfo, Usage
    from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits
    from tokenclub.gateway.upstream import ModelRoute
    from tokenclub.ledger.pricing import PriceList

    limiter = DatabaseRateLimiter(Limits(10**9, 10**15))
    config = GatewayConfig(
        database_url=database_url,
        routes={MODEL: ModelRoute(MODEL, "http://127.0.0.1:9/v1", MODEL)},
        prices=PriceList(2_000, 8_000),
        limiter=limiter,
    )
    gateway = Gateway(config)
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    await gateway.lane_of(secret)
    counting: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if gateway.db.engine.dialect.name == "postgresql":
        import psycopg

        execute = psycopg.Cursor.execute

        def counted_execute(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            count()
            return execute(self, *args, **kwargs)

        counting = mock.patch.object(psycopg.Cursor, "execute", counted_execute)
    else:
        event.listen(gateway.db.engine, "before_cursor_execute", count)
        if importlib.util.find_spec("tokenclub.db.prebuilt") is not None:
            from tokenclub.db.prebuilt import Prebuilt

            prebuilt_run = Prebuilt.run

            def counted_run(self: Prebuilt, conn: Any, params: Any) -> list[Any]:
                count()
                return prebuilt_run(self, conn, params)

            counting = mock.patch.object(Prebuilt, "run", counted_run)
    counting.__enter__()
    usage = Usage(_prompt_tokens(request_body(Target("", "", 0, MODEL), "non-stream")), len(REPLY_WORDS))

    def admit() -> Admitted:
        with gateway.db.transaction() as session:
            return gateway.admit(session, secret, 200)

    def settle(admitted: Admitted) -> None:
        info = RequestInfo(uuid.uuid4().hex, admitted.key.id, MODEL, "chat", False)
        with gateway.db.transaction() as session:
            limiter.add_tokens(session, admitted.key.id, usage.prompt_tokens + usage.completion_tokens)
            billing.settle_hold(session, admitted.hold, usage, config.prices, info, 1)

    timings: dict[str, list[float]] = {"admit (key, rate, hold)": [], "settle (rate, ledger, event)": []}
    counts: dict[str, int] = {}
    try:
        for i in range(requests + 20):
            statements, started = 0, time.perf_counter()
            admitted = admit()
            middle, admit_statements = time.perf_counter(), statements
            statements = 0
            settle(admitted)
            if i >= 20:  # the first ones warm SQLAlchemy's statement cache
                (first, second) = timings
                timings[first].append((middle - started) * 1000)
                timings[second].append((time.perf_counter() - middle) * 1000)
                counts[first], counts[second] = admit_statements, statements
    finally:
        counting.__exit__(None, None, None)
        await gateway.upstream.aclose()
        gateway.db.dispose()
    backend = gateway.db.engine.dialect.name
    return [TransactionCost(backend, n, statistics.median(t), counts[n]) for n, t in timings.items()]


def report_costs(costs: list[TransactionCost], console: Console) -> None:
    table = Table(title="Database work per request, in this process (no HTTP, threads or event loop)")
    for column in ("backend", "transaction", "median ms", "SQL statements"):
        table.add_column(column, justify="left" if column in ("backend", "transaction") else "right")
    for cost in costs:
        table.add_row(cost.backend, cost.name, f"{cost.median_ms:.2f}", str(cost.statements))
    console.print(table)


# ---------------------------------------------------------------------------------------------
# Profiling tokenclub under load with py-spy.
# ---------------------------------------------------------------------------------------------

GROUPS = (
    ("SQLAlchemy (and the driver calls it makes)", ("sqlalchemy/", "psycopg/")),
    ("httpx/httpcore (upstream client)", ("httpx/", "httpcore/", "h11/")),
    ("uvicorn/httptools (server)", ("uvicorn/", "httptools/")),
    ("Starlette/FastAPI/pydantic", ("starlette/", "fastapi/", "pydantic")),
    (
        "anyio/asyncio/threading (hops, loop)",
        ("anyio/", "asyncio/", "concurrent/", "threading.py", "queue.py"),
    ),
    ("json", ("json/",)),
    ("prometheus_client", ("prometheus_client/",)),
    ("tokenclub", ("tokenclub/",)),
)


def classify(frames: list[str]) -> str:
    """What a sampled thread was doing: one of the database waits, idle, or the library of its
    innermost frame. py-spy sees Python frames only, so time inside sqlite3 or psycopg counts
    for the SQLAlchemy frame that called it."""
    stack = ";".join(frames)
    if "QueuePool._do_get" in stack:
        return "waiting for a pooled DB connection"
    if "_on_begin" in stack:
        return "BEGIN IMMEDIATE (waiting for SQLite's write lock)"
    if len(frames) >= 3 and frames[-2].startswith("Queue.get") and frames[-3].startswith("WorkerThread.run"):
        return "idle worker thread"
    for name, needles in GROUPS:
        if any(needle in frames[-1] for needle in needles):
            return name
    return "other"


def summarize_profile(raw: Path, top: int = 14) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Shares of all samples by what the thread was doing, and the inclusive share of
    tokenclub's own functions, from py-spy's collapsed-stack output."""
    by_kind: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        by_kind[classify(frames)] += count
        own = {
            frame.split(" (", 1)[0] + " (" + frame.split("tokenclub/", 1)[1].split(":")[0] + ")"
            for frame in frames
            if "tokenclub/" in frame
        }
        for name in own:
            inclusive[name] += count
    if not total:
        return [], []
    kinds = [(name, 100 * count / total) for name, count in by_kind.most_common()]
    functions = [(name, 100 * count / total) for name, count in inclusive.most_common(top)]
    return kinds, functions


async def profile_tokenclub(
    target: Target, pid: int, out: Path, py_spy: str, requests: int, console: Console
) -> None:
    """Record the gateway process while it serves `requests` per mode at concurrency 50 and 1."""
    out.mkdir(parents=True, exist_ok=True)
    for gil in (False, True):
        raw = out / ("tokenclub-gil.txt" if gil else "tokenclub.txt")
        # --nonblocking: pausing a process with ~40 threads at every sample slows it several-fold.
        argv = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--format", "raw"]
        argv += ["-o", str(raw)]
        spy = subprocess.Popen(
            [*argv, *(["--gil"] if gil else [])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        await asyncio.sleep(1.0)
        for mode in MODES:
            await load(target, mode, 50, requests)
            await load(target, mode, 1, requests // 5)
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if not raw.exists():
            console.print(f"[red]py-spy wrote no profile:[/] {err.decode(errors='replace')[-500:]}")
            return
        groups, own = summarize_profile(raw)
        what = "samples holding the GIL (Python CPU)" if gil else "samples of all active threads"
        table = Table(title=f"tokenclub profile: {what}; raw stacks in {raw}")
        table.add_column("thread was", no_wrap=True)
        table.add_column("% samples", justify="right")
        table.add_column("tokenclub function (inclusive)", no_wrap=True)
        table.add_column("% incl.", justify="right")
        for i in range(max(len(groups), len(own))):
            g = groups[i] if i < len(groups) else ("", math.nan)
            o = own[i] if i < len(own) else ("", math.nan)
            table.add_row(g[0], f"{g[1]:.1f}" if g[0] else "", o[0], f"{o[1]:.1f}" if o[0] else "")
        console.print(table)


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    rounds: int
    c1: int
    c50: int
    warmup: int

    def requests(self, concurrency: int) -> int:
        return self.c1 if concurrency == 1 else self.c50


async def measure(targets: list[Target], plan: Plan, console: Console) -> dict[tuple[str, str, int], Sample]:
    configs = [(t, mode, c) for t in targets for mode in t.modes for c in CONCURRENCIES]
    for target in targets:
        for mode in target.modes:
            warm = await load(target, mode, 10, plan.warmup)
            if warm.errors:
                raise RuntimeError(
                    f"{target.label} {mode}: {warm.errors} bad replies, e.g. {warm.first_error}"
                )
    results = {(t.key, mode, c): Sample() for t, mode, c in configs}
    for round_no in range(1, plan.rounds + 1):
        began = time.perf_counter()
        for target, mode, c in configs:
            results[(target.key, mode, c)].add(await load(target, mode, c, plan.requests(c)))
        console.print(f"round {round_no}/{plan.rounds} done in {time.perf_counter() - began:.1f} s")
    return results


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def report(
    targets: list[Target], results: dict[tuple[str, str, int], Sample], notes: list[str], console: Console
) -> dict[str, Any]:
    by_key = {t.key: t for t in targets}
    table = Table(title="Chat completions through each target, 127.0.0.1, one server worker each")
    for column in ("target", "mode", "c", "ok", "err", "req/s", "req/s per round", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("target", "mode") else "right")
    for column in ("+p50 ms", "+p99 ms", "req/s ÷ LiteLLM"):
        table.add_column(column, justify="right")
    rows: list[dict[str, Any]] = []
    for target in targets:
        for mode in target.modes:
            for c in CONCURRENCIES:
                sample = results[(target.key, mode, c)]
                base = results.get((target.baseline, mode, c))
                lite = results.get(("litellm", mode, c))
                p50, p99 = sample.percentile(50), sample.percentile(99)
                added50 = p50 - base.percentile(50) if base and target.key != target.baseline else math.nan
                added99 = p99 - base.percentile(99) if base and target.key != target.baseline else math.nan
                gateway = target.key.startswith(("tokenclub", "passthrough"))
                ratio = sample.rps / lite.rps if lite and lite.rps and gateway else math.nan
                spread = (
                    f"{min(sample.round_rps):.0f}–{max(sample.round_rps):.0f}" if sample.round_rps else ""
                )
                table.add_row(
                    target.label,
                    mode,
                    str(c),
                    str(len(sample.latencies_ms)),
                    str(sample.errors),
                    f"{sample.rps:.0f}",
                    spread,
                    _ms(p50),
                    _ms(p99),
                    _ms(added50),
                    _ms(added99),
                    "–" if math.isnan(ratio) else f"{ratio:.1f}×",
                )
                rows.append(
                    {
                        "target": target.key,
                        "label": target.label,
                        "mode": mode,
                        "concurrency": c,
                        "ok": len(sample.latencies_ms),
                        "errors": sample.errors,
                        "first_error": sample.first_error,
                        "rps": sample.rps,
                        "round_rps": sample.round_rps,
                        "p50_ms": p50,
                        "p99_ms": p99,
                        "added_p50_ms": None if math.isnan(added50) else added50,
                        "added_p99_ms": None if math.isnan(added99) else added99,
                        "rps_vs_litellm": None if math.isnan(ratio) else ratio,
                    }
                )
        table.add_section()
    console.print(table)
    for note in notes:
        console.print(f"• {note}")
    verdicts = []
    for key in ("tokenclub", "tokenclub-pg"):
        if key not in by_key:
            continue
        name = by_key[key].label
        for mode in MODES:
            sample, base = results[(key, mode, 1)], results[("direct", mode, 1)]
            added = sample.percentile(50) - base.percentile(50)
            bound = ADDED_MS_TARGETS[(key, mode)]
            verdicts.append(
                (
                    f"{name} adds ≤ {bound:g} ms at the median, c=1, {mode}",
                    added <= bound,
                    f"{added:.2f} ms added",
                )
            )
        if "litellm" in by_key:
            for mode in MODES:
                mine, theirs = results[(key, mode, 50)], results[("litellm", mode, 50)]
                ratio = mine.rps / theirs.rps if theirs.rps else math.inf
                verdicts.append(
                    (
                        f"{name} ≥ 5× LiteLLM's req/s at c=50, {mode}",
                        ratio >= 5.0,
                        f"{mine.rps:.0f} vs {theirs.rps:.0f} req/s = {ratio:.1f}×",
                    )
                )
    for claim, met, detail in verdicts:
        console.print(f"{'[green]MET[/]' if met else '[red]NOT MET[/]'}  {claim}: {detail}")
    return {
        "rows": rows,
        "notes": notes,
        "targets_met": [{"claim": c, "met": m, "detail": d} for c, m, d in verdicts],
    }


@dataclass
class Setup:
    """Everything started for one run: what to stop afterwards and what to measure."""

    servers: list[Server] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    databases: list[tuple[str, str]] = field(default_factory=list)
    """(URL, API key) of each tokenclub database, for the in-process transaction costs."""
    gateway_pid: int = 0
    pg_gateway_pid: int = 0


def start_targets(args: argparse.Namespace, workdir: Path, pg_url: str | None, setup: Setup) -> None:
    me = [sys.executable, str(Path(__file__).resolve())]
    up_server, up_port = start_reporting_port("upstream", [*me, "--serve", "upstream"], workdir, clean_env())
    setup.servers.append(up_server)
    upstream = f"http://127.0.0.1:{up_port}"
    setup.targets.append(Target("direct", "upstream directly", up_port, MODEL))
    if not args.no_httpx:
        setup.targets.append(
            Target("direct-httpx", "upstream directly, httpx client", up_port, MODEL, client="httpx")
        )
        setup.notes.append(
            "'upstream directly, httpx client' checks the load generator: the same upstream through "
            "httpx.AsyncClient instead of the raw-socket client that every other row uses."
        )
    if not args.no_passthrough:
        argv = [*me, "--serve", "passthrough", "--upstream", upstream]
        server, port = start_reporting_port("passthrough", argv, workdir, clean_env())
        setup.servers.append(server)
        setup.targets.append(Target("passthrough", "FastAPI+aiohttp pass-through, no DB", port, MODEL))
    sqlite_url = f"sqlite:///{workdir / 'tokenclub.db'}"
    server, secret, port = start_tokenclub(
        "tokenclub-sqlite", workdir, upstream, sqlite_url, not args.no_guard
    )
    setup.servers.append(server)
    setup.gateway_pid = server.process.pid
    setup.databases.append((sqlite_url, secret))
    auth = {"authorization": f"Bearer {secret}"}
    setup.targets.append(Target("tokenclub", "tokenclub, SQLite", port, MODEL, auth))
    label = "tokenclub, SQLite, upstream w/o stream usage"
    setup.targets.append(Target("tokenclub-count", label, port, NO_USAGE_MODEL, auth, ("stream",)))
    if pg_url is None:
        why = "--no-postgres" if args.no_postgres else f"{PG_ADMIN_URL} did not answer"
        setup.notes.append(f"PostgreSQL row skipped: {why}.")
    else:
        server, secret, port = start_tokenclub("tokenclub-pg", workdir, upstream, pg_url, not args.no_guard)
        setup.servers.append(server)
        setup.pg_gateway_pid = server.process.pid
        setup.databases.append((pg_url, secret))
        auth = {"authorization": f"Bearer {secret}"}
        setup.targets.append(Target("tokenclub-pg", "tokenclub, PostgreSQL", port, MODEL, auth))
    if args.no_litellm:
        setup.notes.append("LiteLLM skipped (--no-litellm).")
    elif not (LITELLM_VENV / "bin" / "litellm").exists():
        setup.notes.append("LiteLLM skipped: run `bash bench/setup_litellm.sh` first.")
    else:
        server, port = start_litellm(workdir, upstream)
        setup.servers.append(server)
        auth = {"authorization": f"Bearer {LITELLM_KEY}"}
        setup.targets.append(Target("litellm", "LiteLLM 1.108.7 proxy, no DB", port, MODEL, auth))
        setup.notes.append(
            "LiteLLM runs without a database (master key only, no spend tracking): its database "
            "mode needs a Prisma engine download, which fails offline."
        )
    setup.notes.append(
        "tokenclub: `tokenclub serve`, SQLite (WAL) in a temp home or a fresh PostgreSQL database, "
        "migrated; one customer with a free allowance and a key; per request a hold, the upstream call "
        "and a settlement (ledger postings, usage event, rate counters), as in production."
    )
    setup.notes.append(
        "tokenclub's leak guard is off (--no-guard)."
        if args.no_guard
        else "tokenclub's leak guard is active: its home holds a guard index of every petition in the "
        "corpora folder, and every prompt and reply (streamed too) is scanned against it."
    )


async def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    plan = Plan(args.rounds, args.requests_c1, args.requests_c50, args.warmup)
    setup = Setup(
        notes=[
            f"{plan.rounds} interleaved rounds of {plan.c1} (c=1) / {plan.c50} (c=50) requests per row; "
            "latency is until the last byte (a stream's [DONE]); +p50/+p99 are against the direct row "
            "of the same mode and concurrency; 'err' counts non-200 or incomplete replies.",
            f"Every request: 1 user message, max_tokens={MAX_TOKENS}, reply of {len(REPLY_WORDS)} tokens "
            f"({len(REPLY_WORDS) + 2} SSE events when streamed, with stream_options.include_usage).",
            f"Machine: {os.cpu_count()} cores shared by the load generator, the fake upstream, the "
            "target and other work.",
        ]
    )
    with (
        tempfile.TemporaryDirectory(prefix="tc-bench-gw-") as tmp,
        postgres_database(not args.no_postgres, args.pg_unflushed) as pg_url,
    ):
        try:
            start_targets(args, Path(tmp), pg_url, setup)
            if args.pg_unflushed and pg_url is not None:
                setup.notes.append("PostgreSQL rows: commits without the WAL flush (diagnostic)")
            console.print(f"measuring {len(setup.targets)} targets …")
            results = await measure(setup.targets, plan, console)
            summary = report(setup.targets, results, setup.notes, console)
            costs = [c for url, key in setup.databases for c in await transaction_costs(url, key, 300)]
            report_costs(costs, console)
            summary["transactions"] = [vars(cost) for cost in costs]
            if args.profile:
                py_spy = args.py_spy or shutil.which("py-spy")
                if py_spy is None:
                    console.print(
                        "[yellow]--profile needs py-spy (pip install py-spy) on PATH or --py-spy[/]"
                    )
                else:
                    key = "tokenclub-pg" if args.profile_postgres else "tokenclub"
                    tokenclub = next(t for t in setup.targets if t.key == key)
                    pid = setup.pg_gateway_pid if args.profile_postgres else setup.gateway_pid
                    out = Path(args.profile)
                    await profile_tokenclub(tokenclub, pid, out, py_spy, plan.c50, console)
            return summary
        finally:
            for server in reversed(setup.servers):
                stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all rows")
    parser.add_argument("--requests-c1", type=int, default=150, help="requests per row and round at c=1")
    parser.add_argument("--requests-c50", type=int, default=600, help="requests per row and round at c=50")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per target and mode")
    parser.add_argument("--quick", action="store_true", help="one short round, to check the set-up")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--no-passthrough", action="store_true")
    parser.add_argument("--no-httpx", action="store_true", help="skip the httpx load-generator rows")
    parser.add_argument("--no-guard", action="store_true", help="tokenclub without a leak guard index")
    parser.add_argument(
        "--pg-unflushed",
        action="store_true",
        help="diagnostic: the PostgreSQL database commits without waiting for the WAL flush",
    )
    parser.add_argument("--profile", metavar="DIR", help="afterwards, py-spy the SQLite gateway under load")
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy executable (default: on PATH)")
    parser.add_argument(
        "--profile-postgres", action="store_true", help="with --profile: the PostgreSQL gateway instead"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows and verdicts as JSON")
    parser.add_argument("--serve", choices=("upstream", "passthrough"), help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "upstream":
        serve_upstream()
        return
    if args.serve == "passthrough":
        serve_passthrough(args.upstream)
        return
    if args.quick:
        args.rounds, args.requests_c1, args.requests_c50, args.warmup = 1, 30, 100, 20
    # Wide enough for the table when the output is a file or a pipe (Rich assumes 80 columns).
    console = Console(width=None if sys.stdout.isatty() else 180)
    summary: dict[str, Any] = {}

    async def go() -> None:
        summary.update(await run(args, console))

    _run_loop(go)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
