"""Harness: one cell, the results store (append-only, resume), suites and leaderboards."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
from contextlib import closing
from dataclasses import FrozenInstanceError, astuple, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from fakes import FakeBackbone, TinyTask, image_folder
from transferlab.api import Budget, Predictor, TransferMethod
from transferlab.errors import DataError, TransferlabError
from transferlab.harness.cell import Cell, CellResult, run_cell, validate_cell
from transferlab.harness.executors import LocalExecutor
from transferlab.harness.features import FeatureStore
from transferlab.harness.metrics import classification_metrics
from transferlab.harness.report import FORMATS, leaderboard
from transferlab.harness.store import SCHEMA, ResultsStore
from transferlab.harness.suite import Suite, load_suite, parse_suite, run_suite
from transferlab.hookspecs import hookimpl
from transferlab.params import Param
from transferlab.plugins import PluginHost

PIXELS = {"size": 8, "grayscale": True}


def test_run_cell_scores_and_records_costs(registries):
    result = run_cell(Cell("raw:pixels", "digits", "linear-probe", {}, PIXELS, 0), registries,
                      progress=False)
    assert result.status == "ok", result.error
    assert result.metrics["accuracy"] > 0.94 and result.metrics["macro_f1"] > 0.94
    assert result.fit_seconds > 0 and result.trainable_params == 650
    assert result.peak_memory_mb > 0 and "numpy" in result.environment["packages"]
    assert result.cell.params["C"] == 1.0  # defaults resolved into the stored cell


def test_failing_cell_is_recorded_not_raised(registries):
    result = run_cell(Cell("raw:pixels", "csv:/does/not/exist", "linear-probe"),
                      registries, progress=False)
    assert result.status == "error"
    assert result.error == "task 'csv:/does/not/exist': data folder /does/not/exist does not exist"


def test_store_is_append_only_and_resumable(tmp_path, registries):
    """Asked about the cell as run_cell resolved it (the old check asked about an unresolved
    cell whose key never matched, so it passed even when failures counted as finished)."""
    store = ResultsStore(tmp_path / "r.sqlite")
    ok = run_cell(Cell("raw:pixels", "digits", "linear-probe", {}, PIXELS, 0), registries,
                  progress=False)
    failed = replace(ok, status="error", error="simulated", metrics={})
    store.add(failed)
    assert failed.cell.key == ok.cell.key and not store.finished(ok.cell)
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
        "methods": ["ncm", {"name": "ncm", "params": {"metric": "euclidean"}}],
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
    assert "| 1 | raw:pixels | ncm | metric=" in FORMATS["markdown"](board)
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


# --- cell keys ---------------------------------------------------------------------------------

BASE = Cell("raw:pixels", "digits", "linear-probe", {"C": 0.5, "max_iter": 10},
            {"size": 8, "grayscale": True}, 3)


def test_cell_key_changes_with_every_field():
    """Catches a key that ignores a field, e.g. backbone_params (two preprocessing settings
    would share one stored result and the second would be skipped as "finished")."""
    variants = [
        BASE,
        Cell("raw:tfidf", *astuple(BASE)[1:]),
        Cell(BASE.backbone, "usps", *astuple(BASE)[2:]),
        Cell(BASE.backbone, BASE.task, "knn", *astuple(BASE)[3:]),
        replace(BASE, params={"C": 0.25, "max_iter": 10}),
        replace(BASE, params={"C": 0.5, "max_iter": 11}),
        replace(BASE, params={"C": 0.5}),
        replace(BASE, backbone_params={"size": 16, "grayscale": True}),
        replace(BASE, backbone_params={"size": 8, "grayscale": False}),
        replace(BASE, backbone_params={"size": 8}),
        replace(BASE, seed=4),
        replace(BASE, source_task="mnist_subset"),
        replace(BASE, source_task="usps"),
        replace(BASE, params={"C": "0.5", "max_iter": 10}),  # a string is not a float
    ]
    keys = [cell.key for cell in variants]
    assert len(set(keys)) == len(variants)
    assert all(len(key) == 24 and int(key, 16) >= 0 for key in keys)


def test_cell_key_ignores_dict_order_and_object_identity():
    same = Cell("raw:pixels", "digits", "linear-probe", {"max_iter": 10, "C": 0.5},
                {"grayscale": True, "size": 8}, 3)
    assert same.key == BASE.key and same is not BASE


def test_cell_key_without_source_task_is_the_legacy_key():
    """Keys stored before domain adaptation existed must still match (or every old result
    would be re-run): no source_task -> no source_task entry -> the same hash as before."""
    legacy = {"backbone": "raw:pixels", "task": "digits", "method": "linear-probe",
              "params": {"C": 0.5, "max_iter": 10},
              "backbone_params": {"grayscale": True, "size": 8}, "seed": 3}
    assert BASE.to_dict() == legacy and "source_task" not in BASE.to_dict()
    blob = json.dumps(legacy, sort_keys=True)
    assert BASE.key == hashlib.sha256(blob.encode()).hexdigest()[:24] == "16bd3d9b13d7b4e3fe07ccf4"
    adapted = replace(BASE, source_task="usps")
    assert adapted.to_dict() == {**legacy, "source_task": "usps"}
    assert adapted.key == hashlib.sha256(
        json.dumps({**legacy, "source_task": "usps"}, sort_keys=True).encode()
    ).hexdigest()[:24]


def test_cell_key_survives_values_json_cannot_encode():
    cell = Cell("b", "t", "m", {"root": Path("/data")})
    assert cell.key == Cell("b", "t", "m", {"root": "/data"}).key  # default=str


def test_cell_defaults_and_immutability():
    cell = Cell("b", "t", "m")
    assert (cell.params, cell.backbone_params, cell.seed, cell.source_task) == ({}, {}, 0, None)
    with pytest.raises(FrozenInstanceError):
        cell.seed = 1  # type: ignore[misc]


def test_cell_label():
    assert BASE.label() == "raw:pixels x digits x linear-probe[C=0.5,max_iter=10]"
    assert Cell("b", "t", "m").label() == "b x t x m"
    assert Cell("b", "t", "m", source_task="s").label() == "b x s->t x m"


def test_validate_cell_fills_defaults_and_keeps_seed_and_source(registries):
    cell = validate_cell(Cell("raw:pixels", "digits", "linear-probe", {"C": "2"},
                              {"size": "4"}, 7, "digits"), registries)
    assert cell.params == {"C": 2.0, "max_iter": 1000, "standardize": True,
                           "class_weight": "none", "protocol": "full", "k_per_label": 8,
                           "n_experiments": 10, "protocol_seed": 42}
    assert cell.backbone_params == {"size": 4, "grayscale": False}
    assert (cell.seed, cell.source_task, cell.task, cell.backbone) == (
        7, "digits", "digits", "raw:pixels")
    with pytest.raises(TransferlabError, match="unknown task 'digitz'"):
        validate_cell(Cell("raw:pixels", "digits", "ncm", source_task="digitz"), registries)


# --- the results store ---------------------------------------------------------------------


def _result(cell: Cell, status: str = "ok", accuracy: float = 0.5, **extra) -> CellResult:
    return CellResult(cell, status, metrics={"accuracy": accuracy} if status == "ok" else {},
                      error=None if status == "ok" else "boom", finished_at="2024-01-01",
                      environment={"device": "cpu"}, **extra)


def test_finished_is_false_after_a_failure_and_true_after_success(tmp_path, registries):
    """Catches ``finished()`` counting failed rows, asked the way the suite asks: with the
    validated cell (full parameters), so the key really matches the stored row."""
    store = ResultsStore(tmp_path / "r.sqlite")
    cell = validate_cell(Cell("raw:pixels", "digits", "linear-probe", {}, PIXELS, 0), registries)
    store.add(_result(cell, "error"))
    assert [r["cell_key"] for r in store.rows(status="error")] == [cell.key]  # same key
    assert store.finished(cell) is False
    store.add(_result(replace(cell, seed=1)))  # another cell's success does not count
    assert store.finished(cell) is False
    store.add(_result(cell))
    assert store.finished(cell) is True
    assert store.finished(replace(cell, seed=2)) is False


def test_store_rows_round_trip_every_column(tmp_path):
    store = ResultsStore(tmp_path / "sub" / "dir" / "r.sqlite")  # parent folders created
    cell = Cell("b", "t", "m", {"C": 1.0}, {"size": 8}, 5, "s")
    result = CellResult(cell, "ok", {"accuracy": 0.75}, 1.5, 0.25, 10, 100, 12.5, None,
                        {"device": "cpu"}, "2024-05-06T07:08:09+00:00", {"note": [1, 2]})
    assert store.add(result, suite="demo") == 1
    (row,) = store.rows()
    assert row == {
        "id": 1, "cell_key": cell.key, "suite": "demo", "backbone": "b", "task": "t",
        "method": "m", "params": {"C": 1.0}, "backbone_params": {"size": 8}, "seed": 5,
        "status": "ok", "metrics": {"accuracy": 0.75}, "fit_seconds": 1.5,
        "predict_seconds": 0.25, "trainable_params": 10, "total_params": 100,
        "peak_memory_mb": 12.5, "error": None, "environment": {"device": "cpu"},
        "extra": {"note": [1, 2]}, "finished_at": "2024-05-06T07:08:09+00:00",
        "source_task": "s", "regime": None, "tasks": None,
    }


def test_json_columns_are_canonical_text(tmp_path):
    """Sorted keys and str() for what JSON cannot encode (a Path), as stored on disk."""
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(_result(Cell("b", "t", "m", {"zeta": 1, "alpha": Path("/data")})))
    with closing(sqlite3.connect(tmp_path / "r.sqlite")) as conn:
        (params,) = conn.execute("SELECT params FROM results").fetchone()
    assert params == '{"alpha": "/data", "zeta": 1}'


def test_rows_filter_by_suite_and_status_in_insertion_order(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    ids = [store.add(_result(Cell("b", "t", "m", seed=i), status), suite=suite)
           for i, (status, suite) in enumerate(
               [("ok", "a"), ("error", "a"), ("ok", "b"), ("ok", None), ("error", "b")])]
    assert ids == [1, 2, 3, 4, 5]

    def seeds(**kwargs):
        return [r["seed"] for r in store.rows(**kwargs)]

    assert seeds() == [0, 2, 3]  # default: successful rows of every suite
    assert seeds(suite="a") == [0]
    assert seeds(suite="b", status="error") == [4]
    assert seeds(status=None) == [0, 1, 2, 3, 4]
    assert seeds(suite="a", status=None) == [0, 1]
    assert seeds(suite="zzz", status=None) == []
    assert [r["seed"] for r in store] == [0, 1, 2, 3, 4]  # iteration: every row


def test_corrupt_results_file_names_the_fix(tmp_path):
    bogus = tmp_path / "r.sqlite"
    bogus.write_text("hello, I am not a database" * 100)
    with pytest.raises(TransferlabError) as excinfo:
        ResultsStore(bogus)
    assert str(excinfo.value) == (
        f"{bogus} is not a transferlab results database (file is not a database);"
        " pass another file with --db")


def test_old_results_file_is_migrated_keeping_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SCHEMA)  # the first release's schema: no source_task column
        conn.execute(
            "INSERT INTO results (cell_key, suite, backbone, task, method, params,"
            " backbone_params, seed, status, metrics, environment, finished_at) VALUES"
            " ('old-key', 'v1', 'b', 't', 'm', '{\"C\": 1}', '{}', 2, 'ok',"
            " '{\"accuracy\": 0.5}', '{}', 'then')")
    store = ResultsStore(path)
    ResultsStore(path)  # opening again does not add the column twice
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(results)")]
    assert columns.count("source_task") == 1 and columns[-3:] == ["source_task", "regime",
                                                                  "tasks"]
    (old,) = store.rows()
    assert (old["cell_key"], old["suite"], old["params"], old["seed"], old["metrics"],
            old["extra"], old["source_task"]) == ("old-key", "v1", {"C": 1}, 2,
                                                  {"accuracy": 0.5}, {}, None)
    store.add(_result(Cell("b", "t", "m", source_task="s")))
    assert [r["source_task"] for r in store.rows()] == [None, "s"]


def test_migration_tolerates_a_concurrent_migration_only():
    from transferlab.harness.store import _migrate

    class Conn:
        def __init__(self, error, columns=()):
            self.error, self.columns, self.statements = error, columns, []

        def execute(self, sql):
            self.statements.append(sql)
            if sql.startswith("ALTER") and self.error:
                raise sqlite3.OperationalError(self.error)
            return [(i, name, "TEXT", 0, None, 0) for i, name in enumerate(self.columns)]

    conn = Conn(None)
    _migrate(conn)
    assert conn.statements == ["PRAGMA table_info(results)",
                               "ALTER TABLE results ADD COLUMN source_task TEXT",
                               "ALTER TABLE results ADD COLUMN regime TEXT",
                               "ALTER TABLE results ADD COLUMN tasks TEXT"]
    conn = Conn("must not be called", columns=("id", "source_task", "regime", "tasks"))
    _migrate(conn)
    assert conn.statements == ["PRAGMA table_info(results)"]  # present: nothing to add
    _migrate(Conn("duplicate column name: source_task"))  # another process was first
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        _migrate(Conn("database is locked"))


# --- suites: parsing, resume, retry ----------------------------------------------------------


def test_parse_suite_expands_the_cross_product_in_order():
    suite = parse_suite({"name": "x", "tasks": ["t1", {"name": "t2", "source": "s"}],
                         "backbones": ["b1", {"name": "b2", "params": {"size": 4}}],
                         "methods": [{"name": "m", "params": {"C": 1}}], "seeds": [3, 4]})
    assert suite.name == "x"
    assert [(c.task, c.source_task, c.backbone, dict(c.backbone_params), c.seed)
            for c in suite.cells] == [
        ("t1", None, "b1", {}, 3), ("t1", None, "b1", {}, 4),
        ("t1", None, "b2", {"size": 4}, 3), ("t1", None, "b2", {"size": 4}, 4),
        ("t2", "s", "b1", {}, 3), ("t2", "s", "b1", {}, 4),
        ("t2", "s", "b2", {"size": 4}, 3), ("t2", "s", "b2", {"size": 4}, 4),
    ]
    assert all(c.method == "m" and c.params == {"C": 1} for c in suite.cells)
    default = parse_suite({"tasks": ["t"], "backbones": ["b"], "methods": ["m"]}, "file-stem")
    assert default.name == "file-stem" and [c.seed for c in default.cells] == [0]
    assert parse_suite({"tasks": ["t"], "backbones": ["b"], "methods": ["m"]}).name == "suite"
    assert Suite("empty").cells == [] and Suite("other").cells is not Suite("empty").cells


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backbones": ["b"], "methods": ["m"]}, "suite 's' needs a non-empty 'tasks' list"),
        ({"tasks": ["t"], "backbones": ["b"], "methods": []},
         "suite 's' needs a non-empty 'methods' list"),
        ({"tasks": ["t"], "backbones": ["b"], "methods": ["m"], "seeds": [0, "1"]},
         "suite 's': seeds must be integers, got [0, '1'] ('1' is a string);"
         " write seeds = [0, 1, 2]"),
        ({"tasks": ["t"], "backbones": ["b"], "methods": ["m"], "seeds": [0, -5]},
         "suite 's': each seed must be an integer from 0 to 4294967295 (2**32 - 1), got"
         " [0, -5] (-5 is out of range); write seeds = [0, 1, 2]"),
        ({"tasks": ["t"], "backbones": ["b"], "methods": ["m"], "seeds": [2**32]},
         "suite 's': each seed must be an integer from 0 to 4294967295 (2**32 - 1), got"
         " [4294967296] (4294967296 is out of range); write seeds = [0, 1, 2]"),
        ({"tasks": ["t"], "backbones": [{"name": "b", "parms": {}}], "methods": ["m"]},
         "backbones: unknown key(s) ['parms']; use name and params"),
        ({"tasks": ["t"], "backbones": ["b"], "methods": [3]},
         "methods: expected a name or { name = ..., params = {...} }, got 3"),
        ({"tasks": [{"name": "t", "source": 1}], "backbones": ["b"], "methods": ["m"]},
         "tasks: expected { name = TARGET, source = SOURCE }, got {'name': 't', 'source': 1}"),
        ({"tasks": [["t"]], "backbones": ["b"], "methods": ["m"]},
         "tasks: expected a task name or { name = ..., source = ... }, got ['t']"),
    ],
)
def test_parse_suite_errors_name_the_problem(data, message):
    with pytest.raises(DataError) as excinfo:
        parse_suite(data, "s")
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("seeds = 3", "suite 'bad': seeds must be a list of integers, got 3 (an integer); write"
         " seeds = [3] for seed 3, or seeds = [0, 1, 2] for 3 seeds"),
        ('seeds = "0,1"', "suite 'bad': seeds must be a list of integers, got '0,1' (a string);"
         " write seeds = [0, 1, 2]"),
        ("seeds = [0, true]", "suite 'bad': seeds must be integers, got [0, True] (True is a"
         " boolean); write seeds = [0, 1, 2]"),
        ("name = 3", "suite 'bad': name must be a string, got 3 (an integer); quote it:"
         ' name = "3"'),
        ('tasks = "digits"', """suite 'bad': tasks must be a list, got 'digits' (a string);"""
         """ put it in brackets: tasks = ["digits"]"""),
        ('tasks = { name = "digits" }', "suite 'bad': tasks must be a list, got {'name':"
         " 'digits'} (a table); put it in brackets: tasks = [{ name = ..., ... }]"),
        ("methods = 3", """suite 'bad': methods must be a list, got 3 (an integer); write a"""
         """ list of entries: methods = ["linear-probe", ...]"""),
        ('methods = [{ name = "knn", params = 3 }]', "methods: params of 'knn' must be a table,"
         " got 3 (an integer); write params = { key = value, ... }"),
        ("seeds = 1.5", "suite 'bad': seeds must be a list of integers, got 1.5 (a float);"
         " write seeds = [0, 1, 2]"),
        ("seeds = 1979-05-27", "suite 'bad': seeds must be a list of integers, got"
         " datetime.date(1979, 5, 27) (a date); write seeds = [0, 1, 2]"),
        ("backbones = 3", "suite 'bad': backbones must be a list, got 3 (an integer); write a"
         ' list of entries: backbones = ["raw:pixels", ...]'),
        ("tasks = 3", "suite 'bad': tasks must be a list, got 3 (an integer); write a list of"
         ' entries: tasks = ["digits", ...]'),
        ('methods = [{ name = "knn", params = [1] }]', "methods: params of 'knn' must be a"
         " table, got [1] (a list); write params = { key = value, ... }"),
    ],
)
def test_suite_key_of_the_wrong_type_is_one_error_line_bug_seeds_int_raised_typeerror(
        runner, tmp_path, line, message):
    """Bug caught: `seeds = 3` in a suite file made `transferlab bench` die with a traceback
    (TypeError: 'int' object is not iterable); every key of the wrong type is now one error
    line naming the key, the type it must have and the fix, before any work."""
    from transferlab.cli import cli

    key = line.split(" =", 1)[0]
    entries = {"tasks": 'tasks = ["digits"]', "backbones": 'backbones = ["raw:pixels"]',
               "methods": 'methods = ["linear-probe"]'}
    entries[key] = line
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(entries.values()) + "\n")
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["bench", str(path), "--db", str(db), "--no-progress"])
    assert result.exit_code == 1
    assert not isinstance(result.exception, TypeError | ValueError)
    assert result.output == f"Error: {message}\n"
    assert not db.exists()


def test_malformed_suite_file_message(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("tasks = [")
    with pytest.raises(DataError) as excinfo:
        load_suite(path)
    assert str(excinfo.value) == (
        f"suite file {path} is not valid TOML: Invalid value (at end of document)")


def test_run_suite_progress_bar_counts_the_cells_it_runs(tmp_path, registries, monkeypatch):
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.updates = kwargs, []
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.updates.append(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    suite = parse_suite({"name": "bar", "tasks": ["digits"], "seeds": [0, 1, 2],
                         "backbones": [{"name": "raw:pixels", "params": PIXELS}],
                         "methods": ["ncm"]})
    for progress, disable in ((True, None), (False, True), (None, None)):
        store = ResultsStore(tmp_path / f"r{progress}.sqlite")
        store.add(_result(validate_cell(suite.cells[0], registries)))  # finished: not counted
        kwargs = {} if progress is None else {"progress": progress}  # default: on
        list(run_suite(suite, registries, store, LocalExecutor(), lambda c: _result(c),
                       **kwargs))
        assert bars[-1].kwargs == {"total": 2, "desc": "suite bar", "unit": "cell",
                                   "disable": disable}
        assert bars[-1].updates == [1, 1]
    list(run_suite(suite, registries, store, LocalExecutor(), lambda c: _result(c)))
    assert len(bars) == 3  # a finished suite resumes without a bar


def test_missing_suite_file(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_suite(tmp_path / "nope.toml")
    assert str(excinfo.value) == f"suite file {tmp_path / 'nope.toml'} does not exist"
    (tmp_path / "named.toml").write_text('tasks = ["t"]\nbackbones = ["b"]\nmethods = ["m"]\n')
    assert load_suite(tmp_path / "named.toml").name == "named"


def test_suite_rerun_retries_failed_cells_and_skips_finished_ones(tmp_path, registries):
    """Catches ``finished()`` counting failed cells: the failed cell must be run again on the
    next invocation, while the cells that succeeded are skipped."""
    suite = parse_suite({"name": "retry", "tasks": ["digits"], "seeds": [0, 1, 2],
                         "backbones": [{"name": "raw:pixels", "params": PIXELS}],
                         "methods": ["ncm"]})
    store = ResultsStore(tmp_path / "r.sqlite")
    calls: list[int] = []

    def run_one(cell):  # seed 1 fails the first time it runs, like a transient error
        calls.append(cell.seed)
        failing = cell.seed == 1 and calls.count(1) == 1
        return _result(cell, "error" if failing else "ok", accuracy=cell.seed / 10)

    def run():
        return [(None if r is None else r.status, c.seed)
                for r, c in run_suite(suite, registries, store, LocalExecutor(), run_one,
                                      progress=False)]

    assert run() == [("ok", 0), ("error", 1), ("ok", 2)]
    assert run() == [(None, 0), (None, 2), ("ok", 1)]  # skipped first, then the retry
    assert run() == [(None, 0), (None, 1), (None, 2)]
    assert calls == [0, 1, 2, 1]
    rows = store.rows(suite="retry", status=None)
    assert [(r["seed"], r["status"]) for r in rows] == [(0, "ok"), (1, "error"), (2, "ok"),
                                                         (1, "ok")]
    assert all(r["params"]["metric"] == "cosine" for r in rows)  # validated cells stored


def test_suite_rerun_retries_a_cell_that_failed_on_bad_data(tmp_path, registries):
    """End to end with real cells: a corrupt image fails one cell; once it is replaced, the
    re-run runs that cell only (the other is finished) and it succeeds."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    image_folder(good)
    image_folder(bad, corrupt=True)
    suite = parse_suite({"name": "files", "tasks": [f"imagefolder:{good}", f"imagefolder:{bad}"],
                         "backbones": [{"name": "raw:pixels", "params": {"size": 4}}],
                         "methods": [{"name": "knn", "params": {"k": 1, "metric": "euclidean"}}]})
    store = ResultsStore(tmp_path / "r.sqlite")

    def run():
        return [(None if r is None else (r.status, r.error, r.metrics.get("accuracy")),
                 c.task) for r, c in run_suite(
                     suite, registries, store, LocalExecutor(),
                     lambda cell: run_cell(cell, registries, progress=False), progress=False)]

    first = run()
    assert first[0] == (("ok", None, 1.0), f"imagefolder:{good}")
    assert first[1][0][0] == "error" and first[1][0][1] == (
        f"image file {bad / 'test' / 'light' / '1.png'} is unreadable or corrupt"
        f" (cannot identify image file {str(bad / 'test' / 'light' / '1.png')!r});"
        " remove or replace it")
    Image.new("L", (4, 4), 225).save(bad / "test" / "light" / "1.png")
    assert run() == [(None, f"imagefolder:{good}"), (("ok", None, 1.0), f"imagefolder:{bad}")]


