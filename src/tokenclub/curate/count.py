"""Counting: eojeol words and tokens of every live document, the two numbers a partner is credited."""

from __future__ import annotations

import pyarrow as pa

from tokenclub.curate.step import Step, live_mask, set_column
from tokenclub.tokenizer import TokenCounter, count_words


class CountStep(Step):
    """Writes `words` and `tokens` (int64) for live documents; rejected ones get nulls.

    The counter pickles as its tokenizer path and fingerprint, so the step ships to Ray
    workers as is; `counter.fingerprint` is what a receipt records beside the counts.
    """

    name = "count"
    writes = ("words", "tokens")

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    def process(self, batch: pa.Table) -> pa.Table:
        live = live_mask(batch)
        texts = batch.column("text").to_pylist()
        rows = [i for i, keep in enumerate(live) if keep]
        words: list[int | None] = [None] * batch.num_rows
        tokens: list[int | None] = [None] * batch.num_rows
        for row, count in zip(rows, self.counter.count([texts[i] for i in rows]), strict=True):
            words[row] = count_words(texts[row])
            tokens[row] = count
        batch = set_column(batch, "words", words, pa.int64())
        return set_column(batch, "tokens", tokens, pa.int64())
