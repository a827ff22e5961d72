"""Coverage arithmetic, the gram→document table, and the operator's view through the program."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cli.helpers import run_cli, run_json
from tests.guard.corpus import petitions
from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.keys import create_key
from tokenclub.guard.audits.worst_case import pieces
from tokenclub.guard.detection.coverage import (
    CappedGrams,
    CappedStream,
    Deliveries,
    Limits,
    Refusal,
    capping_letters,
    counted_letters,
    covered_letters,
    reply_grams,
    reply_runs,
    standing,
    unsplitmix,
)
from tokenclub.guard.hashing import splitmix
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, open_index, writer
from tokenclub.guard.indexing.parts import guard_root
from tokenclub.guard.normalize import guard_text, nfkc_starts, normalize
from tokenclub.guard.service import GatewayGuard
from tokenclub.guard.state.coverage_store import add_grams
from tokenclub.guard.state.events import EXHAUSTED, record_event
from tokenclub.home import open_database
from tokenclub.settings import Settings

PARAMS = IndexParams.for_leak_length(50, seed=7)  # width 26, stride 5
DOCS = petitions()[10:20]
LIMITS = Limits(customer=0.02, document=0.03, window_s=3600, reserve=49, floor=50)


def test_pieces_of_other_replies_join_into_a_leak() -> None:
    """Grams 26 letters every 5: ordinal k spans letters 5k to 5k + 26. Two replies whose runs
    (gaps of up to 2·4 letters bridged) join into 42+ letters (50 − 2·4), more than either
    alone, are a leak."""
    sent = Deliveries("g", PARAMS, window_s=60)
    assert sent.length == 42
    assert sent.claim("a", {1: frozenset({0})}, now=0) is None
    assert sent.claim("b", {1: frozenset({6})}, now=1) == Refusal(1)  # 0–26 and 30–56: a gap of 4, joined
    assert sent.claim("c", {1: frozenset({8})}, now=2) is None  # 40–66: a gap of 14 after a's
    assert sent.claim("d", {1: frozenset({0})}, now=3) is None  # the same phrase again: nothing new
    assert sent.claim("e", {2: frozenset({1})}, now=4) is None  # another document
    assert sent.claim("f", {1: frozenset({4})}, now=5) == Refusal(1)  # 20–46 bridges a's and c's: 0–66
    assert sent.claim("h", {1: frozenset({20})}, now=7) is None
    assert sent.claim("h", {1: frozenset({26})}, now=8) is None  # a reply's own pieces do not join
    assert sent.claim("i", {1: frozenset({4})}, now=70) is None  # the others left the window
    assert set(sent._sent) == {1}  # document 2, never claimed again, is forgotten all the same


@pytest.mark.parametrize("doc", [10, 77, 230])
def test_joined_runs_are_measured_in_nfkc_letters(guard_index: GuardIndex, doc: int) -> None:
    """Pieces 30 letters apart join (gaps of 4); under a verdict in NFKC letters the joined run is
    a leak only once the document's letters it spans, widened by 4 at each end, hold 50 NFKC
    letters (counted by whole blocks of 5 from the document table); under guard letters the
    second piece is one already."""
    normalized = normalize(petitions()[doc])
    starts = nfkc_starts(normalized.letters, normalized.owners)
    expected = next(step for step in range(1, 30) if starts[: 30 * step + 30].sum() >= 50)
    for letters, refused_at in ((50, expected), (0, 1)):
        sent = Deliveries("g", guard_index.params, window_s=60, leak_letters=letters)
        for step in range(refused_at + 1):
            refusal = sent.claim(f"r{step}", {doc: frozenset({6 * step})}, now=step, index=guard_index)
            assert refusal == (Refusal(doc) if step == refused_at else None), (letters, step)
    assert expected >= 3  # 50 Korean letters need 120 guard letters and more


@pytest.mark.parametrize("doc", [10, 230])
def test_a_run_of_the_join_share_is_stopped_alone(guard_index: GuardIndex, doc: int) -> None:
    """Under NFKC joins with a share of 3 %, one reply's own run of a document is refused once it
    spans 3 % of the document's guard letters (at least a join's 42), though it holds fewer
    than 50 NFKC letters; without the share it passes alone, and a shorter one passes either way."""
    least = max(42, math.ceil(0.03 * guard_index.docs.letters(doc)))
    grams = next(k for k in range(1, 100) if 5 * (k - 1) + 26 >= least)  # a run of k grams: 5k + 21 letters
    assert (guard_index.docs.nfkc_letters(doc, -4, 5 * (grams - 1) + 30) or 50) < 50
    for share, refused in ((0.03, True), (0.0, False)):
        sent = Deliveries("g", guard_index.params, window_s=60, leak_letters=50, join_share=share)
        assert sent.claim("short", {doc: frozenset(range(grams - 1))}, now=0, index=guard_index) is None
        run = {doc: frozenset(range(100, 100 + grams))}
        assert sent.claim("long", run, now=1, index=guard_index) == (Refusal(doc) if refused else None)


def test_covered_letters_is_the_union_of_gram_spans() -> None:
    assert covered_letters([], PARAMS, 1000) == 0
    assert covered_letters([3], PARAMS, 1000) == 26
    assert covered_letters([3, 3, 4], PARAMS, 1000) == 31  # neighbours overlap by 21 letters
    assert covered_letters([0, 10], PARAMS, 1000) == 52  # apart: each counts whole
    assert covered_letters([10], PARAMS, 60) == 10  # the last gram ends with the document


def test_the_longest_run_is_free_up_to_the_floor() -> None:
    assert counted_letters([3, 4], PARAMS, 1000, 50) == 0  # one stock phrase: free
    assert counted_letters([0, 10], PARAMS, 1000, 50) == 26  # two places: the second counts
    assert counted_letters(range(0, 10), PARAMS, 1000, 50) == 71 - 50  # a run past the floor
    assert counted_letters([0, 10], PARAMS, 1000, 0) == 52


def test_a_document_is_capped_by_more_than_one_customers_own_taking() -> None:
    assert capping_letters({}, PARAMS, 1000, 0) == 0
    assert capping_letters({1: {0, 10, 20}}, PARAMS, 1000, 0) == 0  # one customer: its own limit's business
    assert capping_letters({1: {0, 10, 20}, 2: {10}, 3: set()}, PARAMS, 1000, 0) == 0  # sent the same
    assert capping_letters({1: {0, 10}, 2: {20}}, PARAMS, 1000, 0) == 78  # the second added a place
    assert capping_letters({1: {0, 1}, 2: {20}}, PARAMS, 1000, 50) == 26  # the longest run stays free


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(1, 5), st.sets(st.integers(0, 60), max_size=12), max_size=5))
def test_capping_letters_are_the_unions_or_nothing(by_customer: dict[int, set[int]]) -> None:
    union = set().union(*by_customer.values())
    got = capping_letters(by_customer, PARAMS, 400, 50)
    alone = [counted_letters(grams, PARAMS, 400, 50) for grams in by_customer.values()]
    assert got in (0, counted_letters(union, PARAMS, 400, 50))
    assert (got > 0) == (counted_letters(union, PARAMS, 400, 50) > max(alone, default=0))
    if any(grams >= union for grams in by_customer.values()):
        assert got == 0  # one customer was sent everything the others were


def test_limits_are_shares_and_need_customer_within_document() -> None:
    assert LIMITS.customer_letters(1000) == 20 and LIMITS.customer_letters(10_000) == 200
    assert LIMITS.document_letters(10_000) == 300 and LIMITS.document_letters(10) == 1
    with pytest.raises(ValueError, match="customer"):
        Limits(customer=0.2, document=0.1, window_s=60)


def test_standing_counts_reservations_and_capped_documents() -> None:
    lengths = {0: 10_000, 1: 10_000}
    # 192 letters of document 0 in two runs (counted: 192 - 50), one 26-letter run of document 1
    mine = {0: frozenset([*range(0, 20), *range(30, 40)]), 1: frozenset({0})}
    below = standing(mine, (), 49, PARAMS, lengths, LIMITS)
    assert below.limited == () and below.letters == 191 and below.limit == 200
    reserved = standing(mine, (), 98, PARAMS, lengths, LIMITS)
    assert reserved.exhausted == reserved.limited == (0,)
    assert reserved.doc == 0 and reserved.letters == 240 and reserved.limit == 200
    assert standing(mine, (1,), 0, PARAMS, lengths, LIMITS).limited == ()  # its one phrase of 1 is free
    refused_once = standing(mine, (1,), 0, PARAMS, lengths, LIMITS, asked=(1,))  # a block counts
    assert refused_once.capped == refused_once.limited == (1,)
    capped = standing(mine, (0, 1), 0, PARAMS, lengths, LIMITS)
    assert capped.capped == (0,) and capped.exhausted == ()


def test_splitmix_is_undone() -> None:
    words = np.random.default_rng(3).integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2)
    assert (unsplitmix(splitmix(words)) == words).all()


def test_capped_grams_see_pieces_between_aligned_starts(tmp_path: Path) -> None:
    """Pieces of 28 letters hold a whole aligned gram or 25 of one; fresh text holds neither, and
    other documents only where they share the capped one's text."""
    with writer(tmp_path / "g", PARAMS, capacity=1 << 14) as built:
        built.add(DOCS[:4], [1, 1, 2, 2])
        built.add(DOCS[4:], [3] * 6)
    index = open_index(tmp_path / "g")
    assert index is not None
    capped = CappedGrams(index, [6])
    letters = guard_text(DOCS[6])
    for start in range(100, 110):
        piece = letters[start : start + 28]
        assert set(capped.hits(piece)) == {6}, start
        assert bool(reply_grams(index, piece)) == ((-start) % 5 <= 2), start  # whole grams: 3 in 5
    assert capped.hits(letters[102:126]) == {}  # 24 letters: out of reach
    text = DOCS[6][300:700]
    carry = CappedStream()
    fed: dict[int, frozenset[int]] = {}
    for at in range(0, len(text), 3):  # streamed: the same grams, whatever the pieces
        for doc, ordinals in capped.feed(carry, text[at : at + 3]).items():
            fed[doc] = fed.get(doc, frozenset()) | ordinals
    assert fed == capped.hits(text) and len(fed[6]) > 20
    seen = 0
    for other in (*DOCS[:3], *petitions()[300:303]):
        for piece in pieces(other, 200):
            read = guard_text(piece)
            shared = any(read[i : i + 25] in letters for i in range(len(read) - 24))
            assert shared or not capped.hits(piece)
            seen += shared
    assert seen
    assert capped.hits("요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다.") == {}