# --- running one cell ------------------------------------------------------------------------


class Scripted(TransferMethod):
    """Predicts all zeros (or two scripted experiments), or fails the way it is told to;
    records the task it was fitted on and what its run context held."""

    name = "scripted"
    params = (Param("fail", str, "none", choices=("none", "value", "data", "interrupt")),
              Param("experiments", bool, False))
    fitted_on: ClassVar[list[str]] = []
    seen: ClassVar[dict] = {}

    def fit(self, backbone, task, ctx):
        Scripted.fitted_on.append(task.name)
        Scripted.seen = {"seed": ctx.seed, "device": ctx.device, "budget": ctx.budget,
                         "moved_to": getattr(backbone, "moved_to", None),
                         "registries": ctx.registries,
                         "progress": ctx.progress, "store": ctx.feature_store,
                         "random": np.random.random(), "prepared": list(backbone.prepared)}
        fail = self.hparams["fail"]
        if fail == "value":
            _fail_one_frame_deeper()
        if fail == "data":
            raise DataError("the data is bad; fix it")
        if fail == "interrupt":
            raise KeyboardInterrupt
        return ZerosPredictor(self.hparams["experiments"])


def _fail_one_frame_deeper() -> None:
    """Raises two frames below run_cell, so an error located at the wrong frame shows."""
    raise ValueError("bad value")


