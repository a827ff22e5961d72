"""The operator's list of guard events and the per-partner counts, through the real program."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import run_cli, run_json
from tokenclub.guard.state.events import record_event
from tokenclub.home import open_database
from tokenclub.settings import Settings


def _home_with_events(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert run_cli(home, "init").returncode == 0
    for name in ("가 신문", "나 출판"):
        partner = run_json(home, "partner", "add", name)
        assert run_cli(home, "partner", "approve", str(partner["id"])).returncode == 0
    db = open_database(Settings(home=home))
    try:
        with db.transaction() as session:
            record_event(
                session,
                request_id="r1",
                stage="output",
                verdict="leak",
                action="blocked",
                matched_length=80,
                partner_id=1,
            )
            record_event(
                session,
                request_id="r2",
                stage="prompt",
                verdict="extraction_request",
                action="refused",
                reasons=["asks to reproduce source text"],
            )
            record_event(
                session,
                request_id="r3",
                stage="output",
                verdict="leak",
                action="redacted",
                matched_length=61,
                partner_id=2,
            )
            record_event(
                session,
                request_id="r4",
                stage="prompt",
                verdict="carries_text",
                action="strict",
                matched_length=55,
                partner_id=1,
            )
    finally:
        db.dispose()
    return home


def test_operator_lists_every_event_newest_first_and_filters(tmp_path: Path) -> None:
    home = _home_with_events(tmp_path)
    events = run_json(home, "guard", "events")
    assert [e["request_id"] for e in events] == ["r4", "r3", "r2", "r1"]
    assert events[2]["reasons"] == ["asks to reproduce source text"]
    assert events[3] | {"created_at": None} == {
        "id": 1,
        "created_at": None,
        "request_id": "r1",
        "key_id": None,
        "customer_id": None,
        "stage": "output",
        "verdict": "leak",
        "action": "blocked",
        "matched_length": 80,
        "partner_id": 1,
        "reasons": [],
    }
    assert [e["request_id"] for e in run_json(home, "guard", "events", "--partner", "1")] == ["r4", "r1"]
    assert [e["request_id"] for e in run_json(home, "guard", "events", "--limit", "2")] == ["r4", "r3"]
    assert run_json(home, "guard", "events", "--since", "2999-01-01") == []


def test_stopped_counts_only_what_was_kept_from_the_client(tmp_path: Path) -> None:
    home = _home_with_events(tmp_path)
    assert run_json(home, "guard", "stopped") == [
        {"partner_id": 1, "stopped": 1},
        {"partner_id": 2, "stopped": 1},
        {"partner_id": None, "stopped": 1},
    ]
    assert run_json(home, "guard", "stopped", "--partner", "2") == [{"partner_id": 2, "stopped": 1}]


def test_a_bad_since_is_refused_by_name(tmp_path: Path) -> None:
    home = _home_with_events(tmp_path)
    result = run_cli(home, "guard", "events", "--since", "yesterday")
    assert result.returncode == 2
    assert "--since" in result.stderr
