"""Language filter: Hangul share over letters, and which documents it keeps."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CORPORA
from tokenclub.curate.language import LanguageFilter, hangul_share


@pytest.mark.parametrize(
    ("text", "share"),
    [
        ("한국어 문장입니다.", 1.0),
        ("English only.", 0.0),
        ("", 0.0),
        ("1234 !!! 😀 ...", 0.0),
        # digits and punctuation are ignored; 3 syllables against 3 Latin letters
        ("한국어 abc 123,456!", 0.5),
        # compatibility jamo and conjoining jamo count as Hangul
        ("ㅋㅋㅋ lol", 0.5),
        ("\u1100\u1161\u11a8 ab", 0.6),
        # Hanja and kana are letters that are not Hangul
        ("大韓民國 대한민국", 0.5),
        ("日本語です 한국", 2 / 7),
    ],
)
def test_hangul_share(text: str, share: float) -> None:
    assert hangul_share(text) == pytest.approx(share)


def test_mixed_korean_english_passes_and_english_with_some_korean_does_not() -> None:
    language = LanguageFilter()
    bilingual = (
        "본 논문에서는 대규모 언어 모델을 제안한다. We propose a large language model. "
        "실험 결과 기존 방법보다 성능이 높았다. Experiments show it beats prior methods."
    )
    code_heavy = "다음 코드는 리스트를 정렬한다: sorted(items, key=len). 결과는 길이 순이다."
    english = "The Korean word for thank you is 감사합니다, and it is used in formal settings every day."
    assert hangul_share(bilingual) == pytest.approx(34 / 96)
    assert language.reason_to_drop(bilingual) is None
    assert language.reason_to_drop(code_heavy) is None
    assert hangul_share(english) == pytest.approx(5 / 66)
    assert language.reason_to_drop(english) == "language:not_korean"
    assert language.reason_to_drop("これは日本語の文章です。") == "language:not_korean"


def test_threshold_is_configurable_and_checked() -> None:
    text = "한국어 abc"  # share 0.5
    assert LanguageFilter(min_hangul_share=0.5).reason_to_drop(text) is None
    assert LanguageFilter(min_hangul_share=0.51).reason_to_drop(text) == "language:not_korean"
    # nothing to judge without letters: the quality filter names the problem
    assert LanguageFilter(min_hangul_share=1.0).reason_to_drop("1234 5678 !!!") is None
    assert LanguageFilter().reason_to_drop("") is None
    with pytest.raises(ValueError, match="min_hangul_share"):
        LanguageFilter(min_hangul_share=1.5)


def test_real_petitions_pass_except_the_two_not_in_korean() -> None:
    folder = CORPORA / "petitions"
    if not folder.exists():
        pytest.skip("petitions corpus is not here")
    language = LanguageFilter()
    petitions = [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.open()]
    dropped = {
        p["petition_idx"]: round(hangul_share(p["content"]), 3)
        for p in petitions
        if any(map(str.isalpha, p["content"])) and language.reason_to_drop(p["content"])
    }
    assert len(petitions) == 3052
    # one petition in English, one in Korean followed by its English, Indonesian and Chinese
    # translations (15 % Hangul)
    assert dropped == {"580850": 0.0, "580385": 0.154}


def test_step_writes_reasons_for_live_rows_only() -> None:
    batch = pa.table(
        {
            "doc_id": ["ko", "en", "done"],
            "text": ["한국어로 쓴 글입니다.", "Written in English.", "English again."],
            "reject_reason": [None, None, "quality:too_short"],
        }
    )
    out = LanguageFilter().process(batch)
    assert out.column("reject_reason").to_pylist() == [None, "language:not_korean", "quality:too_short"]
    assert out.column("text").to_pylist() == batch.column("text").to_pylist()


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("한국어ㅋ\u1100\u1161 abcXY大語です123,.!😀\n\u200b"), max_size=40),
    st.sampled_from([0.0, 0.1, 0.2, 1 / 3, 0.5, 0.9, 1.0]),
)
def test_the_decision_is_the_share_of_letters(text: str, threshold: float) -> None:
    """Deciding from the share of all characters first changes no decision."""
    kept = not any(map(str.isalpha, text)) or hangul_share(text) >= threshold
    assert (LanguageFilter(threshold).reason_to_drop(text) is None) is kept