class ScriptedSetting(Scripted):
    """A method with a parameter naming an objective only its own registries have."""

    name = "scripted-setting"
    params = (*Scripted.params,
              Param("loss", str, "tiny-loss", "an objective", refers_to="objectives"))


class ScriptedAdapting(Scripted):
    """A domain-adapting method that records the target it was given."""

    name = "scripted-adapt"
    adapts_domains = True

    def fit_adapted(self, backbone, source, target, ctx):
        Scripted.seen_target = (type(target).__name__, target.split("train").labels.tolist())
        return self.fit(backbone, source, ctx)


class ZerosPredictor(Predictor):
    trainable_params, total_params = 3, 30

    def __init__(self, experiments: bool) -> None:
        self.experiments = experiments
        self.extra = {"note": "zeros"}

    def predict(self, inputs, ctx):
        return np.zeros(len(inputs), dtype=np.int64)

    def predict_experiments(self, task, split, ctx):
        if ctx is None:
            raise AssertionError("predict_experiments needs the run's context")
        if not self.experiments:
            return None
        assert len(task.split(split)) == 4  # the test split
        return [np.array([0, 1, 0, 1]), np.array([0, 0, 0, 0])]


class PreparedBackbone(FakeBackbone):
    def __init__(self, name):
        super().__init__(name)
        self.prepared = []

    def prepare(self, task):
        self.prepared.append(task.name)

    def to(self, device):
        self.moved_to = device
        return self


