"""The leak-guard index: strided n-gram hashes of all accepted text in Bloom filters, never the text.

Every document's guard stream is cut into grams of `width` letters starting every `stride`
letters; their keyed hashes go into a membership filter and, with each gram's document, into the
gram→document table (`doctable.py`), which also says whose a gram is. A reply is checked at every
position; a copied run shows up as hits exactly `stride` apart, and `hits` of them in a row
make a leak. A run of `width + hits·stride − 1` letters always contains `hits` stride-aligned
grams, so every copy at least that long is caught: `IndexParams.for_leak_length` picks the
stride that makes this the configured leak length. The derivation and the measured sizes and
false-positive rates are in docs/leak-guard.md.

On disk (``<home>/guard``)::

    CURRENT                 name of the live generation
    gen-000001/meta.json    parameters, segments, partners
    gen-000001/seg-0000/    member-0000.bin (shard files, memory-mapped)
    gen-000001/docs/        the gram→document table
    gen-000001/parts.log    corpus parts already indexed (for `sync` after a crash)
    write.lock              writers take it; readers never wait

Adding past a segment's capacity regrows the index into one larger segment (`GuardIndex.add`);
a rebuild writes a new generation sized for the whole corpus and switches CURRENT to it
atomically, which is also how withdrawn text leaves the index.

A generation made with `partner_bits` > 0 (all of them before the document table named
partners) also keeps each gram mixed with its partner's salt in an attribution filter
(``partner-0000.bin``) and attributes from it: that is 4 of its 13 bits per gram.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenclub.guard.hashing import NO_SKETCH, U64, RollingHasher, gram_hash, splitmix, splitmix_int
from tokenclub.guard.indexing.bloom import (
    BlockedBloom,
    Geometry,
    best_hashes,
    blocks_for,
    false_positive_rate,
)
from tokenclub.guard.indexing.commonness import (
    DEPTH,
    DocumentFrequency,
    build_public_filter,
    clear_of_shared,
    public_keys,
    public_texts,
    repeated,
)
from tokenclub.guard.indexing.doctable import DocTable, nfkc_blocks, write_run
from tokenclub.guard.normalize import nfkc_starts, normalize

FORMAT_VERSION = 1
DEFAULT_WIDTH = 26
DEFAULT_HITS = 5
DEFAULT_CAPACITY = 1 << 12
GROWTH = 1.25
"""A full index is regrown to this many times the grams it must hold, its filters refilled from
the document table's keys: the index stays sized from the corpus it holds, in one segment (a
fresh home's filters were a fixed 6.3 MB, and each doubling added a segment every look-up reads)."""
SHARD_BLOCKS = 1 << 24  # 1 GiB shard files
SMALL_ATTRIBUTION = 64  # salted keys up to which a run is attributed in integers
COMMON_BITS = 1.0  # document-frequency sketch bits per gram of the first segment's capacity
COMMON_DOCS = 10  # documents holding a gram that make it common (not secret)
MISS, COUNTS, SHARED = 0, 1, 2  # `GuardIndex.lookup`: not held; held and counts; held but common or public


@dataclass(frozen=True, slots=True)
class Commonness:
    """How common text is told from secret: the sketch's size and the documents that make a
    gram common (`guard/indexing/commonness.py`)."""

    bits: float = COMMON_BITS
    documents: int = COMMON_DOCS


@dataclass(frozen=True, slots=True)
class IndexShape:
    """What a fresh index is created with: the operator's settings, read once where they are
    set (an ingest's worker process must not read an environment of its own)."""

    params: IndexParams
    capacity: int
    commonness: Commonness


