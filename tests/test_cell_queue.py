"""The queue of cells a suite hands its executor, the process executor's choice of the next
cell for each worker, and the thread limits under a cell."""

from __future__ import annotations

import os
import time

from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.cell_queue import CellQueue, as_queue, workload
from transferlab.harness.executors import ProcessExecutor, lane_rank


def _cells() -> list[Cell]:
    return [Cell(b, "t", "m", seed=s) for b in ("a", "b", "c") for s in (0, 1)]


def test_workload_ignores_method_and_seed_but_not_what_the_features_depend_on():
    """Bugs caught: two cells on the same features counted as different workloads (each
    worker extracts them again), or cells on different features counted as one."""
    base = Cell("b", "t", "m", {"C": 1.0}, {"img_size": 32}, seed=0)
    assert workload(base) == workload(Cell("b", "t", "other", {"C": 2.0}, {"img_size": 32}, 5))
    for other in (Cell("b2", "t", "m", {}, {"img_size": 32}),
                  Cell("b", "t2", "m", {}, {"img_size": 32}),
                  Cell("b", "t", "m", {}, {"img_size": 64}),
                  Cell("b", "t", "m", {}, {"img_size": 32}, source_task="s"),
                  Cell("b", "t", "m", {}, {"img_size": 32}, regime="multi-task", tasks=("t",))):
        assert workload(other) != workload(base), other


def test_workload_ignores_the_order_parameters_were_written_in_and_odd_values():
    """Bugs caught: the same backbone parameters written in two orders counted as two
    workloads, and a parameter value JSON cannot spell (a path) failing the suite."""
    from pathlib import Path

    one = Cell("b", "t", "m", backbone_params={"a": 1, "b": 2})
    other = Cell("b", "t", "m", backbone_params={"b": 2, "a": 1})
    assert workload(one) == workload(other)
    assert "ckpt" in workload(Cell("b", "t", "m", backbone_params={"p": Path("ckpt")}))


def test_iteration_waits_poll_seconds_while_other_workers_hold_every_cell(monkeypatch):
    """Bug caught: a busy loop (no wait) or no loop (cells held elsewhere dropped)."""
    from transferlab.harness import cell_queue

    slept = []

    class HeldOnce(CellQueue):
        poll = 0.25

        def _take(self, cell):
            return "yours" if slept else "held"

    def sleep(seconds):
        if len(slept) > 2:
            raise AssertionError("waited more than needed")
        slept.append(seconds)

    monkeypatch.setattr(cell_queue.time, "sleep", sleep)
    assert [c.seed for c in HeldOnce([Cell("b", "t", "m", seed=4)])] == [4]
    assert slept == [0.25]


def test_draw_takes_the_best_ranked_cell_and_the_earliest_among_equals():
    queue = CellQueue(_cells())
    assert queue.draw().backbone == "a"  # no rank: suite order
    picked = queue.draw(lambda c: 0 if c.backbone == "c" else 1)
    assert (picked.backbone, picked.seed) == ("c", 0)
    assert [(c.backbone, c.seed) for c in queue] == [("a", 1), ("b", 0), ("b", 1), ("c", 1)]
    assert queue.exhausted and queue.draw() is None


def test_held_cells_stay_and_gone_cells_leave():
    """Bugs caught: a cell another worker holds dropped (lost if that worker dies), or a cell
    another worker finished drawn again."""

    class Verdicts(CellQueue):
        def __init__(self, cells, verdicts):
            super().__init__(cells)
            self.verdicts = verdicts

        def _take(self, cell):
            return self.verdicts[cell.seed]

    cells = [Cell("b", "t", "m", seed=s) for s in range(3)]
    queue = Verdicts(cells, {0: "held", 1: "gone", 2: "yours"})
    assert queue.draw().seed == 2
    assert [c.seed for c in queue.remaining] == [0]  # held: kept; gone: dropped
    assert queue.draw() is None and not queue.exhausted
    queue.verdicts[0] = "yours"
    assert queue.draw().seed == 0 and queue.exhausted


def test_as_queue_wraps_a_plain_iterable_once():
    queue = CellQueue(_cells())
    assert as_queue(queue) is queue
    assert [c.seed for c in as_queue(iter(_cells()))] == [0, 1] * 3


def test_lane_rank_prefers_own_features_then_unclaimed_workloads():
    """Bug caught: two workers starting on one backbone's seeds at once, so both extract its
    features (the first scale-out measurement: 0.77x with 2 workers)."""
    a, b, c = (Cell(x, "t", "m") for x in "abc")
    rank = lane_rank(workload(b), {workload(a)})
    assert (rank(b), rank(c), rank(a)) == (0, 1, 2)
    fresh = lane_rank(None, {workload(a)})
    assert (fresh(a), fresh(b)) == (2, 1)


def _pid_after_a_second(cell: Cell) -> CellResult:
    time.sleep(1.0)  # long enough that both workers have started before either is free
    return CellResult(cell, "ok", extra={"pid": os.getpid()})


def test_each_workload_runs_in_one_worker_so_its_features_are_extracted_once():
    """End to end with two real workers: the two seeds of each backbone run in the same
    worker process (which keeps their features in memory), and every cell runs once. A
    suite-order split would give each worker one seed of each backbone."""
    cells = _cells()[:4]
    results = list(ProcessExecutor(2, preload=()).run(cells, _pid_after_a_second))
    assert sorted((r.cell.backbone, r.cell.seed) for r in results) == [
        (b, s) for b in "ab" for s in (0, 1)]
    pids = {}
    for result in results:
        pids.setdefault(result.cell.backbone, set()).add(result.extra["pid"])
    assert all(len(p) == 1 for p in pids.values()), pids
    assert len(set().union(*pids.values())) == 2  # both workers worked


def test_single_blas_thread_limits_blas_inside_the_block_only():
    """Bug caught: the limit leaking out of the probe's fit (large matrix products elsewhere
    would lose half the cores) or not applying inside it."""
    import numpy  # noqa: F401  (loads an OpenBLAS for threadpoolctl to see)
    from threadpoolctl import threadpool_info

    from transferlab.threads import single_blas_thread

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    with single_blas_thread():
        assert blas_threads() and set(blas_threads()) == {1}
    assert blas_threads() == before
