"""The pinned tokenizer: training, atomic saving, fingerprinting, and fast token and word counts.

Every count the ledger credits records the fingerprint (SHA-256 of the tokenizer file), so a
recount with the same file gives the same numbers. Training is reproducible too: the
`tokenizers` BPE trainer sums pair counts (order-free), sorts the alphabet by code point and
breaks ties between equally frequent pairs by their token ids, so the same texts give a
byte-identical tokenizer.json in any order, in any process, with any number of threads
(checked with RAYON_NUM_THREADS=1, 2 and 8; `tests/test_tokenizer.py` keeps checking it).
Nothing needs to be forced. The recipe is only reproducible for one `tokenizers` version,
though: the file, not the recipe, is what counts are pinned to, so keep the file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from tokenclub.errors import InvalidInputError

SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")
"""Ids 0-3: document separator for pretraining, padding, and chat turn markers for the API."""

DEFAULT_VOCAB_SIZE = 32_000


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
) -> Tokenizer:
    """A byte-level BPE: NFC first, GPT-2 style pre-tokenization on bytes, so no text is unknown.

    The 256 byte symbols are always in the vocabulary (any input encodes, whatever the script);
    `vocab_size` counts them and the special tokens.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> str:
    """Write tokenizer.json atomically (temporary file, fsync, rename) and return its fingerprint.

    A reader never sees a half-written file, and a crash leaves the previous file in place.
    """
    target = Path(path)
    data = tokenizer.to_str(pretty=True).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)  # mkstemp's 0600 would hide the file from workers
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def fingerprint(path: str | Path) -> str:
    """SHA-256 hex digest of the tokenizer file's bytes: the identity recorded with every count."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_tokenizer(path: str | Path, expected_fingerprint: str | None = None) -> Tokenizer:
    """Load tokenizer.json; with `expected_fingerprint`, refuse a file whose bytes have changed."""
    data = Path(path).read_bytes()
    if expected_fingerprint is not None and hashlib.sha256(data).hexdigest() != expected_fingerprint:
        raise InvalidInputError(f"{path}: tokenizer file changed (fingerprint is not {expected_fingerprint})")
    return Tokenizer.from_str(data.decode("utf-8"))


class TokenCounter:
    """Counts tokens with a pinned tokenizer file.

    Holds the path and the fingerprint taken at construction; the tokenizer itself is loaded on
    first use and is not pickled, so a counter ships cheaply to Ray workers, and each worker
    checks that its copy of the file is the one that was fingerprinted.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint(self.path)
        self._tokenizer: Tokenizer | None = None
        self._words: _WordCounts | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "fingerprint": self.fingerprint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self.fingerprint = state["fingerprint"]
        self._tokenizer = None
        self._words = None

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            tokenizer = load_tokenizer(self.path, expected_fingerprint=self.fingerprint)
            tokenizer.no_truncation()  # a count covers the whole text, whatever the file says
            tokenizer.no_padding()
            tokenizer.encode_special_tokens = True  # "<|endoftext|>" inside a text is text
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def words(self) -> _WordCounts | None:
        """The word-cached counter, when the file's pipeline is the one it reproduces."""
        if self._words is None and _reproducible(self.tokenizer):
            self._words = _WordCounts(self.tokenizer.model)
        return self._words

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, without special tokens: exactly `len(encode(text).ids)`.

        Texts are split into pre-tokens here and each distinct pre-token is counted once by the
        file's own BPE model (`_WordCounts`); texts that split cannot vouch for go through the
        whole Rust pipeline (batch-encoded, offsets skipped).
        """
        words = self.words
        if words is None:
            return self._encoded(texts)
        counts: list[int] = []
        rest: list[int] = []
        for index, text in enumerate(texts):
            count = words.count(text)
            if count is None:
                rest.append(index)
            counts.append(count or 0)
        for index, count in zip(rest, self._encoded([texts[i] for i in rest]), strict=True):
            counts[index] = count
        return counts

    def _encoded(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


# --- counting by pre-token ---------------------------------------------------------------------
#
# A byte-level BPE counts a text as the sum over its pre-tokens (the GPT-2 split) of the tokens
# the model makes of each one, so a pre-token met before costs one dictionary look-up. In Korean
# prose a fifth of the pre-tokens of a corpus are distinct, and the Rust pipeline spends most of
# its time in the pre-tokenizer (which tracks offsets for every byte), so counting here is
# 2-5x cheaper, with the same result: the split is the pre-tokenizer's own pattern over the same
# character classes, and each distinct pre-token is still counted by the file's BPE model.

_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Unicode's White_Space property (unchanged since Unicode 6.3): the regex engine's \\s."""

