"""Built-in executors, registered through the ``transferlab`` entry point like any plugin.

``local`` runs cells one after another in this process (features are shared between cells);
``process`` runs each cell in a worker process, isolating crashes and memory.

A worker that dies (segfault, ``os._exit``, the OOM killer) breaks the whole
``ProcessPoolExecutor``: every future still running or queued fails with ``BrokenProcessPool``,
not only the one whose cell crashed. The process executor therefore re-runs every cell that got
no result one at a time, each alone in a worker, and records a crash only against a cell that
crashed while running alone; the cells that merely shared the broken pool get their real result.
"""

from __future__ import annotations

import concurrent.futures as futures
import importlib.util
import itertools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from transferlab.harness.cell import Cell, CellResult
from transferlab.hookspecs import hookimpl
from transferlab.params import Param
from transferlab.registry import RegisterCallback

__all__ = ["LocalExecutor", "ProcessExecutor", "register_executors"]


class LocalExecutor:
    """Run cells sequentially in-process."""

    def run(self, cells: Iterable[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        for cell in cells:
            yield run_one(cell)


class ProcessExecutor:
    """Run cells in a pool of worker processes; a crashing cell fails alone.

    Workers are forked from a server process that imported ``preload`` once (by default
    torch and timm, which take seconds to import: a worker that imported them itself would
    pay that for every worker), never from the ``bench`` process itself, which may hold
    threads. Where the forkserver start method does not exist, workers are spawned."""

    def __init__(self, workers: int = 1, preload: Sequence[str] = ("torch", "timm")) -> None:
        self.workers = workers
        self.preload = [m for m in preload if importlib.util.find_spec(m) is not None]

    def _context(self) -> Any:
        if "forkserver" not in multiprocessing.get_all_start_methods():
            return multiprocessing.get_context("spawn")
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["transferlab.harness.cell", *self.preload])
        return context

    def run(self, cells: Iterable[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        """At most ``workers`` cells in flight: the next cell is drawn (and so claimed, with
        cooperating workers) only when a worker is free."""
        context = self._context()
        unfinished: list[Cell] = []  # cells whose future failed because the pool broke
        source = iter(cells)
        with futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            pending: dict[futures.Future[CellResult], Cell] = {}
            for cell in itertools.islice(source, self.workers):
                pending[pool.submit(run_one, cell)] = cell
            while pending:
                done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    cell = pending.pop(future)
                    try:
                        result = future.result()
                    except futures.process.BrokenProcessPool:
                        unfinished.append(cell)
                        continue
                    yield result
                broken = bool(unfinished)
                for cell in itertools.islice(source, 0 if broken else len(done)):
                    pending[pool.submit(run_one, cell)] = cell
        # cells never drawn when the pool broke run after the ones it took down
        yield from self._run_alone(itertools.chain(unfinished, source), run_one, context)

    @staticmethod
    def _run_alone(cells: Iterable[Cell], run_one: Callable[[Cell], CellResult],
                   context: Any) -> Iterator[CellResult]:
        """Run ``cells`` one after another in a single worker, so a crash names its cell;
        a fresh worker takes over after each crash."""
        pool = None
        try:
            for cell in cells:
                if pool is None:
                    pool = futures.ProcessPoolExecutor(1, mp_context=context)
                try:
                    result = pool.submit(run_one, cell).result()
                except futures.process.BrokenProcessPool as exc:
                    pool.shutdown()
                    pool = None
                    result = CellResult(cell, "error", error=f"worker crashed: {exc}")
                yield result
        finally:
            if pool is not None:
                pool.shutdown()


@hookimpl
def register_executors(register: RegisterCallback) -> None:
    register("local", lambda name: LocalExecutor(), summary="sequential, in this process")
    register(
        "process", lambda name, workers, preload: ProcessExecutor(
            workers, tuple(filter(None, preload.split("+")))),
        summary="one spawned worker process per cell (isolates crashes and memory)",
        params=[Param("workers", int, 1, "parallel worker processes", min=1),
                Param("preload", str, "torch+timm", "modules the workers' parent imports once"
                      " (joined by +; those not installed are skipped)")],
    )
