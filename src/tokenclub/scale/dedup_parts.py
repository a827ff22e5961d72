"""The per-partition halves of bulk near-duplicate removal: pure functions over Arrow tables.

Each function sees one hash partition of a shuffle (all rows whose key hashes alike), so the
bulk job (`bulk_dedup`) can run them on any number of Ray workers. Together they reproduce the
incremental index's decisions (`corpus.dedup_index.mark_duplicates`): documents are taken in
contribution order, and a document is a duplicate when an earlier *kept* document has the same
exact key, or shares an LSH band with it and reaches `NEAR_DUPLICATE_JACCARD`.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tokenclub.curate.dedup import NEAR_DUPLICATE_JACCARD

PART = "_part"
"""Column holding a row's shuffle partition."""

NO_NODE = -1
"""`other`/`label` of a row that carries no edge / no label (rows of two kinds share a schema)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

I64Array = npt.NDArray[np.int64]

SIGNED_LINKS = pa.schema([("node", pa.int64()), ("other", pa.int64()), ("minhash", pa.binary())])
EDGES = pa.schema([("a", pa.int64()), ("b", pa.int64())])
LINKS = pa.schema([("node", pa.int64()), ("other", pa.int64()), ("label", pa.int64())])
ORDERS = pa.schema([("order", pa.int64())])


def partition_of_ints(values: I64Array, parts: int) -> I64Array:
    """A well-spread partition number for integer keys (Fibonacci hashing of the 64 bits)."""
    mixed = values.astype(np.uint64) * _GOLDEN
    return ((mixed >> np.uint64(32)) % np.uint64(parts)).astype(np.int64)


def with_int_partition(table: pa.Table, column: str, parts: int) -> pa.Table:
    keys = table.column(column).to_numpy().astype(np.int64)
    return table.append_column(PART, pa.array(partition_of_ints(keys, parts)))


def with_key_partition(table: pa.Table, parts: int) -> pa.Table:
    """Partition by `dedup_key` (hex of a 128-bit hash, so its first 16 digits are already uniform)."""
    keys = np.array([int(key[:16], 16) for key in table.column("dedup_key").to_pylist()], dtype=np.uint64)
    return table.append_column(PART, pa.array((keys % np.uint64(parts)).astype(np.int64)))


def _band_hashes(bands: pa.Array) -> npt.NDArray[np.uint64]:
    """The 64-bit hash part of 10-byte band keys (bytes 2–9, big-endian), without a Python loop."""
    bands = bands.cast(pa.binary())
    offsets = np.frombuffer(bands.buffers()[1], dtype=np.int32)[bands.offset : bands.offset + len(bands) + 1]
    data = np.frombuffer(bands.buffers()[2], dtype=np.uint8)
    if len(bands) and np.any(np.diff(offsets) != 10):
        raise ValueError("band keys must be 10 bytes (band index and 64-bit hash)")
    picked = data[offsets[:-1, None] + np.arange(2, 10)]
    return np.ascontiguousarray(picked).view(">u8").ravel().astype(np.uint64)


def split_exact(table: pa.Table, parts: int) -> pa.Table:
    """Exact duplicates of one `dedup_key` partition, and the band rows of the first of each key.

    Returns rows of two kinds: `kind` 0 is an exact duplicate (a later copy of a key), `kind` 1
    is one LSH band of a representative (the earliest document of its key), with its partition
    for the band shuffle. Later copies never need band rows: they are duplicates whatever
    happens to their representative (the same text has the same similarity to everything).
    Band rows carry no signature (18 bytes, not 530): the band shuffle moves 16 rows per
    document, and the few candidate pairs fetch their signatures afterwards.
    """
    table = table.sort_by([("dedup_key", "ascending"), ("order", "ascending")])
    keys = table.column("dedup_key").to_pylist()
    first = np.array([i == 0 or keys[i] != keys[i - 1] for i in range(len(keys))], dtype=np.bool_)
    dups = table.column("order").to_numpy()[~first]
    reps = table.filter(pa.array(first))
    band_lists = reps.column("minhash_bands").combine_chunks()
    parents = pc.list_parent_indices(band_lists).to_numpy()
    bands = pc.list_flatten(band_lists).cast(pa.binary())
    hashes = _band_hashes(bands)
    count = len(dups)
    return pa.table(
        {
            "kind": pa.array(np.r_[np.zeros(count, np.int8), np.ones(len(bands), np.int8)]),
            "order": pa.array(np.r_[dups, reps.column("order").to_numpy()[parents]].astype(np.int64)),
            "band": pa.concat_arrays([pa.nulls(count, pa.binary()), bands]),
            PART: pa.array(
                np.r_[np.full(count, NO_NODE, np.int64), (hashes % np.uint64(parts)).astype(np.int64)]
            ),
        }
    )


def bucket_pairs(table: pa.Table) -> pa.Table:
    """Candidate pairs (a, b), a < b: documents that share a band key (not yet confirmed)."""
    table = table.sort_by([("band", "ascending"), ("order", "ascending")])
    bands = table.column("band").to_pylist()
    orders = table.column("order").to_numpy()
    starts = [i for i in range(len(bands)) if i == 0 or bands[i] != bands[i - 1]] + [len(bands)]
    found_a: list[I64Array] = []
    found_b: list[I64Array] = []
    for start, end in pairwise(starts):
        if end - start < 2:
            continue
        rows, cols = np.triu_indices(end - start, k=1)
        found_a.append(orders[start + rows])
        found_b.append(orders[start + cols])
    if not found_a:
        return EDGES.empty_table()
    return pa.table({"a": np.concatenate(found_a), "b": np.concatenate(found_b)}, schema=EDGES)


def signature_links(table: pa.Table) -> pa.Table:
    """Documents' signatures (`order`, `minhash`) as link rows keyed by `node`, with no `other`."""
    return pa.table(
        {
            "node": table.column("order"),
            "other": pa.array(np.full(table.num_rows, NO_NODE, np.int64)),
            "minhash": table.column("minhash"),
        },
        schema=SIGNED_LINKS,
    )


