"""An ingest's committed parts indexed by a process of its own while the ingest goes on.

The leak-guard index of accepted text is about a third of a real ingest's CPU (docs/scale.md),
and nothing the ingest does next reads it: a batch's dedup decisions read the dedup index, not
the guard's. So the groups of committed parts go to one worker process, in order, and the
ingest maps and commits meanwhile; on two cores the two overlap instead of adding up. The
worker starts with the first group an ingest hands over, so an upload too small to fill one
(`GROUP_TOKENS`) indexes at its end as before and starts no process.

An upload that waits for an earlier one's turn (`ingest/turns.py`) starts its worker as it
begins to wait (`start`): its commits then come in a burst once the earlier upload is done, and
the worker's start (imports, numba's first dispatch: about a second of CPU) overlaps the wait
instead of holding that burst up. A worker started early warms up on a sample text (`warm`)
while it waits; one started by the first group takes that group at once (the ingest is blocked
on the pipe until it does).

The worker is `python -m tokenclub.guard.indexing.background`, fed pickles on its standard
input (the index's home and shape, then one group at a time) and answering once, when its input
ends. A group is the parts' names and rows as the ingest committed them, so the worker never
reads the corpus store back: it holds no key of a sealed store and imports only the index (not
Arrow, the store or the database layer), which is most of what its start costs. A group is
larger than a pipe holds, so the ingest waits while the worker is busy with the group before:
it runs at most a group or two ahead and holds no more than that in memory.

A group that fails is not lost: the worker skips the groups after it, and the ingest's closing
`sync` indexes every committed part that the parts log lacks. The failure itself is raised by
`finish`, so the ingest never reports success over an index it could not write; a worker that
died fails the ingest as soon as a group cannot be handed to it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import IO

from tokenclub.guard.compiled import distinct_documents
from tokenclub.guard.indexing.index import IndexShape, letter_keys
from tokenclub.guard.indexing.parts import Part, index_group
from tokenclub.guard.normalize import normalize
from tokenclub.pipeline.pickling import sendable


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


WARM_TEXT = "가나다라마바사아자차카타파하 sample text 0123456789 " * 3


def warm(shape: IndexShape) -> None:
    """Pay the index's one-time costs on a sample, touching no index: numba's first dispatch
    (most of it is paid by the first compiled call of a process, whichever) and the letter
    table's pages of Hangul, Latin and digits."""
    letters = normalize(WARM_TEXT).letters
    keys, owner, _ = letter_keys(shape.params, [letters], step=1)
    distinct_documents(keys, owner)


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """The worker's loop: the home and shape, then groups until the input ends; one answer at
    the end, (the first failure or None, the worker's CPU seconds with its start)."""
    home, shape, early = pickle.load(source)
    if early:
        warm(shape)
    failure: BaseException | None = None
    while True:
        try:
            group = pickle.load(source)
        except EOFError:
            break
        if failure is None:
            try:
                index_group(home, group, shape, once=True)
            except Exception as error:  # handed back to the ingest, which raises it
                failure = error
    if failure is not None and not sendable(failure):
        failure = RuntimeError(f"guard indexing failed: {failure!r}")
    with suppress(BrokenPipeError):  # an ingest that failed itself no longer listens
        pickle.dump((failure, _cpu_s()), sink)
        sink.flush()


class BackgroundIndexer:
    """Hands an upload's committed groups to one worker process, which indexes them in order.

    The index's shape comes from the ingest's settings and is sent along. With `worker` false
    every group is indexed in this process as it is handed over.
    """

    def __init__(self, home: Path, shape: IndexShape, worker: bool = True) -> None:
        self.home = home
        self.shape = shape
        self.worker = worker
        self._worker: subprocess.Popen[bytes] | None = None
        self.worker_cpu_s = 0.0
        """CPU seconds the worker spent, its start included (0 when none started)."""

    def start(self, early: bool = True) -> None:
        """Start the worker now if none runs; `early`: ahead of its first group, so it warms up."""
        if self._worker is None and self.worker:
            self._worker = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            self._send((self.home, self.shape, early))

    def submit(self, group: Sequence[Part]) -> None:
        """A full group: to the worker, started now if none runs yet."""
        self.start(early=False)
        self._hand(group)

    def finish(self, group: Sequence[Part]) -> None:
        """The last group (it may be empty), then wait for every group; raises the first failure.

        The last group goes to the worker if one runs, so the index takes the groups in order;
        else it is indexed here, and a small upload starts no process."""
        if group:
            self._hand(group)
        worker, self._worker = self._worker, None
        if worker is None:
            return
        assert worker.stdin is not None and worker.stdout is not None
        with worker:  # its pipes closed and the process waited for on the way out
            _close_input(worker)
            try:
                failure, self.worker_cpu_s = pickle.load(worker.stdout)
            except EOFError:
                failure = _died(worker)
        if failure is not None:
            raise failure

    def _hand(self, group: Sequence[Part]) -> None:
        if self._worker is None:
            index_group(self.home, group, self.shape)
        else:
            self._send(list(group))

    def _send(self, message: object) -> None:
        worker = self._worker
        assert worker is not None and worker.stdin is not None
        try:
            pickle.dump(message, worker.stdin)
            worker.stdin.flush()
        except BrokenPipeError:
            raise _died(worker) from None

    def __enter__(self) -> BackgroundIndexer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """After a failure elsewhere: the worker indexes the groups already handed over, then
        stops; never killed mid-group, which would leave the index half-written."""
        worker, self._worker = self._worker, None
        if worker is not None:
            with worker:
                _close_input(worker)


def _died(worker: subprocess.Popen[bytes]) -> RuntimeError:
    return RuntimeError(f"the guard indexing worker died (exit status {worker.wait()})")


def _close_input(worker: subprocess.Popen[bytes]) -> None:
    """End the worker's input; a worker that died leaves what was written for it unflushed."""
    assert worker.stdin is not None
    with suppress(BrokenPipeError):
        worker.stdin.close()


if __name__ == "__main__":
    # numba looks for SciPy's BLAS when it first compiles or loads a function, to offer
    # `np.dot`; the index calls none, and where SciPy is installed that import was a quarter of
    # this worker's start (docs/scale.md). Marked missing, so the probe fails at once.
    sys.modules.setdefault("scipy", None)  # type: ignore[arg-type]
    serve(sys.stdin.buffer, sys.stdout.buffer)
