"""Common text is not secret: grams many documents share, and loaded public text, never count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cli.helpers import run_cli, run_json
from tests.guard.corpus import petitions
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.indexing.commonness import DocumentFrequency, repeated
from tokenclub.guard.indexing.index import Commonness, IndexParams, document_keys, open_index, writer

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


def test_known_gap_a_notice_indexed_one_document_at_a_time_at_shifting_alignments_looks_rare(
    tmp_path: Path,
) -> None:
    """Known limit (docs/leak-guard.md): one document indexed at a time only counts the
    alignments earlier ones stored, so a notice at a new alignment in each of 12 documents is
    still rare; indexed together (the test above) it is common."""
    cut = [40 + 7 * i for i in range(12)]
    docs = [f"{text[: cut[i]]}\n{NOTICE}\n{text[cut[i] :]}" for i, text in enumerate(DOCS[:12])]
    scanner = _index(tmp_path, docs + DOCS[12:], batch=1)
    assert scanner.inspect(FRESH + NOTICE + FRESH).leaked
    assert scanner.inspect(FRESH + DOCS[14][40:140] + FRESH).leaked


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
)
def test_repeated_counts_each_keys_distinct_documents(pairs: list[tuple[int, int]], held: set[int]) -> None:
    keys = np.array([k for k, _ in pairs], dtype=np.uint64)
    owner = np.array([d for _, d in pairs], dtype=np.int64)
    got_keys, got_extra = repeated(keys, owner, lambda unique: np.isin(unique, sorted(held)))
    documents: dict[int, set[int]] = {}
    for k, d in pairs:
        documents.setdefault(k, set()).add(d)
    want = {k: len(ds) - (k not in held) for k, ds in documents.items() if len(ds) - (k not in held) > 0}
    assert dict(zip(got_keys.tolist(), got_extra.tolist(), strict=True)) == want
    assert got_keys.tolist() == sorted(want)
