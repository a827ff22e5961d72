"""The accumulated-copy tally: its arithmetic, real replies against a real index, and the table."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from tests.guard.conftest import partner_of
from tests.guard.corpus import fresh_texts, petitions
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.accounts.partners import apply
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import GuardTally
from tokenclub.db.schema import ApiKey
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.detection.accumulate import (
    BUCKETS,
    Budget,
    bucket_of,
    credits,
    first_live_bucket,
    reply_credits,
    standing,
    worst,
)
from tokenclub.guard.detection.scanner import LeakScanner, LeakSpan, StreamScanner
from tokenclub.guard.indexing.index import GuardIndex
from tokenclub.guard.normalize import guard_text
from tokenclub.guard.state.tallies import add_credits, window_totals

BUDGET = Budget(soft=100, hard=200, window_s=3600, min_hits=2, allowance=0.1)


def span(matched: int, *partners: int) -> LeakSpan:
    return LeakSpan(0, matched, matched, partners)


def test_credits_count_each_attributed_partner_less_the_reply_allowance() -> None:
    spans = [span(40, 1), span(31, 1, 2), span(60)]
    assert credits(spans, 100, 0.1) == {1: 61, 2: 21}
    assert credits(spans, 100, 0.0) == {1: 71, 2: 31}
    # a long reply with the same runs: the allowance (0.1 × 400 = 40) forgives partner 2's run
    assert credits(spans, 400, 0.1) == {1: 31}
    assert credits([], 10, 0.1) == {}


def test_buckets_and_the_window() -> None:
    assert BUDGET.bucket_s == 300
    assert bucket_of(0, BUDGET) == 0
    assert bucket_of(299.9, BUDGET) == 0
    assert bucket_of(300, BUDGET) == 1
    assert first_live_bucket(3600 * 10, BUDGET) == 120 - BUCKETS + 1


def test_standing_and_worst_partner() -> None:
    assert standing(99, BUDGET) == "clear"
    assert standing(100, BUDGET) == "strict"
    assert standing(199, BUDGET) == "strict"
    assert standing(200, BUDGET) == "stopped"
    assert worst({}) == (None, 0)
    assert worst({3: 50, 1: 80, 2: 80}) == (1, 80)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"soft": 300, "hard": 200}, "soft (300) <= hard (200)"),
        ({"window_s": 5}, "window_s must be at least 12"),
        ({"min_hits": 1}, "min_hits must be at least 2"),
        ({"allowance": 1.0}, "allowance must be in [0, 1)"),
    ],
)
def test_bad_budgets_are_refused(fields: dict[str, float], message: str) -> None:
    values = {"soft": 100, "hard": 200, "window_s": 3600} | fields
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Budget(**values)  # type: ignore[arg-type]


def test_settings_turn_accumulation_off_with_a_zero_soft_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GuardSettings().budget() == Budget(800, 1600, 3600, 2, 0.1)
    monkeypatch.setenv("TOKENCLUB_GUARD_ACCUMULATE_SOFT", "0")
    assert GuardSettings().budget() is None
    monkeypatch.setenv("TOKENCLUB_GUARD_ACCUMULATE_SOFT", "2000")
    with pytest.raises(ValidationError, match=r"ACCUMULATE_SOFT \(2000\) must not exceed .*_HARD \(1600\)"):
        GuardSettings()


def clause(doc: str, start: int, letters: int) -> str:
    """Whole words of `doc` from character `start` up to about `letters` guard letters."""
    words = doc[start:].split()
    out: list[str] = []
    while words and len(guard_text(" ".join([*out, words[0]]))) <= letters:
        out.append(words.pop(0))
    return " ".join(out)


def test_a_copied_clause_below_the_leak_length_is_credited_to_its_partner(
    guard_index: GuardIndex, scanner: LeakScanner
) -> None:
    doc = 40
    piece = clause(petitions()[doc], 60, 46)
    assert 38 <= len(guard_text(piece)) <= 46
    assert not scanner.scan(piece).leaked  # the per-reply guard lets it through
    got = reply_credits(guard_index, piece, BUDGET)
    assert set(got) == {partner_of(doc)}
    assert 31 - len(guard_text(piece)) // 10 <= got[partner_of(doc)] <= len(guard_text(piece))


def test_fresh_text_earns_no_credit(guard_index: GuardIndex) -> None:
    """600 texts the index never saw: six of them hold two chance filter hits a stride apart (a
    31-letter chain, as long as the credits' shortest), and no document holds those grams, so
    none is any partner's and nothing earns credit. (An attribution filter of 4 bits per gram
    gave one of those chance chains, a KLUE premise about elections, to a partner.)"""
    texts = [t for source in fresh_texts().values() for t in source[:200]]
    params = replace(guard_index.params, hits=BUDGET.min_hits, strict_hits=BUDGET.min_hits)
    chains: list[LeakSpan] = []
    for text in texts:
        scanner = StreamScanner(guard_index, params, "redact")
        scanner.feed(text)
        scanner.finish()
        chains += scanner.spans
    assert len(chains) == 6 and {(c.matched, c.partner_ids) for c in chains} == {(31, ())}
    assert [c for c in (reply_credits(guard_index, t, BUDGET) for t in texts) if c] == []


def _key_and_partners(db: Database) -> tuple[int, int, int, int, int]:
    with db.transaction() as session:
        p1 = apply(session, "가나신문", threshold_words=1).id
        p2 = apply(session, "다라출판", threshold_words=1).id
        customer = create_customer(session, "손님").id
        k1 = create_key(session, customer)[1].id
        k2 = create_key(session, customer)[1].id
        other = create_key(session, create_customer(session, "다른 손님").id)[1].id
    return k1, k2, p1, p2, other


def test_tally_sums_a_customers_keys_per_partner_within_the_window(db: Database) -> None:
    k1, k2, p1, p2, other = _key_and_partners(db)
    now = 1_800_000_000.0
    with db.transaction() as session:
        add_credits(session, k1, {p1: 40}, now, BUDGET)
        add_credits(session, k1, {p1: 35, p2: 10}, now + 1, BUDGET)  # same bucket: one row, summed
        add_credits(session, k1, {p1: 5}, now + 600, BUDGET)  # a later bucket
        add_credits(session, k2, {p1: 7}, now, BUDGET)
        add_credits(session, k2, {}, now, BUDGET)
        add_credits(session, other, {p2: 3}, now, BUDGET)
    customer, stranger = _customers(db, k1, other)
    with db.transaction() as session:
        # both keys of one customer draw on one budget; another customer's key is apart
        assert window_totals(session, customer, now + 600, BUDGET) == {p1: 87, p2: 10}
        assert window_totals(session, stranger, now + 600, BUDGET) == {p2: 3}
        assert session.scalar(select(func.count()).select_from(GuardTally)) == 5
        # an hour later the first bucket has left the window; the second is still in it
        assert window_totals(session, customer, now + 3600, BUDGET) == {p1: 5}


def _customers(db: Database, *keys: int) -> list[int]:
    with db.transaction() as session:
        return [session.get(ApiKey, key).customer_id for key in keys]  # type: ignore[union-attr]


def test_crediting_a_key_deletes_its_expired_buckets_only(db: Database) -> None:
    k1, k2, p1, _, _ = _key_and_partners(db)
    now = 1_800_000_000.0
    with db.transaction() as session:
        add_credits(session, k1, {p1: 40}, now, BUDGET)
        add_credits(session, k2, {p1: 40}, now, BUDGET)
        add_credits(session, k1, {p1: 1}, now + 2 * 3600, BUDGET)
    with db.transaction() as session:
        rows = session.execute(select(GuardTally.key_id, GuardTally.letters).order_by(GuardTally.key_id))
        assert [tuple(r) for r in rows] == [(k1, 1), (k2, 40)]
