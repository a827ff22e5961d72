"""Uploads commit in the order they registered, so ingesting at once credits as in sequence.

Dedup decisions are "first contribution wins": when two partners' uploads hold near copies of
each other, the one whose batch commits first keeps the document. Two ingests that interleave
their commits would credit by timing. Instead each run of an upload takes a *turn* when it
starts; a run whose earlier turns are still active maps its batches as usual (the costly,
parallel part) but spools them to disk, and commits them in order once every earlier upload
has finished. The result equals running the uploads one after another in turn order.

"Active" means processing with a recent heartbeat: a background thread beats every `beat_s`
while a run decides, so a crashed run stops holding others back after `stale_s`. A run's last
commit ends its hold: what it does after (the leak-guard index of its last parts, its receipt
and credit) reads and changes nothing a later upload's decisions read. A run that resumes takes
a new turn, after everyone who registered meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tokenclub.atrest.objects import Sealing, make_private_dirs, open_own, open_write
from tokenclub.db.engine import Database
from tokenclub.db.schema import Upload
from tokenclub.extract.document import ExtractionFailure

_LOCAL = LocalFileSystem()
_FAILURES = b"tokenclub.failures"


@dataclass(frozen=True, slots=True)
class Turns:
    """How runs wait for earlier ones: heartbeat period, when a silent run counts as gone, and
    how often a run that has mapped everything checks whether it may commit."""

    beat_s: float = 5.0
    stale_s: float = 60.0
    poll_s: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.beat_s < self.stale_s or self.poll_s <= 0:
            raise ValueError("turns need 0 < beat_s < stale_s and poll_s > 0")


def take_turn(db: Database, upload_id: str, lock: Callable[[Session], None]) -> int:
    """Give this run of the upload the next turn (after every turn taken so far) and beat once.

    `lock` makes max + 1 atomic (the ingest's advisory lock on PostgreSQL; SQLite serialises
    writers itself)."""
    with db.transaction() as session:
        lock(session)
        turn = (session.scalar(select(func.max(Upload.turn))) or 0) + 1
        session.execute(
            update(Upload).where(Upload.id == upload_id).values(turn=turn, heartbeat_s=int(time.time()))
        )
    return turn


def beat(db: Database, upload_id: str) -> None:
    with db.transaction() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(heartbeat_s=int(time.time())))


def leave(db: Database, upload_id: str) -> None:
    """Stop holding later turns back at once: the heartbeat is cleared."""
    with db.transaction() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(heartbeat_s=None))


def earlier_active(db: Database, turn: int, turns: Turns) -> list[str]:
    """Uploads with an earlier turn that are still processing and beating."""
    since = int(time.time() - turns.stale_s)
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Upload.id)
                .where(Upload.status == "processing", Upload.turn < turn, Upload.heartbeat_s >= since)
                .order_by(Upload.turn)
            )
        )


@contextmanager
def heartbeat(db: Database, upload_id: str, turns: Turns) -> Iterator[None]:
    """Beat on a thread of its own while the block runs: a slow batch never looks like a crash.
    The heartbeat is cleared when the block ends, so later turns go on at once; after a block
    that raised, the database may be what failed, and staleness frees the turn then."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(turns.beat_s):
            beat(db, upload_id)

    thread = threading.Thread(target=run, name=f"heartbeat-{upload_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    except BaseException:
        stop.set()
        thread.join()
        with suppress(SQLAlchemyError):
            leave(db, upload_id)
        raise
    stop.set()
    thread.join()
    leave(db, upload_id)


class Spool:
    """Mapped batches waiting for the upload's turn: one Arrow IPC file each under `folder`,
    sealed like the corpus when the home seals, read back in batch order."""

    def __init__(self, folder: Path, sealing: Sealing | None) -> None:
        self.folder = folder
        self.sealing = sealing
        self._seqs: list[int] = []
        if folder.exists():  # what a crashed run left: its batches are mapped again
            for stale in folder.glob("*.arrow"):
                stale.unlink()

    def __len__(self) -> int:
        return len(self._seqs)

    def put(self, seq: int, table: pa.Table, failures: list[ExtractionFailure]) -> None:
        make_private_dirs(_LOCAL, str(self.folder))
        meta = json.dumps([[f.source, f.reason] for f in failures], ensure_ascii=False).encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _FAILURES: meta})
        with (
            open_write(_LOCAL, str(self._path(seq)), self.sealing) as sink,
            ipc.new_stream(sink, table.schema) as writer,
        ):
            writer.write_table(table)
        self._seqs.append(seq)

    def drain(self) -> Iterator[tuple[int, pa.Table, list[ExtractionFailure]]]:
        """The spooled batches in order, each file removed once the caller has taken it."""
        for seq in sorted(self._seqs):
            path = self._path(seq)
            with open_own(path, self.sealing) as source:
                table = ipc.open_stream(source).read_all()
            metadata = dict(table.schema.metadata or {})
            failures = [ExtractionFailure(s, r) for s, r in json.loads(metadata.pop(_FAILURES))]
            yield seq, table.replace_schema_metadata(metadata or None), failures
            path.unlink()
            self._seqs.remove(seq)
        if self.folder.exists() and not any(self.folder.iterdir()):
            self.folder.rmdir()

    def _path(self, seq: int) -> Path:
        return self.folder / f"{seq:06d}.arrow"
