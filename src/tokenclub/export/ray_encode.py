"""Export encoding on Ray: the per-document work of an export on a pool of Ray actors.

The driver reads (and decrypts) the snapshot's corpus parts itself and sends each batch's
``doc_id``/``text`` columns to the actors; it never ships the master key. Corpus parts are
sealed with the store's key (`atrest`), and handing workers that key — or a KMS client — would
put it in Ray's object store and on its unencrypted transport to every node; reading a part is
cheap next to tokenizing it (see docs/export.md), so the driver keeps the key and the reading.
Each actor loads the pinned tokenizer once (checked against its fingerprint on that node) and
encodes batch after batch; at most `window` batches are in flight and results come back in
input order, so the driver appends them to the shards exactly as the local path does and the
files are the same bytes. Imported only for ``--executor ray``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import pyarrow as pa

from tokenclub.errors import StateError
from tokenclub.export.encode import BatchEncoder, Encoded, EncodeSpec

T = TypeVar("T")
WORKER_ENV = {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
"""One tokenizer thread per actor: an actor holds one CPU, the cluster's cores are the pool."""


class _Encoder:
    """The actor: one encoder, built once, applied to every batch it is sent."""

    def __init__(self, spec: EncodeSpec) -> None:
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

        actor = ray.remote(num_cpus=1, runtime_env={"env_vars": WORKER_ENV})(_Encoder)
        actors: list[Any] = [actor.remote(spec) for _ in range(self.workers)]
        pending: deque[tuple[T, Any]] = deque()
        try:
            for index, (tag, batch) in enumerate(items):
                pending.append((tag, actors[index % self.workers].encode.remote(batch)))
                if len(pending) >= self.window:
                    done, ref = pending.popleft()
                    yield done, ray.get(ref)
            while pending:
                done, ref = pending.popleft()
                yield done, ray.get(ref)
        except RayError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StateError(f"a Ray export worker failed: {first}") from exc
        finally:
            for handle in actors:
                ray.kill(handle)