class ScriptedPlugin:
    @hookimpl
    def register_methods(self, register):
        register("scripted", Scripted, params=Scripted.params)
        register("scripted-adapt", ScriptedAdapting, params=Scripted.params)
        register("scripted-setting", ScriptedSetting, params=ScriptedSetting.params)

    @hookimpl
    def register_objectives(self, register):
        register("tiny-loss", lambda name, weight: weight,
                 params=[Param("weight", float, 1.0, "a weight", min=0.0)])

    @hookimpl
    def register_tasks(self, register):
        register("tiny", lambda name: TinyTask(name))
        register("tiny-source", lambda name: TinyTask(name, fingerprint="tiny-src"))

    @hookimpl
    def register_backbones(self, register):
        register("fake", lambda name: PreparedBackbone(name))


@pytest.fixture(scope="module")
def scripted_registries():
    host = PluginHost(only=[])
    host.add_plugin(ScriptedPlugin(), "scripted")
    return host.registries


STORE = FeatureStore(None)


def _run_scripted(registries, source_task=None, method="scripted", seed=0, **params):
    cell = Cell("fake", "tiny", method, params, {}, seed, source_task)
    return run_cell(cell, registries, progress=False, device="cpu", feature_store=STORE)


def test_run_cell_builds_the_context_from_the_cell(scripted_registries):
    """The method sees the cell's seed (everything seeded with it), device, store and budget;
    the backbone is prepared on the task it is trained on."""
    _run_scripted(scripted_registries, seed=5)
    seen = Scripted.seen
    assert (seen["seed"], seen["device"], seen["progress"], seen["store"]) == (
        5, "cpu", False, STORE)
    assert seen["budget"] == Budget() and seen["prepared"] == ["tiny"]
    assert seen["registries"] is scripted_registries  # methods build objectives from them
    assert seen["random"] == np.random.RandomState(5).random_sample()  # seed_everything
    budget = Budget(steps=3)
    run_cell(Cell("fake", "tiny", "scripted"), scripted_registries, device="cpu",
             budget=budget)
    assert Scripted.seen["budget"] is budget and Scripted.seen["progress"] is True  # default