@dataclass(frozen=True, slots=True)
class IndexParams:
    """Everything fixed when an index is created; changing any of it needs a rebuild."""

    width: int
    stride: int
    hits: int
    strict_hits: int
    member_bits: float
    partner_bits: float
    seed: int

    @classmethod
    def for_leak_length(
        cls,
        leak_length: int = 50,
        *,
        width: int = DEFAULT_WIDTH,
        hits: int = DEFAULT_HITS,
        member_bits: float = 8.0,
        partner_bits: float = 0.0,
        seed: int | None = None,
    ) -> IndexParams:
        """The sparsest index that still catches every copied run of `leak_length` letters."""
        stride = (leak_length - width + 1) // hits
        if stride < 1:
            raise ValueError(f"a leak length of {leak_length} needs a width below {leak_length - hits + 1}")
        return cls(
            width=width,
            stride=stride,
            hits=hits,
            strict_hits=max(1, hits - 1),
            member_bits=member_bits,
            partner_bits=partner_bits,
            seed=secrets.randbits(63) if seed is None else seed,
        )

    def guaranteed_length(self, strict: bool = False) -> int:
        """Every copied run at least this long (in guard letters) is caught."""
        return self.width + self.required_hits(strict) * self.stride - 1

    def required_hits(self, strict: bool = False) -> int:
        return self.strict_hits if strict else self.hits

    def hit_rate(self) -> float:
        """Chance that one gram of unindexed text hits the membership filter at design load."""
        return false_positive_rate(self.member_bits, best_hashes(self.member_bits))

    def expected_false_alarms(self, letters: int, strict: bool = False) -> float:
        """Expected number of chance leak verdicts in a reply of `letters` guard letters."""
        return letters * self.hit_rate() ** self.required_hits(strict)

    def bytes_per_letter(self) -> float:
        return (self.member_bits + self.partner_bits) / 8 / self.stride


@lru_cache(maxsize=1 << 16)
def partner_salt(partner_id: int) -> int:
    return splitmix_int(0x5A17 + partner_id)


def partner_salts(partners: np.ndarray) -> U64:
    """The salt of each of `partners` (ids, one per document: few distinct ones)."""
    ids, which = np.unique(partners, return_inverse=True)
    return np.array([partner_salt(p) for p in ids.tolist()], dtype=np.uint64)[which]


def partner_keys(keys: U64, salts: U64) -> U64:
    """Gram keys as the attribution filter stores them, each mixed with its partner's salt: the
    keys of all partners go into the filter in one add."""
    return splitmix(keys ^ salts)


def document_keys(
    params: IndexParams, texts: Sequence[str], step: int | None = None
) -> tuple[U64, np.ndarray]:
    """Keys of the stride-aligned grams of each text (every `step` letters instead, when given),
    and the index of the text of each key."""
    keys, owner, _ = letter_keys(params, [normalize(text).letters for text in texts], step)
    return keys, owner


def letter_keys(
    params: IndexParams, streams: Sequence[np.ndarray], step: int | None = None
) -> tuple[U64, np.ndarray, np.ndarray]:
    """`document_keys` of texts already normalised (their guard letters), with each key's
    position in its text's letters."""
    stride = params.stride if step is None else step
    lengths = np.array([len(s) for s in streams], dtype=np.int64)
    counts = np.maximum(0, (lengths - params.width) // stride + 1)
    if not counts.sum():
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint64), empty, empty
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    owner = np.repeat(np.arange(len(streams)), counts)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = (np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)) * stride
    # one compiled roll over the texts end to end; a gram that would cross into the next text
    # is never taken
    _, every = RollingHasher(gram_hash(params.width, params.seed)).feed(np.concatenate(streams))
    return every[np.repeat(offsets, counts) + position], owner, position


@dataclass(slots=True)
class Segment:
    name: str
    capacity: int
    elements: int
    member: Geometry
    partner: Geometry | None  # the attribution filter, in a generation made with one

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "capacity": self.capacity,
            "elements": self.elements,
            "member": self.member.as_dict(),
            "partner": self.partner.as_dict() if self.partner else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(
            data["name"],
            data["capacity"],
            data["elements"],
            Geometry(**data["member"]),
            Geometry(**data["partner"]) if data.get("partner") else None,
        )


