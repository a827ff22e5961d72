"""The per-document work of an export, apart from the writing: token ids, MDS samples.

This is where an export spends its CPU (tokenizing is ~95% of a Megatron export), so it is
kept pure — a batch of ``doc_id``/``text`` in, arrays and bytes out — and the same code runs
in the exporting process or on Ray workers (`export.ray_encode`); the writers only append
what it returns, in order, so both paths write the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tokenclub.tokenizer import SPECIAL_TOKENS, TokenCounter

EOD_TOKEN = SPECIAL_TOKENS[0]
ENCODE_COLUMNS = ("doc_id", "text")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EncodeSpec:
    """What a batch is encoded into; picklable (the counter ships as path and fingerprint)."""

    counter: TokenCounter | None
    """Tokenize for Megatron with this tokenizer; None when no Megatron shards are written."""
    dtype: str | None
    """Megatron's token dtype (`formats.megatron_dtype`)."""
    mds: bool


@dataclass(frozen=True, slots=True)
class Encoded:
    """One batch, encoded: what the Megatron and MDS writers append to the open shard."""

    tokens: npt.NDArray[np.integer] | None
    """Every document's ids then the end-of-document id, flat, in the Megatron dtype."""
    lengths: npt.NDArray[np.int32] | None
    """Tokens per document, EOD included."""
    samples: bytes | None
    """The batch's MDS samples back to back (column sizes as uint32, then id and text)."""
    sizes: npt.NDArray[np.int64] | None
    """Bytes per MDS sample."""


class BatchEncoder:
    """Encodes batches for an `EncodeSpec`; the tokenizer is loaded once, on first use."""

    def __init__(self, spec: EncodeSpec) -> None:
        self.spec = spec
        self._eod: int | None = None

    @property
    def eod(self) -> int:
        if self._eod is None:
            assert self.spec.counter is not None
            eod = self.spec.counter.tokenizer.token_to_id(EOD_TOKEN)
            assert eod is not None, f"the tokenizer has no {EOD_TOKEN} token"
            self._eod = int(eod)
        return self._eod

    def __call__(self, batch: pa.Table) -> Encoded:
        tokens = lengths = sizes = None
        samples = None
        if self.spec.counter is not None and self.spec.dtype is not None:
            tokens, lengths = self._tokens(batch.column("text").to_pylist())
        if self.spec.mds:
            samples, sizes = _samples(batch.column("doc_id").to_pylist(), batch.column("text").to_pylist())
        return Encoded(tokens, lengths, samples, sizes)

    def _tokens(self, texts: list[str]) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.int32]]:
        assert self.spec.counter is not None and self.spec.dtype is not None
        encodings = self.spec.counter.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int32, count=len(encodings))
        if not encodings:
            return np.zeros(0, np.dtype(self.spec.dtype)), lengths
        eod = self.eod
        flat = np.concatenate([np.array([*e.ids, eod], dtype=np.int64) for e in encodings])
        return flat.astype(np.dtype(self.spec.dtype), copy=False), lengths


def _samples(ids: list[str], texts: list[str]) -> tuple[bytes, npt.NDArray[np.int64]]:
    parts: list[bytes] = []
    for doc_id, text in zip(ids, texts, strict=True):
        id_bytes, text_bytes = doc_id.encode("utf-8"), text.encode("utf-8")
        parts.append(struct.pack("<II", len(id_bytes), len(text_bytes)) + id_bytes + text_bytes)
    return b"".join(parts), np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))


class Encoding(Protocol):
    """Maps (tag, batch) pairs to (tag, encoded batch), in input order."""

    def map(self, spec: EncodeSpec, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, Encoded]]: ...


class LocalEncoding:
    """Encodes in this process, batch after batch (the tokenizer's own threads still run)."""

    def map(self, spec: EncodeSpec, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, Encoded]]:
        encoder = BatchEncoder(spec)
        for tag, batch in items:
            yield tag, encoder(batch)
