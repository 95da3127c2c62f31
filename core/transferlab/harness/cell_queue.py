"""The cells a suite still has to run, handed to an executor one at a time.

An executor that keeps workers alive between cells (``process``) asks for the cell that suits
a worker best (:meth:`CellQueue.draw` with a ``rank``): a worker that extracted a backbone's
features for one cell takes the next cell on the same features, so with N workers each
backbone is loaded and its features extracted once, not once per worker. A plain iteration
draws in suite order, for executors that have no such preference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transferlab.harness.cell import Cell

__all__ = ["CellQueue", "Rank", "as_queue", "workload"]

Rank = Callable[["Cell"], int]


def workload(cell: Cell) -> str:
    """What cells with the same features share: backbone, its parameters and the task(s).
    Only the method, its parameters and the seed may differ between them."""
    return json.dumps([cell.backbone, dict(cell.backbone_params), cell.task, cell.source_task,
                       cell.regime, list(cell.tasks)], sort_keys=True, default=str)


class CellQueue:
    """Cells to run, each handed out once. ``draw`` takes the remaining cell that ``rank``
    puts first (lowest; the earliest in suite order among equals); iterating draws them all
    in suite order, waiting ``poll`` seconds between tries while :meth:`draw` finds none
    free (cells held by other workers, in :class:`~transferlab.harness.claims.CellClaims`)."""

    poll: float = 2.0

    def __init__(self, cells: Iterable[Cell]) -> None:
        self.remaining: list[Cell] = list(cells)

    @property
    def exhausted(self) -> bool:
        """True once no cell is left to draw now or later."""
        return not self.remaining

    def draw(self, rank: Rank | None = None) -> Cell | None:
        """The best-ranked cell this worker may run now, taken out of the queue; None when
        none is free now (see :attr:`exhausted` for whether one may be later)."""
        order = list(range(len(self.remaining)))
        if rank is not None:
            order.sort(key=lambda i: rank(self.remaining[i]))
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


def as_queue(cells: Iterable[Cell] | Any) -> CellQueue:
    """``cells`` itself when it is a :class:`CellQueue`, else a queue of its cells."""
    return cells if isinstance(cells, CellQueue) else CellQueue(cells)
