"""Cooperating workers: any number of ``bench`` processes on one results file split a suite's
cells between them through claims in the file.

A worker claims a cell just before running it (:meth:`ResultsStore.claim`, one ``BEGIN
IMMEDIATE`` transaction) and a heartbeat thread renews its claims while they run, so a long
cell is never taken over while its worker lives. A claim whose worker died (killed, the
machine lost) expires after the lease and is taken over; on the same host a claim whose
process no longer exists is taken over at once. A worker that finds every remaining cell held
by live others waits for them to finish (or their claims to lapse), so nothing is lost while
one worker runs; a cell that failed during this campaign is not run again by another worker.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from transferlab.harness.cell import Cell
from transferlab.harness.cell_queue import CellQueue

__all__ = ["CellClaims", "make_owner", "owner_alive"]

LEASE_SECONDS = 60.0
POLL_SECONDS = 2.0


def make_owner() -> str:
    """``host:pid:tag``: who holds a claim (the tag tells apart runs of one process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """False only when ``owner`` ran on this host and its process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class CellClaims(CellQueue):
    """The cells of ``cells`` this worker gets to run, each claimed as it is drawn
    (:meth:`~transferlab.harness.cell_queue.CellQueue.draw`); :meth:`release` once a cell's
    result is stored. Use inside :meth:`heartbeat`."""

    def __init__(self, store: Any, cells: Sequence[Cell], *, lease: float = LEASE_SECONDS,
                 poll: float = POLL_SECONDS, owner: str | None = None,
                 alive: Callable[[str], bool] = owner_alive,
                 on_skip: Callable[[Cell], Any] | None = None,
                 reads_features: Callable[[Cell], bool] | None = None,
                 size: Callable[[Cell], float] | None = None) -> None:
        super().__init__(cells, reads_features, size)
        self.store = store
        self.lease, self.poll = lease, poll
        self.owner = owner or make_owner()
        self.alive = alive
        self.since = store.last_id()
        self.in_flight: dict[str, Cell] = {}
        self.done_elsewhere: list[Cell] = []
        self.on_skip = on_skip
        self._lock = threading.Lock()

    def _take(self, cell: Cell) -> str:
        """Claim ``cell``: ``yours``; held by a live other worker: ``held``; finished (or
        failed) by another worker during this campaign: ``gone``."""
        status = self.store.claim(cell.key, self.owner, self.lease, since=self.since,
                                  alive=self.alive)
        if status == "claimed":
            with self._lock:
                self.in_flight[cell.key] = cell
            return "yours"
        if status == "held":
            return "held"
        self.done_elsewhere.append(cell)
        if self.on_skip is not None:
            self.on_skip(cell)
        return "gone"

    def release(self, cell: Cell) -> None:
        with self._lock:
            self.in_flight.pop(cell.key, None)
        self.store.release(cell.key, self.owner)

    def release_all(self) -> None:
        """Give up every claim still held (on Ctrl-C: others may take the cells at once)."""
        with self._lock:
            keys = list(self.in_flight)
            self.in_flight.clear()
        for key in keys:
            self.store.release(key, self.owner)

    @contextlib.contextmanager
    def heartbeat(self) -> Iterator[CellClaims]:
        """Renew the claims in flight every third of the lease until the block ends; on the
        way out (normally or not) every claim still held is released."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease / 3):
                with self._lock:
                    keys = list(self.in_flight)
                with contextlib.suppress(Exception):  # a locked file: try at the next beat
                    self.store.renew(keys, self.owner, self.lease)

        thread = threading.Thread(target=beat, name="transferlab-claims", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
            self.release_all()
