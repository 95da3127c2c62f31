"""The queue of cells a suite hands its executor, the process executor's choice of the next
cell for each worker, and the thread limits under a cell."""

from __future__ import annotations

import os
import time

from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.cell_queue import CellQueue, WorkloadTimes, as_queue, workload
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
    assert rank(b) < rank(c) < rank(a)
    fresh = lane_rank(None, {workload(a)})
    assert fresh(b) < fresh(a)
    queue = CellQueue([a, c, b])
    assert queue.draw(rank) is b and queue.draw(rank) is c and queue.draw(rank) is a


def test_lane_rank_starts_the_biggest_free_backbone_first_but_keeps_its_own_before_it():
    """Bugs caught: the biggest backbone started last, so one worker runs it alone while the
    other idles (the small suite's last cell ran 4.6 s beside an idle worker), or the size
    outranking a lane's own features (extracted again elsewhere)."""
    small, big, own, held = (Cell(x, "t", "m") for x in ("small", "big", "own", "held"))
    sizes = {"small": 10.0, "big": 1e6, "own": 1.0, "held": 1e9}
    rank = lane_rank(workload(own), {workload(held)}, size=lambda c: sizes[c.backbone])
    queue = CellQueue([small, held, big, own])
    assert [queue.draw(rank) for _ in range(4)] == [own, big, small, held]


def test_lane_rank_leaves_only_what_leave_names_and_only_when_another_lane_holds_it():
    """Bugs caught: a cell left for another lane although no lane holds its features (it
    would never run), or ``leave`` ignored (the features extracted twice)."""
    a, b = Cell("a", "t", "m"), Cell("b", "t", "m")
    rank = lane_rank(None, {workload(a)}, leave=lambda cell: True)
    assert rank(a) is None and rank(b) is not None
    assert lane_rank(None, {workload(a)}, leave=lambda cell: False)(a) is not None
    queue = CellQueue([a, b])
    assert queue.draw(rank) is b
    assert queue.draw(rank) is None and queue.remaining == [a] and not queue.exhausted
    assert queue.count(workload(a)) == 1 and queue.count(workload(b)) == 0


def test_a_queue_without_hints_holds_no_cell_back_and_sizes_all_alike():
    """Bugs caught: a queue built without hints (a third-party executor's, or a plain list)
    taking every cell for a feature cell (a worker left idle behind another), or a size
    hint ignored or lost."""
    cell = Cell("b", "t", "m")
    bare = CellQueue([cell])
    assert bare.reads_features(cell) is False and bare.size(cell) == 0.0
    hinted = CellQueue([cell], lambda c: True, lambda c: 5.0)
    assert hinted.reads_features(cell) is True and hinted.size(cell) == 5.0


def test_workload_times_keep_the_shortest_of_each_kind():
    """Bug caught: a time disturbed by the other worker (the longest) or the last one
    overwriting a cleaner measurement."""
    times = WorkloadTimes()
    for seconds in (3.0, 2.0, 4.0):
        times.record("w", seconds, first=True)
    times.record("w", 0.5, first=False)
    times.record("w", 0.7, first=False)
    assert times.first == {"w": 2.0} and times.later == {"w": 0.5}
    assert times.share("w") == 0.25


def test_workload_share_falls_back_to_the_median_of_measured_workloads():
    """Bugs caught: a workload with only its first cell measured taken as measured (a
    KeyError or a share of 0), or the fallback not a median."""
    times = WorkloadTimes()
    assert times.share("new") is None
    for group, first, later in (("a", 10.0, 1.0), ("b", 10.0, 3.0), ("c", 10.0, 8.0)):
        times.record(group, first, first=True)
        times.record(group, later, first=False)
    times.record("only-first", 5.0, first=True)
    assert times.share("new") == 0.3 and times.share("only-first") == 0.3
    times.record("d", 10.0, first=True)
    times.record("d", 5.0, first=False)
    assert times.share("new") == (0.3 + 0.5) / 2  # even count: the mean of the middle two
    assert times.share("a") == 0.1  # its own, not the median
    times.record("free", 0.0, first=True)
    times.record("free", 0.2, first=False)
    assert times.share("free") == 1.0  # an instant first cell: nothing to save by waiting
    times.record("slower-later", 2.0, first=True)
    times.record("slower-later", 3.0, first=False)
    assert times.share("slower-later") == 1.0  # capped: a later cell is never worth more


def test_duplicating_pays_when_the_remaining_cells_outweigh_twice_the_extraction():
    """The rule ``remaining * share > 2 * (1 - share)``: with a share of 0.2 (first cell 10
    s, later ones 2 s: extraction 8 s), 8 remaining cells take 16 s alone against 8 + 8
    shared (not worth it) and 9 take 18 against 17 (worth it). Bugs caught: an inverted or
    off-by-one comparison, and extraction not subtracted from the first cell's time."""
    times = WorkloadTimes()
    times.record("w", 10.0, first=True)
    times.record("w", 2.0, first=False)
    assert not times.worth_duplicating("w", 8)
    assert times.worth_duplicating("w", 9)
    assert times.worth_duplicating("unmeasured", 1) is False  # the median of w: 0.2
    assert WorkloadTimes().worth_duplicating("w", 1) is True  # nothing measured at all
    for group, later in (("b", 9.0), ("c", 8.0)):  # median share now 0.8
        times.record(group, 10.0, first=True)
        times.record(group, later, first=False)
    assert times.worth_duplicating("unmeasured", 1) is True  # 0.8 > 2 * 0.2
    assert not times.worth_duplicating("w", 2)  # w's own share (0.2), not the median


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


_EXTRACTED: set[str] = set()
FIRST_SECONDS = {"big": 2.0, "small": 0.4}