class GuardIndex:
    """One generation of the index, open for reading ("r") or for adding ("r+")."""

    def __init__(self, folder: Path, mode: Literal["r", "r+"]) -> None:
        self.folder = folder
        self.mode = mode
        meta = json.loads((folder / "meta.json").read_text())
        if meta["version"] != FORMAT_VERSION:
            raise ValueError(f"{folder}: index format {meta['version']}, expected {FORMAT_VERSION}")
        self.params = IndexParams(**meta["params"])
        self.partners: list[int] = meta["partners"]
        self.withdrawn: frozenset[int] = frozenset(meta.get("withdrawn", ()))
        self.tokens: int = meta["tokens"]
        self.segments = [Segment.from_dict(s) for s in meta["segments"]]
        # one membership filter per segment, and one attribution filter in a generation made with them
        self._members = [BlockedBloom(self.folder / s.name, "member", s.member, mode) for s in self.segments]
        self._attributions = [
            BlockedBloom(self.folder / s.name, "partner", s.partner, mode) for s in self.segments if s.partner
        ]
        common = meta.get("common")
        self._common_bits: float = common.get("bits", COMMON_BITS) if common else COMMON_BITS
        self._sketch_name: str = common.get("file", "common.bin") if common else "common.bin"
        self.sketch = (
            DocumentFrequency(folder / self._sketch_name, common["width"], common["documents"], mode)
            if common
            else None
        )
        self.public = Geometry(**meta["public"]) if meta.get("public") else None
        self._public = BlockedBloom(folder, "public", self.public, "r") if self.public else None
        self._docs: DocTable | None = None

    @property
    def docs(self) -> DocTable:
        """The gram→document table (`guard/indexing/doctable.py`), read on first use."""
        if self._docs is None:
            self._docs = DocTable(self.folder, self.params.stride)
        return self._docs

    @classmethod
    def create(
        cls,
        folder: Path,
        params: IndexParams,
        capacity: int = DEFAULT_CAPACITY,
        withdrawn: Collection[int] = (),
        commonness: Commonness | None = None,
    ) -> GuardIndex:
        commonness = commonness or Commonness()
        folder.mkdir(parents=True)
        width = _sketch_width(capacity, commonness.bits)
        DocumentFrequency.create(folder / "common.bin", width, commonness.documents)
        meta = {
            "version": FORMAT_VERSION,
            "params": asdict(params),
            "partners": [],
            "withdrawn": sorted(withdrawn),
            "tokens": 0,
            "segments": [],
            "common": {
                "width": width,
                "documents": commonness.documents,
                "bits": commonness.bits,
                "file": "common.bin",
            },
            "public": None,
        }
        _write_json(folder / "meta.json", meta)
        index = cls(folder, "r+")
        index._add_segment(capacity)
        index._save()
        return index

    def _add_segment(self, capacity: int) -> None:
        params = self.params
        taken = [int(p.name[4:]) for p in self.folder.glob("seg-*") if p.name[4:].isdigit()]
        segment = Segment(
            name=f"seg-{max(taken, default=-1) + 1:04d}",
            capacity=capacity,
            elements=0,
            member=Geometry(
                blocks_for(capacity, params.member_bits), best_hashes(params.member_bits), SHARD_BLOCKS
            ),
            partner=(
                Geometry(
                    blocks_for(capacity, params.partner_bits), best_hashes(params.partner_bits), SHARD_BLOCKS
                )
                if params.partner_bits
                else None
            ),
        )
        where = self.folder / segment.name
        self._members.append(BlockedBloom.create(where, "member", segment.member))
        if segment.partner is not None:
            self._attributions.append(BlockedBloom.create(where, "partner", segment.partner))
        self.segments.append(segment)

    def _save(self) -> None:
        for bloom in (*self._members, *self._attributions):
            bloom.flush()
        if self.sketch is not None:
            self.sketch.flush()
        meta = {
            "version": FORMAT_VERSION,
            "params": asdict(self.params),
            "partners": sorted(self.partners),
            "withdrawn": sorted(self.withdrawn),
            "tokens": self.tokens,
            "segments": [s.as_dict() for s in self.segments],
            "common": (
                {
                    "width": self.sketch.width,
                    "documents": self.sketch.threshold,
                    "bits": self._common_bits,
                    "file": self._sketch_name,
                }
                if self.sketch
                else None
            ),
            "public": self.public.as_dict() if self.public else None,
        }
        _write_json(self.folder / "meta.json", meta)

    def add(self, texts: Sequence[str], partner_ids: Sequence[int], tokens: Sequence[int] = ()) -> int:
        """Index documents (`tokens`: their counted tokens, for the size figures) except those of
        withdrawn partners; returns the number of grams added."""
        kept = [i for i, partner in enumerate(partner_ids) if partner not in self.withdrawn]
        texts, partner_ids = [texts[i] for i in kept], [partner_ids[i] for i in kept]
        self.tokens += sum(tokens[i] for i in kept) if tokens else 0
        normalized = [normalize(text) for text in texts]
        streams = [n.letters for n in normalized]
        # every position's gram (the sketch counts them all), of which the stride-aligned ones are stored
        every, every_owner, position = letter_keys(self.params, streams, step=1)
        aligned = position % self.params.stride == 0
        keys, owner = every[aligned], every_owner[aligned]
        if not len(keys):
            self._save()
            return 0
        last = self.segments[-1]
        if last.elements + len(keys) > last.capacity:
            held = sum(s.elements for s in self.segments)
            if self.docs.present or not held:
                self._regrow(math.ceil((held + len(keys)) * GROWTH))
            else:  # a generation written before the document table: a new segment instead
                self._add_segment(max(2 * last.capacity, len(keys)))
            last = self.segments[-1]
        member = self._members[-1]
        if self.sketch is not None:
            # every position, not only the stored grams: a passage shared by many documents
            # sits at a different alignment in each, and each of its grams must be counted
            self.sketch.add(*repeated(every, every_owner, lambda unique: _held(self._members, unique)))
        member.add(keys)
        letters = np.array([len(stream) for stream in streams], dtype=np.int64)
        starts = nfkc_starts(np.concatenate(streams), np.concatenate([n.owners for n in normalized]))
        blocks = nfkc_blocks(starts, letters, self.params.stride)
        write_run(self.folder, keys, owner, letters, np.asarray(partner_ids, dtype=np.int64), blocks)
        self._docs = None
        partners = np.asarray(partner_ids, dtype=np.int64)
        if self._attributions:
            self._attributions[-1].add(partner_keys(keys, partner_salts(partners)[owner]))
        for partner in np.unique(partners[np.bincount(owner, minlength=len(partners)) > 0]).tolist():
            if partner not in self.partners:
                self.partners.append(partner)
        last.elements += len(keys)
        self._save()
        return len(keys)

    def _regrow(self, capacity: int) -> None:
        """One segment of `capacity` grams in place of the full ones, its filter (and attribution
        filter, if the generation has them) refilled from the document table (every stored gram's
        key and its document's partner). The sketch is
        widened by a whole factor once the capacity asks for it, each row repeated: a key's
        cell moves to one of the copies of its old cell, so no estimate falls. Readers switch
        at their next refresh; the old files go once the new meta is written."""
        old_segments = [self.folder / s.name for s in self.segments]
        held = sum(s.elements for s in self.segments)
        self.segments, self._members, self._attributions = [], [], []
        self._add_segment(capacity)
        salts = partner_salts(self.docs.documents["partner"]) if self._attributions else None
        for keys, docs in self.docs.entries():
            self._members[0].add(keys)
            if salts is not None:  # of each document
                self._attributions[0].add(partner_keys(keys, salts[docs]))
        self.segments[0].elements = held
        old_sketch = None
        if self.sketch is not None:
            factor = _sketch_width(capacity, self._common_bits) // self.sketch.width
            if factor > 1:  # a new file: a reader may still map the old one with its old width
                old_sketch = self.folder / self._sketch_name
                counts = np.tile(np.asarray(self.sketch.counts), (1, factor))
                width, threshold = counts.shape[1], self.sketch.threshold
                self._sketch_name = f"common-{width}.bin"
                self.sketch = DocumentFrequency.create(self.folder / self._sketch_name, width, threshold)
                self.sketch.counts[:] = counts
        self._save()
        for folder in old_segments:
            _remove_generation(folder)
        if old_sketch is not None:
            old_sketch.unlink(missing_ok=True)

    @property
    def shares(self) -> bool:
        """Whether any held gram can be shared (common or public): a sketch or public text."""
        return self.sketch is not None or self._public is not None

    def holds(self, keys: U64) -> np.ndarray:
        """Keys the membership filters hold, common or public ones included."""
        return _held(self._members, keys)

    def contains(self, keys: U64) -> np.ndarray:
        """Keys of indexed grams that are held and neither common nor public, each on its own
        (a reply's consecutive positions: `counted`, which also drops grams beside shared ones)."""
        counting: np.ndarray = self.lookup(keys) == COUNTS
        return counting

    def lookup(self, keys: U64) -> np.ndarray:
        """Per key: `MISS` (not held), `COUNTS` (held, neither common nor public) or `SHARED`
        (held, but common or public: see `clear_of_shared` for what it does to its neighbours)."""
        found = np.zeros(len(keys), dtype=np.uint8)
        positions, shared = self.held_at(keys)
        found[positions] = np.where(shared, SHARED, COUNTS)
        return found

    def held_at(self, keys: U64) -> tuple[npt.NDArray[np.intp], np.ndarray]:
        """Where the held keys are, and which of them are shared (common or public)."""
        positions = np.flatnonzero(_held(self._members, keys))
        return positions, self.shared(keys[positions])

    def shared(self, held: U64) -> np.ndarray:
        """Of held keys, the shared ones: common to many documents, or public text."""
        return self._ignored(held) if self.shares else np.zeros(len(held), dtype=np.bool_)

    @property
    def compiled_sketch(self) -> tuple[npt.NDArray[np.uint8], U64, int] | None:
        """What makes a held gram shared, as the compiled reading tells it (`read_pair`): the
        commonness sketch (`NO_SKETCH` without one); None when public text shares grams too
        (`shared` then)."""
        if self._public is not None:
            return None
        return self.sketch.compiled if self.sketch is not None else NO_SKETCH

    @property
    def compiled_members(self) -> tuple[U64, np.uint64, U64] | None:
        """The membership filter as the compiled reading looks keys up in it (`read_pair`),
        when there is one filter of one shard (else `held_at`)."""
        return self._members[0].compiled if len(self._members) == 1 else None

    def lookup_keys(self, keys: list[int]) -> list[int]:
        """`lookup` for a few keys as Python integers."""
        held = _held_keys(self._members, keys)
        if True not in held:
            return [MISS] * len(keys)
        if not self.shares:
            return [COUNTS if h else MISS for h in held]
        return [
            (SHARED if self._ignored_key(key) else COUNTS) if h else MISS
            for h, key in zip(held, keys, strict=True)
        ]

    def counted(self, keys: U64) -> np.ndarray:
        """Of the keys of a text's consecutive positions, the grams that count as hits: held, not
        common or public, and overlapping no gram of the text that is (`clear_of_shared`)."""
        return self.counted_alone(keys)[0]

    def single(self, keys: U64) -> np.ndarray:
        """Keys of indexed grams that count (`contains`) and that no second document holds, by the
        sketch's estimate, each on its own (a capped document's grams: `CappedGrams`)."""
        found = self.contains(keys)
        if self.sketch is not None and found.any():
            at = np.flatnonzero(found)
            found[at] = self.sketch.estimate(keys[at]) == 0
        return found

    def counted_alone(self, keys: U64) -> tuple[np.ndarray, np.ndarray]:
        """`counted`, and from the same look-up the held grams that no second document holds, by
        the sketch's estimate, and that no such gram of the text sits within `stride` − 1
        positions of: what coverage counts. A stock phrase that two documents share is then the
        customer's taking of neither. A passage two documents share is held at the first one's
        alignment, which the sketch counts, and at the second's, which it does not (it counts
        only grams held before), `stride` − 1 or fewer positions apart; a gram that runs past the
        passage into one document's own letters is cleared only that close to it."""
        found = self.lookup(keys)
        held = found != MISS
        counted = clear_of_shared(held, found == SHARED, self.params.width)
        if self.sketch is None:
            return counted, held
        at = np.flatnonzero(held)
        twice = np.zeros(len(keys), dtype=np.bool_)
        twice[at] = self.sketch.estimate(keys[at]) >= 1
        return counted, clear_of_shared(held, twice, self.params.stride)

    def contains_keys(self, keys: list[int]) -> list[bool]:
        """`contains` for a few keys as Python integers (see `BlockedBloom.contains_keys`)."""
        return [found == COUNTS for found in self.lookup_keys(keys)]

    def _ignored(self, keys: U64) -> np.ndarray:
        """Held keys that do not count: common to many documents, or public text."""
        ignored = self._public.contains(keys) if self._public is not None else None
        if self.sketch is not None:
            common = self.sketch.common(keys)
            ignored = common if ignored is None else ignored | common
        return ignored if ignored is not None else np.zeros(len(keys), dtype=np.bool_)

    def _ignored_key(self, key: int) -> bool:
        if self.sketch is not None and self.sketch.common_key(key):
            return True
        return self._public is not None and self._public.contains_keys([key])[0]

    def set_public(self, texts: list[str]) -> int:
        """Hash the public texts into this generation's public filter; returns its grams."""
        keys = public_keys(texts, self.params.width, self.params.seed)
        self.public = build_public_filter(self.folder, keys)
        self._public = BlockedBloom(self.folder, "public", self.public, "r") if self.public else None
        self._save()
        return len(keys)

    def attribute(self, keys: U64) -> tuple[int, ...]:
        """Partners that hold every one of `keys` (the grams of one copy), in order: from the
        document table, exactly (a key no document holds, a chance hit, is no partner's); in a
        generation made with attribution filters, from them: every partner's salted keys in one
        look-up, as a run is attributed for each fragment."""
        if not self.partners or not len(keys):
            return ()
        if not self._attributions:
            return self.docs.partners_of_all(keys)
        partners = np.array(sorted(self.partners), dtype=np.int64)
        if len(partners) * len(keys) <= SMALL_ATTRIBUTION:
            return self._attribute_small(partners.tolist(), keys.tolist())
        salts = np.array([partner_salt(int(p)) for p in partners], dtype=np.uint64)
        held = _held(self._attributions, splitmix(keys[np.newaxis, :] ^ salts[:, np.newaxis]).ravel())
        return tuple(int(p) for p in partners[held.reshape(len(partners), len(keys)).all(axis=1)])

    def owned_by(self, keys: U64, partner: int) -> bool:
        """Whether a chain of `keys` is `partner`'s own text (a partner may read it): `attribute`
        names `partner` alone. Keys that no document holds are no one's text: a copy's chain may
        start one stride before it with a chance hit (2.3 % of positions), which would otherwise
        block a partner's quote of its own archive; they are passed over, but some key must be
        held. A generation with attribution filters cannot tell a chance key: there every key
        must be the partner's."""
        if self._attributions:
            return self.attribute(keys) == (partner,)
        return bool(self.partners) and self.docs.partners_of_all(keys, held_only=True) == (partner,)

    def _attribute_small(self, partners: list[int], keys: list[int]) -> tuple[int, ...]:
        """`attribute` for a run of a few grams and few partners, in integers: NumPy's fixed
        cost per call is larger than the work (a chance hit in a streamed reply is one gram)."""
        mixed = [splitmix_int(key ^ partner_salt(p)) for p in partners for key in keys]
        held = _held_keys(self._attributions, mixed)
        n = len(keys)
        return tuple(p for i, p in enumerate(partners) if all(held[i * n : (i + 1) * n]))

    @property
    def nbytes(self) -> int:
        filters = sum(bloom.nbytes for bloom in (*self._members, *self._attributions))
        return filters + (self.sketch.nbytes if self.sketch else 0)

    def stats(self) -> dict[str, Any]:
        """Size, load and the measured chance of a false leak verdict per 1,000 tokens of reply."""
        elements = sum(s.elements for s in self.segments)
        fill = max((m.fill() for m in self._members), default=0.0)
        hashes = best_hashes(self.params.member_bits)
        hit_rate = min(1.0, len(self._members) * fill**hashes)
        return {
            "generation": self.folder.name,
            "segments": len(self.segments),
            "partners": len(self.partners),
            "grams": elements,
            "tokens": self.tokens,
            "bytes": self.nbytes,
            "sketch_bytes": self.sketch.nbytes if self.sketch else 0,
            "common_documents": self.sketch.threshold if self.sketch else None,
            "public": self.public is not None,
            "bytes_per_token": round(self.nbytes / self.tokens, 4) if self.tokens else None,
            "document_table_bytes": self.docs.nbytes,
            "documents_without_nfkc_blocks": self.docs.without_nfkc,
            "gram_hit_rate": hit_rate,
            "guaranteed_length": self.params.guaranteed_length(),
            **{f"param_{k}": v for k, v in asdict(self.params).items() if k != "seed"},
        }


