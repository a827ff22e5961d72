"""The worst-case red team's judge and pieces, the split families, and `audit redteam
--worst-case` through the program (the full attack figures come from bench/)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx

from tests.cli.helpers import run_cli
from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.guard.corpus import petitions
from tests.guard.disguise import ALL_DISGUISES
from tests.guard.homes import make_home
from tests.guard.worst_case import recall, worst_case_app
from tests.ingest.fixtures import petitions as ingest_petitions
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.gateway.app import create_app
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.audits.extraction import client_for
from tokenclub.guard.audits.redteam import Target
from tokenclub.guard.audits.worst_case import (
    PIECE_LETTERS,
    SPLIT_LETTERS,
    pieces,
    recovered_letters,
    run_split,
    split_pieces,
    strings,
    summarize_families,
)
from tokenclub.guard.normalize import guard_text
from tokenclub.guard.service import GatewayGuard
from tokenclub.ledger.operations import grant_free_tokens

SOURCE = petitions()[10]
PASSAGE = SOURCE[100:340]


def test_pieces_stay_below_the_join_length_and_rebuild_the_passage() -> None:
    cut = pieces(PASSAGE)
    assert len(cut) >= 8
    assert all(len(guard_text(piece)) <= PIECE_LETTERS for piece in cut)
    assert guard_text("".join(cut)) == guard_text(PASSAGE)


def test_split_pieces_hold_31_to_40_letters_in_order() -> None:
    cut = split_pieces(PASSAGE)
    sizes = [len(guard_text(piece)) for piece in cut[:-1]]
    assert len(cut) >= 8 and all(SPLIT_LETTERS[0] - 2 <= n <= SPLIT_LETTERS[1] for n in sizes)
    assert len(set(sizes)) > 3  # the sizes vary
    assert guard_text("".join(cut)) == guard_text(PASSAGE)


def test_a_recall_order_is_answered_with_that_text_and_carries_none() -> None:
    """The honest request of the fresh-text benches: the upstream answers with its n-th text,
    whole and streamed; the request holds neither the text nor a word that asks for a copy."""
    texts = [SOURCE[:80], SOURCE[80:200]]
    assert "verbatim" not in recall(1) and texts[1] not in recall(1)
    with serve_in_thread(worst_case_app(texts)) as url:
        for stream in (False, True):
            body = {"model": "worst-case", "messages": [{"role": "user", "content": recall(1, 3)}]}
            response = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": stream}, timeout=30)
            assert response.status_code == 200
            if stream:
                events = [
                    json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
                ]
                got = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
            else:
                got = response.json()["choices"][0]["message"]["content"]
            assert got == texts[1]
        beyond = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "worst-case", "messages": [{"role": "user", "content": recall(2)}]},
            timeout=30,
        )
        assert beyond.json()["choices"][0]["message"]["content"] == recall(2)  # no such text: echoed


def test_split_families_leak_without_the_guard() -> None:
    """Against the upstream directly, all pieces at once or in turn give the passage back."""
    target = Target("10", 1, SOURCE, PASSAGE)
    with (
        serve_in_thread(worst_case_app()) as url,
        client_for(url + "/v1", None) as a,
        client_for(url + "/v1", None) as b,
    ):
        table = summarize_families(run_split([a, b], "worst-case", [target], 50))
    for family in ("pieces_concurrent", "pieces_alternating"):
        assert table[family]["attempts"] == 2 and table[family]["leak_rate"] == 1.0, family
        assert table[family]["max_copied_letters"] >= len(guard_text(PASSAGE)) - 2


def test_the_judge_recovers_what_the_views_undo_and_no_more() -> None:
    letters = len(guard_text(PASSAGE))
    for name in ("reversed", "json_escapes", "filler_syllable", "base64", "html_tags"):
        assert recovered_letters(ALL_DISGUISES[name](PASSAGE), SOURCE) >= letters - 30, name
    # digits and punctuation break the romanized groups; what is read back is still far past 50
    assert recovered_letters(ALL_DISGUISES["romanized"](PASSAGE), SOURCE) >= 200
    assert recovered_letters(ALL_DISGUISES["lookalike_jamo"](PASSAGE), SOURCE) < 50
    assert recovered_letters("오늘은 날씨가 맑고 바람이 시원합니다.", SOURCE) < 20


def test_every_string_of_a_reply_is_read_keys_included() -> None:
    reply = {"choices": [{"message": {"content": "a", "tool_calls": [{"function": {"arguments": "b"}}]}}]}
    assert list(strings(reply)) == [
        "choices",
        "message",
        "content",
        "a",
        "tool_calls",
        "function",
        "arguments",
        "b",
    ]


def test_audit_redteam_worst_case_runs_every_family_with_two_customers(tmp_path: Path) -> None:
    """The program orders every family from the worst-case upstream, through the gateway with two
    customers' keys (the split pieces alternate between them) and directly."""
    home = tmp_path / "home"
    db = make_home(home, [ingest_petitions(600, 6)])
    keys = []
    with db.transaction() as session:
        for name in ("손님", "이웃"):
            customer = create_customer(session, name).id
            grant_free_tokens(session, customer, 10**9, f"grant-{name}")
            keys.append(create_key(session, customer)[0])
    guard = GatewayGuard(home / "guard", "block", "strict", check_every_s=0.0)
    try:
        with serve_in_thread(worst_case_app()) as upstream:
            routes = {"worst-case": ModelRoute("worst-case", upstream + "/v1", "worst-case")}
            app = create_app(
                replace(config(db, upstream), routes=routes, guard=guard, max_tokens_ceiling=4096)
            )
            with serve_in_thread(app) as gateway:
                result = run_cli(
                    home,
                    "audit",
                    "redteam",
                    *("--gateway", gateway + "/v1", "--key", keys[0], "--second-key", keys[1]),
                    *("--direct-url", upstream + "/v1", "--worst-case", "--samples", "1"),
                    *("--model", "worst-case", "--json"),
                    database_url=db.url,
                )
    finally:
        db.dispose()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    on, off = report["guard_on"], report["guard_off"]
    for family in ("pieces_concurrent", "pieces_alternating"):
        assert on[family]["attempts"] == off[family]["attempts"] == 2, family
        assert off[family]["leak_rate"] == 1.0, family
    assert on["tool_call_arguments"]["leak_rate"] == 0.0 and off["tool_call_arguments"]["leak_rate"] == 1.0