WORD_CACHE_SIZE = 1 << 19
"""Distinct pre-tokens remembered per counter (about 60 MB); the cache starts over when full."""


def _ranges(points: list[int]) -> str:
    """A character class body for sorted code points, as ranges."""
    starts = [p for i, p in enumerate(points) if i == 0 or points[i - 1] != p - 1]
    ends = [p for i, p in enumerate(points) if i == len(points) - 1 or points[i + 1] != p + 1]
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in zip(starts, ends, strict=True)
    )


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The GPT-2 pre-token pattern over this Python's letters and numbers of the Basic
    Multilingual Plane, and a pattern for every other character: those unassigned here (the Rust
    pipeline's newer tables may know them) and those beyond the BMP (emoji, rare ideographs,
    which would make the classes slow to match). A text holding one is left to the Rust pipeline.
    `tests/test_tokenizer.py` checks the split against the Rust pre-tokenizer on every BMP
    character this Python knows."""
    letters: list[int] = []
    numbers: list[int] = []
    unknown: list[int] = []
    for point in range(0x10000):
        category = unicodedata.category(chr(point))
        if category[0] == "L":
            letters.append(point)
        elif category[0] == "N":
            numbers.append(point)
        elif category == "Cn":
            unknown.append(point)
    letter, number, space = _ranges(letters), _ranges(numbers), _WHITE_SPACE
    split = re.compile(
        f"'s|'t|'re|'ve|'m|'ll|'d| ?[{letter}]+| ?[{number}]+| ?[^{space}{letter}{number}]+"
        f"|[{space}]+(?![^{space}])|[{space}]+"
    )
    return split, re.compile(f"[{_ranges(unknown)}\U00010000-\U0010ffff]")


def _byte_symbols() -> dict[int, str]:
    """GPT-2's byte-to-character table, as a `str.translate` table over Latin-1 characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    return {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(others)}


_BYTE_SYMBOLS = _byte_symbols()


def _reproducible(tokenizer: Tokenizer) -> bool:
    """Whether the file's pipeline is NFC (or none), the GPT-2 byte-level split and a plain BPE:
    the pipeline `train_tokenizer` makes, and the only one `_WordCounts` stands in for."""
    config = json.loads(tokenizer.to_str())
    model = config.get("model") or {}
    pre = config.get("pre_tokenizer") or {}
    normalizer = config.get("normalizer")
    plain_added = all(token.get("special") for token in config.get("added_tokens") or [])
    return (
        normalizer in (None, {"type": "NFC"})
        and pre
        == {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": pre.get("trim_offsets"),
            "use_regex": True,
        }
        and model.get("type") == "BPE"
        and model.get("dropout") is None
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
        and not model.get("byte_fallback")
        and plain_added
    )


class _WordCounts:
    """Token counts by pre-token, each distinct pre-token counted once by the BPE model."""

    def __init__(self, model: models.Model) -> None:
        self._tokenize = model.tokenize
        self._split, self._unknown = _patterns()
        self._cache: dict[str, int] = {}

    def count(self, text: str) -> int | None:
        """Tokens of `text`, or None when it holds a character the split does not cover."""
        if not text.isascii():
            if self._unknown.search(text):
                return None
            if not unicodedata.is_normalized("NFC", text):
                text = unicodedata.normalize("NFC", text)  # may compose into astral characters
                if self._unknown.search(text):
                    return None
        cache = self._cache
        if len(cache) > WORD_CACHE_SIZE:
            cache.clear()
        words = self._split.findall(text)
        for word in set(words).difference(cache):
            cache[word] = len(self._tokenize(word.encode().decode("latin-1").translate(_BYTE_SYMBOLS)))
        return sum(map(cache.__getitem__, words))


def count_words(text: str) -> int:
    """Eojeol: whitespace-separated units, the word count that membership thresholds use."""
    return len(text.split())


# --- the default training corpus --------------------------------------------------------------

_NER_TAG = re.compile(r"<([^<>:]+):[A-Z]{2}>")


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            yield from fh
    else:
        with path.open(encoding="utf-8") as fh:
            yield from fh


def _jsonl(path: Path, field: str) -> Iterator[str]:
    return (json.loads(line)[field] for line in _lines(path))


def _json_array(path: Path, *fields: str) -> Iterator[str]:
    for record in json.loads(path.read_text(encoding="utf-8")):
        yield from (record[field] for field in fields)


def _tsv(path: Path, *columns: str) -> Iterator[str]:
    """Tab-separated with a header; quotes are text here (KorNLI sentences contain them)."""
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            yield from (row[column] for column in columns)


