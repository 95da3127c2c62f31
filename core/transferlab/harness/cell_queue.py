"""The cells a suite still has to run, handed to an executor one at a time.

An executor that keeps workers alive between cells (``process``) asks for the cell that suits
a worker best (:meth:`CellQueue.draw` with a ``rank``): a worker that extracted a backbone's
features for one cell takes the next cell on the same features, so with N workers each
backbone is loaded and its features extracted once, not once per worker. A plain iteration
draws in suite order, for executors that have no such preference.

A rank may also say "not now" (None): a worker then leaves a cell whose features another
worker holds to that worker, when running it there from memory is sooner than extracting them
again (:class:`WorkloadTimes` decides from the cells' measured times).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transferlab.harness.cell import Cell

__all__ = ["CellQueue", "Rank", "WorkloadTimes", "as_queue", "workload"]

Rank = Callable[["Cell"], Any]
"""A cell's place in a worker's preference (lowest first; anything sortable, such as a
tuple); None: not for this worker now."""


def workload(cell: Cell) -> str:
    """What cells with the same features share: backbone, its parameters and the task(s).
    Only the method, its parameters and the seed may differ between them."""
    return json.dumps([cell.backbone, dict(cell.backbone_params), cell.task, cell.source_task,
                       cell.regime, list(cell.tasks)], sort_keys=True, default=str)


class CellQueue:
    """Cells to run, each handed out once. ``draw`` takes the remaining cell that ``rank``
    puts first (lowest; the earliest in suite order among equals); iterating draws them all
    in suite order, waiting ``poll`` seconds between tries while :meth:`draw` finds none
    free (cells held by other workers, in :class:`~transferlab.harness.claims.CellClaims`).

    Two optional hints for executors that choose: ``reads_features`` tells which cells read
    their backbone's extracted features (and so run sooner where those are in memory; by
    default none is assumed to, which never holds a cell back), and ``size`` how much work a
    cell's backbone is, relative to the others (its parameter count; 0 when unknown), so the
    biggest start first and the last cell to start is a short one."""

    poll: float = 2.0

    def __init__(self, cells: Iterable[Cell],
                 reads_features: Callable[[Cell], bool] | None = None,
                 size: Callable[[Cell], float] | None = None) -> None:
        self.remaining: list[Cell] = list(cells)
        self.reads_features: Callable[[Cell], bool] = reads_features or (lambda cell: False)
        self.size: Callable[[Cell], float] = size or (lambda cell: 0.0)

    @property
    def exhausted(self) -> bool:
        """True once no cell is left to draw now or later."""
        return not self.remaining

    def draw(self, rank: Rank | None = None) -> Cell | None:
        """The best-ranked cell this worker may run now, taken out of the queue; None when
        none is free now (see :attr:`exhausted` for whether one may be later)."""
        order = list(range(len(self.remaining)))
        if rank is not None:
            ranks = [rank(cell) for cell in self.remaining]
            order = sorted((i for i in order if ranks[i] is not None), key=ranks.__getitem__)
        taken: list[int] = []
        chosen = None
        for index in order:
            verdict = self._take(self.remaining[index])
            if verdict != "held":
                taken.append(index)
            if verdict == "yours":
                chosen = self.remaining[index]
                break
        for index in sorted(taken, reverse=True):
            del self.remaining[index]
        return chosen

    def count(self, group: str) -> int:
        """How many remaining cells have workload ``group``."""
        return sum(workload(cell) == group for cell in self.remaining)

    def _take(self, cell: Cell) -> str:
        """``yours`` (run it), ``held`` (keep it for later) or ``gone`` (drop it)."""
        return "yours"

    def __iter__(self) -> Iterator[Cell]:
        while not self.exhausted:
            cell = self.draw()
            if cell is not None:
                yield cell
            elif not self.exhausted:
                time.sleep(self.poll)


class WorkloadTimes:
    """How long the cells of each workload took in a worker: the first one there (which
    extracted the features) and the later ones (which read them from memory), so an executor
    can tell whether a second worker should extract the same features again."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.later: dict[str, float] = {}

    def record(self, group: str, seconds: float, *, first: bool) -> None:
        """Add one finished cell of workload ``group``; the shortest time of each kind is kept
        (the least disturbed by the other workers)."""
        times = self.first if first else self.later
        times[group] = min(seconds, times.get(group, seconds))

    def _share(self, group: str) -> float:
        """A later cell's time as a share of the first's, for a workload with both."""
        first = self.first[group]
        return min(self.later[group] / first, 1.0) if first > 0 else 1.0

    def share(self, group: str) -> float | None:
        """``group``'s later-to-first time share; before it has both, the median over the
        workloads that have; None while none has."""
        if group in self.first and group in self.later:
            return self._share(group)
        shares = sorted(self._share(g) for g in self.first if g in self.later)
        if not shares:
            return None
        middle = len(shares) // 2
        return shares[middle] if len(shares) % 2 else (shares[middle - 1] + shares[middle]) / 2

    def worth_duplicating(self, group: str, remaining: int) -> bool:
        """Whether a second worker should extract ``group``'s features again to share its
        ``remaining`` cells with the worker that holds them. Alone, that worker needs
        ``remaining * later``; shared, the makespan is ``extract + remaining * later / 2``
        with ``extract = first - later``. So duplicating pays when ``remaining * share >
        2 * (1 - share)``, ``share`` being :meth:`share`. With nothing measured yet it is
        taken to pay: work beside the other worker beats idling when nothing is known."""
        share = self.share(group)
        return share is None or remaining * share > 2 * (1 - share)


def as_queue(cells: Iterable[Cell] | Any) -> CellQueue:
    """``cells`` itself when it is a :class:`CellQueue`, else a queue of its cells."""
    return cells if isinstance(cells, CellQueue) else CellQueue(cells)
