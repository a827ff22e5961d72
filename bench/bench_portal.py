"""The data API's upload throughput and the portal's page render times.

Upload: one archive of `--size-mb` MB (default 1024, random bytes: the upload path does not
look inside) sent with the official `openai` SDK's chunked helper (64 MiB parts) to a
`tokenclub portal` server in its own process, while the server's resident memory is sampled
from /proc. The named reference, in the same run, is a plain file copy of the same archive on
the same disk (the floor: the server writes every byte once per part and once when joining), and
a bare ASGI app on the same server stack that only reads and hashes request bodies of the
same 64 MiB (the floor of HTTP on this machine).

Render: 100 approved partners and 10,000 finished contributions with receipts; the median and
95th percentile of each page over 50 requests, with a logged-in session. The named reference
is the portal's static stylesheet (same server, same session, no database work).

Run: ``.venv/bin/python bench/bench_portal.py`` (``--part upload|render``, ``--size-mb N``)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import uvicorn
from fastapi import FastAPI, Request
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from tokenclub.accounts import partners
from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.keys import create_key
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.accounts.users import Role, add_user
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import Contribution, DataUpload
from tokenclub.db.schema import Upload
from tokenclub.db.types import utcnow
from tokenclub.home import init_home
from tokenclub.portal.app import create_portal_app
from tokenclub.settings import Settings

MB = 1024 * 1024
PARTNERS = 100
CONTRIBUTIONS = 10_000
REQUESTS = 50
console = Console(width=160)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def approved_partner(db: Database, name: str) -> tuple[int, str]:
    with db.transaction() as session:
        pid = partners.apply(session, name, threshold_words=1).id
        partners.decide(session, pid, PartnerStatus.APPROVED, 1)
        key, _ = create_key(session, customer_of_partner(session, pid).id, "bench", ["data", "account"])
    return pid, key


def bare_app() -> FastAPI:
    """The HTTP floor: an endpoint that reads and hashes the body, storing nothing."""
    app = FastAPI()

    @app.post("/sink")
    async def sink(request: Request) -> dict[str, int]:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return {"bytes": size}

    return app


def bare_upload(archive: Path) -> float:
    """Seconds to send the archive in 64 MiB bodies to the bare app in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_portal:bare_app",
            "--factory",
            "--app-dir",
            str(Path(__file__).parent),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/docs")
        start = time.perf_counter()
        with archive.open("rb") as source, httpx.Client(timeout=600) as client:
            while chunk := source.read(64 * MB):
                client.post(f"http://127.0.0.1:{port}/sink", content=chunk).raise_for_status()
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


def rss_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


@contextmanager
def portal_process(home: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "TOKENCLUB_HOME": str(home), "TOKENCLUB_UPLOAD_MAX_BYTES": str(64 * 1024**3)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tokenclub.portal.app:make_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/portal/login")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_upload(size_mb: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home)
        init_home(settings)
        db = Database(settings.resolved_database_url)
        _, key = approved_partner(db, "bench")
        db.dispose()
        archive = Path(tmp) / "archive.tar"
        with archive.open("wb") as out:
            for _ in range(size_mb):
                out.write(os.urandom(MB))
        start = time.perf_counter()
        shutil.copyfile(archive, Path(tmp) / "copy.tar")
        copy_s = time.perf_counter() - start
        (Path(tmp) / "copy.tar").unlink()
        bare_s = bare_upload(archive)
        port = free_port()
        with portal_process(home, port) as proc:
            baseline = rss_kib(proc.pid, "VmRSS")
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.05):
                    peak = max(peak, rss_kib(proc.pid, "VmRSS"))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=600
            )
            start = time.perf_counter()
            upload = client.uploads.upload_file_chunked(
                file=archive, mime_type="application/x-tar", purpose="user_data"
            )
            upload_s = time.perf_counter() - start
            done.set()
            sampler.join()
            assert upload.status == "completed" and upload.bytes == size_mb * MB
    table = Table(title=f"upload of a {size_mb:,} MB archive (64 MiB parts, openai SDK, loopback)")
    for column in (
        "what",
        "seconds",
        "MB/s",
        "× reference",
        "server RSS before (MiB)",
        "server RSS peak (MiB)",
        "growth (MiB)",
    ):
        table.add_column(column, justify="right")
    table.add_row("reference: file copy", f"{copy_s:.2f}", f"{size_mb / copy_s:,.0f}", "1.00", "", "", "")
    table.add_row(
        "reference: HTTP floor (read + hash)",
        f"{bare_s:.2f}",
        f"{size_mb / bare_s:,.0f}",
        f"{copy_s / bare_s:.2f}",
        "",
        "",
        "",
    )
    table.add_row(
        "data API upload + complete",
        f"{upload_s:.2f}",
        f"{size_mb / upload_s:,.0f}",
        f"{copy_s / upload_s:.2f} (floor × {bare_s / upload_s:.2f})",
        f"{baseline / 1024:,.0f}",
        f"{peak / 1024:,.0f}",
        f"{(peak - baseline) / 1024:,.0f}",
    )
    console.print(table)