def _extract_once_per_process(cell: Cell) -> CellResult:
    """A feature cell: slow the first time its backbone runs in this process, fast later."""
    first = cell.backbone not in _EXTRACTED
    _EXTRACTED.add(cell.backbone)
    time.sleep(FIRST_SECONDS[cell.backbone] if first else 0.05)
    return CellResult(cell, "ok", extra={"pid": os.getpid(), "first": first})


def _run_two_lanes(reads_features: bool) -> dict[tuple[str, int], dict]:
    cells = [Cell("big", "t", "m", seed=s) for s in (0, 1)] + [
        Cell("small", "t", "m", seed=s) for s in (0, 1)]
    queue = CellQueue(cells, lambda cell: reads_features,
                      lambda cell: 1e6 if cell.backbone == "big" else 0.0)
    results = list(ProcessExecutor(2, preload=()).run(queue, _extract_once_per_process))
    return {(r.cell.backbone, r.cell.seed): r.extra for r in results}


def test_a_free_lane_leaves_a_feature_cell_to_the_lane_holding_its_features():
    """End to end with two real workers. The big backbone starts first (its size); the other
    lane runs the small one's two cells (0.4 s, then 0.05 s from memory: a share of about
    0.1) and is free while the big one's first cell runs. By the measured share, extracting
    the big one's features again for its one remaining cell does not pay, so that cell waits
    for the lane that holds them and runs from memory. Bugs caught: the second seed
    extracted again beside the first (the small suite's last backbone, 3.7 s twice), and the
    wait applied to cells that do not read features (a fine-tuning seed left idle)."""
    extras = _run_two_lanes(reads_features=True)
    assert extras["big", 0]["pid"] == extras["big", 1]["pid"]
    assert extras["big", 1]["first"] is False
    assert extras["small", 0]["pid"] != extras["big", 0]["pid"]
    extras = _run_two_lanes(reads_features=False)
    assert extras["big", 1]["pid"] != extras["big", 0]["pid"]  # ran beside it, at once


EVEN_SECONDS = {"even": 0.6, "small": 0.05}


def _as_long_every_time(cell: Cell) -> CellResult:
    """A feature cell that gains nothing from memory: as long the second time."""
    time.sleep(EVEN_SECONDS[cell.backbone])
    return CellResult(cell, "ok", extra={"pid": os.getpid()})


def test_a_free_lane_shares_a_workload_whose_cells_gain_nothing_from_memory():
    """End to end with two real workers: the small workload's two cells take as long each
    (a measured share of 1), so when the other lane holds the big workload, extracting
    again pays and the free lane takes some of its cells. Bugs caught: the rule fed the
    wrong workload or count (so the lane always waits and one worker runs all the big
    workload's cells alone), or ``reads_features`` asked about the wrong cell."""
    cells = [Cell("even", "t", "m", seed=s) for s in range(3)] + [
        Cell("small", "t", "m", seed=s) for s in range(2)]
    queue = CellQueue(cells, lambda cell: cell.backbone in EVEN_SECONDS,
                      lambda cell: 1e6 if cell.backbone == "even" else 0.0)
    results = list(ProcessExecutor(2, preload=()).run(queue, _as_long_every_time))
    assert len(results) == 5
    assert len({r.extra["pid"] for r in results if r.cell.backbone == "even"}) == 2


def _started_at(cell: Cell) -> CellResult:
    start = time.time()
    time.sleep(0.4)
    return CellResult(cell, "ok", extra={"start": start})


def test_the_process_executor_starts_the_biggest_backbone_in_the_first_round():
    """End to end with two real workers and three backbones, the biggest listed last: it
    starts with the first two cells, not after one of them. Bug caught: the executor not
    passing the queue's size hint on (suite order again: the biggest starts last)."""
    cells = [Cell(name, "t", "m") for name in ("small-a", "small-b", "big")]
    queue = CellQueue(cells, size=lambda cell: 1e6 if cell.backbone == "big" else 0.0)
    results = list(ProcessExecutor(2, preload=()).run(queue, _started_at))
    start = {r.cell.backbone: r.extra["start"] for r in results}
    assert start["big"] < start["small-b"]


class _HeldUntil(CellQueue):
    """Cells another process holds until ``free_at`` (a claim elsewhere, as in CellClaims)."""

    poll = 0.05

    def __init__(self, cells, held: set[str], free_at: float) -> None:
        super().__init__(cells)
        self.held, self.free_at = held, free_at

    def _take(self, cell):
        if cell.backbone in self.held and time.time() < self.free_at:
            return "held"
        return "yours"


def _timed(cell: Cell) -> CellResult:
    time.sleep(2.0 if cell.backbone == "long" else 0.05)
    return CellResult(cell, "ok", extra={"end": time.time()})


def test_the_process_executor_waits_for_cells_held_elsewhere_and_runs_them():
    """Bugs caught: the executor giving up (or crashing) when every remaining cell is held by
    another process, so those cells are lost if that process dies."""
    queue = _HeldUntil([Cell("held", "t", "m")], {"held"}, time.time() + 0.3)
    (result,) = ProcessExecutor(1, preload=()).run(queue, _timed)
    assert result.status == "ok" and result.cell.backbone == "held"


def test_an_idle_lane_takes_a_cell_freed_elsewhere_while_the_other_lane_still_works():
    """Bug caught: the executor blocking until the busy lane finishes (2 s) before looking
    again at a cell another process held for 0.3 s, so the idle worker sat idle."""
    cells = [Cell("long", "t", "m"), Cell("held", "t", "m")]
    queue = _HeldUntil(cells, {"held"}, time.time() + 0.3)
    results = {r.cell.backbone: r for r in ProcessExecutor(2, preload=()).run(queue, _timed)}
    assert results["held"].extra["end"] < results["long"].extra["end"]


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