def pair_links(table: pa.Table) -> pa.Table:
    """Candidate pairs (a, b) as link rows keyed by `a`."""
    return pa.table(
        {
            "node": table.column("a"),
            "other": table.column("b"),
            "minhash": pa.nulls(table.num_rows, pa.binary()),
        },
        schema=SIGNED_LINKS,
    )


def _signatures_by_node(table: pa.Table) -> tuple[dict[int, bytes], pa.Table]:
    own = table.filter(pc.equal(table.column("other"), NO_NODE))
    links = table.filter(pc.not_equal(table.column("other"), NO_NODE))
    return dict(zip(own.column("node").to_pylist(), own.column("minhash").to_pylist(), strict=True)), links


def pass_signature(table: pa.Table) -> pa.Table:
    """In a partition of `a`s: each distinct pair once, re-keyed by `b`, carrying a's signature."""
    signatures, links = _signatures_by_node(table)
    pairs = sorted(set(zip(links.column("node").to_pylist(), links.column("other").to_pylist(), strict=True)))
    return pa.table(
        {
            "node": pa.array([b for _, b in pairs], pa.int64()),
            "other": pa.array([a for a, _ in pairs], pa.int64()),
            "minhash": pa.array([signatures[a] for a, _ in pairs], pa.binary()),
        },
        schema=SIGNED_LINKS,
    )


def confirm_pairs(table: pa.Table) -> pa.Table:
    """In a partition of `b`s: the pairs whose estimated Jaccard reaches the threshold, as edges."""
    signatures, links = _signatures_by_node(table)
    if not links.num_rows:
        return EDGES.empty_table()
    ours = np.stack([np.frombuffer(signatures[b], dtype=np.uint32) for b in links.column("node").to_pylist()])
    theirs = np.stack([np.frombuffer(raw, dtype=np.uint32) for raw in links.column("minhash").to_pylist()])
    similar = np.count_nonzero(ours == theirs, axis=1) / ours.shape[1] >= NEAR_DUPLICATE_JACCARD
    return pa.table(
        {
            "a": links.column("other").filter(pa.array(similar)),
            "b": links.column("node").filter(pa.array(similar)),
        },
        schema=EDGES,
    )


def propagate(table: pa.Table) -> pa.Table:
    """One round of min-label propagation inside a partition of `node`s.

    Input rows are labels (`other` = -1) and directed edges (`label` = -1) keyed by `node`; the
    output offers every node its own label and every neighbour the node's label. A `min` per
    node over the output is the next labelling.
    """
    labelled = table.filter(pc.equal(table.column("other"), NO_NODE))
    edges = table.filter(pc.not_equal(table.column("other"), NO_NODE))
    labels = dict(zip(labelled.column("node").to_pylist(), labelled.column("label").to_pylist(), strict=True))
    nodes = edges.column("node").to_pylist()
    offered = [labels[node] for node in nodes]
    return pa.table(
        {
            "node": pa.concat_arrays(
                [labelled.column("node").combine_chunks(), edges.column("other").combine_chunks()]
            ),
            "label": pa.concat_arrays(
                [labelled.column("label").combine_chunks(), pa.array(offered, pa.int64())]
            ),
        }
    )


def label_edges(table: pa.Table, parts: int) -> pa.Table:
    """Each edge (`node` → `other`) with the component label of its `node`, partitioned by label."""
    labelled = table.filter(pc.equal(table.column("other"), NO_NODE))
    edges = table.filter(pc.not_equal(table.column("other"), NO_NODE))
    labels = dict(zip(labelled.column("node").to_pylist(), labelled.column("label").to_pylist(), strict=True))
    component = np.array([labels[node] for node in edges.column("node").to_pylist()], dtype=np.int64)
    return pa.table(
        {
            "a": edges.column("node"),
            "b": edges.column("other"),
            PART: pa.array(partition_of_ints(component, parts)),
        }
    )


def decide(table: pa.Table) -> pa.Table:
    """Duplicates among the edges of whole components, decided as the incremental index would.

    Nodes are taken in contribution order; a node is a duplicate when an earlier neighbour was
    kept. Components in one partition share no edges, so one pass over all of them is the same
    as one pass per component. (Taking the whole connected component as one cluster would
    differ: with A≈B and B≈C but A≉C, the index keeps A and C.)
    """
    earlier: dict[int, set[int]] = defaultdict(set)
    for a, b in zip(table.column("a").to_pylist(), table.column("b").to_pylist(), strict=True):
        earlier[b].add(a)
        earlier.setdefault(a, set())
    kept: set[int] = set()
    duplicates: list[int] = []
    for node in sorted(earlier):
        if earlier[node] & kept:
            duplicates.append(node)
        else:
            kept.add(node)
    return pa.table({"order": pa.array(duplicates, pa.int64())}, schema=ORDERS)


def mark_rejected(table: pa.Table, reason: str) -> pa.Table:
    """Documents of one `order` partition, with `reason` where a rejection row (null `doc_id`) names them."""
    docs = table.filter(pc.is_valid(table.column("doc_id")))
    rejected = set(table.filter(pc.is_null(table.column("doc_id"))).column("order").to_pylist())
    reasons = [reason if order in rejected else None for order in docs.column("order").to_pylist()]
    return pa.table(
        {
            "doc_id": docs.column("doc_id"),
            "order": docs.column("order"),
            "reject_reason": pa.array(reasons, pa.string()),
        }
    )
