"""`tokenclub user` creates the first operator; `tokenclub worker --once` drains the queue."""

from __future__ import annotations

import io
import json
from pathlib import Path

from tests.cli.helpers import run_cli, run_json
from tests.ingest.fixtures import petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.accounts.users import verify_login
from tokenclub.db.engine import Database
from tokenclub.portal import uploads
from tokenclub.portal.uploads import Limits


def test_first_operator_then_refusals(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli(home, "init").returncode == 0
    env = {"TOKENCLUB_NEW_PASSWORD": "operator password"}
    made = run_cli(home, "user", "add", "Ops@Example.kr", "--role", "operator", "--json", env_extra=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["email"] == "ops@example.kr"
    again = run_cli(home, "user", "add", "ops@example.kr", "--role", "operator", env_extra=env)
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = run_cli(home, "user", "add", "x@example.kr", "--role", "admin", env_extra=env)
    assert bad.returncode == 1 and "role 'admin' is not one of" in bad.stderr
    short = run_cli(
        home,
        "user",
        "add",
        "y@example.kr",
        "--role",
        "trainer",
        env_extra={"TOKENCLUB_NEW_PASSWORD": "short"},
    )
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    assert [u["role"] for u in run_json(home, "user", "list")] == ["operator"]
    db = Database(f"sqlite:///{home / 'tokenclub.db'}")
    try:
        with db.transaction() as session:
            assert verify_login(session, "ops@example.kr", "operator password") is not None
    finally:
        db.dispose()


def test_worker_once_processes_the_queue_and_reports(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli(home, "init").returncode == 0
    data = write_jsonl(tmp_path / "a.jsonl", petitions(300, 6)).read_bytes()
    db = Database(f"sqlite:///{home / 'tokenclub.db'}")
    try:
        with db.transaction() as session:
            pid = partners.apply(session, "신문사", threshold_words=1).id
            partners.decide(session, pid, PartnerStatus.APPROVED, 1)
            upload = uploads.create_upload(
                session,
                pid,
                filename="a.jsonl",
                purpose="user_data",
                size=len(data),
                mime_type="",
                limits=Limits(10**6, 10**6),
            )
        part = uploads.add_part(db, home, upload.id, pid, io.BytesIO(data), Limits(10**6, 10**6))
        _, contribution = uploads.complete(db, home, upload.id, pid, [part.id])
    finally:
        db.dispose()
    result = run_cli(home, "worker", "--once", "--json", "--name", "w1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0] == {"event": "claimed", "contribution": contribution.id, "attempt": 1}
    assert events[-2] == {"event": "done", "contribution": contribution.id}
    assert events[-1] == {"event": "stopped", "worker": "w1", "jobs": 1}
    assert sum(e["documents"] for e in events if e["event"] == "batch") == 6