def test_run_cell_moves_the_backbone_to_the_asked_device(scripted_registries):
    """The backbone goes to the cell's device and the method's context carries it (a device
    dropped on the way leaves training on the default device, unnoticed on a CPU-only
    machine; "meta" is a device no default would pick). Without a store given, the disk
    feature store is used (catches a cell silently falling back to in-memory features)."""
    run_cell(Cell("fake", "tiny", "scripted"), scripted_registries, progress=False,
             device="meta")
    assert (Scripted.seen["device"], Scripted.seen["moved_to"]) == ("meta", "meta")
    assert isinstance(Scripted.seen["store"], FeatureStore)


def test_validate_cell_checks_settings_against_the_cells_registries(scripted_registries):
    """A setting is checked against the registries the cell runs with, not the process's
    plugins (which lack ``tiny-loss``), and errors name the method and the backbone."""
    cell = validate_cell(Cell("fake", "tiny", "scripted-setting",
                              {"loss": "tiny-loss[weight=2]"}), scripted_registries)
    assert cell.params["loss"] == "tiny-loss[weight=2.0]"
    with pytest.raises(TransferlabError,
                       match=r"^scripted-setting: parameter loss: .*'nope'"):
        validate_cell(Cell("fake", "tiny", "scripted-setting", {"loss": "nope"}),
                      scripted_registries)
    with pytest.raises(TransferlabError, match=r"^scripted-setting\b.*'bogus'"):
        validate_cell(Cell("fake", "tiny", "scripted-setting", {"bogus": 1}),
                      scripted_registries)
    with pytest.raises(TransferlabError, match=r"^fake\b.*'img_size'"):
        validate_cell(Cell("fake", "tiny", "scripted", {}, {"img_size": 3}),
                      scripted_registries)


def test_cell_result_defaults_and_dict():
    cell = Cell("b", "t", "m", {"C": 1}, {}, 2, "s")
    result = CellResult(cell, "error")
    assert (result.metrics, result.fit_seconds, result.predict_seconds, result.trainable_params,
            result.total_params, result.peak_memory_mb, result.error, result.environment,
            result.finished_at, result.extra) == ({}, 0.0, 0.0, 0, 0, 0.0, None, {}, "", {})
    data = result.to_dict()
    assert data["cell"] == cell.to_dict() and data["key"] == cell.key
    assert data["status"] == "error" and data["metrics"] == {} and len(data) == 13


