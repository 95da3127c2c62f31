"""Built-in executors, registered through the ``transferlab`` entry point like any plugin.

``local`` runs cells one after another in this process (features are shared between cells);
``process`` runs them in worker processes, isolating crashes and memory.

Each worker of the process executor is a one-process pool of its own (a lane), kept alive for
the whole suite, so the features a worker extracted stay in its memory for the next cell, and
the executor chooses which cell each lane runs next: one on the features the lane already
holds, else one whose backbone no other lane works on (:func:`lane_rank`). Two workers on a
suite of four backbones x two seeds then extract each backbone's features once, not twice.
Among workloads no lane holds, the biggest backbone (by its registered parameter count)
starts first, so the longest cell does not start last while the other lanes run dry. When
only cells on another lane's features are left, a free lane leaves a feature method's
cell to that lane unless extracting the features again pays off by the times measured so far
(:class:`~transferlab.harness.cell_queue.WorkloadTimes`): the last backbone's second seed
then runs from memory in a fraction of a second instead of a full extraction beside it. A
lane whose worker dies (segfault, ``os._exit``, the OOM killer) was running exactly one cell:
that cell is recorded as crashed, and the lane starts a fresh worker for its next cell.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from transferlab.harness.cell_queue import Rank, WorkloadTimes, as_queue, workload
from transferlab.hookspecs import hookimpl
from transferlab.params import Param

if TYPE_CHECKING:  # the CLI loads this plugin for `--help`: no numpy, no multiprocessing
    import concurrent.futures as futures

    from transferlab.harness.cell import Cell, CellResult
    from transferlab.registry import RegisterCallback

__all__ = ["LocalExecutor", "ProcessExecutor", "lane_rank", "register_executors"]


class LocalExecutor:
    """Run cells sequentially in-process."""

    def run(self, cells: Iterable[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        for cell in cells:
            yield run_one(cell)


def lane_rank(mine: str | None, others: set[str],
              leave: Callable[[Cell], bool] | None = None,
              size: Callable[[Cell], float] | None = None) -> Rank:
    """How a lane that last ran workload ``mine`` ranks a cell: first the same workload (its
    features are in the lane's memory), then those no other lane holds, the biggest by
    ``size`` first (so no big backbone starts last while the other lanes run out of work),
    then the rest; None (not now) for those of the rest that ``leave`` says to leave to the
    lane holding their workload."""

    def rank(cell: Cell) -> tuple[float, float] | None:
        group = workload(cell)
        if group == mine:
            return (0, 0.0)
        if group not in others:
            return (1, -size(cell) if size is not None else 0.0)
        return None if leave is not None and leave(cell) else (2, 0.0)

    return rank


class _Lane:
    """One worker process (a one-process pool) and the cell it runs."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.pool: futures.ProcessPoolExecutor | None = None
        self.future: futures.Future[CellResult] | None = None
        self.cell: Cell | None = None
        self.workload: str | None = None
        self.first = True  # whether the running cell is the lane's first on its workload
        self.started = 0.0

    def start(self, cell: Cell, run_one: Callable[[Cell], CellResult]) -> None:
        if self.pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(1, mp_context=self.context)
        group = workload(cell)
        self.first = group != self.workload
        self.cell, self.workload = cell, group
        self.started = time.perf_counter()
        self.future = self.pool.submit(run_one, cell)

    def collect(self) -> CellResult:
        """The finished cell's result; a crashed worker's cell as an error, the lane's pool
        replaced by a fresh one at its next cell."""
        assert self.future is not None and self.cell is not None
        from concurrent.futures.process import BrokenProcessPool

        future, cell = self.future, self.cell
        self.future = self.cell = None
        try:
            return future.result()
        except BrokenProcessPool as exc:
            from transferlab.harness.cell import CellResult

            self.close()
            self.workload = None  # a fresh worker holds no features
            return CellResult(cell, "error", error=f"worker crashed: {exc}")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


class ProcessExecutor:
    """Run cells in ``workers`` worker processes; a crashing cell fails alone.

    Workers are forked from a server process that imported ``preload`` once (by default
    torch and timm, which take seconds to import: a worker that imported them itself would
    pay that for every worker), never from the ``bench`` process itself, which may hold
    threads. Where the forkserver start method does not exist, workers are spawned."""

    def __init__(self, workers: int = 1, preload: Sequence[str] = ("torch", "timm")) -> None:
        self.workers = workers
        self.preload = [m for m in preload if importlib.util.find_spec(m) is not None]

    def _context(self) -> Any:
        import multiprocessing

        if "forkserver" not in multiprocessing.get_all_start_methods():
            return multiprocessing.get_context("spawn")
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["transferlab.harness.cell", *self.preload])
        return context

    def run(self, cells: Iterable[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        """At most ``workers`` cells in flight: a lane draws (and so claims, with cooperating
        workers) its next cell only when it is free."""
        import concurrent.futures as futures

        queue = as_queue(cells)
        context = self._context()
        lanes = [_Lane(context) for _ in range(self.workers)]
        times = WorkloadTimes()

        def leave(cell: Cell) -> bool:
            """Leave a feature cell to the lane holding its features: see the module's doc."""
            group = workload(cell)
            return queue.reads_features(cell) and not times.worth_duplicating(
                group, queue.count(group))

        try:
            while True:
                for lane in lanes:
                    if lane.future is None and not queue.exhausted:
                        others = {other.workload for other in lanes
                                  if other is not lane and other.workload is not None}
                        cell = queue.draw(lane_rank(lane.workload, others, leave,
                                                     queue.size))
                        if cell is not None:
                            lane.start(cell, run_one)
                busy = {lane.future: lane for lane in lanes if lane.future is not None}
                if not busy:
                    if queue.exhausted:
                        return
                    time.sleep(queue.poll)  # every remaining cell held by other workers
                    continue
                idle = len(busy) < len(lanes) and not queue.exhausted
                done, _ = futures.wait(busy, timeout=queue.poll if idle else None,
                                       return_when=futures.FIRST_COMPLETED)
                for future in done:
                    lane = busy[future]
                    group, first = lane.workload, lane.first
                    seconds = time.perf_counter() - lane.started
                    result = lane.collect()
                    if result.status == "ok" and group is not None:
                        times.record(group, seconds, first=first)
                    yield result
        finally:
            for lane in lanes:
                lane.close()


@hookimpl
def register_executors(register: RegisterCallback) -> None:
    register("local", lambda name: LocalExecutor(), summary="sequential, in this process")
    register(
        "process", lambda name, workers, preload: ProcessExecutor(
            workers, tuple(filter(None, preload.split("+")))),
        summary="cells in worker processes (isolates crashes and memory); each worker keeps"
                " its features for the next cell on them",
        params=[Param("workers", int, 1, "parallel worker processes", min=1),
                Param("preload", str, "torch+timm", "modules the workers' parent imports once"
                      " (joined by +; those not installed are skipped)")],
    )
