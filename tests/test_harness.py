"""Harness: one cell, the results store (append-only, resume), suites and leaderboards."""

from __future__ import annotations

import json
import sqlite3

import pytest

from transferlab.errors import DataError, TransferlabError
from transferlab.harness.cell import Cell, run_cell
from transferlab.harness.executors import LocalExecutor
from transferlab.harness.report import FORMATS, leaderboard
from transferlab.harness.store import ResultsStore
from transferlab.harness.suite import load_suite, parse_suite, run_suite
from transferlab.plugins import PluginHost

PIXELS = {"size": 8, "grayscale": True}


@pytest.fixture(scope="module")
def registries():
    host = PluginHost()
    host.load_entry_points()
    return host.registries


def test_run_cell_scores_and_records_costs(registries):
    result = run_cell(Cell("raw:pixels", "digits", "linear-probe", {}, PIXELS, 0), registries,
                      progress=False)
    assert result.status == "ok", result.error
    assert result.metrics["accuracy"] > 0.94 and 0 < result.metrics["macro_f1"] <= 1
    assert result.fit_seconds > 0 and result.trainable_params == 650
    assert result.peak_memory_mb > 0 and "numpy" in result.environment["packages"]
    assert result.cell.params["C"] == 1.0  # defaults resolved into the stored cell


def test_failing_cell_is_recorded_not_raised(registries):
    result = run_cell(Cell("timm:efficientnet_lite0", "csv:/does/not/exist", "linear-probe"),
                      registries, progress=False)
    assert result.status == "error" and "does not exist" in result.error


def test_store_is_append_only_and_resumable(tmp_path, registries):
    store = ResultsStore(tmp_path / "r.sqlite")
    cell = Cell("raw:pixels", "digits", "linear-probe", {}, PIXELS, 0)
    failed = run_cell(Cell("raw:pixels", "digits", "linear-probe", {}, PIXELS, 0), registries,
                      progress=False)
    failed.status, failed.error = "error", "simulated"
    store.add(failed)
    assert not store.finished(cell.__class__(**{**cell.__dict__}))
    ok = run_cell(cell, registries, progress=False)
    store.add(ok)
    assert store.finished(ok.cell)
    assert len(store.rows(status=None)) == 2  # the failure is kept, never overwritten
    assert store.rows()[0]["metrics"]["accuracy"] == ok.metrics["accuracy"]


def test_store_refuses_a_file_that_is_not_sqlite(tmp_path):
    bogus = tmp_path / "r.sqlite"
    bogus.write_text("hello, I am not a database" * 100)
    with pytest.raises(TransferlabError, match="not a transferlab results database"):
        ResultsStore(bogus)
    assert bogus.read_text().startswith("hello")  # nothing stored is lost


def test_suite_resumes_and_isolates_failures(tmp_path, registries):
    suite = parse_suite({
        "name": "t", "tasks": ["digits"], "seeds": [0, 1],
        "backbones": [{"name": "raw:pixels", "params": PIXELS}],
        "methods": ["linear-probe", {"name": "linear-probe", "params": {"C": 0.01}}],
    })
    assert len(suite.cells) == 4
    store = ResultsStore(tmp_path / "r.sqlite")

    def run_one(cell):
        return run_cell(cell, registries, progress=False)

    first = list(run_suite(suite, registries, store, LocalExecutor(), run_one, progress=False))
    assert all(r is not None and r.status == "ok" for r, _ in first)
    second = list(run_suite(suite, registries, store, LocalExecutor(), run_one, progress=False))
    assert all(r is None for r, _ in second)  # every cell skipped on resume
    board = leaderboard(store.rows(suite="t"))
    assert [r.seeds for r in board] == [2, 2]
    assert board[0].mean >= board[1].mean
    assert "| 1 | raw:pixels | linear-probe |" in FORMATS["markdown"](board)
    assert json.loads(FORMATS["json"](board))[0]["task"] == "digits"
    assert FORMATS["csv"](board).splitlines()[0].startswith("task,backbone,method")


def test_suite_validation_happens_before_any_work(tmp_path, registries):
    suite = parse_suite({"tasks": ["digits"], "backbones": ["raw:pixels"],
                         "methods": [{"name": "linear-probe", "params": {"C": "x"}}]})
    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(TransferlabError, match="parameter C expects float"):
        list(run_suite(suite, registries, store, LocalExecutor(), lambda c: None))
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("select count(*) from results").fetchone()[0] == 0


def test_bad_suite_files(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("tasks = [")
    with pytest.raises(DataError, match="not valid TOML"):
        load_suite(path)
    path.write_text("tasks = ['digits']\nbackbones = []\nmethods = ['linear-probe']")
    with pytest.raises(DataError, match="non-empty 'backbones'"):
        load_suite(path)


def test_suite_task_entries_can_be_domain_adaptation_pairs():
    suite = parse_suite({"tasks": ["digits", {"name": "usps", "source": "mnist_subset"}],
                         "backbones": ["raw:pixels"], "methods": ["coral"], "seeds": [0]})
    assert [(c.task, c.source_task) for c in suite.cells] == [
        ("digits", None), ("usps", "mnist_subset")]
    with pytest.raises(DataError, match="name = TARGET, source = SOURCE"):
        parse_suite({"tasks": [{"name": "usps", "src": "mnist"}], "backbones": ["raw:pixels"],
                     "methods": ["coral"]})