def test_run_cell_scores_the_test_split_exactly(scripted_registries):
    result = _run_scripted(scripted_registries)
    assert result.status == "ok" and result.error is None
    # tiny's test labels are [0, 1, 0, 1]; all-zero predictions: half right, macro-F1 of
    # (2/3 + 0) / 2 (class 0: precision 1/2, recall 1; class 1: never predicted)
    assert result.metrics == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3)}
    assert (result.trainable_params, result.total_params) == (3, 30)
    assert result.extra == {"note": "zeros"}
    assert result.cell.params == {"fail": "none", "experiments": False}  # resolved
    assert 0 <= result.fit_seconds < 5 and 0 <= result.predict_seconds < 5
    assert result.environment["device"] == "cpu" and result.peak_memory_mb > 0
    assert len(result.finished_at) == 25 and result.finished_at.endswith("+00:00")


def test_run_cell_reports_mean_and_std_of_experiments(scripted_registries):
    result = _run_scripted(scripted_registries, experiments=True)
    # experiment 1 is perfect (accuracy 1, macro-F1 1); experiment 2 is all zeros (0.5, 1/3)
    assert result.metrics == pytest.approx({
        "accuracy": 0.75, "accuracy_std": math.sqrt(0.125),
        "macro_f1": 2 / 3, "macro_f1_std": math.sqrt(2) / 3,
    })
    assert result.extra["experiments"] == [{"accuracy": 1.0, "macro_f1": 1.0},
                                           {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3)}]


def test_single_experiment_has_zero_std():
    from transferlab.harness.cell import _experiment_metrics

    summary, per = _experiment_metrics(np.array([0, 1]), [np.array([0, 0])])
    assert summary == {"accuracy": 0.5, "accuracy_std": 0.0, "macro_f1": pytest.approx(1 / 3),
                       "macro_f1_std": 0.0}
    assert per == [{"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3)}]


def test_run_cell_records_errors_in_one_line(scripted_registries, caplog):
    data = _run_scripted(scripted_registries, fail="data")
    assert (data.status, data.error, data.metrics) == ("error", "the data is bad; fix it", {})
    caplog.set_level(logging.DEBUG, logger="transferlab")
    value = _run_scripted(scripted_registries, fail="value")
    raise_line = Path(__file__).read_text().splitlines().index(
        '    raise ValueError("bad value")') + 1
    assert value.status == "error"
    assert value.error == f"ValueError: bad value (at {__file__}:{raise_line})"
    assert value.finished_at and value.environment["device"] == "cpu"
    (record,) = [r for r in caplog.records if r.name == "transferlab"]
    assert record.getMessage() == "cell failed" and record.exc_info[0] is ValueError
    with pytest.raises(KeyboardInterrupt):
        _run_scripted(scripted_registries, fail="interrupt")
    bad_param = _run_scripted(scripted_registries, fail="nope")
    assert bad_param.status == "error" and "parameter fail='nope' is not one of" in (
        bad_param.error)
    assert bad_param.cell == Cell("fake", "tiny", "scripted", {"fail": "nope"}, {}, 0)


def test_domain_cell_fits_on_the_source_and_scores_the_target(scripted_registries):
    Scripted.fitted_on.clear()
    result = _run_scripted(scripted_registries, source_task="tiny-source")
    assert result.status == "ok" and Scripted.fitted_on == ["tiny-source"]
    assert Scripted.seen["prepared"] == ["tiny-source"]  # fitted on training data only
    assert result.extra["adaptation"] == "source-only"  # Scripted does not adapt
    assert result.metrics["accuracy"] == 0.5 and result.cell.source_task == "tiny-source"


def test_adapting_method_gets_the_unlabeled_target(scripted_registries):
    result = _run_scripted(scripted_registries, source_task="tiny-source",
                           method="scripted-adapt")
    assert result.status == "ok" and result.extra["adaptation"] == "adapted"
    assert Scripted.seen_target == ("UnlabeledTarget", [-1] * 6)
    assert Scripted.fitted_on[-1] == "tiny-source"


def test_result_records_which_plugin_served_each_part(scripted_registries):
    def served(name):
        return {"name": name, "plugin": "scripted", "distribution": None, "version": None}

    plain = _run_scripted(scripted_registries)
    assert plain.environment["plugins"] == {
        "backbone": served("fake"), "task": served("tiny"), "method": served("scripted")}
    adapted = _run_scripted(scripted_registries, source_task="tiny-source")
    assert adapted.environment["plugins"]["source_task"] == served("tiny-source")


# --- metrics and leaderboards ----------------------------------------------------------------


def test_classification_metrics_on_hand_computed_examples():
    # class 0: P 1/2 R 1/2 F1 1/2; class 1: P 2/3 R 1 F1 4/5; class 2: P 1 R 1/2 F1 2/3
    metrics = classification_metrics(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]))
    assert metrics == pytest.approx({"accuracy": 4 / 6, "macro_f1": (1 / 2 + 4 / 5 + 2 / 3) / 3})
    # label 2 is only predicted: it counts in the macro average (F1 0), as label 1 does
    metrics = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 2]))
    assert metrics == pytest.approx({"accuracy": 0.5, "macro_f1": 0.8 / 3})
    assert all(type(v) is float for v in metrics.values())


def _row(task="digits", method="a", seed=0, accuracy=0.5, *, status="ok", params=None,
         backbone_params=None, macro_f1=None, fit=1.0, source=None, key=None,
         trainable=650, total=650, backbone="raw:pixels"):
    params, backbone_params = params or {}, backbone_params or {}
    metrics = {"accuracy": accuracy, "macro_f1": accuracy if macro_f1 is None else macro_f1}
    cell = Cell(backbone, task, method, params, backbone_params, seed, source)
    return {"cell_key": key or cell.key, "status": status, "task": task, "backbone": backbone,
            "method": method, "params": params, "backbone_params": backbone_params,
            "seed": seed, "metrics": metrics if status == "ok" else {}, "fit_seconds": fit,
            "trainable_params": trainable, "total_params": total, "source_task": source}


T_975_2 = 4.302652729749464  # Student t, 97.5% quantile, 2 degrees of freedom


