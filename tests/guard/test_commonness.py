"""Common text is not secret: grams many documents share, and loaded public text, never count."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cli.helpers import run_cli, run_json
from tests.guard.corpus import petitions
from tokenclub.guard.detection.accumulate import Budget, reply_credits
from tokenclub.guard.detection.coverage import reply_grams
from tokenclub.guard.detection.fragments import fragments_of
from tokenclub.guard.detection.scanner import LeakScanner, Policy
from tokenclub.guard.hashing import ReversedRollingHasher, RollingHasher, gram_hash, read_pair
from tokenclub.guard.indexing.commonness import DocumentFrequency, clear_of_shared, repeated
from tokenclub.guard.indexing.index import Commonness, IndexParams, document_keys, open_index, writer
from tokenclub.guard.normalize import guard_text, normalize

NOTICE = "[본 게시물의 일부 내용이 국민청원 요건에 위배되어 관리자에 의해 수정되었습니다. 양해 부탁드립니다.]"
ARTICLE = (
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다. "
    "대한민국의 국민이 되는 요건은 법률로 정한다."
)
DOCS = [text[:300] for text in petitions()[100:130] if len(text) >= 300]
FRESH = "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다. 사람이 정말 많았어요. "


def _index(root: Path, docs: list[str], documents: int = 10, batch: int = 7) -> LeakScanner:
    with writer(root, IndexParams.for_leak_length(50, seed=5), 1 << 16, Commonness(1.0, documents)) as index:
        for first in range(0, len(docs), batch):  # several batches: counts carry across them
            index.add(docs[first : first + batch], [1] * len(docs[first : first + batch]))
    return LeakScanner(open_index(root))


def test_a_notice_in_many_documents_is_not_a_leak_but_their_own_text_is(tmp_path: Path) -> None:
    docs = [f"{text}\n{NOTICE}" for text in DOCS[:12]] + DOCS[12:]
    scanner = _index(tmp_path / "guard", docs)
    assert not scanner.inspect(FRESH + NOTICE + FRESH).leaked
    assert scanner.inspect(FRESH + DOCS[3][40:140] + FRESH).leaked
    # the notice in fewer documents than the threshold stays protected like any text
    rare = _index(tmp_path / "rare", [f"{text}\n{NOTICE}" for text in DOCS[:4]] + DOCS[4:])
    assert rare.inspect(FRESH + NOTICE + FRESH).leaked


STOCK = "간곡히 부탁드립니다 "  # 20 guard letters: shorter than a leak


def _shifted(count: int, stock: int = 0) -> list[str]:
    """The notice in `count` documents, a new alignment in each; the first `stock` of them
    have a stock phrase right before it (a straddling gram is held by those only)."""
    cut = [40 + 7 * i for i in range(count)]
    return [
        f"{text[: cut[i]]}\n{STOCK if i < stock else ''}{NOTICE}\n{text[cut[i] :]}"
        for i, text in enumerate(DOCS[:count])
    ]


def _letters(text: str, start: int, count: int) -> str:
    """The characters of `text` holding its guard letters [start, start + count)."""
    owners = normalize(text).owners
    return text[int(owners[start]) : int(owners[start + count - 1]) + 1]


def _streamed(scanner: LeakScanner, text: str, size: int, policy: Policy = "redact") -> tuple[str, bool]:
    """The released text and the verdict of a stream of `size`-character chunks (every view)."""
    stream = scanner.watch(policy)
    out = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size)) + stream.finish()
    return out, stream.blocked or bool(stream.spans)


def test_a_notice_indexed_one_document_at_a_time_at_shifting_alignments_is_common(tmp_path: Path) -> None:
    """The notice in 10 documents (the threshold), each at a new alignment, indexed one at a
    time: only the first document's alignment reads 9 more documents, the others fewer, and
    chains at those alignments were leaks (docs/leak-guard.md). A hit whose gram overlaps a
    common gram of the reply no longer counts, whole or streamed, in any view."""
    scanner = _index(tmp_path, _shifted(10) + DOCS[10:], batch=1)
    reply = FRESH + NOTICE + FRESH
    assert not scanner.scan(reply).leaked and not scanner.inspect(reply).leaked
    for size in (1, 7, 64):
        assert _streamed(scanner, reply, size) == (reply, False)
        assert _streamed(scanner, reply, size, "block") == (reply, False)
    assert scanner.inspect(FRESH + DOCS[14][40:140] + FRESH).leaked
    # one document fewer than the threshold: still protected like any text
    rare = _index(tmp_path / "rare", _shifted(9) + DOCS[9:], batch=1)
    assert rare.scan(reply).leaked and rare.inspect(reply).leaked


def test_a_unique_passage_of_the_leak_length_is_caught_whole_and_streamed(tmp_path: Path) -> None:
    scanner = _index(tmp_path, _shifted(10) + DOCS[10:], batch=1)
    secret = _letters(DOCS[15], 60, 50)
    reply = FRESH + secret + FRESH
    whole = scanner.inspect(reply)
    assert len(whole.spans) == 1 and whole.spans[0].matched >= 46 and secret not in whole.redacted
    for size in (1, 7, 64):
        out, flagged = _streamed(scanner, reply, size)
        assert flagged and out == whole.redacted
        out, flagged = _streamed(scanner, reply, size, "block")
        assert flagged and out == reply[: whole.spans[0].start]
    # 40 letters hold at most three aligned grams: not a leak
    assert not scanner.inspect(FRESH + _letters(DOCS[15], 60, 40) + FRESH).leaked


def test_a_secret_passage_right_after_a_common_one_is_caught_from_the_leak_length(tmp_path: Path) -> None:
    """Document 3 holds the (common) notice and then its own text: 50 of its own letters after
    the notice are a leak, whole and streamed; 35 are not (a gram that overlaps the notice
    does not count, and 35 letters hold too few grams of their own)."""
    docs = _shifted(10) + DOCS[10:]
    scanner = _index(tmp_path, docs, batch=1)
    start = docs[3].index(NOTICE)
    after = len(guard_text(docs[3][: start + len(NOTICE)]))
    for secret, leaked in ((50, True), (60, True), (35, False)):
        reply = FRESH + docs[3][start : start + len(NOTICE)] + _letters(docs[3], after, secret) + FRESH
        whole = scanner.inspect(reply)
        assert whole.leaked == leaked, secret
        assert _streamed(scanner, reply, 5)[1] == leaked
        assert _streamed(scanner, reply, 5, "block")[1] == leaked
        if leaked:  # the grams of the secret letters, at least five (46 letters)
            assert max(span.matched for span in whole.spans) >= 46


def test_a_stock_phrase_running_into_a_common_notice_is_not_a_leak(tmp_path: Path) -> None:
    """The straddling grams (a stock phrase and the start of the notice) are held by 5 of the
    12 documents only, fewer than the threshold; they overlap the notice's common grams."""
    scanner = _index(tmp_path, _shifted(12, stock=5) + DOCS[12:], batch=1)
    reply = FRESH + STOCK + NOTICE + " " + FRESH
    assert not scanner.scan(reply).leaked and not scanner.inspect(reply).leaked
    for size in (1, 9):
        assert _streamed(scanner, reply, size, "block") == (reply, False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=40))
