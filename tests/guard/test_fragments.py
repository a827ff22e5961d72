"""Fragments and joins on real petitions: neighbouring pieces join, others and fresh text never do."""

from __future__ import annotations

import random
from pathlib import Path

from tests.guard.conftest import partner_of
from tests.guard.corpus import fresh_texts, petitions
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.guard.detection.fragments import Fragment, fragments_of, join, joins
from tokenclub.guard.detection.scanner import LeakScanner, Policy
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, open_index, writer
from tokenclub.guard.normalize import guard_text
from tokenclub.guard.state.fragment_store import KEPT, load_fragments, save_fragments

BEFORE, AFTER = "요청하신 구절 → ", " (끝) 더 필요하시면 말씀해 주세요."


def piece_pairs(gap: int, count: int = 100, seed: int = 7) -> list[tuple[int, str, str]]:
    """(document, piece, next piece) from random petitions: 16–21 characters each, `gap`
    characters apart, each piece below the leak length in guard letters."""
    rng = random.Random(seed)
    docs = petitions()
    out: list[tuple[int, str, str]] = []
    while len(out) < count:
        doc = rng.randrange(len(docs))
        text = docs[doc]
        if len(text) < 200:
            continue
        start, first, second = rng.randrange(len(text) - 100), rng.randint(16, 21), rng.randint(16, 21)
        a = text[start : start + first]
        b = text[start + first + gap : start + first + gap + second]
        if max(len(guard_text(a)), len(guard_text(b))) < 50:
            out.append((doc, a, b))
    return out


def reply(piece: str) -> str:
    return BEFORE + piece + AFTER


def test_neighbouring_pieces_join_in_either_order(guard_index: GuardIndex, scanner: LeakScanner) -> None:
    counted = joined = 0
    for doc, a, b in piece_pairs(gap=0):
        first, second = reply(a), reply(b)
        if scanner.scan(first).leaked or scanner.scan(second).leaked:
            continue  # the words around the piece happen to go on like the source: a leak alone
        if min(len(guard_text(a)), len(guard_text(b))) < 34:
            continue  # a piece this short may hold no aligned gram: not seen (documented)
        counted += 1
        ends, starts = fragments_of(guard_index, first), fragments_of(guard_index, second)
        # the later reply checked against the earlier one, and the earlier against the later
        ways = [joins(starts, ends, guard_index), joins(ends, starts, guard_index)]
        hits = [[j for j in found if j.first in ends and j.second in starts] for found in ways]
        if all(len(h) == 1 and partner_of(doc) in h[0].partners for h in hits):
            joined += 1
            hit = hits[0][0]
            assert join(hit.second, hit.first, guard_index) is None  # a join has an order
            assert hit.seam_grams >= guard_index.params.hits - 1
    assert (counted, joined) == (35, 35)


def test_pieces_apart_do_not_join(guard_index: GuardIndex) -> None:
    found = 0
    for _, a, b in piece_pairs(gap=4):
        ends, starts = fragments_of(guard_index, reply(a)), fragments_of(guard_index, reply(b))
        found += len(joins(starts, ends, guard_index))
    assert found == 0


def test_fragments_of_fresh_text_never_join(guard_index: GuardIndex) -> None:
    """7,000 fresh texts leave 5 fragments: grams they share with petitions. Their chance filter
    hits (about 2 % of positions) are no document's, so no partner's, and leave none."""
    texts = [t for source in fresh_texts().values() for t in source]
    fragments = [f for text in texts for f in fragments_of(guard_index, text)]
    assert (len(fragments), sum(f.hits for f in fragments)) == (5, 7)
    assert all(f.partners for f in fragments)
    assert [a for a in fragments for b in fragments if a is not b and join(a, b, guard_index)] == []


def test_fragments_keep_keyed_values_not_letters(guard_index: GuardIndex) -> None:
    _, a, _ = piece_pairs(gap=0)[0]
    fragment = fragments_of(guard_index, reply(a))[0]
    width, stride = guard_index.params.width, guard_index.params.stride
    assert len(fragment.head) == fragment.first + width + stride  # a value per letter, and the start
    letters = {ord(c) for c in guard_text(reply(a))}
    assert not letters & {*fragment.head, *fragment.tail}
    assert min(*fragment.head, *fragment.tail) > 1 << 32  # no value a letter's code point


def _fragment(n: int) -> Fragment:
    """A fragment the store keeps whole: its letters too (the runs it joined, in NFKC letters)."""
    head, tail = tuple(range(n, n + 30)), tuple(range(2**63 + n, 2**63 + n + 31))
    return Fragment(n, (1, 2), 3, head, 4, tail, letters=10 * n)


