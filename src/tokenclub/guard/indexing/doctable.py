"""Which document an indexed gram came from: the gram→document table kept beside the filters.

The Bloom filters answer "is this gram indexed, and by which partner", never "from which
document", so coverage (`guard/detection/coverage.py`) needs its own attribution. Each batch the index
adds writes one run: its gram keys sorted, each with the document number (counted across the
generation) and the gram's ordinal in that document, plus every document's guard letters and
partner; the files of neighbouring batches are merged as they come (`merge_runs`,
`merge_documents`), so they always cover consecutive ranges of documents, each named by its
first, and a table of n documents lies in at most log₂ n files of each kind. A look-up is a
binary search per run, exact for the 64-bit keys (two different grams share a key with chance
n/2⁶⁴), so a hit is given to a wrong document only when a chance filter hit also matches a
stored key: never in practice. The same look-up names a copy's partners (`partners_of_all`), so
the index keeps no attribution filter of its own. The price is 16 bytes per indexed gram (the
membership filter takes 1): it lives in its own files so that a smaller encoding can replace it
(docs/leak-guard.md).

On disk (``<generation>/docs/``): ``run-<first document>.npy`` (structured: key, doc, ordinal;
one batch's or several merged), ``docs-<first document>.npy`` (guard letters and partner of
every document of one batch or several merged) and ``nfkc-<first document>.npy`` (a byte for each
`stride` guard letters of every document, in order: the NFKC letters that begin there, so a run
of a document is measured in the leak definition's letters without its text; a generation
written before them has none for its first documents).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenclub.guard.hashing import U64

ENTRY = np.dtype([("key", "<u8"), ("doc", "<u4"), ("ordinal", "<u4")])
DOCUMENT = np.dtype([("letters", "<u4"), ("partner", "<i8")])


@dataclass(frozen=True, slots=True)
class Hit:
    """One indexed gram of one document that a reply carried."""

    doc: int
    ordinal: int


def documents(folder: Path) -> int:
    """Documents the generation's table holds (the next document's number): the last run's
    first number, in its name, and its length (one header read however many runs there are)."""
    runs = sorted((folder / "docs").glob("docs-*.npy"))
    if not runs:
        return 0
    return first_document(runs[-1]) + len(np.load(runs[-1], mmap_mode="r"))


def first_document(path: Path) -> int:
    """The first document of a `run-` or `docs-` file, from its name."""
    return int(path.stem.split("-")[1])


def write_run(
    folder: Path, keys: U64, owner: np.ndarray, letters: np.ndarray, partners: np.ndarray, blocks: np.ndarray
) -> None:
    """Add one batch: `keys` of its stride-aligned grams in document order, `owner` the batch
    document of each key, `letters` and `partners` of every batch document, and `blocks` its
    documents' NFKC letters a stride (`nfkc_blocks`)."""
    where = folder / "docs"
    where.mkdir(exist_ok=True)
    first = documents(folder)
    starts = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=len(letters)))[:-1]))
    entries = np.empty(len(keys), dtype=ENTRY)
    entries["key"] = keys
    entries["doc"] = owner + first
    entries["ordinal"] = np.arange(len(keys)) - starts[owner]
    entries = entries[np.argsort(keys)]  # by key (sorting the records by a field compares them slowly)
    np.save(where / f"run-{first:09d}.npy", entries)
    table = np.empty(len(letters), dtype=DOCUMENT)
    table["letters"] = letters
    table["partner"] = partners
    np.save(where / f"docs-{first:09d}.npy", table)
    np.save(where / f"nfkc-{first:09d}.npy", blocks.astype(np.uint8))
    merge_runs(where)
    merge_documents(where, "docs")
    merge_documents(where, "nfkc")


