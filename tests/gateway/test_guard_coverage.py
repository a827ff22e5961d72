"""Coverage through the gateway: a document taken in pieces below every chain length.

The worst-case upstream (`tests/guard/worst_case.py`) repeats whatever piece it is asked for.
Patient customers take one petition in order in pieces of at most 28 guard letters (no piece
holds two gram hits, so neither joins nor the tally see them); coverage counts each piece's
single hits per document and refuses them before a tenth of the petition's letters is out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.gateway.test_guard import FRESH, Account, _account
from tests.guard.corpus import petitions
from tests.guard.worst_case import order, worst_case_app
from tokenclub.accounts.keys import KeyView, authenticate
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import (
    GuardCappedDocument,
    GuardCoverage,
    GuardCoverageHold,
    GuardCustomerState,
    GuardEvent,
)
from tokenclub.gateway.app import create_app
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.audits.extraction import client_for
from tokenclub.guard.audits.worst_case import pieces
from tokenclub.guard.detection.coverage import Limits, reply_runs
from tokenclub.guard.detection.neighbours import ends_of, seams_of, straddled
from tokenclub.guard.indexing.index import IndexParams, open_index, writer
from tokenclub.guard.normalize import guard_text
from tokenclub.guard.service import PASS, GatewayGuard
from tokenclub.guard.state.coverage_store import drop_hold
from tokenclub.guard.state.customer_state import read_admission
from tokenclub.guard.state.events import EXHAUSTED, record_event

MODEL = "worst-case"
DOCS = petitions()[10:40]
TARGET = max(DOCS[:6], key=len)  # the longest of the first few: many pieces to take
LIMITS = Limits(customer=0.02, document=0.02, window_s=3600)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(worst_case_app()) as url:
        yield url


@dataclass(frozen=True)
class Shop:
    url: str
    partner: Account
    customers: list[Account]
    root: Path


@contextmanager
def shop(
    db: Database, tmp_path: Path, upstream: str, customers: int, limits: Limits = LIMITS
) -> Iterator[Shop]:
    partner = _account(db, "가나신문", partner=True)
    assert partner.partner_id is not None
    root = tmp_path / "guard"
    with writer(root, IndexParams.for_leak_length(50, seed=20190502), capacity=1 << 16) as index:
        index.add(DOCS, [partner.partner_id] * len(DOCS))
    guard = GatewayGuard(root, "block", "strict", check_every_s=0.0, limits=limits)
    routes = {MODEL: ModelRoute(MODEL, upstream + "/v1", MODEL)}
    app = create_app(replace(config(db, upstream), routes=routes, guard=guard, max_tokens_ceiling=4096))
    people = [_account(db, f"손님{i}", partner=False) for i in range(customers)]
    with serve_in_thread(app) as url:
        yield Shop(url + "/v1", partner, people, root)


def ask(client: httpx.Client, piece: str, stream: bool) -> str | None:
    """What the client reads of one piece; None when the request is refused."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": order(piece, piece=3)}],
        "stream": stream,
    }
    if not stream:
        response = client.post("/chat/completions", json=body)
        if response.status_code == 400:
            assert response.json()["error"]["code"] == "content_filter", response.text
            return None
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"] or "")
    with client.stream("POST", "/chat/completions", json=body) as response:
        if response.status_code == 400:
            response.read()
            return None
        response.raise_for_status()
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        return "".join(c["delta"].get("content") or "" for event in events for c in event["choices"])


def delivered(piece: str, read: str | None) -> int:
    letters = guard_text(piece)
    return len(letters) if read is not None and letters in guard_text(read) else 0


def events(db: Database, verdict: str) -> list[GuardEvent]:
    with db.transaction() as session:
        found = session.scalars(select(GuardEvent).where(GuardEvent.verdict == verdict)).all()
        session.expunge_all()
        return list(found)


def strike(session: Session, key: KeyView, doc: int) -> None:
    """The event of a reply to the key's customer blocked for more of an exhausted `doc`."""
    record_event(
        session,
        request_id="r",
        stage="output",
        verdict=EXHAUSTED,
        action="blocked",
        customer_id=key.customer_id,
        reasons=(f"document {doc}",),
    )