def test_store_keeps_the_customers_recent_fragments_of_one_generation(db: Database) -> None:
    now = 1_800_000_000
    with db.transaction() as session:
        customer = create_customer(session, "손님").id
        other = create_customer(session, "다른 손님").id
        key, mine = create_key(session, customer)[1].id, create_key(session, other)[1].id
        save_fragments(session, customer, key, "gen-000001", [_fragment(1), _fragment(2)], now - 4000, 0)
        save_fragments(session, customer, key, "gen-000001", [_fragment(3)], now, now - 3600)
        save_fragments(session, customer, key, "gen-000002", [_fragment(4)], now, now - 3600)
        save_fragments(session, other, mine, "gen-000001", [_fragment(5)], now, now - 3600)
    with db.transaction() as session:
        # the first two were older than the window when the customer was written again: deleted
        assert load_fragments(session, customer, "gen-000001", 0) == [_fragment(3)]
        assert load_fragments(session, customer, "gen-000002", now - 3600) == [_fragment(4)]
        assert load_fragments(session, customer, "gen-000001", now + 1) == []
        assert load_fragments(session, other, "gen-000001", 0) == [_fragment(5)]


def test_store_reads_only_the_newest_fragments(db: Database) -> None:
    with db.transaction() as session:
        customer = create_customer(session, "손님").id
        key = create_key(session, customer)[1].id
        made = [_fragment(n) for n in range(KEPT + 5)]
        save_fragments(session, customer, key, "gen-000001", made, 100, 0)
    with db.transaction() as session:
        assert load_fragments(session, customer, "gen-000001", 0) == made[::-1][:KEPT]


def stream(scanner: LeakScanner, text: str, earlier: list[Fragment], policy: Policy, seed: int) -> str:
    """`text` fed in random pieces of 1–6 characters; what the client would get."""
    rng, out, at = random.Random(seed), [], 0
    live = scanner.stream(policy, earlier=earlier)
    while at < len(text):
        size = rng.randint(1, 6)
        out.append(live.feed(text[at : at + size]))
        at += size
    return "".join([*out, live.finish()])


def test_a_stream_is_cut_where_it_joins_an_earlier_piece(
    guard_index: GuardIndex, scanner: LeakScanner
) -> None:
    cut = passed = 0
    slack = 2 * guard_index.params.stride  # the widened start, by whole syllables, and chance
    for i, (_, a, b) in enumerate(piece_pairs(gap=0)):
        first, second = reply(a), reply(b)
        if scanner.scan(first).leaked or scanner.scan(second).leaked:
            continue
        if min(len(guard_text(a)), len(guard_text(b))) < 34:
            continue
        earlier = fragments_of(guard_index, first)
        got = stream(scanner, second, list(earlier), "block", seed=i)
        assert BEFORE.startswith(got)  # nothing of the piece is sent
        assert len(guard_text(got)) >= len(guard_text(BEFORE)) - slack
        redacted = stream(scanner, second, list(earlier), "redact", seed=i)
        assert redacted.startswith(got + "[…]") and b not in redacted
        later = fragments_of(guard_index, second)  # asked for in the other order
        assert BEFORE.startswith(stream(scanner, first, list(later), "block", seed=i))
        cut += 1
    fresh = [t for source in fresh_texts().values() for t in source][:300]
    earlier = [f for _, a, _ in piece_pairs(gap=0) for f in fragments_of(guard_index, reply(a))]
    for i, text in enumerate(fresh):
        passed += stream(scanner, text, list(earlier), "block", seed=i) == text
    assert (cut, passed) == (35, 300)


def test_screened_joins_equal_testing_every_pair(guard_index: GuardIndex) -> None:
    """`joins` screens all pairs against earlier fragments at once; it must find exactly what
    testing each pair with `join` finds, for fragments at the very ends of their replies too."""
    pieces = [p for _, a, b in piece_pairs(gap=0) for p in (f"네: {a}", f"{b} 끝")]
    fresh = [t for source in fresh_texts().values() for t in source][:600]
    pool = [f for text in pieces + fresh for f in fragments_of(guard_index, text)]
    rng = random.Random(3)
    found = 0
    for _ in range(80):
        new, earlier = rng.sample(pool, 3), rng.sample(pool, 32)
        pairs = [(a, b) for a in new for b in new if a is not b]
        pairs += [pair for f in new for other in earlier for pair in ((other, f), (f, other))]
        every = {(id(j.first), id(j.second)) for a, b in pairs if (j := join(a, b, guard_index))}
        screened = {(id(j.first), id(j.second)) for j in joins(new, earlier, guard_index)}
        assert screened == every
        found += len(every)
    assert found == 43  # neighbouring pieces drawn together, both ways round


def test_a_long_leak_length_screens_pairs_without_seams(tmp_path: Path) -> None:
    """From a leak length of 70 guard letters the stride is so long that no seam holds a chain's
    grams: `joins` finds nothing at a seam (the coverage's joins still count the pieces) instead
    of failing on an empty screen, which the gateway answered with 500."""
    docs = petitions()[:40]
    with writer(tmp_path / "guard", IndexParams.for_leak_length(100, seed=5)) as index:
        index.add(docs, [1] * len(docs))
    long_index = open_index(tmp_path / "guard")
    assert long_index is not None
    text = next(d for d in docs if len(d) > 400)
    earlier = fragments_of(long_index, reply(text[100:160]))
    new = fragments_of(long_index, reply(text[160:220]))
    assert earlier and new
    assert joins(new, earlier, long_index) == []