def test_commonness_does_not_depend_on_the_chunking(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    scanner = _common_scanner(tmp_path_factory)
    docs = _shifted(10, stock=4)
    start = docs[2].index(NOTICE)
    reply = FRESH + docs[2][start - 30 : start + len(NOTICE) + 60] + FRESH + STOCK + NOTICE + FRESH
    whole = scanner.inspect(reply)
    bounds = [0, *sorted(c for c in cuts if c <= len(reply)), len(reply)]
    for policy in ("redact", "block"):
        stream = scanner.watch(policy)
        out = "".join(stream.feed(reply[a:b]) for a, b in pairwise(bounds)) + stream.finish()
        assert out == (whole.redacted if policy == "redact" else reply[: whole.spans[0].start])


_SCANNERS: dict[str, LeakScanner] = {}


def _common_scanner(factory: pytest.TempPathFactory) -> LeakScanner:
    if "common" not in _SCANNERS:
        _SCANNERS["common"] = _index(factory.mktemp("common"), _shifted(10, stock=4) + DOCS[10:], batch=1)
    return _SCANNERS["common"]


def test_clear_of_shared_drops_held_grams_within_a_width_of_a_shared_one() -> None:
    held = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.bool_)
    shared = np.zeros(12, dtype=np.bool_)
    assert clear_of_shared(held, shared, 3).tolist() == held.tolist()
    shared[5] = True
    assert clear_of_shared(held, shared, 3).tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_the_sketch_never_counts_fewer_documents_than_hold_a_gram(tmp_path: Path) -> None:
    params = IndexParams.for_leak_length(50, seed=9)
    docs = [DOCS[i % 5] for i in range(40)] + DOCS[5:]  # each of five texts in eight documents
    keys, owner = document_keys(params, docs)
    sketch = DocumentFrequency.create(tmp_path / "common.bin", 256, 8)
    seen: set[int] = set()
    sketch.add(*repeated(keys, owner, lambda unique: np.isin(unique, list(seen))))
    truth: dict[int, int] = {}
    for key, _doc in set(zip(keys.tolist(), owner.tolist(), strict=True)):
        truth[key] = truth.get(key, 0) + 1
    unique = np.array(sorted(truth), dtype=np.uint64)
    estimate = sketch.estimate(unique)
    assert (estimate >= np.array([truth[k] - 1 for k in sorted(truth)])).all()
    first_five, _ = document_keys(params, DOCS[:5])
    assert sketch.common(first_five).all()