SKETCH_MIN_WIDTH = 1 << 16
"""Counters per sketch row at least (128 KiB a generation): the sketch counts every position of
every repeated passage, and in a narrower one stock phrases held by many documents fill cells
until unique grams share both rows' cells with them; read as common, such a gram clears the
hits around it (`commonness.clear_of_shared`) and a copy goes uncaught. A sketch widened by a
regrowth keeps every old count in each copy of its cell, so what a narrow sketch filled while
the index was small stays: all 3,052 petitions indexed 10 at a time (an ingest's small parts)
from 8,192 counters caught 28 of 75 verbatim copies of ~100 letters, from 65,536 counters 74
(the same in parts of 500: 73)."""


def _sketch_width(capacity: int, bits: float) -> int:
    return max(SKETCH_MIN_WIDTH, math.ceil(capacity * bits / 8 / DEPTH))


def _held(filters: Sequence[BlockedBloom], keys: U64) -> np.ndarray:
    """Keys that any of the filters (one per segment) holds."""
    if len(filters) == 1:  # the usual case: no arrays to merge
        return filters[0].contains(keys)
    found = np.zeros(len(keys), dtype=np.bool_)
    for bloom in filters:
        found |= bloom.contains(keys)
    return found


def _held_keys(filters: Sequence[BlockedBloom], keys: list[int]) -> list[bool]:
    """`_held` for keys as Python integers."""
    if len(filters) == 1:  # the usual case: no lists to merge
        return filters[0].contains_keys(keys)
    found = [False] * len(keys)
    for bloom in filters:
        found = [a or b for a, b in zip(found, bloom.contains_keys(keys), strict=True)]
    return found


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _generation(root: Path) -> Path | None:
    try:
        name = (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return root / name


def _next_generation(root: Path) -> Path:
    numbers = [int(p.name[4:]) for p in root.glob("gen-*") if p.name[4:].isdigit()]
    return root / f"gen-{max(numbers, default=0) + 1:06d}"


def _switch(root: Path, folder: Path) -> None:
    tmp = root / f"CURRENT.tmp{os.getpid()}"
    tmp.write_text(folder.name)
    os.replace(tmp, root / "CURRENT")


@contextmanager
def write_lock(root: Path) -> Iterator[None]:
    """One writer at a time across processes (Bloom bits are set by read-modify-write)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "write.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def writer(
    root: Path,
    params: IndexParams | None = None,
    capacity: int = DEFAULT_CAPACITY,
    commonness: Commonness | None = None,
) -> Iterator[GuardIndex]:
    """The live index open for adding, created with `params` if there is none yet."""
    with write_lock(root):
        folder = _generation(root)
        if folder is None:
            folder = _next_generation(root)
            index = GuardIndex.create(
                folder, params or IndexParams.for_leak_length(), capacity, (), commonness
            )
            index.set_public(public_texts(root))
            _switch(root, folder)
        else:
            index = GuardIndex(folder, "r+")
        yield index


def open_index(root: Path) -> GuardIndex | None:
    """The live index for reading, or None when nothing has been indexed yet."""
    folder = _generation(root)
    return None if folder is None else GuardIndex(folder, "r")


def rebuild(
    root: Path,
    batches: Iterable[tuple[Sequence[str], Sequence[int], Sequence[int]]],
    params: IndexParams,
    capacity: int,
    parts: Iterable[str] = (),
    withdrawn: Collection[int] = (),
    commonness: Commonness | None = None,
) -> GuardIndex:
    """Index `(texts, partner ids, tokens)` document batches into a new generation, then make it live.

    Documents of `withdrawn` partners are left out now and whenever added later; the filters
    are then fitted to the grams held (`capacity` is an estimate). Readers switch over on their
    next refresh; the old generation is deleted afterwards.
    """
    with write_lock(root):
        index = GuardIndex.create(_next_generation(root), params, capacity, withdrawn, commonness)
    for texts, partners, tokens in batches:
        index.add(texts, partners, tokens)
    held = sum(s.elements for s in index.segments)
    if index.docs.present and index.segments[0].capacity > max(held, DEFAULT_CAPACITY):
        index._regrow(max(held, DEFAULT_CAPACITY))  # `capacity` was an estimate: fit the filters
    index.set_public(public_texts(root))
    log_parts(index, parts)
    with write_lock(root):
        old = _generation(root)
        _switch(root, index.folder)
    if old is not None and old != index.folder:
        _remove_generation(old)
    return index


def _remove_generation(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink()
    folder.rmdir()


def logged_parts(index: GuardIndex) -> set[str]:
    try:
        return set((index.folder / "parts.log").read_text().split())
    except FileNotFoundError:
        return set()


def log_parts(index: GuardIndex, parts: Iterable[str]) -> None:
    """Record corpus parts as indexed, after their bits are on disk."""
    lines = "".join(f"{part}\n" for part in parts)
    if lines:
        with (index.folder / "parts.log").open("a") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())


class LiveIndex:
    """What a long-running reader (the gateway) holds: reopens the index when it changes.

    It looks at CURRENT and meta.json at most every `check_every_s` seconds, so a new
    segment or a rebuilt generation is picked up without a restart.
    """

    def __init__(self, root: Path, check_every_s: float = 1.0) -> None:
        self.root = root
        self.check_every_s = check_every_s
        self._checked = -math.inf
        self._stamp: tuple[str, int] | None = None
        self._index: GuardIndex | None = None

    def current(self) -> GuardIndex | None:
        now = time.monotonic()
        if now - self._checked >= self.check_every_s:
            self._checked = now
            folder = _generation(self.root)
            stamp = None
            if folder is not None:
                try:
                    stamp = (folder.name, (folder / "meta.json").stat().st_mtime_ns)
                except FileNotFoundError:
                    stamp = None
            if stamp != self._stamp:
                try:
                    self._index = None if stamp is None or folder is None else GuardIndex(folder, "r")
                    self._stamp = stamp
                except FileNotFoundError:  # a rebuild switched generations meanwhile: retry next call
                    self._checked = -math.inf
        return self._index
