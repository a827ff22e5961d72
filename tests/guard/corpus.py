"""Real Korean text for the guard tests: petitions to index, other open sets as fresh text.

Petitions (CC0 as declared by ko-nlp/Korpora) stand in for contributed text; movie reviews
(NSMC, CC0), chatbot answers (MIT) and KLUE NLI premises (CC BY-SA 4.0) are text the index
never saw. See /work/shared/corpora/SOURCES.md.
"""

from __future__ import annotations

import csv
import gzip
import json
from functools import cache

from tests.conftest import CORPORA

INDEXED_MONTH = "2019-05"
FRESH_PER_SOURCE = 3000


@cache
def petitions(month: str = INDEXED_MONTH) -> tuple[str, ...]:
    path = CORPORA / "petitions" / f"petitions_{month}.jsonl"
    with path.open(encoding="utf-8") as fh:
        return tuple(json.loads(line)["content"] for line in fh)


@cache
def fresh_texts() -> dict[str, tuple[str, ...]]:
    """Texts of other sources, none of which copies a petition."""
    with gzip.open(CORPORA / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as fh:
        reviews = tuple(
            json.loads(line)["review"] for line, _ in zip(fh, range(FRESH_PER_SOURCE), strict=False)
        )
    with (CORPORA / "chatbot" / "ChatbotData.csv").open(encoding="utf-8") as fh:
        answers = tuple(row["A"] for row, _ in zip(csv.DictReader(fh), range(FRESH_PER_SOURCE), strict=False))
    nli = json.loads(
        (CORPORA / "klue" / "klue_benchmark" / "klue-nli-v1.1" / "klue-nli-v1.1_dev.json").read_text()
    )
    premises = tuple(dict.fromkeys(row["premise"] for row in nli))
    return {"nsmc": reviews, "chatbot": answers, "klue_nli": premises}