def nfkc_blocks(starts: np.ndarray, lengths: np.ndarray, stride: int) -> np.ndarray:
    """For texts end to end whose guard letters begin NFKC letters where `starts` is set
    (`nfkc_starts`, read over them all in one pass), `lengths` guard letters each: the NFKC
    letters that begin in each `stride` letters of each text, its last block maybe shorter.
    Each text's first letter begins one, whatever the text before it ended with."""
    blocks = -(-lengths // stride)
    if not blocks.sum():
        return np.zeros(0, dtype=np.uint8)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    starts = starts.copy()
    starts[offsets[lengths > 0]] = True
    first = np.concatenate(([0], np.cumsum(blocks)[:-1]))
    at = np.repeat(offsets, blocks) + (np.arange(int(blocks.sum())) - np.repeat(first, blocks)) * stride
    return np.add.reduceat(starts.astype(np.uint8), at).astype(np.uint8)


def merge_runs(where: Path) -> None:
    """Merge the newest run into the one before it while it holds at least half as many
    entries: run sizes then halve at least from run to run, so a table of n entries has at most
    log₂ n runs (a look-up is one binary search a run) and each entry is rewritten at most log₂ n
    times. An ingest adds a run per committed part, so without this a look-up walked every part
    ever indexed. The runs that would merge one after another merge in one pass, written once
    (a stable sort of the newest first: a newer run's entries come before the equal keys of an
    older one, as inserting each newer run before them put them)."""
    merging = _newest(where, "run")
    if merging is not None:
        merged = np.concatenate(merging[1])
        _replace(where, merging[0], merged[np.argsort(merged["key"], kind="stable")])


def merge_documents(where: Path, kind: str) -> None:
    """`merge_runs`' rule for the files of `kind` kept in document order (the documents' letters
    and partners, their NFKC blocks): every process that opens the index reads them all, and an
    ingest adds a file per committed part."""
    merging = _newest(where, kind)
    if merging is not None:
        _replace(where, merging[0], np.concatenate(merging[1][::-1]))


def _newest(where: Path, kind: str) -> tuple[list[Path], list[np.ndarray]] | None:
    """The files of `kind` to merge, oldest first, and their arrays, newest first: the newest
    and each older one while it holds at most twice what the newer ones hold together (None:
    nothing to merge)."""
    paths = sorted(where.glob(f"{kind}-*.npy"))
    if len(paths) < 2:
        return None
    merging = [np.load(paths[-1], mmap_mode="r")]  # a header read a file
    size = len(merging[0])
    while len(merging) < len(paths):
        older = np.load(paths[-1 - len(merging)], mmap_mode="r")
        if 2 * size < len(older):
            break
        merging.append(older)
        size += len(older)
    if len(merging) < 2:
        return None
    return paths[len(paths) - len(merging) :], merging


def _replace(where: Path, paths: list[Path], merged: np.ndarray) -> None:
    """The merged file takes the oldest one's name by an atomic rename before the newer files
    go: a reader that lists the folder meanwhile sees some entries twice, never none. The
    scratch file is named for the process and the file it becomes, so two merges never write
    one scratch file."""
    scratch = where / f"merging-{os.getpid()}-{paths[0].name}"
    np.save(scratch, merged)
    os.replace(scratch, paths[0])
    for path in paths[1:]:
        path.unlink()


class DocTable:
    """The generation's runs, memory-mapped for reading (`stride`: the index's, for the NFKC blocks)."""

    def __init__(self, folder: Path, stride: int = 1) -> None:
        where = folder / "docs"
        self.stride = stride
        # plain arrays over the maps: each element read through a memory map makes a new map
        self._runs = [np.asarray(np.load(p, mmap_mode="r")) for p in sorted(where.glob("run-*.npy"))]
        parts = [(first_document(p), np.load(p)) for p in sorted(where.glob("docs-*.npy"))]
        # each file in its place: one met during a merge overlaps the merged one with equal rows
        self.documents = np.zeros(max((f + len(part) for f, part in parts), default=0), dtype=DOCUMENT)
        for first, part in parts:
            self.documents[first : first + len(part)] = part
        # NFKC blocks: each file's array, its first document and where each document's blocks begin
        self._blocks: list[tuple[int, np.ndarray, np.ndarray]] = []
        for path in sorted(where.glob("nfkc-*.npy")):
            first, blocks = first_document(path), np.load(path, mmap_mode="r")
            sizes = -(-self.documents["letters"][first:].astype(np.int64) // stride)
            ends = np.cumsum(sizes)
            count = int(np.searchsorted(ends, len(blocks), side="left")) + 1 if len(blocks) else 0
            self._blocks.append((first, blocks, np.concatenate(([0], ends[:count]))))

    def nfkc_letters(self, doc: int, start: int, end: int) -> int | None:
        """NFKC letters that begin in the document's guard letters [start, end), counted by whole
        blocks (up to a block more at either end: the count errs long); None for a document
        whose blocks were not kept."""
        for first, blocks, bounds in self._blocks:
            if first <= doc < first + len(bounds) - 1:
                low, high = bounds[doc - first], bounds[doc - first + 1]
                lo = min(high, low + max(0, start) // self.stride)
                hi = min(high, low + -(-max(start, end) // self.stride))
                return int(np.asarray(blocks[lo:hi], dtype=np.int64).sum())
        return None

    @property
    def without_nfkc(self) -> int:
        """Documents whose NFKC blocks were not kept: the first ones of a generation written
        before them (every add since writes its own). Their coverage joins count guard letters
        until `guard rebuild` writes the blocks."""
        return min((first for first, _, _ in self._blocks), default=len(self.documents))

    def letters(self, doc: int) -> int:
        return int(self.documents["letters"][doc])

    def partner(self, doc: int) -> int:
        return int(self.documents["partner"][doc])

    def entries(self) -> Iterator[tuple[U64, np.ndarray]]:
        """Each run's keys and the document of each key (to refill grown filters)."""
        for run in self._runs:
            yield run["key"], run["doc"]

    @property
    def present(self) -> bool:
        return bool(self._runs)

    def partners_of_all(self, keys: U64, held_only: bool = False) -> tuple[int, ...]:
        """The partners, in order, whose documents hold every one of `keys` (the grams of one
        copy; `GuardIndex.attribute`). With `held_only`, keys that no document holds (chance
        filter hits) are passed over, and none is named when no key is held."""
        if not len(keys):
            return ()
        partner = self.documents["partner"]
        holders: list[set[int]] = [set() for _ in range(len(keys))]
        for k, hit in self.lookup_at(keys):
            holders[k].add(int(partner[hit.doc]))
        if held_only:
            holders = [held for held in holders if held]
        return tuple(sorted(set.intersection(*holders))) if holders else ()

    def holds_any(self, keys: U64) -> bool:
        """Whether some document holds one of `keys` (a reply's filter hits: most are chance)."""
        keys = np.sort(keys)  # sorted needles walk each run's keys in order
        for run in self._runs:
            column = run["key"]
            at = np.minimum(np.searchsorted(column, keys), len(column) - 1)
            if len(column) and bool((column[at] == keys).any()):
                return True
        return False

    def lookup(self, keys: U64) -> list[Hit]:
        """The (document, ordinal) of every key the table holds."""
        return [hit for _, hit in self.lookup_at(keys)]

    def lookup_at(self, keys: U64) -> list[tuple[int, Hit]]:
        """`lookup`, each hit with the index of its key in `keys`."""
        hits: list[tuple[int, Hit]] = []
        if not len(keys):
            return hits
        for run in self._runs:
            column, doc, ordinal = run["key"], run["doc"], run["ordinal"]
            # equal keys of several documents sit side by side: each key's range of them
            low = np.searchsorted(column, keys, side="left")
            count = np.searchsorted(column, keys, side="right") - low
            found = np.flatnonzero(count)
            if not len(found):
                continue
            which = np.repeat(found, count[found])
            at = np.repeat(low[found] - np.cumsum(count[found]) + count[found], count[found])
            at += np.arange(len(at))
            hits += [
                (k, Hit(d, o))
                for k, d, o in zip(which.tolist(), doc[at].tolist(), ordinal[at].tolist(), strict=True)
            ]
        return hits

    @property
    def nbytes(self) -> int:
        return int(sum(run.nbytes for run in self._runs)) + int(self.documents.nbytes)
