"""The pinned tokenizer: reproducible training, atomic files, fingerprints, exact counts."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import pickle
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from tokenizers import pre_tokenizers

from tests.conftest import CORPORA
from tokenclub.errors import InvalidInputError
from tokenclub.tokenizer import (
    _BYTE_SYMBOLS,
    SPECIAL_TOKENS,
    TRAINING_SOURCES,
    TokenCounter,
    _patterns,
    count_words,
    default_training_texts,
    fingerprint,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from tokenclub.tokenizer_store import default_tokenizer_path

CORPUS = [
    "토큰 클럽은 한국어 언어 모델을 위한 데이터 협동조합입니다.",
    "회원사는 기여한 데이터의 토큰 수만큼 API를 무료로 사용합니다.",
    "출판사와 언론사, 대학과 기업이 한국어 텍스트를 함께 모읍니다.",
    "기여한 원문은 모델의 답변에 그대로 나오지 않도록 보호됩니다.",
    "정산 기간마다 수익의 일부를 기여한 데이터에 비례해 나눕니다.",
    "The club counts words and tokens with a pinned tokenizer.",
    "한국어 문장은 어절 단위로 띄어 씁니다. 조사와 어미가 붙습니다.",
    "같은 입력으로 학습하면 언제나 같은 토크나이저 파일이 나옵니다.",
] * 5

BYTES_ONLY = 256 + len(SPECIAL_TOKENS)  # a vocabulary with no merges: one token per UTF-8 byte


@pytest.fixture
def byte_tokenizer(tmp_path: Path) -> Path:
    path = tmp_path / "bytes.json"
    save_tokenizer(train_tokenizer(CORPUS, vocab_size=BYTES_ONLY), path)
    return path


def test_special_tokens_come_first_and_the_byte_alphabet_is_complete() -> None:
    tokenizer = train_tokenizer(CORPUS, vocab_size=BYTES_ONLY)
    assert [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tokenizer.get_vocab_size() == BYTES_ONLY


def test_byte_level_counts_are_utf8_bytes_of_the_nfc_text(byte_tokenizer: Path) -> None:
    counter = TokenCounter(byte_tokenizer)
    texts = [
        "안녕",  # 2 syllables × 3 bytes
        "abc def",
        "",
        unicodedata.normalize("NFD", "한"),  # 3 jamo (9 bytes) that NFC composes into 1 syllable
        "<|endoftext|>",  # a special token inside a contributed text is counted as text
        "😀",
    ]
    assert counter.count(texts) == [6, 7, 0, 3, 13, 4]


def test_merges_make_frequent_words_single_tokens(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(["토큰클럽 토큰클럽 회원"] * 20, vocab_size=300)
    path = tmp_path / "small.json"
    save_tokenizer(tokenizer, path)
    counter = TokenCounter(path)
    assert counter.count(["토큰클럽", " 토큰클럽", "토큰클럽 회원"]) == [1, 1, 2]
    # Words never seen as such fall back to byte pieces: "회원" without its space, half of "토큰클럽".
    assert counter.count(["회원 토큰"]) == [6]
    assert tokenizer.encode("토큰클럽 회원", add_special_tokens=False).tokens == ["íĨłíģ°íģ´ëŁ½", "ĠíļĮìĽĲ"]


def test_decoding_gives_back_the_nfc_text() -> None:
    tokenizer = train_tokenizer(CORPUS, vocab_size=400)
    text = unicodedata.normalize("NFD", "한국어 text, 숫자 123 그리고 이모지 😀\n줄바꿈")
    assert tokenizer.decode(tokenizer.encode(text).ids) == unicodedata.normalize("NFC", text)


def test_training_twice_gives_identical_bytes_and_fingerprint(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    digest = save_tokenizer(train_tokenizer(CORPUS, vocab_size=400), first)
    assert save_tokenizer(train_tokenizer(CORPUS, vocab_size=400), second) == digest
    assert first.read_bytes() == second.read_bytes()
    assert fingerprint(first) == fingerprint(second) == digest


def test_training_is_the_same_in_another_process_with_one_thread_and_reversed_input(tmp_path: Path) -> None:
    digest = save_tokenizer(train_tokenizer(CORPUS, vocab_size=400), tmp_path / "here.json")
    code = (
        "import json, sys\n"
        "from tokenclub.tokenizer import save_tokenizer, train_tokenizer\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(save_tokenizer(train_tokenizer(texts, vocab_size=400), sys.argv[1]))\n"
    )
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "PYTHONHASHSEED": "7"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "there.json")],
        input=json.dumps(CORPUS[::-1]),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert result.stdout.strip() == digest


def test_save_is_atomic_and_fingerprint_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    path = tmp_path / "nested" / "tokenizer.json"
    digest = save_tokenizer(tokenizer, path)
    data = path.read_bytes()
    assert data == tokenizer.to_str(pretty=True).encode("utf-8")
    assert digest == fingerprint(path) == hashlib.sha256(data).hexdigest()
    assert os.listdir(path.parent) == ["tokenizer.json"]
    assert path.stat().st_mode & 0o777 == 0o644
    assert load_tokenizer(path).get_vocab() == tokenizer.get_vocab()


def test_a_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tokenizer.json"
    digest = save_tokenizer(train_tokenizer(CORPUS, vocab_size=300), path)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_tokenizer(train_tokenizer(CORPUS, vocab_size=400), path)
    assert fingerprint(path) == digest
    assert os.listdir(tmp_path) == ["tokenizer.json"]


def test_load_refuses_a_changed_file(byte_tokenizer: Path) -> None:
    with pytest.raises(InvalidInputError, match="tokenizer file changed"):
        load_tokenizer(byte_tokenizer, expected_fingerprint="0" * 64)
    assert (
        load_tokenizer(byte_tokenizer, expected_fingerprint=fingerprint(byte_tokenizer)).get_vocab_size()
        == 260
    )


def test_counter_pickles_as_path_and_fingerprint(byte_tokenizer: Path) -> None:
    counter = TokenCounter(byte_tokenizer)
    assert counter.count(["토큰"]) == [6]  # loads the tokenizer
    data = pickle.dumps(counter)
    assert len(data) < 500  # the vocabulary does not travel
    clone = pickle.loads(data)
    assert clone.fingerprint == counter.fingerprint == fingerprint(byte_tokenizer)
    assert clone.count(["토큰", "a b"]) == [6, 3]


def test_counter_refuses_a_file_replaced_after_it_was_pinned(tmp_path: Path, byte_tokenizer: Path) -> None:
    counter = TokenCounter(byte_tokenizer)
    save_tokenizer(train_tokenizer(CORPUS, vocab_size=400), byte_tokenizer)
    with pytest.raises(InvalidInputError, match="tokenizer file changed"):
        counter.count(["토큰"])


def test_counter_ignores_truncation_and_padding_saved_in_the_file(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(CORPUS, vocab_size=BYTES_ONLY)
    tokenizer.enable_truncation(max_length=4)
    tokenizer.enable_padding(length=32)
    path = tmp_path / "truncating.json"
    save_tokenizer(tokenizer, path)
    assert TokenCounter(path).count(["가나다라", "ab"]) == [12, 2]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("   ", 0),
        ("한국어", 1),
        ("나는 밥을 먹었다.", 3),
        ("  여러 칸\n\n줄바꿈\t탭  ", 4),
        ("a\u3000b", 2),
    ],
)
def test_count_words_counts_eojeol(text: str, words: int) -> None:
    assert count_words(text) == words


# --- the default training corpus --------------------------------------------------------------


def _write_fake_corpora(root: Path) -> list[str]:
    """One small file per training source, in each source's real format; returns the expected texts."""
    expected: list[str] = []

    def write(name: str, content: str) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        return path

    for name, _ in TRAINING_SOURCES:
        if name.startswith("petitions/"):
            month = name.split("_")[1].split(".")[0]
            rows = [{"content": f"{month} 청원 본문", "title": "제목"}, {"content": "  ", "title": "빈 글"}]
            write(name, "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
            expected.append(f"{month} 청원 본문")
        elif name.startswith("nsmc/"):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                for i in range(17):
                    fh.write(json.dumps({"review": f"리뷰 {i}", "rating": "10"}, ensure_ascii=False) + "\n")
            expected += ["리뷰 0", "리뷰 8", "리뷰 16"]
        elif name.endswith("klue-dp-v1.1_dev.tsv"):
            write(name, "## 주석 : ##\n## klue-dp-v1_dev_00000_wikitree\t'K팝' 문장이다.\n1\t'K팝'\tx\n\n")
            expected.append("'K팝' 문장이다.")
        elif name.endswith("klue-ner-v1.1_dev.tsv"):
            header = "## 컬럼명 : CHAR\tNE_TAG\n"
            write(name, header + "## klue-ner-v1_dev_00000\t<경찰:OG>은 <박:PS>씨를 만났다.\n경\tB-OG\n")
            expected.append("경찰은 박씨를 만났다.")
        elif name.endswith("klue-nli-v1.1_dev.json"):
            write(name, json.dumps([{"premise": "전제", "hypothesis": "가설", "gold_label": "x"}]))
            expected += ["전제", "가설"]
        elif name.endswith("klue-sts-v1.1_dev.json"):
            write(name, json.dumps([{"sentence1": "문장 하나", "sentence2": "문장 둘", "labels": {}}]))
            expected += ["문장 하나", "문장 둘"]
        elif name.startswith("kornlu/KorNLI/"):
            write(name, 'sentence1\tsentence2\tgold_label\n그가 말했다, "엄마."\t"그는" 말했다.\tneutral\n')
            expected += ['그가 말했다, "엄마."', '"그는" 말했다.']
        elif name.startswith("kornlu/KorSTS/"):
            write(
                name, "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\nx\ty\t2012\t1\t5.0\t가\t나\n"
            )
            expected += ["가", "나"]
        elif name.startswith("chatbot/"):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8", newline="") as fh:
                csv.writer(fh).writerows([["Q", "A", "label"], ["안녕, 반가워", "네, 반가워요", "0"]])
            expected += ["안녕, 반가워", "네, 반가워요"]
        elif name.startswith("ud-korean-kaist/"):
            write(name, "# sent_id = 1\n# text = 트리뱅크 문장.\n1\t트리뱅크\t_\n\n")
            expected.append("트리뱅크 문장.")
        else:  # a new source needs a case here
            pytest.fail(f"no fake for {name}")
    return expected


def test_default_training_texts_reads_every_source_in_order(tmp_path: Path) -> None:
    expected = _write_fake_corpora(tmp_path)
    assert list(default_training_texts(tmp_path)) == expected


def test_default_training_texts_names_missing_files_before_training(tmp_path: Path) -> None:
    _write_fake_corpora(tmp_path)
    (tmp_path / "chatbot" / "ChatbotData.csv").unlink()
    with pytest.raises(InvalidInputError, match=r"chatbot/ChatbotData\.csv"):
        default_training_texts(tmp_path)


def test_default_training_texts_are_a_fixed_selection_of_the_real_corpora() -> None:
    if not CORPORA.is_dir():
        pytest.skip(f"{CORPORA} is not here")
    digest = hashlib.sha256()
    count = 0
    for text in default_training_texts(CORPORA):
        digest.update(text.encode("utf-8") + b"\0")
        count += 1
    assert count == 163_481
    assert digest.hexdigest() == "df7abe3606eaa7e980543b6a41626e654d0338ba8373d159befcb32bccdbcdd5"


# --- counting by pre-token equals the Rust pipeline ---------------------------------------------


def _default_counter() -> TokenCounter:
    return TokenCounter(default_tokenizer_path())


def test_pre_token_split_equals_the_rust_pre_tokenizer_for_every_assigned_bmp_character() -> None:
    """The split's letter, number and space classes agree with the Rust pipeline's on every
    character this Python knows: each is tried between letters, digits, spaces and apostrophes."""
    counter = _default_counter()
    split, unknown = _patterns()
    rust = counter.tokenizer.pre_tokenizer
    assert rust is not None
    points = [
        p
        for p in range(0x10000)
        if not 0xD800 <= p < 0xE000 and not unknown.search(unicodedata.normalize("NFC", chr(p)))
    ]
    for start in range(0, len(points), 2048):
        text = "".join(f"a{c}1{c}{c} {c}\n'{c}  x" for c in map(chr, points[start : start + 2048]))
        text = unicodedata.normalize("NFC", text)
        ours = [w.encode().decode("latin-1").translate(_BYTE_SYMBOLS) for w in split.findall(text)]
        assert ours == [piece for piece, _ in rust.pre_tokenize_str(text)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "a  \n\n b\t\tc   ",
        "I'm here, you'll see: it's 'quoted' 'S",
        "<|endoftext|> is text here <|im_start|>",
        "한국어 문장입니다.  숫자 12,345원과 ①②, ²³, Ⅻ.",
        "e\u0301 and \u1100\u1161\u11a8 compose under NFC",
        "emoji 😀 and 𠀀 (astral) take the other path",
        "an unassigned \u0378 character too",
        "\ufa6c composes into an astral ideograph under NFC",
        "\u3000full\uff01width\u00a0space\u2028line",
    ],
)
def test_count_by_pre_token_equals_encoding(text: str) -> None:
    counter = _default_counter()
    assert counter.count([text]) == counter._encoded([text])


def test_count_by_pre_token_equals_encoding_on_the_corpora() -> None:
    counter = _default_counter()
    texts = [
        json.loads(line)["content"]
        for line in (CORPORA / "petitions" / "petitions_2019-07.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    with gzip.open(CORPORA / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as fh:
        texts += [json.loads(line)["review"] for _, line in zip(range(5000), fh, strict=False)]
    assert counter.count(texts) == counter._encoded(texts)
    assert counter.count(texts) == counter._encoded(texts)  # again, from the word cache


def test_a_pipeline_the_split_does_not_reproduce_is_encoded_whole(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(["한국어 문장과 English words."] * 3, vocab_size=300)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "whitespace.json"
    save_tokenizer(tokenizer, path)
    counter = TokenCounter(path)
    assert counter.words is None
    assert counter.count(["한국어 문장과", "words."]) == counter._encoded(["한국어 문장과", "words."])