def test_leaderboard_mean_and_ci_over_seeds_on_known_numbers():
    rows = [_row(seed=s, accuracy=a, macro_f1=f, fit=t)
            for s, a, f, t in ((0, 0.8, 0.7, 1.0), (1, 0.9, 0.8, 2.0), (2, 1.0, 0.9, None))]
    (row,) = leaderboard(rows)
    assert (row.task, row.backbone, row.method, row.params, row.seeds, row.metric) == (
        "digits", "raw:pixels", "a", "", 3, "accuracy")
    assert row.mean == pytest.approx(0.9)
    assert row.ci95 == pytest.approx(T_975_2 * 0.1 / math.sqrt(3))  # sample sd 0.1
    assert row.macro_f1 == pytest.approx(0.8) and row.fit_seconds == pytest.approx(1.0)
    assert (row.trainable_params, row.total_params) == (650, 650)
    (unknown,) = leaderboard([{**rows[0], "trainable_params": None, "total_params": None}])
    assert (unknown.trainable_params, unknown.total_params) == (0, 0)  # not recorded: 0
    (single,) = leaderboard(rows[:1])
    assert single.seeds == 1 and single.mean == 0.8 and math.isnan(single.ci95)
    (two,) = leaderboard(rows[:2])
    assert two.ci95 == pytest.approx(12.706204736174694 * math.sqrt(0.005) / math.sqrt(2))


def test_leaderboard_uses_the_latest_ok_row_per_cell_and_ignores_failures():
    rows = [_row(accuracy=0.1), _row(accuracy=0.9),  # the same cell run twice: latest wins
            _row(seed=1, status="error"), _row(seed=2, accuracy=0.7)]
    (row,) = leaderboard(rows)
    assert row.seeds == 2 and row.mean == pytest.approx(0.8)
    assert leaderboard([_row(status="error")]) == []


def test_leaderboard_orders_tasks_then_best_first():
    rows = [_row("digits", "a", accuracy=0.9), _row("digits", "b", accuracy=0.95),
            _row("digits", "c", accuracy=0.5), _row("alpha", "a", accuracy=0.1),
            _row("usps", "a", accuracy=0.6, source="mnist")]
    board = leaderboard(rows)
    assert [(r.task, r.method) for r in board] == [
        ("alpha", "a"), ("digits", "b"), ("digits", "a"), ("digits", "c"), ("mnist->usps", "a")]


def test_leaderboard_other_metric_skips_rows_without_it():
    rows = [_row(method="a", accuracy=0.9, macro_f1=0.2), _row(method="b", accuracy=0.5,
                                                               macro_f1=0.6)]
    board = leaderboard(rows, metric="macro_f1")
    assert [(r.method, r.mean, r.metric) for r in board] == [("b", 0.6, "macro_f1"),
                                                            ("a", 0.2, "macro_f1")]
    assert leaderboard(rows, metric="auc") == []


def test_leaderboard_params_show_only_settings_that_vary_within_a_task():
    rows = [_row(method="lp", params={"C": 1.0, "max_iter": 9}, backbone_params={"size": 8}),
            _row(method="lp", params={"C": 0.1, "max_iter": 9}, backbone_params={"size": 8}),
            _row(method="lp", params={"C": 0.1, "max_iter": 9}, backbone_params={"size": 4}),
            _row("other", method="lp", params={"C": 5.0, "max_iter": 9})]
    labels = {(r.task, r.params) for r in leaderboard(rows)}
    assert labels == {("digits", "B.size=8,C=1.0"), ("digits", "B.size=8,C=0.1"),
                      ("digits", "B.size=4,C=0.1"), ("other", "")}


def _board():
    return leaderboard([
        _row(seed=0, accuracy=0.8, macro_f1=0.75, fit=2.0), _row(seed=1, accuracy=0.9,
                                                                 macro_f1=0.85, fit=4.0),
        _row(method="b", accuracy=0.95, macro_f1=0.9, fit=0.5, trainable=4_652_008,
             total=1500),
    ])


def test_markdown_report_content():
    text = FORMATS["markdown"](_board())
    half = 12.706204736174694 * math.sqrt(0.005) / math.sqrt(2)
    assert text.splitlines() == [
        "### digits",
        "",
        "| rank | backbone | method | params | accuracy (95% CI) | macro-F1 | seeds | fit s"
        " | trainable / total |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|",
        "| 1 | raw:pixels | b | - | 0.9500 | 0.9000 | 1 | 0.5 | 4.65M / 1.50k |",
        f"| 2 | raw:pixels | a | - | 0.8500 ± {half:.4f} | 0.8000 | 2 | 3.0 | 650 / 650 |",
    ]
    assert FORMATS["markdown"]([]) == ""


def test_human_counts_at_the_unit_boundaries():
    from transferlab.harness.report import _human_count

    assert [_human_count(n) for n in (0, 999, 1000, 1234, 999_999, 1_000_000, 2_500_000)] == [
        "0", "999", "1.00k", "1.23k", "1000.00k", "1.00M", "2.50M"]


def test_csv_and_json_reports_content():
    board = _board()
    lines = FORMATS["csv"](board).splitlines()
    assert lines[0] == ("task,backbone,method,params,seeds,metric,mean,ci95,macro_f1,"
                        "fit_seconds,trainable_params,total_params")
    assert lines[1] == "digits,raw:pixels,b,,1,accuracy,0.95,nan,0.9,0.5,4652008,1500"
    assert lines[2].startswith("digits,raw:pixels,a,,2,accuracy,0.85") and len(lines) == 3
    text = FORMATS["json"](board)
    assert text.startswith('[\n  {\n    "task": "digits",\n') and FORMATS["json"]([]) == "[]"
    data = json.loads(text)
    assert data[0] == {"task": "digits", "backbone": "raw:pixels", "method": "b", "params": "",
                       "seeds": 1, "metric": "accuracy", "mean": 0.95, "ci95": None,
                       "macro_f1": 0.9, "fit_seconds": 0.5, "trainable_params": 4652008,
                       "total_params": 1500}
    assert data[1]["ci95"] == pytest.approx(12.706204736174694 * math.sqrt(0.005) / math.sqrt(2))
    assert sorted(FORMATS) == ["csv", "json", "markdown"]


def test_migration_goes_on_past_a_column_the_file_already_has(tmp_path, monkeypatch):
    """Catches the migration stopping at the first column a file already has: a later
    release's columns would then never be added to files that have the earlier ones."""
    from transferlab.harness import store as store_module

    path = tmp_path / "r.sqlite"
    ResultsStore(path)  # has every current column, source_task included
    monkeypatch.setattr(store_module, "MIGRATIONS",
                        (*store_module.MIGRATIONS, ("added_later", "TEXT")))
    ResultsStore(path)
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(results)")]
    assert columns[-2:] == ["tasks", "added_later"]


