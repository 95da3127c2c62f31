"""Built-in executors, registered through the ``transferlab`` entry point like any plugin.

``local`` runs cells one after another in this process (features are shared between cells);
``process`` runs each cell in a worker process, isolating crashes and memory.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from transferlab.harness.cell import Cell, CellResult
from transferlab.hookspecs import hookimpl
from transferlab.params import Param


class LocalExecutor:
    """Run cells sequentially in-process."""

    def run(self, cells: Sequence[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        for cell in cells:
            yield run_one(cell)


class ProcessExecutor:
    """Run cells in a pool of spawned worker processes."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def run(self, cells: Sequence[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            pending = {pool.submit(run_one, cell): cell for cell in cells}
            for future in futures.as_completed(pending):
                try:
                    yield future.result()
                except futures.process.BrokenProcessPool as exc:
                    yield CellResult(pending[future], "error", error=f"worker crashed: {exc}")


@hookimpl
def register_executors(register: Any) -> None:
    register("local", lambda name: LocalExecutor(), summary="sequential, in this process")
    register(
        "process", lambda name, workers: ProcessExecutor(workers),
        summary="one spawned worker process per cell (isolates crashes and memory)",
        params=[Param("workers", int, 1, "parallel worker processes", min=1)],
    )