def test_one_customer_collects_at_most_a_tenth_of_a_document(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    total = len(guard_text(TARGET))
    with shop(db, tmp_path, upstream, 1) as place, client_for(place.url, place.customers[0].key) as client:
        got, refused = 0, 0
        for at, piece in enumerate(pieces(TARGET)):
            read = ask(client, piece, stream=at % 2 == 1)
            refused += read is None
            got += delivered(piece, read)
        assert refused > 0
        assert got <= 0.10 * total, (got, total)
        assert got >= 0.02 * total  # it was let through at first: the budget is not zero
    stops = events(db, "coverage")
    assert stops and all(e.action == "refused" and e.partner_id == place.partner.partner_id for e in stops)


def test_ten_cooperating_customers_collect_at_most_a_tenth_together(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    total = len(guard_text(TARGET))
    with shop(db, tmp_path, upstream, 10) as place:
        clients = [client_for(place.url, c.key) for c in place.customers]
        got, turn = 0, 0
        for piece in pieces(TARGET):
            for _ in clients:  # the next customer not yet refused takes the piece
                read = ask(clients[turn % len(clients)], piece, stream=False)
                turn += 1
                if read is not None:
                    got += delivered(piece, read)
                    break
        for client in clients:
            client.close()
    assert got <= 0.10 * total, (got, total)
    alerts = events(db, "document_capped")
    assert len(alerts) == 1 and alerts[0].action == "logged"
    assert events(db, "coverage_capped")
    blocked = events(db, "capped")  # replies of the capped document, whoever asked
    partner = place.partner.partner_id
    assert blocked and all(e.action == "blocked" and e.partner_id == partner for e in blocked)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(GuardCappedDocument)) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_past_the_cap_a_short_piece_beside_a_refused_one_is_refused_too(
    db: Database, tmp_path: Path, upstream: str, stream: bool
) -> None:
    """Once the document is capped (one customer past its limit, then another sent more of it),
    a piece too short to carry a gram of it still goes out on its own, but not beside a piece
    that was refused for carrying one: another customer asking for it (whole or streamed) is
    refused that reply, and then (one strike here) every request. The refused piece is asked
    whole: a refused stream's run is kept as far as it was read, which may stop short of the
    piece's end."""
    with shop(db, tmp_path, upstream, 4, replace(LIMITS, strikes=1)) as place:
        index = open_index(place.root)
        assert index is not None
        parts = pieces(TARGET)
        bare = [not reply_runs(index, piece)[0] for piece in parts]

        def beside(at: int) -> bool:  # the piece after `at` straddles grams that count beside its run
            seams = [seams_of(edge, index.params) for edge in reply_runs(index, parts[at])[1]]
            return any(straddled(index, s, [ends_of(parts[at + 1], index.params)])[0] for s in seams)

        with client_for(place.url, place.customers[0].key) as first:
            refused = (at for at, piece in enumerate(parts) if ask(first, piece, stream) is None)
            taken = next(refused, len(parts))  # until refused: past its own limit
        assert not events(db, "document_capped")  # one customer alone caps nothing
        with client_for(place.url, place.customers[3].key) as fourth:
            for piece in parts[taken:]:  # what the first was not sent: more than its own
                ask(fourth, piece, stream)
                if events(db, "document_capped"):
                    break
        assert len(events(db, "document_capped")) == 1
        tail = range(len(parts) - 2, len(parts) // 2, -1)
        pairs = [at for at in tail if not bare[at] and bare[at + 1] and bare[at - 1] and beside(at)]
        assert len(pairs) >= 2
        near, far = pairs[0], pairs[1]
        with (
            client_for(place.url, place.customers[1].key) as second,
            client_for(place.url, place.customers[2].key) as third,
        ):
            assert delivered(parts[far - 1], ask(third, parts[far - 1], stream)) > 0  # on its own
            capped = len(events(db, "capped"))
            assert delivered(parts[near], ask(second, parts[near], stream=False)) == 0
            assert delivered(parts[near + 1], ask(third, parts[near + 1], stream)) == 0
            assert ask(third, FRESH[0], stream) is None  # refused: what it asked for was counted
        assert len(events(db, "capped")) == capped + 2  # a stream's are written with its settlement


def test_two_customers_taking_turns_never_get_two_neighbouring_pieces(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    """Pieces of 30–38 guard letters (each holds an aligned gram), taken in turn by two customers,
    whole and streamed: each piece that would join the one before into a leak is blocked, so
    they get every other piece. Coverage's limits are off here (100 %): only the join acts."""
    parts = pieces(TARGET, 38)[:24]
    assert all(30 <= len(guard_text(piece)) <= 38 for piece in parts)
    loose = Limits(customer=1.0, document=1.0, window_s=3600)
    with shop(db, tmp_path, upstream, 2, loose) as place:
        clients = [client_for(place.url, c.key) for c in place.customers]
        got = [
            delivered(piece, ask(clients[at % 2], piece, stream=at % 4 >= 2)) > 0
            for at, piece in enumerate(parts)
        ]
        for client in clients:
            client.close()
    assert got == [at % 2 == 0 for at in range(len(parts))]
    joined = events(db, "joined")
    assert len(joined) == len(parts) // 2
    assert all(e.action == "blocked" and e.partner_id == place.partner.partner_id for e in joined)


def test_pieces_asked_all_at_once_never_give_two_neighbours(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    """The same pieces, all requests in flight together (one customer, whole and streamed): a
    reply's grams are claimed when it is scanned, before it is sent, so of two neighbours the
    one scanned second is blocked, whichever it is."""
    parts = pieces(TARGET, 38)[:24]
    loose = Limits(customer=1.0, document=1.0, window_s=3600)
    with (
        shop(db, tmp_path, upstream, 1, loose) as place,
        client_for(place.url, place.customers[0].key, timeout_s=60) as client,
        ThreadPoolExecutor(max_workers=len(parts)) as pool,
    ):
        reads = list(pool.map(lambda at: ask(client, parts[at], stream=at % 2 == 1), range(len(parts))))
    got = [delivered(piece, read) > 0 for piece, read in zip(parts, reads, strict=True)]
    assert not any(got[at] and got[at + 1] for at in range(len(parts) - 1)), got
    assert sum(got) >= len(parts) // 3  # a piece is blocked only for a neighbour that went out
    assert len(events(db, "joined")) == len(parts) - sum(got)


def test_a_piece_too_short_for_a_gram_is_seen_beside_its_neighbour(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    """A document in turns of 35 and 16 guard letters (a 16-letter piece holds no whole gram),
    taken by two customers in turn, whole and streamed, the short piece sent after its long
    neighbour or before it: either way the second of the two (51 letters in a row) is blocked,
    and the next pair, 14 letters further on, is not."""
    letters = guard_text(TARGET)
    loose = Limits(customer=1.0, document=1.0, window_s=3600)
    pairs = [(letters[at : at + 35], letters[at + 35 : at + 51]) for at in range(0, 16 * 65, 65)]
    with shop(db, tmp_path, upstream, 2, loose) as place:
        clients = [client_for(place.url, c.key) for c in place.customers]
        got = []
        for at, (long, short) in enumerate(pairs):
            for turn, piece in enumerate((long, short) if at % 2 == 0 else (short, long)):
                got.append(delivered(piece, ask(clients[turn], piece, stream=at % 4 >= 2)) > 0)
        for client in clients:
            client.close()
    assert got == [True, False] * len(pairs)
    assert len(events(db, "joined")) == len(pairs)


def test_concurrent_admissions_do_not_overrun_the_budget(db: Database, tmp_path: Path, upstream: str) -> None:
    """Requests in flight reserve `reserve` letters each of a document the customer holds counted
    letters of: with `headroom` letters left, only ceil(headroom / reserve) of many simultaneous
    admissions may take more of it; the others are admitted with the document exhausted (their
    replies carry no more of it)."""
    with shop(db, tmp_path, upstream, 1) as place:
        guard = GatewayGuard(place.root, "block", "strict", check_every_s=0.0, limits=LIMITS)
        index = guard.scanner.current()
        assert index is not None
        doc = DOCS.index(TARGET)
        letters = index.docs.letters(doc)
        limit = LIMITS.customer_letters(letters)
        with db.transaction() as session:
            key = authenticate(session, place.customers[0].key)
            assert isinstance(key, KeyView)
            guard.keep_coverage(session, key, {doc: frozenset({0, 10})}, None)  # two runs: 26 count
        headroom = limit - 26
        expected = -(-headroom // LIMITS.reserve)
        admitted: list[bool] = []
        start = threading.Barrier(8)

        def admit() -> None:
            start.wait()
            with db.transaction() as session:
                check = guard.with_tally(session, key, PASS)
                assert not check.refuse
                admitted.append(doc not in check.exhausted)

        threads = [threading.Thread(target=admit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert headroom > 0 and expected < 8
        assert admitted.count(True) == expected
        with db.transaction() as session:
            assert session.scalar(select(func.count()).select_from(GuardCoverageHold)) == 8


def test_an_admission_reads_a_customers_grams_only_while_it_has_state_in_the_window(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    """The first read says whether the guard kept anything for the customer: without state an
    admission adds its hold and reads nothing else; once grams are kept, a customer past its
    coverage gets no more of that document, and after `strikes` replies blocked for it is refused
    (and its hold dropped), until the window has moved past them."""
    with shop(db, tmp_path, upstream, 1) as place:
        guard = GatewayGuard(place.root, "block", "strict", check_every_s=0.0, limits=LIMITS)
        index = guard.scanner.current()
        assert index is not None
        doc = DOCS.index(TARGET)
        ordinals = frozenset(range(0, index.docs.letters(doc) // index.params.stride, 6))
        with db.transaction() as session:
            key = authenticate(session, place.customers[0].key)
            assert isinstance(key, KeyView)
            fresh = read_admission(session, key.customer_id, 1_000, hold=False)
            assert fresh.last_s is None and not fresh.active(0) and fresh.hold is None
            check = guard.with_tally(session, key, PASS, now=1_000.0)
            assert not check.refuse and check.hold is not None
            guard.keep_coverage(session, key, {doc: ordinals}, check.hold, now=1_000.0)
            kept = read_admission(session, key.customer_id, 1_000, hold=False)
            assert kept.last_s == 1_000 and kept.active(1_000 - LIMITS.window_s)
            guard.keep_coverage(session, key, {doc: frozenset({1})}, None, now=900.0)  # older: newest kept
            assert session.scalar(select(GuardCustomerState.last_s)) == 1_000
        with db.transaction() as session:
            limited = guard.with_tally(session, key, PASS, now=1_001.0)
            assert not limited.refuse and limited.exhausted == {doc: ordinals | {1}}
            assert limited.hold is not None
            drop_hold(session, limited.hold)
            for _ in range(LIMITS.strikes):
                strike(session, key, doc)
        with db.transaction() as session:
            refused = guard.with_tally(session, key, PASS, now=1_001.0)
            assert refused.refuse and refused.hold is None and refused.coverage is not None
            assert session.scalar(select(func.count()).select_from(GuardCoverageHold)) == 0
            later = guard.with_tally(session, key, PASS, now=1_001.0 + LIMITS.window_s)
            assert not later.refuse and later.hold is not None


def test_fresh_text_is_not_refused(db: Database, tmp_path: Path, upstream: str) -> None:
    fresh = [FRESH, *petitions()[300:310]]
    with shop(db, tmp_path, upstream, 1) as place, client_for(place.url, place.customers[0].key) as client:
        for at, text in enumerate(fresh):
            for piece in pieces(text, 200):
                assert ask(client, piece, stream=at % 2 == 1) is not None
    assert not events(db, "coverage") and not events(db, "coverage_capped")
    # six of the fresh petitions end with the moderation notice, which 14 of the 30 documents
    # hold: its grams are common, and the grams that straddle it and the words around it (held
    # by fewer documents) overlap them, so none is counted (they were, within the floor)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(GuardCoverageHold)) == 0
        assert (session.scalar(select(func.count()).select_from(GuardCoverage)) or 0) == 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_customer_at_its_limit_of_a_document_gets_every_other_reply(
    db: Database, tmp_path: Path, upstream: str, stream: bool
) -> None:
    """Past its limit of a document, a customer is not locked out: a reply that carries none of
    the document, or only what it was sent already, goes out; a reply with more of it is blocked,
    and once `strikes` replies (three here) were blocked for that, the customer is refused."""
    fresh = FRESH.splitlines()[0]
    with shop(db, tmp_path, upstream, 1) as place, client_for(place.url, place.customers[0].key) as client:
        parts = pieces(TARGET)
        sent: list[str] = []
        for piece in parts:
            read = ask(client, piece, stream)
            assert read is not None
            if not delivered(piece, read):  # the first blocked piece (a join, or past the limit)
                break
            sent.append(piece)
        assert sent
        assert delivered(fresh, ask(client, fresh, stream)) > 0  # nothing of the document
        assert delivered(sent[0], ask(client, sent[0], stream)) > 0  # only what it holds already
        for piece in parts[len(sent) + 1 :]:
            if ask(client, piece, stream) is None:
                break
        assert ask(client, fresh, stream) is None  # refused from now on
    strikes = [e for e in events(db, "capped") + events(db, EXHAUSTED) if e.action == "blocked"]
    assert len(strikes) == LIMITS.strikes
    assert {e.partner_id for e in strikes} == {place.partner.partner_id}
    assert [e.action for e in events(db, "coverage")] == ["refused"] * 2


def test_a_document_blocked_for_many_customers_refuses_each_at_its_first_block(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    """Strikes count per document: a customer with one block of its own is refused once the
    document was blocked `strikes` times for all customers together (accounts collecting it in
    turn), and not before; another document's blocks count for nothing here."""
    with shop(db, tmp_path, upstream, 3) as place:
        guard = GatewayGuard(place.root, "block", "strict", check_every_s=0.0, limits=LIMITS)
        index = guard.scanner.current()
        assert index is not None
        doc = DOCS.index(TARGET)
        other = (doc + 1) % len(DOCS)
        ordinals = frozenset(range(0, index.docs.letters(doc) // index.params.stride, 6))
        keys = []
        with db.transaction() as session:
            for account in place.customers:
                key = authenticate(session, account.key)
                assert isinstance(key, KeyView)
                guard.keep_coverage(session, key, {doc: ordinals}, None)
                keys.append(key)

        def block(key: KeyView, document: int) -> None:
            with db.transaction() as session:
                strike(session, key, document)

        def refused(key: KeyView) -> bool:
            with db.transaction() as session:
                check = guard.with_tally(session, key, PASS)
                if check.hold is not None:
                    drop_hold(session, check.hold)
                return check.refuse

        first, second, third = keys
        block(first, doc)
        block(second, doc)
        for _ in range(3):
            block(third, other)
        assert not any(refused(key) for key in keys)  # two blocks of this document in all
        block(first, doc)
        assert refused(first) and refused(second)  # three in all: one of its own is enough
        assert not refused(third)  # none of its own on this document


def taken_until_exhausted(
    db: Database, client: httpx.Client, parts: list[str], stream: bool = False
) -> list[str]:
    """The pieces a customer was sent in order until one was blocked for its limit of the
    document (those blocked for a join are skipped)."""
    sent: list[str] = []
    for piece in parts:
        if delivered(piece, ask(client, piece, stream)):
            sent.append(piece)
        elif events(db, EXHAUSTED):
            break
    assert events(db, EXHAUSTED)
    return sent


def test_a_second_customer_sent_the_same_replies_is_not_locked_out(
    db: Database, tmp_path: Path, upstream: str
) -> None:
    """One customer that reaches its own limit of a document caps nothing, so another sent the
    same replies afterwards gets every one of them (a document capped by one honest customer's
    replies locked the next one out at its third block)."""
    with shop(db, tmp_path, upstream, 2) as place:
        with client_for(place.url, place.customers[0].key) as first:
            sent = taken_until_exhausted(db, first, pieces(TARGET))
        with client_for(place.url, place.customers[1].key) as second:
            assert [delivered(p, ask(second, p, stream=False)) > 0 for p in sent] == [True] * len(sent)
    assert not events(db, "document_capped") and not events(db, "capped")
    assert not events(db, "coverage") and not events(db, "coverage_capped")


@pytest.mark.parametrize("stream", [False, True])
def test_past_its_limit_a_piece_cut_between_grams_is_blocked_to_that_customer_only(
    db: Database, tmp_path: Path, upstream: str, stream: bool
) -> None:
    """A piece of 25 letters holds no whole gram of the document, only all but an end letter of
    one: past its limit the customer is blocked for it, as every customer is for a capped
    document, while another customer is sent it. (Strikes are set high, so that each block is
    seen and none turns into a refusal.)"""
    with shop(db, tmp_path, upstream, 2, replace(LIMITS, strikes=10)) as place:
        index = open_index(place.root)
        assert index is not None
        stride, width = index.params.stride, index.params.width
        letters = guard_text(TARGET)
        start = len(letters) * 3 // 4 // stride * stride  # a gram far past what the customer took
        cuts = [letters[start + 1 : start + width], letters[start - stride : start - stride + width - 1]]
        assert all(not reply_runs(index, cut)[0] for cut in cuts)  # no whole gram in either
        with client_for(place.url, place.customers[0].key) as first:
            assert taken_until_exhausted(db, first, pieces(TARGET), stream)
            reads = [ask(first, cut, stream) for cut in cuts]
        assert None not in reads  # blocked, not refused
        assert [delivered(cut, read) for cut, read in zip(cuts, reads, strict=True)] == [0, 0]
        with client_for(place.url, place.customers[1].key) as second:
            assert all(delivered(cut, ask(second, cut, stream)) == width - 1 for cut in cuts)
