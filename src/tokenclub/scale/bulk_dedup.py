"""Bulk near-duplicate removal over a whole historical corpus, as a distributed Ray Data job.

The incremental index (`corpus.dedup_index`) decides one batch at a time against a database;
re-deciding a corpus of 10^9 documents that way is one long serial scan. This job makes the
same decisions with shuffles instead (NeMo Curator's "shuffle workflow" shape):

1. signatures: the ingest pipeline's own `DedupSignatureStep`, mapped over batches;
2. exact keys: shuffle on `dedup_key`; later copies of a key are duplicates, the earliest one
   (the representative) goes on with its 16 LSH band keys;
3. band buckets: shuffle on the band key (18-byte rows, no signatures); documents sharing a
   bucket become candidate pairs, which two partition joins on the pair's ends give both
   signatures; pairs at Jaccard ≥ 0.8 become edges;
4. components: min-label propagation over the edge list, one pair of shuffles per round
   (rounds ≈ the longest chain of near-copies), until the sum of labels stops falling;
5. decisions: shuffle edges by component and keep documents in contribution order unless an
   earlier kept neighbour covers them — the incremental index's rule, so both agree exactly.

No stage gathers more than one hash partition in one process. "Earlier" is the `order` column:
the position of the document in contribution order (unique; smaller is earlier).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.curate.dedup import DedupSignatureStep
from tokenclub.curate.step import REJECT
from tokenclub.errors import InvalidInputError
from tokenclub.scale.dedup_parts import (
    EDGES,
    NO_NODE,
    ORDERS,
    PART,
    bucket_pairs,
    confirm_pairs,
    decide,
    label_edges,
    mark_rejected,
    pair_links,
    pass_signature,
    propagate,
    signature_links,
    split_exact,
    with_int_partition,
    with_key_partition,
)

if TYPE_CHECKING:
    from ray.data import Dataset

SIGNATURE_COLUMNS = ("doc_id", "order", "dedup_key", "minhash", "minhash_bands")


@dataclass(frozen=True, slots=True)
class BulkDedup:
    """The decisions (`doc_id`, `order`, `reject_reason`) and what the job found."""

    decisions: Dataset
    documents: int
    exact_duplicates: int
    near_duplicates: int
    edges: int
    rounds: int


def _signature_batch(table: pa.Table) -> pa.Table:
    table = table.append_column(REJECT, pa.nulls(table.num_rows, pa.string()))
    return DedupSignatureStep().process(table).select(list(SIGNATURE_COLUMNS))


def with_signatures(documents: Dataset) -> Dataset:
    """Add dedup signatures to rows of (`doc_id`, `order`, `text`) with the ingest pipeline's step."""
    return documents.select_columns(["doc_id", "order", "text"]).map_batches(
        _signature_batch, batch_format="pyarrow"
    )


def _by_partition(dataset: Dataset, fn: partial[pa.Table], parts: int) -> Dataset:
    """Shuffle rows on the `_part` column and apply `fn` to each whole partition."""
    return dataset.groupby(PART, num_partitions=parts).map_groups(fn, batch_format="pyarrow")


def _drop_part(table: pa.Table, then: partial[pa.Table]) -> pa.Table:
    return then(table.drop_columns([PART]))


def _kind(table: pa.Table, kind: int, columns: tuple[str, ...]) -> pa.Table:
    return table.filter(pc.equal(table.column("kind"), kind)).select(list(columns))


def _directed(table: pa.Table, both: bool) -> pa.Table:
    """Edges (a, b) as link rows `node` → `other` (both ways, or a → b only)."""
    nodes = [table.column("a"), table.column("b")] if both else [table.column("a")]
    others = [table.column("b"), table.column("a")] if both else [table.column("b")]
    node = pa.concat_arrays([c.combine_chunks() for c in nodes])
    return pa.table(
        {
            "node": node,
            "other": pa.concat_arrays([c.combine_chunks() for c in others]),
            "label": pa.array([NO_NODE] * len(node), pa.int64()),
        }
    )


def _label_rows(table: pa.Table) -> pa.Table:
    """Aggregated labels (`node`, `min(label)`) as link rows with no `other`."""
    return pa.table(
        {
            "node": table.column("node"),
            "other": pa.array([NO_NODE] * table.num_rows, pa.int64()),
            "label": table.column("min(label)"),
        }
    )


def _initial_labels(table: pa.Table) -> pa.Table:
    """A node's first label offer: the smaller end of each of its edges."""
    nodes = table.column("node")
    return pa.table({"node": nodes, "label": pc.min_element_wise(nodes, table.column("other"))})


def _repeated(table: pa.Table) -> pa.Table:
    return table.filter(pc.greater(table.column("count()"), 1))


def _rejections(table: pa.Table) -> pa.Table:
    return pa.table({"doc_id": pa.nulls(table.num_rows, pa.string()), "order": table.column("order")})


