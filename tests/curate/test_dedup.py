"""Dedup signatures: exact keys, MinHash signatures, LSH band keys and the step."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import CORPORA
from tokenclub.curate.dedup import (
    _UNASSIGNED_PLANES,
    DedupSignatureStep,
    MinHasher,
    _kept,
    dedup_key,
    jaccard_estimate,
    normalize_for_dedup,
)

PETITIONS = CORPORA / "petitions" / "petitions_2019-04.jsonl"
MASK64 = (1 << 64) - 1

HASHER = MinHasher()
normalize_for_dedup("")  # builds the code point table now, not inside a Hypothesis deadline


def _petitions() -> list[str]:
    if not PETITIONS.exists():
        pytest.skip(f"{PETITIONS} is not available")
    with PETITIONS.open(encoding="utf-8") as fh:
        return [json.loads(line)["content"] for line in fh]


# --- exact keys -------------------------------------------------------------------------------


def test_normalization_keeps_only_letters_marks_and_digits() -> None:
    assert normalize_for_dedup("Hello, 세계! 123 ＡＢＣ\u200b가\t\n") == "hello세계123abc가"
    assert normalize_for_dedup("a\ud800b") == "ab"  # a lone surrogate is dropped, not an error
    assert normalize_for_dedup(" ,.!") == ""


def test_same_text_same_key_and_key_is_128_bit_hex() -> None:
    key = dedup_key("토큰 클럽은 한국어 데이터 협동조합입니다.")
    assert key == dedup_key("토큰 클럽은 한국어 데이터 협동조합입니다.")
    assert len(key) == 32
    int(key, 16)


@pytest.mark.parametrize(
    "variant",
    [
        "안녕하세요 여러분",
        "안녕하세요,   여러분!!!",
        "안녕하 세요\n\t여러분 ...",
        "안녕하세요，여러분！",  # full-width punctuation
        "«안녕하세요» — 여러분 ☺",
        "안녕\u200b하세요 여러분",  # zero-width space
        unicodedata.normalize("NFD", "안녕하세요, 여러분!"),  # decomposed Hangul jamo
    ],
)
def test_whitespace_punctuation_and_form_edits_keep_the_key(variant: str) -> None:
    assert dedup_key(variant) == dedup_key("안녕하세요, 여러분!")


def test_case_and_width_fold_but_words_do_not() -> None:
    assert dedup_key("Token Club") == dedup_key("ｔｏｋｅｎ-club")
    assert dedup_key("안녕하세요 여러분") != dedup_key("안녕하세요 친구들")
    assert dedup_key("1,000원") != dedup_key("1,001원")


def test_key_is_pinned() -> None:
    """Keys live in a persistent index: any change to the normalization or hash must fail here."""
    assert dedup_key("안녕하세요, 여러분!") == "9ea3168e858b37f741b53cde0f6124ed"


separators = st.sampled_from([" ", "\n", "\t", ",", ".", "!", "?", "·", "…", "~", "\u200b", "\u3000"])


@given(
    words=st.lists(st.text(alphabet="가나다라마바사아자차카타파하한국어abcXYZ0123", min_size=1), min_size=1),
    seps=st.lists(st.lists(separators, max_size=3), min_size=1),
)
def test_key_ignores_any_separators(words: list[str], seps: list[list[str]]) -> None:
    spaced = "".join(word + "".join(seps[i % len(seps)]) for i, word in enumerate(words))
    assert dedup_key(spaced) == dedup_key("".join(words))


# --- MinHash signatures -----------------------------------------------------------------------


BASE = 0x9E3779B97F4A7C15


def _mix(v: int) -> int:
    v ^= v >> 33
    v = (v * 0xFF51AFD7ED558CCD) & MASK64
    v ^= v >> 33
    v = (v * 0xC4CEB9FE1A85EC53) & MASK64
    return v ^ (v >> 33)


def _polynomial(values: list[int]) -> int:
    result = 0
    for value in values:
        result = (result * BASE + value) & MASK64
    return _mix(result)


def _reference_signature(text: str, hasher: MinHasher) -> list[int]:
    """The documented definition, one shingle and one permutation at a time with Python integers."""
    points = [ord(c) for c in normalize_for_dedup(text)]
    points += [0] * (5 - len(points))
    shingles = {_polynomial(points[start : start + 5]) >> 32 for start in range(len(points) - 4)}
    params = [_mix(((k + 1) * BASE + hasher.seed) & MASK64) for k in range(2 * hasher.num_perm)]
    a, b = params[: hasher.num_perm], params[hasher.num_perm :]
    return [min(((ai * x + bi) & MASK64) >> 32 for x in shingles) for ai, bi in zip(a, b, strict=True)]


def _reference_band_keys(signature: list[int], hasher: MinHasher) -> list[bytes]:
    rows = hasher.rows
    return [
        band.to_bytes(2, "big") + _polynomial(signature[band * rows : (band + 1) * rows]).to_bytes(8, "big")
        for band in range(hasher.bands)
    ]


@pytest.mark.parametrize(
    "text", ["", "가", "가나다라", "가나다라마", "토큰 클럽은 한국어 데이터 협동조합입니다. ABC!"]
)
def test_signature_matches_the_reference_definition(text: str) -> None:
    hasher = MinHasher(num_perm=32, bands=3, rows=8, seed=7)
    signature = hasher.signature(text)
    assert signature.dtype == np.uint32
    reference = _reference_signature(text, hasher)
    assert signature.tolist() == reference
    assert hasher.band_keys(signature) == _reference_band_keys(reference, hasher)


def test_signature_and_band_keys_are_pinned() -> None:
    signature = HASHER.signature("토큰 클럽은 한국어 데이터 협동조합입니다.")
    assert signature.shape == (128,)
    assert signature[:4].tolist() == [436267106, 26261961, 333991983, 303318890]
    keys = HASHER.band_keys(signature)
    assert len(keys) == 16
    assert keys[0].hex() == "0000566e5fb64f8cfc48"
    assert [k[:2] for k in keys] == [i.to_bytes(2, "big") for i in range(16)]


def test_batch_equals_one_by_one_across_chunk_boundaries() -> None:
    long_text = "".join(chr(0xAC00 + (i * 7919) % 11172) for i in range(20_000))  # spans three chunks
    texts = [
        "",
        "짧은 글",
        long_text,
        "다른 문서입니다. 조금 더 깁니다.",
        long_text[5000:5003],
        long_text[:9000],
    ]
    batch = HASHER.signatures(texts)
    assert batch.shape == (len(texts), 128)
    for row, text in zip(batch, texts, strict=True):
        assert row.tolist() == HASHER.signature(text).tolist()
    assert HASHER.signatures([]).shape == (0, 128)


def test_seed_changes_the_signature() -> None:
    text = "같은 글이라도 다른 시드는 다른 서명을 만듭니다."
    assert MinHasher(seed=1).signature(text).tolist() != HASHER.signature(text).tolist()


def test_near_duplicate_shares_a_band_key_and_unrelated_petitions_share_none() -> None:
    petitions = _petitions()
    index = next(i for i, text in enumerate(petitions) if len(text) >= 2000)
    original = petitions[index][:2000]
    words = original.split()
    for position, replacement in zip(
        (5, 60, 120, 200), ("새로운", "정책을", "반드시", "바랍니다"), strict=True
    ):
        assert words[position] != replacement
        words[position] = replacement
    edited = " ".join(words)

    signature = HASHER.signature(original)
    keys = set(HASHER.band_keys(signature))
    edited_signature = HASHER.signature(edited)
    assert len(keys & set(HASHER.band_keys(edited_signature))) == 11
    assert jaccard_estimate(signature, edited_signature) == 122 / 128

    others = [text for i, text in enumerate(petitions) if i != index]
    assert len(others) == 493
    for other in HASHER.signatures(others):
        assert not keys & set(HASHER.band_keys(other))
        assert jaccard_estimate(signature, other) < 0.05


def test_same_signature_in_another_process() -> None:
    code = (
        "from tokenclub.curate.dedup import MinHasher, dedup_key\n"
        "h = MinHasher()\n"
        "t = '국민청원 게시판에 올라온 글입니다. 같은 글은 같은 서명을 가져야 합니다.'\n"
        "print(dedup_key(t), h.signature(t).tobytes().hex(), b''.join(h.band_keys(h.signature(t))).hex())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    text = "국민청원 게시판에 올라온 글입니다. 같은 글은 같은 서명을 가져야 합니다."
    signature = HASHER.signature(text)
    assert output == [
        dedup_key(text),
        signature.tobytes().hex(),
        b"".join(HASHER.band_keys(signature)).hex(),
    ]


@given(st.text())
def test_signature_of_a_text_equals_itself(text: str) -> None:
    assert HASHER.signature(text).tolist() == HASHER.signature(text).tolist()
    assert jaccard_estimate(HASHER.signature(text), HASHER.signature(text)) == 1.0


@given(st.text(), st.text())
def test_jaccard_estimate_is_symmetric_and_bounded(a: str, b: str) -> None:
    sa, sb = HASHER.signatures([a, b])
    estimate = jaccard_estimate(sa, sb)
    assert estimate == jaccard_estimate(sb, sa)
    assert 0.0 <= estimate <= 1.0
    assert estimate * 128 == int(estimate * 128)


def test_jaccard_estimate_rejects_mismatched_signatures() -> None:
    with pytest.raises(ValueError, match="shape"):
        jaccard_estimate(np.zeros(128, np.uint32), np.zeros(64, np.uint32))


# --- LSH parameters ---------------------------------------------------------------------------


def test_s_curve_of_the_default_bands() -> None:
    probabilities = [round(HASHER.candidate_probability(j), 3) for j in (0.5, 0.7, 0.8, 0.9)]
    assert probabilities == [0.061, 0.613, 0.947, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bands": 20, "rows": 8}, "permutations"),
        ({"num_perm": 0}, "positive"),
        ({"seed": -1}, "seed"),
        ({"num_perm": 1 << 17, "bands": 1 << 16, "rows": 1}, "bands"),
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MinHasher(**kwargs)


def test_band_keys_reject_a_foreign_signature() -> None:
    with pytest.raises(ValueError, match="128"):
        HASHER.band_keys(np.zeros(64, np.uint32))


# --- the step ---------------------------------------------------------------------------------


def test_step_writes_keys_and_bands_for_live_rows_only() -> None:
    texts = ["첫 번째 문서입니다.", "거절된 문서", "첫번째 문서 입니다!!"]
    batch = pa.table(
        {
            "doc_id": ["a", "b", "c"],
            "text": texts,
            "reject_reason": pa.array([None, "quality:too_short", None], pa.string()),
        }
    )
    step = DedupSignatureStep()
    out = step.process(batch)
    assert out.column_names == ["doc_id", "text", "reject_reason", "dedup_key", "minhash", "minhash_bands"]
    minhash = out.column("minhash").to_pylist()
    assert minhash[1] is None
    assert minhash[0] == minhash[2] == HASHER.signature(texts[0]).tobytes()
    assert out.schema.field("dedup_key").type == pa.string()
    assert out.schema.field("minhash_bands").type == pa.list_(pa.binary())
    keys = out.column("dedup_key").to_pylist()
    bands = out.column("minhash_bands").to_pylist()
    assert keys == [dedup_key(texts[0]), None, dedup_key(texts[0])]
    assert bands[1] is None
    assert bands[0] == bands[2] == HASHER.band_keys(HASHER.signature(texts[0]))
    assert out.column("text").to_pylist() == texts  # documents stay untouched
    assert pickle.loads(pickle.dumps(step)).process(batch).equals(out)  # ships to Ray workers as is


def test_step_with_no_live_rows() -> None:
    batch = pa.table({"doc_id": ["a"], "text": ["글"], "reject_reason": pa.array(["pii:rrn"], pa.string())})
    out = DedupSignatureStep(MinHasher(num_perm=64, bands=8, rows=8)).process(batch)
    assert out.column("dedup_key").to_pylist() == [None]
    assert out.column("minhash_bands").to_pylist() == [None]


def test_the_kept_table_skips_only_planes_without_characters() -> None:
    start, end = _UNASSIGNED_PLANES
    assert {unicodedata.category(chr(cp)) for cp in range(start, end)} == {"Cn"}
    assert _kept()[start:end].all()
