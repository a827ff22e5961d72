"""Neighbours: a piece too short for a whole gram, seen beside another reply's run."""

from __future__ import annotations

import pytest

from tests.guard.corpus import petitions
from tokenclub.guard.detection.coverage import Deliveries, Refusal, reply_runs
from tokenclub.guard.detection.neighbours import GIVEN, ends_of, seams_of, straddled
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, open_index, writer
from tokenclub.guard.normalize import guard_text

PARAMS = IndexParams.for_leak_length(50, seed=7)  # width 26, stride 5
DOCS = petitions()[10:20]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> GuardIndex:
    root = tmp_path_factory.mktemp("neighbours") / "g"
    with writer(root, PARAMS, capacity=1 << 14) as built:
        built.add(DOCS, [1] * len(DOCS))
    found = open_index(root)
    assert found is not None
    return found


def _straddled(index: GuardIndex, run: str, piece: str) -> frozenset[int]:
    _, edges, _ = reply_runs(index, run)
    assert len(edges) == 1
    found = straddled(index, seams_of(edges[0], index.params), [ends_of(piece, index.params)])[0]
    assert set(found) <= {edges[0].doc}
    return frozenset(found.get(edges[0].doc, ()))


@pytest.mark.parametrize("start", range(100, 110))
def test_the_grams_across_a_seam_are_found_at_every_alignment(index: GuardIndex, start: int) -> None:
    """A run of 35 letters and a piece of 6–25 letters beside it (too short for a whole gram),
    after it and before it: exactly the aligned grams that span the seam and take at least
    `GIVEN` of the piece's letters are found, at every alignment of the run."""
    letters = guard_text(DOCS[6])
    run = letters[start : start + 35]
    seam = start + 35
    for size in range(6, 26):
        # a gram o spans letters 5o to 5o + 26: it starts in the run, ends GIVEN+ letters into the piece
        after = _straddled(index, run, letters[seam : seam + size])
        assert after == {
            o for o in range(len(letters) // 5) if 5 * o < seam and GIVEN <= 5 * o + 26 - seam <= size
        }
        # it starts GIVEN+ letters before the run, in the piece, and ends in the run
        before = _straddled(index, run, letters[start - size : start])
        assert before == {
            o for o in range(len(letters) // 5) if GIVEN <= start - 5 * o <= size and 5 * o + 26 > start
        }


def test_a_piece_from_elsewhere_straddles_nothing(index: GuardIndex) -> None:
    letters = guard_text(DOCS[6])
    run = letters[200:235]
    for other in (guard_text(DOCS[7])[200:225], letters[240:265], "요즘 날씨가 많이 따뜻해져서 주말에"):
        assert _straddled(index, run, other) == frozenset()


def test_a_short_neighbour_joins_a_run_whichever_is_scanned_first(index: GuardIndex) -> None:
    """35 letters and the 16 after them are 51 in a row: the second claimed is refused, whether
    it is the run (the piece's ends were kept) or the piece (the run's edge was kept). 35 and
    the 8 after them (43 letters) join nothing."""
    letters = guard_text(DOCS[6])
    run, piece, short = letters[300:335], letters[335:351], letters[335:343]
    assert reply_runs(index, run)[0] and reply_runs(index, piece) == ({}, [], {})

    def claim(sent: Deliveries, reply: str, text: str, now: float) -> Refusal | None:
        own, own_edges, _ = reply_runs(index, text)
        return sent.claim(reply, own, now, ends_of(text, PARAMS), own_edges, index=index)

    for first, second in ((run, piece), (piece, run)):
        sent = Deliveries("g", PARAMS, window_s=60)
        assert claim(sent, "a", first, 0) is None
        assert claim(sent, "b", second, 1) == Refusal(6)
    sent = Deliveries("g", PARAMS, window_s=60)
    assert claim(sent, "a", run, 0) is None
    assert claim(sent, "b", short, 1) is None
    forgetful = Deliveries("g", PARAMS, window_s=60, ends_kept=1)
    assert claim(forgetful, "a", piece, 0) is None
    assert claim(forgetful, "x", "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께", 1) is None
    assert claim(forgetful, "b", run, 2) is None  # the piece's ends were pushed out: not seen


def test_a_piece_beside_a_refused_run_is_seen_once_its_document_is_capped(index: GuardIndex) -> None:
    """A refused reply's run is kept apart (`attempt`): the short piece after it straddles it
    for a capped document only, never for the reply itself or for the reader's own partner."""
    letters = guard_text(DOCS[6])
    run, piece = letters[300:335], letters[335:351]
    assert reply_runs(index, piece) == ({}, [], {})
    sent = Deliveries("g", PARAMS, window_s=60)
    sent.attempt("a", reply_runs(index, run)[1], 0)
    ends = ends_of(piece, PARAMS)
    expected = _straddled(index, run, piece)
    assert expected

    def claim(reply: str, capped: set[int], now: float = 1, own: int | None = None) -> Refusal | None:
        return sent.claim(reply, {}, now, ends, (), own, index, capped)

    assert claim("b", {7}) is None  # not capped: the refused run joins nothing
    assert claim("c", {6}) == Refusal(6, expected)
    assert claim("c", {6}, own=1) is None  # partner 1 reads its own text
    assert claim("a", {6}) is None
    assert claim("c", {6}, now=61) is None  # the run left the window


def test_a_refused_run_joins_nothing(index: GuardIndex) -> None:
    """Letters 300–380 asked in three replies, the first refused: the 16-letter piece and the
    run after it (45 letters that went out) join nothing. Had the first gone out, the piece
    would complete 51 letters with it and be refused."""
    letters = guard_text(DOCS[6])
    refused, piece, run = letters[300:335], letters[335:351], letters[351:380]

    def claim(sent: Deliveries, reply: str, text: str, now: float) -> Refusal | None:
        own, own_edges, _ = reply_runs(index, text)
        return sent.claim(reply, own, now, ends_of(text, PARAMS), own_edges, index=index)

    apart = Deliveries("g", PARAMS, window_s=60)
    apart.attempt("a", reply_runs(index, refused)[1], 0)
    assert claim(apart, "b", piece, 1) is None
    assert claim(apart, "c", run, 2) is None
    together = Deliveries("g", PARAMS, window_s=60)
    assert claim(together, "a", refused, 0) is None
    assert claim(together, "b", piece, 1) == Refusal(6)
