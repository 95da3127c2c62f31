"""Cooperating workers on one results file: claims with a lease and a heartbeat, several
``bench`` processes splitting one suite, a killed worker's cells taken over, and ``--workers``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.claims import CellClaims, owner_alive
from transferlab.harness.store import ResultsStore

SLOW_PLUGIN = """
import time

import numpy as np

from transferlab import hookimpl
from transferlab.api import Predictor, TransferMethod
from transferlab.params import Param


class Majority(Predictor):
    def __init__(self, label):
        self.label = label
        self.trainable_params = self.total_params = 0

    def predict(self, inputs, ctx):
        return np.full(len(inputs), self.label)


def _torch_threads():
    import torch

    return torch.get_num_threads()


class Sleepy(TransferMethod):
    name = "sleepy"
    family = "baseline"
    summary = "sleeps, then predicts the majority class"
    params = (Param("seconds", float, 1.0, "how long fit sleeps", min=0.0),)
    needs_module = False

    def fit(self, backbone, task, ctx):
        import os

        start = time.time()
        time.sleep(self.hparams["seconds"])
        labels = task.split("train").labels
        predictor = Majority(int(np.bincount(labels).argmax()))
        predictor.extra = {"pid": os.getpid(), "start": start, "end": time.time(),
                           "threads": _torch_threads()}
        return predictor


@hookimpl
def register_methods(register):
    register(Sleepy)
"""


def _suite(tmp_path: Path, cells: int, seconds: float) -> Path:
    path = tmp_path / "sleepy.toml"
    path.write_text(f'name = "sleepy"\ntasks = ["digits"]\nbackbones = ["raw:pixels"]\n'
                    f'methods = [{{ name = "sleepy", params = {{ seconds = {seconds} }} }}]\n'
                    f"seeds = {list(range(cells))}\n")
    return path


@pytest.fixture
def slow_plugin(fake_dists, tmp_path):
    fake_dists.add("transferlab-sleepy", "sleepy", "transferlab_sleepy", SLOW_PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_dists.root),
                                                        os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return env


def _bench(suite: Path, db: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("transferlab")), "bench", str(suite), "--db", str(db),
         "--quiet", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _rows(db: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT cell_key, status FROM results").fetchall()


# --- claims ----------------------------------------------------------------------------------


def test_a_claim_is_exclusive_until_it_expires_or_its_cell_is_finished(tmp_path):
    """Bugs caught: two owners both getting a cell, a live claim taken over, an expired one
    never taken over, renewals that do not push the expiry, and a finished cell handed out."""
    store = ResultsStore(tmp_path / "r.sqlite")
    assert store.claim("k1", "a", lease=60) == "claimed"
    assert store.claim("k1", "b", lease=60) == "held"
    assert store.claim("k1", "a", lease=60) == "claimed"  # its own claim: renewed
    assert store.claim("k2", "a", lease=-1) == "claimed"  # expired at once
    assert store.claim("k2", "b", lease=60) == "claimed"  # taken over
    before = {c["cell_key"]: c["expires_at"] for c in store.claims()}
    store.renew(["k1"], "a", lease=120)
    store.renew(["k2"], "a", lease=120)  # not a's any more: unchanged
    after = {c["cell_key"]: c["expires_at"] for c in store.claims()}
    assert after["k1"] > before["k1"] + 50 and after["k2"] == before["k2"]
    store.release("k1", "b")  # not b's: kept
    assert store.claim("k1", "b", lease=60) == "held"
    store.release("k1", "a")
    assert store.claim("k1", "b", lease=60) == "claimed"
    cell = Cell("b", "t", "m")
    store.add(CellResult(cell, "ok", finished_at="2020-01-01T00:00:00+00:00"))
    assert store.claim(cell.key, "c", lease=60) == "finished"


def test_a_failed_cell_is_not_run_again_in_the_same_campaign(tmp_path):
    """Bug caught: a second worker re-running a cell the first one just recorded as failed
    (it has no successful result), so a failing cell runs once per worker."""
    store = ResultsStore(tmp_path / "r.sqlite")
    cell = Cell("b", "t", "m")
    started = store.last_id()
    assert started == 0
    store.add(CellResult(cell, "error", error="boom"))
    assert store.claim(cell.key, "x", lease=60, since=started) == "finished"
    assert store.claim(cell.key, "x", lease=60, since=store.last_id()) == \
        "claimed"  # a later campaign retries it
    assert store.claim(cell.key, "y", lease=60) == "held"


def test_a_dead_workers_claim_is_taken_over_at_once(tmp_path):
    """Bug caught: a re-run after SIGKILL waiting out the whole lease for the killed
    process's claims (or never taking them over)."""
    import socket

    store = ResultsStore(tmp_path / "r.sqlite")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    assert owner_alive(f"{host}:{os.getpid()}:x") is True
    assert owner_alive(f"{host}:{dead.pid}:x") is False
    assert owner_alive(f"elsewhere:{dead.pid}:x") is True  # another host: trust the lease
    store.claim("k", f"{host}:{dead.pid}:x", lease=600)
    assert store.claim("k", "me", lease=60, alive=owner_alive) == "claimed"