def _confirm(signed: Dataset, pairs: Dataset, parts: int) -> Dataset:
    """Candidate pairs with Jaccard ≥ 0.8, via two partition joins that bring each side's signature."""
    signatures = signed.select_columns(["order", "minhash"]).map_batches(
        signature_links, batch_format="pyarrow"
    )

    def keyed(links: Dataset) -> Dataset:
        return links.map_batches(
            partial(with_int_partition, column="node", parts=parts), batch_format="pyarrow"
        )

    by_a = keyed(signatures.union(pairs.map_batches(pair_links, batch_format="pyarrow")))
    carried = _by_partition(by_a, partial(_drop_part, then=partial(pass_signature)), parts)
    by_b = keyed(signatures.union(carried))
    edges: Dataset = _by_partition(
        by_b, partial(_drop_part, then=partial(confirm_pairs)), parts
    ).materialize()
    return edges


def _components(directed: Dataset, parts: int) -> tuple[Dataset, int]:
    """Component labels (`node`, `min(label)`) by min-label propagation; and the rounds it took."""
    from ray.data.aggregate import Min

    labels = (
        directed.map_batches(_initial_labels, batch_format="pyarrow")
        .groupby("node", num_partitions=parts)
        .aggregate(Min("label"))
        .materialize()
    )
    total = labels.sum("min(label)")
    rounds = 1
    while True:
        links = labels.map_batches(_label_rows, batch_format="pyarrow").union(directed)
        keyed = links.map_batches(
            partial(with_int_partition, column="node", parts=parts), batch_format="pyarrow"
        )
        offered = _by_partition(keyed, partial(_drop_part, then=partial(propagate)), parts)
        labels = offered.groupby("node", num_partitions=parts).aggregate(Min("label")).materialize()
        rounds += 1
        now = labels.sum("min(label)")
        if now == total:
            return labels, rounds
        total = now


def collect(dataset: Dataset) -> pa.Table:
    """A (small) dataset's rows as one Arrow table in the driver, for reports and tests."""
    import ray

    return pa.concat_tables(ray.get(dataset.to_arrow_refs()))


@contextmanager
def _task_shuffles() -> Iterator[None]:
    """Shuffle with plain tasks (sort-based, pull) for this job.

    Ray Data's default hash shuffle starts aggregator actors per shuffle: measured on 2 cores,
    the job on five documents took 30–80 s that way against 1.2 s with task shuffles.
    """
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    context = DataContext.get_current()
    previous = context.shuffle_strategy
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        yield
    finally:
        context.shuffle_strategy = previous


def bulk_dedup(signed: Dataset, parts: int) -> BulkDedup:
    """Decide duplicates of rows with `SIGNATURE_COLUMNS` (see `with_signatures`) in `parts` partitions."""
    with _task_shuffles():
        return _bulk_dedup(signed, parts)


def _bulk_dedup(signed: Dataset, parts: int) -> BulkDedup:
    import ray.data

    signed = signed.select_columns(list(SIGNATURE_COLUMNS)).materialize()
    documents = signed.count()
    repeated = (
        signed.groupby("order", num_partitions=parts)
        .count()
        .map_batches(_repeated, batch_format="pyarrow")
        .count()
    )
    if repeated:
        raise InvalidInputError(f"`order` must be unique: {repeated} value(s) occur more than once")
    keyed = signed.select_columns(["order", "dedup_key", "minhash_bands"]).map_batches(
        partial(with_key_partition, parts=parts), batch_format="pyarrow"
    )
    split = _by_partition(
        keyed, partial(_drop_part, then=partial(split_exact, parts=parts)), parts
    ).materialize()
    exact = split.map_batches(
        partial(_kind, kind=0, columns=("order",)), batch_format="pyarrow"
    ).materialize()
    bands = split.map_batches(partial(_kind, kind=1, columns=("band", "order", PART)), batch_format="pyarrow")
    pairs = _by_partition(bands, partial(_drop_part, then=partial(bucket_pairs)), parts).materialize()
    edges = _confirm(signed, pairs, parts) if pairs.count() else ray.data.from_arrow(EDGES.empty_table())
    edge_count = edges.count()
    rounds = 0
    near: Dataset = ray.data.from_arrow(ORDERS.empty_table())
    if edge_count:
        both = edges.map_batches(partial(_directed, both=True), batch_format="pyarrow").materialize()
        labels, rounds = _components(both, parts)
        forward = edges.map_batches(partial(_directed, both=False), batch_format="pyarrow")
        links = labels.map_batches(_label_rows, batch_format="pyarrow").union(forward)
        keyed_links = links.map_batches(
            partial(with_int_partition, column="node", parts=parts), batch_format="pyarrow"
        )
        by_component = _by_partition(
            keyed_links, partial(_drop_part, then=partial(label_edges, parts=parts)), parts
        )
        near = _by_partition(by_component, partial(_drop_part, then=partial(decide)), parts).materialize()
    rejected = exact.union(near).map_batches(_rejections, batch_format="pyarrow")
    decisions = (
        signed.select_columns(["doc_id", "order"])
        .union(rejected)
        .map_batches(partial(with_int_partition, column="order", parts=parts), batch_format="pyarrow")
    )
    marked = _by_partition(
        decisions, partial(_drop_part, then=partial(mark_rejected, reason=DUPLICATE_REASON)), parts
    )
    return BulkDedup(
        decisions=marked.materialize(),
        documents=documents,
        exact_duplicates=exact.count(),
        near_duplicates=near.count(),
        edges=edge_count,
        rounds=rounds,
    )