def seed(db: Database, partner_ids: list[int]) -> None:
    """10,000 finished contributions with receipts, spread evenly over the partners."""
    now = utcnow()
    receipt = json.dumps(
        {
            "documents_seen": 120,
            "documents_accepted": 110,
            "rejected": {"quality:too_short": 6, "dedup:duplicate of an earlier contribution": 4},
            "words": 41_000,
            "tokens": 90_000,
            "free_tokens_granted": 90_000,
            "errors": [],
        }
    )
    uploads, data_uploads, contributions = [], [], []
    for n in range(CONTRIBUTIONS):
        pid = partner_ids[n % len(partner_ids)]
        uid = f"{n:032x}"
        uploads.append(
            {
                "id": uid,
                "partner_id": pid,
                "status": "done",
                "files": "[]",
                "batch_size": 256,
                "tokenizer_fingerprint": "f" * 64,
                "receipt": receipt,
                "created_at": now,
                "finished_at": now,
            }
        )
        data_uploads.append(
            {
                "id": f"upload_{n:024x}",
                "partner_id": pid,
                "filename": f"기사-{n}.jsonl",
                "purpose": "user_data",
                "mime_type": "application/jsonl",
                "bytes": 1_000_000,
                "received_bytes": 1_000_000,
                "status": "completed",
                "sha256": "a" * 64,
                "created_at": now,
                "expires_at": now + timedelta(hours=1),
            }
        )
        contributions.append(
            {
                "id": f"contrib_{n:024x}",
                "partner_id": pid,
                "data_upload_id": f"upload_{n:024x}",
                "status": "done",
                "attempts": 1,
                "documents_seen": 120,
                "documents_accepted": 110,
                "batches_done": 1,
                "upload_id": uid,
                "error": "",
                "created_at": now - timedelta(seconds=n),
                "finished_at": now,
            }
        )
    with db.transaction() as session:
        session.execute(insert(Upload), uploads)
        session.execute(insert(DataUpload), data_uploads)
        session.execute(insert(Contribution), contributions)


def bench_render() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", cookie_secure=False)
        init_home(settings)
        db = Database(settings.resolved_database_url)
        ids = [approved_partner(db, f"partner-{n:03d}")[0] for n in range(PARTNERS)]
        seed(db, ids)
        with db.transaction() as session:
            add_user(session, "p@bench.kr", "partner password", Role.PARTNER_ADMIN, partner_id=ids[0])
            add_user(session, "o@bench.kr", "operator password", Role.OPERATOR)
        db.dispose()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_portal_app(settings), port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        pages = {
            "p@bench.kr": [
                "/portal/partner",
                "/portal/partner/uploads",
                f"/portal/partner/contributions/contrib_{0:024x}",
            ],
            "o@bench.kr": ["/portal/ops", "/portal/ops/applications", "/portal/ops/jobs"],
        }
        passwords = {"p@bench.kr": "partner password", "o@bench.kr": "operator password"}
        table = Table(
            title=f"portal pages: {PARTNERS} partners, {CONTRIBUTIONS:,} contributions, {REQUESTS} requests"
        )
        for column in ("page", "p50 ms", "p95 ms", "× reference"):
            table.add_column(column, justify="right")
        for email, paths in pages.items():
            with httpx.Client(base_url=base) as client:
                token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/portal/login").text)
                assert token is not None
                client.post(
                    "/portal/login",
                    data={"csrf_token": token.group(1), "email": email, "password": passwords[email]},
                )
                reference = timings(client, "/portal/static/portal.css")
                table.add_row(
                    f"reference: stylesheet ({email})", f"{reference[0]:.1f}", f"{reference[1]:.1f}", "1.0"
                )
                for path in paths:
                    p50, p95 = timings(client, path)
                    table.add_row(path, f"{p50:.1f}", f"{p95:.1f}", f"{p50 / reference[0]:.1f}")
        server.should_exit = True
        thread.join()
    console.print(table)


def timings(client: httpx.Client, path: str) -> tuple[float, float]:
    samples = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "upload", "render"), default="all")
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    if args.part in ("all", "upload"):
        bench_upload(args.size_mb)
    if args.part in ("all", "render"):
        bench_render()


if __name__ == "__main__":
    main()