def test_public_text_loaded_by_the_operator_stops_counting(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = home / "guard"
    scanner = _index(root, [f"{text}\n{ARTICLE}" for text in DOCS[:3]] + DOCS[3:])
    quoting = FRESH + ARTICLE + FRESH
    assert scanner.inspect(quoting).leaked
    law = tmp_path / "constitution.txt"
    law.write_text("제1조 " + ARTICLE + "\n제2조 …", encoding="utf-8")
    loaded = run_json(home, "guard", "public", "add", str(law))
    assert (loaded["files"], loaded["public_files"]) == (1, 1) and loaded["grams"] > 50
    assert run_json(home, "guard", "public", "add", str(law))["public_files"] == 1  # same text once
    fresh = LeakScanner(open_index(root))
    assert not fresh.inspect(quoting).leaked
    assert fresh.inspect(FRESH + DOCS[5][40:140] + FRESH).leaked
    assert run_json(home, "guard", "check", quoting)["verdict"] == "pass"


def test_public_add_names_the_bad_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    binary = tmp_path / "law.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    for path, reason in ((tmp_path / "missing.txt", "no such file"), (binary, "not UTF-8 text")):
        failed = run_cli(home, "guard", "public", "add", str(path))
        assert failed.returncode != 0 and f"{path}: {reason}" in failed.stderr
    assert not (home / "guard" / "public").exists()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6)), max_size=300),
    st.sets(st.integers(0, 40), max_size=10),
    st.sampled_from([0, 40]),
)
def test_repeated_counts_each_keys_distinct_documents(
    pairs: list[tuple[int, int]], held: set[int], shift: int
) -> None:
    """`shift` 40: keys that differ only in high bits; 0: only in low bits."""
    pairs = sorted(((k << shift, d) for k, d in pairs), key=lambda pair: pair[1])  # documents in order
    held = {k << shift for k in held}
    keys = np.array([k for k, _ in pairs], dtype=np.uint64)
    owner = np.array([d for _, d in pairs], dtype=np.int64)
    got_keys, got_extra = repeated(keys, owner, lambda unique: np.isin(unique, sorted(held)))
    documents: dict[int, set[int]] = {}
    for k, d in pairs:
        documents.setdefault(k, set()).add(d)
    want = {k: len(ds) - (k not in held) for k, ds in documents.items() if len(ds) - (k not in held) > 0}
    assert dict(zip(got_keys.tolist(), got_extra.tolist(), strict=True)) == want
    assert got_keys.tolist() == sorted(want)


