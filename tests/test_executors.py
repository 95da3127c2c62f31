"""Executors: ``local`` runs cells in order in this process; ``process`` runs them in spawned
workers, and a worker that dies fails only the cell it was running.

The cell runners below live at module level so that spawned workers can unpickle them (a
worker gets this process's ``sys.path``, so it can import this module)."""

from __future__ import annotations

import os

from transferlab.cli import cli
from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.executors import LocalExecutor, ProcessExecutor
from transferlab.harness.store import ResultsStore

CRASH_EXIT = "worker crashed: A process in the process pool was terminated abruptly"


def _ok(cell: Cell) -> CellResult:
    return CellResult(cell, "ok", metrics={"accuracy": cell.seed / 10},
                      extra={"pid": os.getpid()})


def _crash_on_crash_task(cell: Cell) -> CellResult:
    if cell.task == "crash":
        os._exit(7)  # dies like a segfault in native code: no exception, no result
    return _ok(cell)


def _cells(crash_at: tuple[int, ...] = (), n: int = 4) -> list[Cell]:
    return [Cell("b", "crash" if i in crash_at else "t", "m", seed=i) for i in range(n)]


def test_local_executor_runs_lazily_in_order_in_this_process():
    calls = []

    def run_one(cell):
        calls.append(cell.seed)
        return _ok(cell)

    results = LocalExecutor().run(_cells(n=3), run_one)
    assert calls == []  # nothing runs before the caller asks (the suite stores each result)
    assert next(results).cell.seed == 0 and calls == [0]
    assert [r.cell.seed for r in results] == [1, 2] and calls == [0, 1, 2]


def test_process_executor_returns_every_result_from_worker_processes():
    """Catches an executor that drops, duplicates or runs cells in this process."""
    results = list(ProcessExecutor(2).run(_cells(n=4), _ok))
    assert sorted(r.cell.seed for r in results) == [0, 1, 2, 3]
    assert all(r.status == "ok" and r.metrics == {"accuracy": r.cell.seed / 10}
               for r in results)
    assert os.getpid() not in {r.extra["pid"] for r in results}


def _parent_and_preloaded(cell: Cell) -> CellResult:
    import sys

    return CellResult(cell, "ok", extra={"parent": os.getppid(),
                                         "wave": "wave" in sys.modules})


def test_workers_fork_from_a_server_that_imported_the_preload():
    """Bugs caught: workers forked from the ``bench`` process itself (which may hold threads,
    and whose every import each worker would copy), the preload list not imported before the
    cells (each worker importing torch itself: seconds each), installed modules dropped from
    it or missing ones kept (the server failing to start), and a default of two workers."""
    from pathlib import Path

    from fakes import fresh_interpreter

    executor = ProcessExecutor(1, preload=("wave", "no_such_module_for_transferlab"))
    assert executor.preload == ["wave"] and ProcessExecutor().workers == 1
    (result,) = ProcessExecutor(1, preload=()).run(_cells(n=1), _parent_and_preloaded)
    assert result.extra["parent"] != os.getpid()  # the forkserver's child, not this process's
    # a fresh interpreter: the forkserver of this one may already run, with another preload
    here = str(Path(__file__).parent)
    code = (f"import os, sys; sys.path.insert(0, {here!r})\n"
            "import test_executors as t\n"
            "assert 'wave' not in sys.modules  # a standard module nothing else imports\n"
            "(r,) = t.ProcessExecutor(1, preload=('wave',)).run(t._cells(n=1),"
            " t._parent_and_preloaded)\n"
            "print(r.extra['parent'] != os.getpid(), r.extra['wave'])")
    assert fresh_interpreter(code) == "True True"  # the forkserver's child; wave preloaded


def test_a_crashing_cell_fails_alone_and_every_other_cell_gets_its_result():
    """Catches the BrokenProcessPool bug: one dead worker breaks the whole pool, and every
    cell still running or queued used to be recorded as "worker crashed" too."""
    results = list(ProcessExecutor(2).run(_cells(crash_at=(1, 4), n=6), _crash_on_crash_task))
    by_seed = {r.cell.seed: r for r in results}
    assert len(results) == 6 and sorted(by_seed) == [0, 1, 2, 3, 4, 5]  # each cell once
    assert {s for s, r in by_seed.items() if r.status == "error"} == {1, 4}
    for seed in (1, 4):
        assert by_seed[seed].error.startswith(CRASH_EXIT), by_seed[seed].error
        assert by_seed[seed].metrics == {}
    for seed in (0, 2, 3, 5):
        assert by_seed[seed].status == "ok" and by_seed[seed].error is None
        assert by_seed[seed].metrics == {"accuracy": seed / 10}


CRASHER = """
import os
from transferlab.api import TransferMethod
from transferlab.hookspecs import hookimpl

class CrashWorker(TransferMethod):
    name = "crash-worker"

    def fit(self, backbone, task, ctx):
        os._exit(7)

@hookimpl
def register_methods(register):
    register("crash-worker", CrashWorker, summary="kills its worker process")
"""


def test_bench_with_process_executor_isolates_a_plugin_that_kills_its_worker(
    fake_dists, runner, tmp_path
):
    """End to end through ``transferlab bench --executor process``: the plugin is found in the
    spawned workers, the crash is attributed to its cell only and the cell queued behind it
    still runs (the BrokenProcessPool bug failed it as well). Two cells only: every worker
    imports torch and scikit-learn, which takes seconds."""
    fake_dists.add("transferlab-crasher", "crasher", "tl_crasher", CRASHER)
    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "crashy"\ntasks = ["digits"]\n'
        'backbones = [{ name = "raw:pixels", params = { size = 4, grayscale = true } }]\n'
        'methods = ["crash-worker", "ncm"]\n'
    )
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["bench", str(suite), "--executor", "process", "--db", str(db),
                                 "--no-progress", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, result.stderr
    assert failed[0].startswith(f"FAILED raw:pixels x digits x crash-worker seed=0: {CRASH_EXIT}")
    assert f"suite crashy: 2 cells, 0 already finished, 1 failed; results in {db}" in (
        result.stderr)
    rows = ResultsStore(db).rows(status=None)
    assert sorted((r["method"], r["status"]) for r in rows) == [
        ("crash-worker", "error"), ("ncm", "ok")]
    (ncm,) = [r for r in rows if r["method"] == "ncm"]
    assert ncm["metrics"]["accuracy"] > 0.5  # 450 test digits, 10 classes: chance is 0.1