def test_leaderboard_skips_a_group_without_the_metric_and_goes_on():
    """Catches the aggregation stopping at the first group that lacks the metric (e.g. a
    method that reports only accuracy, ranked by perplexity), dropping every later group."""
    first = _row(method="a")
    first["metrics"] = {"perplexity": 3.0}
    board = leaderboard([first, _row(method="b", accuracy=0.7)])
    assert [(r.method, r.mean) for r in board] == [("b", 0.7)]


def test_leaderboard_macro_f1_is_nan_when_a_result_lacks_it():
    """Catches a missing macro-F1 crashing the leaderboard (None in a sum) instead of
    showing as not available."""
    row = _row()
    del row["metrics"]["macro_f1"]
    (entry,) = leaderboard([row])
    assert math.isnan(entry.macro_f1) and entry.mean == 0.5


def test_markdown_has_one_table_per_task_including_single_row_tasks():
    """Catches the Markdown output keeping only the last task's table, or failing on a
    task with a single row."""
    from transferlab.harness.report import to_markdown

    text = to_markdown(leaderboard([_row(task="alpha"), _row(task="beta", method="b"),
                                    _row(task="beta", method="c", accuracy=0.6)]))
    assert text.count("| rank | backbone |") == 2
    assert text.index("### alpha") < text.index("### beta")
    assert "| 1 | raw:pixels | a | - | 0.5000 |" in text


def test_a_table_entry_without_params_has_no_params(tmp_path):
    """Catches an entry written as ``{ name = "knn" }`` (no ``params``) refused as if its
    params were not a table."""
    from transferlab.harness.suite import load_suite

    path = tmp_path / "s.toml"
    path.write_text('tasks = ["digits"]\nbackbones = [{ name = "raw:pixels" }]\n'
                    'methods = [{ name = "knn" }]\n')
    cells = load_suite(path).cells
    assert [(c.backbone, c.backbone_params, c.method, c.params) for c in cells] == [
        ("raw:pixels", {}, "knn", {})]


@pytest.mark.parametrize(("seeds", "offers_a_range"), [(1, False), (2, True), (10, True),
                                                        (11, False)])
def test_an_integer_seeds_value_suggests_a_range_only_between_2_and_10(seeds, offers_a_range):
    """Catches the bounds of the ``seeds = N`` hint off by one: ``seeds = 2`` most likely
    meant two seeds, ``seeds = 11`` most likely meant seed 11 (a long list is unlikely)."""
    from transferlab.harness.suite import parse_suite

    data = {"tasks": ["digits"], "backbones": ["raw:pixels"], "methods": ["linear-probe"],
            "seeds": seeds}
    with pytest.raises(TransferlabError) as caught:
        parse_suite(data, "s")
    message = str(caught.value)
    assert f"write seeds = [{seeds}] for seed {seeds}" in message
    assert (f"or seeds = {list(range(seeds))} for {seeds} seeds" in message) is offers_a_range


def test_a_language_modelling_task_is_ranked_by_perplexity_lowest_first():
    """Catches a language-modelling task vanishing from the default (accuracy) leaderboard,
    and perplexity ranked highest first like accuracy."""
    rows = []
    for method, value in (("worse", 300.0), ("better", 120.0)):
        row = _row(task="corpus:x", method=method)
        row["metrics"] = {"perplexity": value}
        rows.append(row)
    board = leaderboard([*rows, _row(task="digits", method="c", accuracy=0.7)])
    assert [(r.task, r.method, r.metric) for r in board] == [
        ("corpus:x", "better", "perplexity"), ("corpus:x", "worse", "perplexity"),
        ("digits", "c", "accuracy")]


class _HintsSeen:
    """An executor that records the queue it is given and runs nothing but fakes."""

    def __init__(self) -> None:
        self.queues: list = []

    def run(self, cells, run_one):
        self.queues.append(cells)
        for cell in cells:
            yield _result(cell)


class _ListSink:
    """A results sink without claims (the plain path of run_suite)."""

    def __init__(self) -> None:
        self.added: list = []

    def finished(self, cell):
        return False

    def add(self, result, suite=None):
        self.added.append(result)


@pytest.mark.parametrize("store_kind", ["claims", "plain"])
def test_run_suite_tells_the_executor_which_cells_read_features_and_how_big_backbones_are(
        tmp_path, registries, store_kind):
    """Bugs caught: the process executor left without the hints, so it holds back fine-tuning
    cells as if they read cached features, or starts the biggest backbone last (either store
    path: with claims and without)."""
    from transferlab.harness.cell_queue import CellQueue

    suite = parse_suite({
        "name": "hints", "tasks": ["digits"], "seeds": [0],
        "backbones": ["timm:efficientnet_lite0", {"name": "raw:pixels", "params": PIXELS}],
        "methods": ["linear-probe", "finetune"]})
    suite.cells[:] = [c for c in suite.cells
                      if not (c.backbone == "raw:pixels" and c.method == "finetune")]
    store = ResultsStore(tmp_path / "r.sqlite") if store_kind == "claims" else _ListSink()
    executor = _HintsSeen()
    list(run_suite(suite, registries, store, executor, lambda c: _result(c), progress=False))
    (queue,) = executor.queues
    assert isinstance(queue, CellQueue)
    by = {(c.backbone, c.method): c for c in validate_suite_cells(suite, registries)}
    assert queue.reads_features(by["timm:efficientnet_lite0", "linear-probe"]) is True
    assert queue.reads_features(by["timm:efficientnet_lite0", "finetune"]) is False
    assert queue.size(by["timm:efficientnet_lite0", "linear-probe"]) == 4_652_008
    assert queue.size(by["raw:pixels", "linear-probe"]) == 0


def validate_suite_cells(suite, registries):
    from transferlab.harness.suite import validate_suite

    return validate_suite(suite, registries)


def test_reads_features_only_for_feature_method_classes_outside_regimes(registries):
    """Bugs caught: a weight-training method or a regime cell taken for a feature cell (held
    back behind another worker), or a plain factory function guessed to be one."""
    from transferlab.harness.cell import reads_features

    assert reads_features(Cell("raw:pixels", "digits", "linear-probe"), registries) is True
    assert reads_features(Cell("raw:pixels", "digits", "finetune"), registries) is False
    assert reads_features(Cell("raw:pixels", "digits", "linear-probe", regime="multi-task",
                               tasks=("digits",)), registries) is False
    host = PluginHost()
    host.load_entry_points()

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register("by-function", lambda name, **params: None)

    host.add_plugin(Plugin(), "by-function")
    assert reads_features(Cell("raw:pixels", "digits", "by-function"), host.registries) is False