def test_coverage_credits_and_fragments_skip_grams_beside_common_text(tmp_path: Path) -> None:
    """The same rule wherever a reply's hits are counted: coverage (`reply_grams`), the
    customer's tally (`reply_credits`) and the fragments kept for joins (`fragments_of`)."""
    scanner = _index(tmp_path, _shifted(12, stock=5) + DOCS[12:], batch=1)
    index = scanner.current()
    assert index is not None
    budget = Budget(soft=100, hard=200, window_s=3600)
    common = FRESH + STOCK + NOTICE + " " + FRESH
    assert reply_grams(index, common) == {}
    assert reply_credits(index, common, budget) == {}
    assert fragments_of(index, common) == []
    secret = FRESH + _letters(DOCS[15], 60, 60) + FRESH
    assert set(reply_grams(index, secret)) == {15}
    assert set(reply_credits(index, secret, budget)) == {1}
    assert len(fragments_of(index, secret)) == 1


def test_an_index_built_a_few_documents_at_a_time_still_catches_every_copy(tmp_path: Path) -> None:
    """An ingest indexes a committed part at a time; the sketch is widened as the index grows,
    each old count kept in every copy of its cell. Begun too narrow, it read a share of every
    document's unique grams as common by the time a month of petitions was in, and hits around
    them were cleared."""
    docs = [text for month in ("2017-08", "2019-04", "2019-05") for text in petitions(month)]
    params = IndexParams.for_leak_length(seed=9)
    for start in range(0, len(docs), 8):
        with writer(tmp_path / "guard", params) as index:
            part = docs[start : start + 8]
            index.add(part, [1 + i % 3 for i in range(len(part))])
    built = open_index(tmp_path / "guard")
    assert built is not None
    scanner = LeakScanner(built)
    copies = [doc[100:140] for doc in docs[::5] if len(doc) >= 300 and len(guard_text(doc[100:140])) >= 80]
    assert len(copies) >= 80
    missed = [copy for copy in copies if not scanner.scan("답변입니다: " + copy + " 끝.").leaked]
    assert len(missed) <= len(copies) // 40  # one of 84 here sits in stock phrases; 18 from 8,192 counters


@settings(max_examples=40, deadline=None)
@given(start=st.integers(0, 200), length=st.integers(0, 400))
def test_the_compiled_reading_tells_the_shared_grams_as_the_index_does(
    tmp_path_factory: pytest.TempPathFactory, start: int, length: int
) -> None:
    """`read_pair` looks the held grams up in the sketch itself (`compiled_sketch`): the same
    verdict as `GuardIndex.shared`, on text that holds common, rare and fresh grams."""
    index = _common_scanner(tmp_path_factory).current()
    assert index is not None and index.compiled_sketch is not None
    docs = _shifted(10, stock=4)
    text = (FRESH + docs[2] + STOCK + NOTICE + FRESH)[start : start + length]
    spec = gram_hash(index.params.width, index.params.seed)
    ahead, behind = RollingHasher(spec), ReversedRollingHasher(spec)
    _, _, keys, _, positions, shared = read_pair(
        text, 0, ahead, behind, index.compiled_members, index.compiled_sketch
    )
    assert positions is not None and shared is not None
    assert shared.tolist() == index.shared(keys[positions]).tolist()
    if NOTICE in text:
        assert shared.any()  # the notice's grams are common: the test sees both verdicts
