"""Quality filter: each rule drops its kind of junk, and real documents pass."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.conftest import CORPORA
from tokenclub.curate.normalize import normalize_text
from tokenclub.curate.quality import QualityFilter, QualitySettings, _Words

PDFS = CORPORA / "samples" / "pdf"

# Real sentences (UD Korean KAIST, CC BY-SA 4.0) to build realistic prose around the junk.
PROSE = [
    "내 고향은 서울입니다.",
    "옛날의 서울의 모습이 몹시 그립습니다.",
    "이른 아침과 밤 늦게 종로 보신각의 종소리를 듣고 잠을 자고 잠에서 깨어나던 그 때 그 서울이 그립습니다.",
    "서울에는 다리도 많았습니다.",
    "그 오간수다리에는 쇠창살이 설치되어있어서 장마 때 빗물에 떠내려간 것은 오간수다리에 걸려 있어서 "
    "임자가 찾아가곤 했지요.",
]
ARTICLE = [
    "정부는 내년부터 지역 소상공인을 위한 저금리 대출 규모를 두 배로 늘리기로 했다.",
    "기획재정부는 이번 조치가 고금리로 어려움을 겪는 자영업자의 이자 부담을 덜어 줄 것으로 "
    "기대한다고 밝혔다.",
    "지원 대상은 연 매출 3억 원 이하 사업자이며, 신청은 3월부터 전국 지역신용보증재단에서 받는다.",
    "전문가들은 대출 확대와 함께 경영 컨설팅과 판로 지원이 병행되어야 효과가 크다고 지적했다.",
    "한 시장 상인은 “금리가 조금이라도 내려가면 숨통이 트일 것 같다”고 말했다.",
]
EPILOGUE = [
    "그 시절의 서울은 지금보다 훨씬 조용했고 골목마다 아이들 웃음소리가 가득했다.",
    "이제는 높은 건물이 들어서서 옛 모습을 찾아보기 어렵다.",
    "그래도 가끔 종로를 걷다 보면 어릴 적 기억이 떠오른다.",
]
MENU = [
    *("홈", "뉴스", "정치", "경제", "사회", "문화", "스포츠", "연예", "날씨", "오피니언", "포토", "영상"),
    *("세계", "과학", "건강", "여행", "음식", "자동차", "부동산", "교육", "IT", "게임", "만화", "책"),
    *("음악", "영화", "공연", "전시", "축제", "인물"),
]
KEYWORDS = [
    "카지노사이트",
    "바카라사이트",
    "온라인카지노",
    "슬롯머신",
    "토토사이트",
    "먹튀검증",
    "안전놀이터",
]


def junk() -> dict[str, str]:
    rng = random.Random(7)
    return {
        "quality:too_short": "좋아요 감사합니다",
        "quality:symbol_heavy": "\n".join(
            " ".join(str(rng.randint(0, 99999)) for _ in range(8)) for _ in range(40)
        ),
        "quality:boilerplate": "\n".join(
            [
                "본문 바로가기",
                "로그인",
                "회원가입",
                "이 사이트는 쿠키를 사용합니다. 계속 이용하시면 쿠키 사용에 동의하는 것으로 간주됩니다.",
                "자바스크립트를 활성화해야 이 페이지를 이용할 수 있습니다.",
                "Please enable JavaScript to view this page.",
                "이용약관 개인정보처리방침",
                "Copyright ⓒ 2024 Example Corp. All rights reserved.",
                "오늘의 날씨는 전국이 대체로 맑겠습니다.",
                "공유하기",
            ]
        ),
        "quality:bullets": "\n".join(f"• {item}" for item in MENU),
        "quality:table": "\n".join(
            f"{name}\t{price:,}원\t재고 있음\t배송 가능"
            for name, price in zip(KEYWORDS * 3, range(1000, 22000, 1000), strict=True)
        ),
        "quality:duplicate_lines": "\n".join(
            ["지금 바로 상담 신청하세요! 최저가 보장 이벤트 진행 중입니다."] * 30
        ),
        "quality:duplicate_paragraphs": "\n\n".join(
            part
            for section in (PROSE, ARTICLE, EPILOGUE)
            for part in ("\n".join(section), "구독과 좋아요 부탁드립니다")
        ),
        "quality:low_diversity": " ".join(rng.choice(KEYWORDS) for _ in range(300)),
        "quality:top_ngram": " ".join(f"{sentence} 지금 바로 구매하세요!" for sentence in PROSE + ARTICLE),
        "quality:duplicate_ngrams": " ".join([*ARTICLE, *ARTICLE, *ARTICLE[:4]]),
    }


@pytest.mark.parametrize(("reason", "text"), junk().items())
def test_junk_is_dropped_for_its_reason(reason: str, text: str) -> None:
    assert QualityFilter().reason_to_drop(normalize_text(text)) == reason


@pytest.mark.parametrize(
    "text",
    [
        # a news article with its copyright footer and share line
        "\n".join([*ARTICLE, *PROSE, "홍길동 기자 hong@example.com", "무단전재 및 재배포 금지", "공유하기"]),
        # a report written in bullets (개조식), with a table of figures
        "\n".join(
            [
                "□ 추진 배경",
                "○ 고금리 장기화로 소상공인의 이자 부담이 커지고 폐업이 늘어나는 추세임",
                "○ 지역 단위의 맞춤형 금융 지원과 경영 컨설팅을 함께 제공할 필요가 있음",
                "□ 주요 내용",
                "○ 저금리 대출 규모를 2조 원에서 4조 원으로 확대하고 신청 절차를 간소화함",
                "- 연 매출 3억 원 이하 사업자를 대상으로 지역신용보증재단에서 접수함",
                "- 상환 기간은 최대 5년, 거치 기간은 1년으로 함",
                "구분 2022 2023 2024",
                "대출 1.2 1.5 2.0",
                "컨설팅 300 450 600",
                "○ 판로 지원을 위해 온라인 기획전과 지역 축제 연계 판매를 추진함",
            ]
        ),
        # short lines that talk about likes, comments and subscriptions are prose, not buttons
        "\n".join(
            [
                "요즘 유튜브 채널을 시작했다.",
                "구독자가 열 명을 넘었을 때 정말 기뻤다.",
                "좋아요 하나에도 하루 기분이 달라진다.",
                "댓글을 읽다 보면 내가 몰랐던 것을 배우게 된다.",
                "처음에는 카메라 앞에서 말하는 것이 어색했지만 이제는 조금 익숙해졌다.",
                "다음 영상은 우리 동네 시장 이야기로 찍을 생각이다.",
            ]
        ),
        # verse with a refrain
        "\n".join(
            ["산에는 꽃 피네", "꽃이 피네", "갈 봄 여름 없이", "꽃이 피네", "", "산에", "산에", "피는 꽃은"]
        )
        + "\n"
        + " ".join(PROSE),
        # unspaced informal writing: few eojeol, many characters
        "안녕하세요..저는전라북도군산에사는세아이의엄마입니다. 이렇게글을남기게된이유는초등학교를다니는"
        "첫째아이때문입니다. 첫째가이번에학교에입학하였으나학교생활에어려움이많습니다. 우선아이가엄마들이"
        "꺼려하는ADHD를앓고있습니다. 하지만아직전문의검사를받지는않았지만상담소를다니는데선생님의소견은"
        "ADHD라고합니다.",
    ],
)
def test_real_layouts_pass(text: str) -> None:
    assert QualityFilter().reason_to_drop(normalize_text(text)) is None


def _pdf_text(path: Path) -> str:
    pdfium = pytest.importorskip("pypdfium2")
    if not path.exists():
        pytest.skip(f"{path} is not here")
    document = pdfium.PdfDocument(path)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


@pytest.mark.parametrize(
    "name",
    ["national-assembly-bill-2125318-original.pdf", "national-assembly-bill-2125318-review-report.pdf"],
)
def test_national_assembly_pdfs_pass(name: str) -> None:
    assert QualityFilter().reason_to_drop(normalize_text(_pdf_text(PDFS / name))) is None


def test_petitions_false_drops() -> None:
    """Every petition is a real document; the only drops past too_short are text pasted
    three times over (841, 887, 888), one word repeated 15 times (753) and 200 digits (716)."""
    folder = CORPORA / "petitions"
    if not folder.exists():
        pytest.skip("petitions corpus is not here")
    quality = QualityFilter()
    reasons: dict[str, int] = {}
    dropped = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.open():
            petition = json.loads(line)
            reason = quality.reason_to_drop(normalize_text(petition["content"]))
            reasons[str(reason)] = reasons.get(str(reason), 0) + 1
            if reason not in (None, "quality:too_short"):
                dropped[petition["petition_idx"]] = reason
    assert reasons == {
        "None": 2956,
        "quality:too_short": 91,
        "quality:low_diversity": 3,
        "quality:top_ngram": 1,
        "quality:symbol_heavy": 1,
    }
    assert dropped == {
        "716": "quality:symbol_heavy",
        "753": "quality:top_ngram",
        "841": "quality:low_diversity",
        "887": "quality:low_diversity",
        "888": "quality:low_diversity",
    }


def test_settings_are_frozen_validated_and_used() -> None:
    defaults = QualitySettings()
    assert defaults.min_words == 30
    assert defaults.max_duplicate_ngram_share == {5: 0.6, 10: 0.55}
    with pytest.raises(ValidationError):
        QualitySettings(max_symbol_word_share=1.5)
    with pytest.raises(ValidationError):
        defaults.min_words = 10  # type: ignore[misc]
    text = " ".join(PROSE)  # 43 words, 136 characters
    assert QualityFilter().reason_to_drop(text) is None
    assert QualityFilter(QualitySettings(min_words=44)).reason_to_drop(text) == "quality:too_short"
    assert QualityFilter(QualitySettings(min_words=44, min_chars=136)).reason_to_drop(text) is None


def test_step_writes_reasons_for_live_rows_only() -> None:
    batch = pa.table(
        {
            "doc_id": ["prose", "spam", "gone"],
            "text": [" ".join(PROSE + ARTICLE), junk()["quality:low_diversity"], "짧음"],
            "reject_reason": [None, None, "language:not_korean"],
        }
    )
    out = QualityFilter().process(batch)
    assert out.column("reject_reason").to_pylist() == [None, "quality:low_diversity", "language:not_korean"]


def _top_share(words: list[str], n: int) -> float:
    """The most frequent n-gram's words over all words, when it occurs three times or more."""
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    top = max(grams.values(), default=0)
    return top * n / len(words) if top >= 3 else 0.0


def _duplicate_share(words: list[str], n: int) -> float:
    """Words inside an n-gram that occurred earlier in the list, over all words."""
    seen: set[tuple[str, ...]] = set()
    covered: set[int] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            covered.update(range(i, i + n))
        seen.add(gram)
    return len(covered) / len(words) if words else 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["가", "나", "다", "라", "마", "바", "사", "아"]), min_size=1, max_size=80),
    st.data(),
)
def test_ngram_shares_are_their_definitions(words: list[str], data: st.DataObject) -> None:
    """Asked in any order of n (the shortcuts carry what a shorter n showed over to longer
    ones), the hashed statistics equal the plain counts over the word tuples."""
    ids = _Words(words)
    asks = data.draw(st.lists(st.tuples(st.booleans(), st.integers(1, 12)), max_size=8))
    for top, n in asks:
        if top:
            assert ids.top_ngram_share(n) == pytest.approx(_top_share(words, n))
        else:
            assert ids.duplicate_ngram_share(n) == pytest.approx(_duplicate_share(words, n))