def test_the_document_table_gives_every_gram_its_document_and_place(tmp_path: Path) -> None:
    with writer(tmp_path / "g", PARAMS, capacity=1 << 14) as built:
        built.add(DOCS[:4], [1, 1, 2, 2])
        built.add(DOCS[4:], [3] * 6)
    index = open_index(tmp_path / "g")
    assert index is not None
    assert len(index.docs.documents) == 10
    assert index.docs.letters(5) == len(guard_text(DOCS[5])) and index.docs.partner(5) == 3
    piece = guard_text(DOCS[7])[500:528]  # 28 letters: one stride-aligned gram at most
    found = reply_grams(index, piece)
    assert set(found) <= {7}
    whole, _, taken = reply_runs(index, DOCS[2])
    assert len(whole[2]) == (len(guard_text(DOCS[2])) - 26) // 5 + 1  # every gram of it
    assert taken[2] < whole[2]  # less its stock phrases that other documents hold too
    assert 2 not in reply_grams(index, DOCS[2], own=2)  # the reader's own partner's text
    assert (
        reply_grams(index, "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다.") == {}
    )
    grams = sum(s.elements for s in index.segments)
    assert index.stats()["document_table_bytes"] == index.docs.nbytes == 16 * grams + 12 * 10


def test_the_operator_sees_who_collected_what(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli(home, "init").returncode == 0
    with writer(guard_root(home), PARAMS, capacity=1 << 14) as built:
        built.add(DOCS[:3], [1, 1, 1])
    index = open_index(guard_root(home))
    assert index is not None
    db = open_database(Settings(home=home))
    try:
        with db.transaction() as session:
            customer = create_customer(session, "손님").id
            _, key = create_key(session, customer)
            other = create_customer(session, "이웃").id
            _, other_key = create_key(session, other)
            now = 2_000_000_000
            add_grams(session, customer, key.id, index.folder.name, {1: frozenset({0, 1})}, {1: 1}, now, 0)
            add_grams(session, other, other_key.id, index.folder.name, {1: frozenset({40})}, {1: 1}, now, 0)
            for verdict in (EXHAUSTED, "capped", "joined"):  # two strikes; a join is none
                record_event(
                    session,
                    request_id=verdict,
                    stage="output",
                    verdict=verdict,
                    action="blocked",
                    customer_id=customer,
                    reasons=("document 1",),
                )
    finally:
        db.dispose()
    rows = run_json(home, "guard", "coverage", "--document", "1")
    by = {str(r["customer_id"]): r for r in rows}
    assert by[str(customer)]["letters"] == 31 and by[str(customer)]["grams"] == 2
    assert by[str(other)]["letters"] == 26
    assert by[str(customer)]["blocked"] == by["all"]["blocked"] == 2 and by[str(other)]["blocked"] == 0
    assert by["all"]["letters"] == 57 and by["all"]["partner_id"] == 1
    mine = run_json(home, "guard", "coverage", "--customer", str(customer))
    assert [(r["customer_id"], r["document"]) for r in mine] == [(customer, 1)]
    wrong = run_cli(home, "guard", "coverage", "--document", "99")
    assert wrong.returncode != 0 and "--document 99" in wrong.stderr


def test_coverage_counts_no_gram_that_a_second_document_holds(tmp_path: Path) -> None:
    """A passage two documents share (a quoted paragraph, a stock phrase) is the taking of
    neither: a reply that carries it joins and is scanned as before, but adds nothing to any
    customer's coverage; the letters around it still count, to the gram."""
    quoted = DOCS[1][:120]
    second = DOCS[4][:400] + " " + quoted + " " + DOCS[4][400:800]
    with writer(tmp_path / "g", PARAMS, capacity=1 << 14) as built:
        built.add([DOCS[1], DOCS[3]], [1, 1])
        built.add([second], [2])
    index = open_index(tmp_path / "g")
    assert index is not None
    grams, _, taken = reply_runs(index, quoted)
    assert set(grams) == {0, 2} and grams[0] and grams[2]  # both hold it, for the joins
    assert taken == {}
    own = guard_text(DOCS[1])[300:420]  # the first document's own letters only
    grams, _, taken = reply_runs(index, own)
    assert set(grams) == {0} and taken == grams
    assert len(taken[0]) == len(grams[0]) >= (120 - 26) // 5
    assert reply_grams(index, own) == taken
    capped = CappedGrams(index, [0])  # nor is the shared passage refused once the first is capped
    assert capped.hits(quoted) == {} and set(capped.hits(own)) == {0}


def test_a_phrase_a_document_holds_in_several_places_is_taken_once(tmp_path: Path) -> None:
    """The same letters of a reply that match several places of one document are one piece of
    it: coverage counts one place; the joins still see them all."""
    phrase = "자유한국당 국회의원들은 즉시 사퇴하라"  # 26+ guard letters, held at three places
    text = f"{DOCS[5][:300]} {phrase} {DOCS[5][300:600]} {phrase} {DOCS[5][600:900]} {phrase}."
    with writer(tmp_path / "g", PARAMS, capacity=1 << 14) as built:
        built.add([text, DOCS[6]], [1, 1])
    index = open_index(tmp_path / "g")
    assert index is not None
    grams, _, taken = reply_runs(index, f"오늘 뉴스를 보니 {phrase} 하는 목소리가 컸다")
    places = sorted(grams[0])
    assert places[-1] - places[0] > 100  # three places, far apart
    run = sorted(taken[0])  # one of them: its grams, 5 letters apart in one run of the phrase's letters
    assert (run[-1] - run[0]) * 5 + 26 <= len(guard_text(phrase))
    assert len(places) > 2 * len(run)  # 4 or 5 grams a place, by its alignment
    piece = guard_text(text)[400:480]  # one run of its own letters: every gram counts
    grams, _, taken = reply_runs(index, piece)
    assert taken == grams and len(taken[0]) >= (80 - 26) // 5


def test_past_its_limit_a_reply_with_more_of_the_document_is_blocked_and_takes_nothing(
    tmp_path: Path,
) -> None:
    """`GatewayGuard.joined` with the document exhausted: a text with a gram the customer does
    not hold is blocked (`exhausted`) and returns no grams to keep; one with only grams it
    holds, or none of the document, goes out as before."""
    with writer(tmp_path / "g", PARAMS, capacity=1 << 14) as built:
        built.add(DOCS[:4], [1, 1, 2, 2])
    guard = GatewayGuard(tmp_path / "g", "block", "strict", check_every_s=0.0, limits=LIMITS)
    letters = guard_text(DOCS[2])
    held_piece, new_piece = letters[100:160], letters[1000:1060]
    decision, held = guard.joined("a", held_piece)
    assert decision is None and set(held) == {2}
    exhausted = {2: held[2]}
    decision, taken = guard.joined("b", new_piece, exhausted=exhausted)
    assert decision is not None and decision.verdict == EXHAUSTED and decision.action == "blocked"
    assert decision.partner_id == 2 and decision.reasons == ("document 2",) and taken == {}
    index = guard.scanner.current()
    assert index is not None
    assert decision.matched_length == covered_letters(reply_grams(index, new_piece)[2], PARAMS, 1 << 62)
    decision, again = guard.joined("c", held_piece, exhausted=exhausted)
    assert decision is None and again == held
    decision, fresh = guard.joined(
        "d", "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다.", exhausted=exhausted
    )
    assert decision is None and fresh == {}
