"""Export encoding on Ray: the per-document work of an export on a pool of Ray actors.

Only tokenizing goes to the workers: it is ~95% of a Megatron export and runs at ~2.3 MB/s per
core. MDS samples (~1 GB/s per core) and Parquet row groups (~60 MB/s per core, one writer per
file) cost less to make in the driver than to ship (docs/export.md has the figures), so they are
encoded there; an export without Megatron never starts an actor.

The driver reads (and decrypts) the snapshot's corpus parts itself and sends each batch's
``text`` column to the actors; it never ships the master key. Corpus parts are
sealed with the store's key (`atrest`), and handing workers that key — or a KMS client — would
put it in Ray's object store and on its unencrypted transport to every node; reading a part is
cheap next to tokenizing it (see docs/export.md), so the driver keeps the key and the reading.
Each actor loads the pinned tokenizer once (checked against its fingerprint on that node) and
encodes batch after batch; at most `window` batches are in flight and results come back in
input order, so the driver appends them to the shards exactly as the local path does and the
files are the same bytes. Imported only for ``--executor ray``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import pyarrow as pa

from tokenclub.errors import StateError
from tokenclub.export.encode import BatchEncoder, Encoded, EncodeSpec, LocalEncoding

T = TypeVar("T")
WORKER_ENV = {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
"""One tokenizer thread per actor: an actor holds one CPU, the cluster's cores are the pool.
Set in the actor before the tokenizer loads (a Ray `runtime_env` would cost new worker
processes, seconds per export)."""


class _Encoder:
    """The actor: one encoder, built once, applied to every batch it is sent."""

    def __init__(self, spec: EncodeSpec) -> None:
        os.environ.update(WORKER_ENV)
        self.encoder = BatchEncoder(spec)

    def encode(self, batch: pa.Table) -> Encoded:
        return self.encoder(batch)


class RayEncoding:
    """Encodes on `workers` Ray actors, in input order; needs a connected runtime
    (`scale.runtime.connect`, whose `cpus` is the natural `workers`)."""

    def __init__(self, workers: int, window: int | None = None) -> None:
        self.workers = max(1, workers)
        self.window = max(window or 4 * self.workers, 1)

    def map(self, spec: EncodeSpec, items: Iterable[tuple[T, pa.Table]]) -> Iterator[tuple[T, Encoded]]:
        import ray
        from ray.exceptions import RayError

        if spec.counter is None:
            # Nothing worth shipping: see the module's docstring.
            yield from LocalEncoding().map(spec, items)
            return
        here = BatchEncoder(EncodeSpec(None, None, spec.mds))
        actor = ray.remote(num_cpus=1)(_Encoder)
        actors: list[Any] = [
            actor.remote(EncodeSpec(spec.counter, spec.dtype, False)) for _ in range(self.workers)
        ]
        pending: deque[tuple[T, Encoded, Any]] = deque()
        try:
            for index, (tag, batch) in enumerate(items):
                ref = actors[index % self.workers].encode.remote(batch.select(["text"]))
                pending.append((tag, here(batch), ref))
                if len(pending) >= self.window:
                    yield _merged(pending.popleft())
            while pending:
                yield _merged(pending.popleft())
        except RayError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StateError(f"a Ray export worker failed: {first}") from exc
        finally:
            for handle in actors:
                ray.kill(handle)


def _merged(item: tuple[T, Encoded, Any]) -> tuple[T, Encoded]:
    """The driver's MDS samples with the tokens a worker sent back."""
    import ray

    tag, local, ref = item
    tokens: Encoded = ray.get(ref)
    return tag, Encoded(tokens.tokens, tokens.lengths, local.samples, local.sizes)