def _csv(path: Path, *columns: str) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            yield from (row[column] for column in columns)


def _klue_sentences(path: Path) -> Iterator[str]:
    """KLUE DP/NER: the raw sentence follows the id on each `## klue-…<TAB>` line (NER tags removed)."""
    for line in _lines(path):
        if line.startswith("## klue-") and "\t" in line:
            yield _NER_TAG.sub(r"\1", line.split("\t", 1)[1].rstrip("\n"))


def _conllu_sentences(path: Path) -> Iterator[str]:
    prefix = "# text = "
    return (line[len(prefix) :].rstrip("\n") for line in _lines(path) if line.startswith(prefix))


NSMC_STRIDE = 8
"""Every 8th movie review (line index % 8 == 0): informal Korean in about the weight of the
petitions' formal prose. All 712k reviews (62 MB) made training 3× slower and formal held-out
text 4-7 % dearer (1.90 instead of 1.78 tokens per eojeol on petitions): review slang took
vocabulary from the kind of text partners contribute (docs/tokenizer.md)."""

_KLUE = "klue/klue_benchmark"
TRAINING_SOURCES: tuple[tuple[str, Callable[[Path], Iterator[str]]], ...] = (
    ("petitions/petitions_2017-08.jsonl", lambda p: _jsonl(p, "content")),
    ("petitions/petitions_2019-04.jsonl", lambda p: _jsonl(p, "content")),
    ("petitions/petitions_2019-05.jsonl", lambda p: _jsonl(p, "content")),
    ("petitions/petitions_2019-06.jsonl", lambda p: _jsonl(p, "content")),
    ("nsmc/reviews.jsonl.gz", lambda p: islice(_jsonl(p, "review"), 0, None, NSMC_STRIDE)),
    (f"{_KLUE}/klue-dp-v1.1/klue-dp-v1.1_dev.tsv", _klue_sentences),
    (f"{_KLUE}/klue-ner-v1.1/klue-ner-v1.1_dev.tsv", _klue_sentences),
    (f"{_KLUE}/klue-nli-v1.1/klue-nli-v1.1_dev.json", lambda p: _json_array(p, "premise", "hypothesis")),
    (f"{_KLUE}/klue-sts-v1.1/klue-sts-v1.1_dev.json", lambda p: _json_array(p, "sentence1", "sentence2")),
    ("kornlu/KorNLI/xnli.dev.ko.tsv", lambda p: _tsv(p, "sentence1", "sentence2")),
    ("kornlu/KorNLI/xnli.test.ko.tsv", lambda p: _tsv(p, "sentence1", "sentence2")),
    ("kornlu/KorSTS/sts-train.tsv", lambda p: _tsv(p, "sentence1", "sentence2")),
    ("kornlu/KorSTS/sts-dev.tsv", lambda p: _tsv(p, "sentence1", "sentence2")),
    ("kornlu/KorSTS/sts-test.tsv", lambda p: _tsv(p, "sentence1", "sentence2")),
    ("chatbot/ChatbotData.csv", lambda p: _csv(p, "Q", "A")),
    ("ud-korean-kaist/ko_kaist-ud-dev.conllu", _conllu_sentences),
)
"""The default tokenizer's training files, in order, relative to the corpora root.

Licences (see SOURCES.md in the corpora root): petitions CC0 as declared by ko-nlp/Korpora;
nsmc CC0; KLUE, KorNLI/KorSTS and UD Korean-KAIST CC BY-SA 4.0 (attribution in
docs/tokenizer.md); Chatbot_data MIT. Held out for evaluation: petitions_2019-07, the
UD Korean-KAIST test set and the reviews between the trained ones. Left out:
korean-hate-speech (offensive by design).
"""


def default_training_texts(corpora_root: str | Path) -> Iterator[str]:
    """Every non-blank text of `TRAINING_SOURCES`, in their fixed order (163,481 texts, 21 MB).

    Missing files are reported at the call, before any training starts.
    """
    root = Path(corpora_root)
    missing = [name for name, _ in TRAINING_SOURCES if not (root / name).is_file()]
    if missing:
        raise InvalidInputError(f"{root}: corpus files missing: {', '.join(missing)}")
    return (text for name, read in TRAINING_SOURCES for text in read(root / name) if text.strip())


def build_default_tokenizer(corpora_root: str | Path, path: str | Path) -> str:
    """Train the 32k default tokenizer on `default_training_texts`, save it, return its fingerprint."""
    return save_tokenizer(train_tokenizer(default_training_texts(corpora_root)), path)