def test_two_coordinators_split_the_cells_and_wait_for_each_other(tmp_path):
    """Bugs caught: a worker that stops while another still holds cells (a cell is lost if
    that worker dies), and two workers drawing the same cell."""
    store = ResultsStore(tmp_path / "r.sqlite")
    cells = [Cell("b", "t", "m", seed=s) for s in range(5)]
    first = CellClaims(store, cells, owner="first", poll=0.01)
    second = CellClaims(store, cells, owner="second", poll=0.01)
    one, two = iter(first), iter(second)
    got_first = [next(one), next(one)]
    got_second = [next(two), next(two), next(two)]
    keys = [c.key for c in got_first + got_second]
    assert sorted(keys) == sorted(c.key for c in cells)
    for cell in got_second:  # the second finishes its cells; the first's are still held
        store.add(CellResult(cell, "ok"))
        second.release(cell)
    store.claim(got_first[0].key, "first", lease=-1)  # the first's claim lapses
    assert next(two).key == got_first[0].key  # taken over after waiting
    for cell in got_first:
        store.add(CellResult(cell, "ok"))
    assert list(two) == [] and list(one) == []
    assert {c.key for c in second.done_elsewhere} == {got_first[1].key}


def test_the_heartbeat_keeps_a_long_cell_claimed_and_releases_on_the_way_out(tmp_path):
    """Bugs caught: a claim that lapses while its (long) cell still runs, and claims left
    behind after Ctrl-C, which would block other workers for a whole lease."""
    store = ResultsStore(tmp_path / "r.sqlite")
    cells = [Cell("b", "t", "m", seed=s) for s in range(2)]
    claims = CellClaims(store, cells, owner="me", lease=0.3)
    with pytest.raises(KeyboardInterrupt), claims.heartbeat():
        cell = next(iter(claims))
        time.sleep(0.8)  # longer than the lease: only the heartbeat keeps it
        assert store.claim(cell.key, "other", lease=1) == "held"
        raise KeyboardInterrupt
    assert store.claims() == []


# --- bench processes -------------------------------------------------------------------------


@pytest.mark.slow
def test_two_bench_processes_on_one_file_run_every_cell_exactly_once(tmp_path, slow_plugin):
    """Bug caught: two ``bench`` processes on one results file each running every cell
    (measured before claims: 12 cells, 24 rows)."""
    suite, db = _suite(tmp_path, cells=8, seconds=1.0), tmp_path / "r.sqlite"
    ResultsStore(db)
    first, second = _bench(suite, db, slow_plugin), _bench(suite, db, slow_plugin)
    outputs = [p.communicate(timeout=180) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    rows = _rows(db)
    assert len(rows) == 8 and len({key for key, _ in rows}) == 8
    ran = [sum(line.startswith("[") for line in err.splitlines()) for _, err in outputs]
    assert sum(ran) == 8 and min(ran) >= 1, outputs  # both did part of the work


@pytest.mark.slow
def test_a_killed_bench_loses_only_its_cell_in_flight(tmp_path, slow_plugin):
    """Bugs caught: a re-run after SIGKILL that runs finished cells again, waits out the dead
    process's claims, or never runs the cell that was in flight."""
    suite, db = _suite(tmp_path, cells=6, seconds=1.0), tmp_path / "r.sqlite"
    ResultsStore(db)
    victim = _bench(suite, db, slow_plugin)
    deadline = time.time() + 120
    while len(_rows(db)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    done = len(_rows(db))
    assert 2 <= done < 6
    start = time.time()
    again = _bench(suite, db, slow_plugin)
    _out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    rows = _rows(db)
    assert len(rows) == 6 and len({key for key, _ in rows}) == 6
    assert time.time() - start < 50  # the dead claim was not waited out (lease 60 s)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [["--workers", "2"],
                                     ["--executor", "process", "-E", "workers=2"]])
def test_workers_run_cells_in_parallel_processes_that_split_the_threads(
        tmp_path, slow_plugin, workers):
    """Bugs caught: ``--workers N`` accepted but cells still run one at a time (the process
    executor could only be made with one worker from the command line), and ``-E workers=2``
    leaving each worker every core (measured: the small suite 4-7x slower, oversubscribed)."""
    suite, db = _suite(tmp_path, cells=4, seconds=2.0), tmp_path / "r.sqlite"
    env = {k: v for k, v in slow_plugin.items() if k != "OMP_NUM_THREADS"}  # torch: all cores
    process = _bench(suite, db, env, *workers)
    _out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    extras = [r["extra"] for r in ResultsStore(db).rows()]
    assert len(extras) == 4 and len({e["pid"] for e in extras}) == 2
    first, second = sorted(extras, key=lambda e: e["start"])[:2]
    assert second["start"] < first["end"]  # the first two cells ran at the same time
    cpus = len(os.sched_getaffinity(0))
    assert {e["threads"] for e in extras} == {max(1, cpus // 2)}
