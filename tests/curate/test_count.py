"""CountStep: exact eojeol and token counts for live rows, nulls for rejected ones."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from tokenclub.curate.count import CountStep
from tokenclub.tokenizer import SPECIAL_TOKENS, TokenCounter, fingerprint, save_tokenizer, train_tokenizer


@pytest.fixture
def byte_tokenizer(tmp_path: Path) -> Path:
    """No merges: every UTF-8 byte of the NFC text is one token, so counts can be worked out by hand."""
    path = tmp_path / "bytes.json"
    tokenizer = train_tokenizer(["한국어 문장과 English words."] * 3, vocab_size=256 + len(SPECIAL_TOKENS))
    save_tokenizer(tokenizer, path)
    return path


def _batch(texts: list[str], reasons: list[str | None]) -> pa.Table:
    return pa.table(
        {
            "doc_id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "reject_reason": pa.array(reasons, pa.string()),
        }
    )


def test_counts_words_and_tokens_of_live_rows(byte_tokenizer: Path) -> None:
    batch = _batch(
        ["안녕 하세요", "거절된 문서", "", "a  b\nc", "청원 본문입니다."],
        [None, "quality:too_short", None, None, None],
    )
    out = CountStep(TokenCounter(byte_tokenizer)).process(batch)
    assert out.schema.field("words").type == pa.int64()
    assert out.schema.field("tokens").type == pa.int64()
    assert out.column("words").to_pylist() == [2, None, 0, 3, 2]
    # UTF-8 bytes: 6 + 1 + 9; none; 0; 6; 6 + 1 + 15 + 1
    assert out.column("tokens").to_pylist() == [16, None, 0, 6, 23]
    assert out.column("text").equals(batch.column("text"))


def test_a_batch_with_no_live_rows(byte_tokenizer: Path) -> None:
    out = CountStep(TokenCounter(byte_tokenizer)).process(_batch(["글"], ["pii:rrn"]))
    assert out.column("words").to_pylist() == [None]
    assert out.column("tokens").to_pylist() == [None]


def test_the_step_pickles_without_the_tokenizer_and_counts_alike(byte_tokenizer: Path) -> None:
    step = CountStep(TokenCounter(byte_tokenizer))
    batch = _batch(["토큰 클럽", "회원사"], [None, None])
    expected = step.process(batch)
    data = pickle.dumps(step)
    assert len(data) < 1000
    clone = pickle.loads(data)
    assert clone.counter.fingerprint == fingerprint(byte_tokenizer)
    assert clone.process(batch).equals(expected)
    assert expected.column("tokens").to_pylist() == [13, 9]
