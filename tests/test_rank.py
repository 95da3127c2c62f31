"""Stored transferability scores and their validation against measured cells
(``transferlab rank --db/--stored/--validate``, ``transferlab.harness.ranking``, the ``scores``
table of the results store). Each test's docstring names the bug it catches."""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import sqlite3

import pytest
from scipy.stats import kendalltau, weightedtau

from transferlab.cli import cli
from transferlab.errors import TransferlabError
from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.ranking import (
    GroundTruth,
    backbone_id,
    correlate,
    ground_truths,
    non_default,
    validate_scores,
)
from transferlab.harness.store import SCHEMA, ResultsStore, ScoreRecord
from transferlab.plugins import get_registries

TASK = "digits[fraction=0.25]"
PIXELS = "raw:pixels"


@pytest.fixture(scope="module")
def registries():
    return get_registries()


def _pixels(registries, size: int, **more) -> dict:
    """raw:pixels' fully resolved parameter values, as rank and run store them."""
    return registries.backbones.get(PIXELS).validate(PIXELS, {"size": size, **more})


def _probe(registries, **params) -> dict:
    return registries.methods.get("linear-probe").validate("linear-probe", params)


def _record(registries, size: int, value: float, score: str = "logme", task: str = TASK,
            **score_params) -> ScoreRecord:
    params = registries.scores.get(score).validate(score, score_params)
    return ScoreRecord(task, PIXELS, _pixels(registries, size), score, params, "train", 337,
                       value, 0.01, {"packages": {"numpy": "x"}}, {"backbone_fingerprint": "f"})


def _cell(registries, store: ResultsStore, size: int, accuracy: float, seed: int = 0, *,
          task: str = TASK, status: str = "ok", source_task: str | None = None,
          backbone_params: dict | None = None, **method_params) -> None:
    params = backbone_params if backbone_params is not None else _pixels(registries, size)
    cell = Cell(PIXELS, task, "linear-probe", _probe(registries, **method_params), params,
                seed, source_task)
    metrics = {"accuracy": accuracy, "macro_f1": accuracy} if status == "ok" else {}
    store.add(CellResult(cell, status, metrics, environment={}, finished_at="2025-01-01"))


def _invoke(runner, *args: str):
    result = runner.invoke(cli, ["rank", *args])
    return result


# --- the store -------------------------------------------------------------------------------


def test_a_rescore_replaces_the_value_of_the_same_key_and_nothing_else(tmp_path, registries):
    """Catches a scores table keyed too loosely (a value of another backbone parameter, score
    parameter, split or task overwritten) or too tightly (a re-rank appending a second row
    that validation would then count twice)."""
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_score(_record(registries, 8, 1.0))
    store.add_score(_record(registries, 8, 2.0))  # the same key: replaced
    store.add_score(_record(registries, 4, 3.0))  # another backbone parameter value
    store.add_score(_record(registries, 8, 4.0, tol=1e-4))  # another score parameter value
    store.add_score(_record(registries, 8, 5.0, task="digits"))  # another task
    store.add_score(dataclasses.replace(_record(registries, 8, 6.0), split="test"))
    rows = store.scores()
    assert [r["value"] for r in rows] == [2.0, 3.0, 4.0, 5.0, 6.0]
    first = rows[0]
    assert first["backbone_params"] == {"size": 8, "grayscale": False}
    assert first["score_params"]["tol"] == 1e-3 and first["examples"] == 337
    assert first["environment"] == {"packages": {"numpy": "x"}}
    assert first["extra"] == {"backbone_fingerprint": "f"} and first["created_at"]
    assert [r["value"] for r in store.scores(task=TASK, split="train")] == [2.0, 3.0, 4.0]


def test_an_old_database_opens_gains_the_scores_table_and_keeps_its_rows(tmp_path, registries):
    """Catches a schema change that breaks databases written before scores were stored: an
    old file (the first results schema, without later columns or the scores table) must open,
    keep every result row, and accept scores; opening it again must not fail."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT INTO results (cell_key, suite, backbone, task, method, params,"
            " backbone_params, seed, status, metrics, environment, extra, finished_at)"
            " VALUES ('k', 'demo', 'raw:pixels', 'digits', 'linear-probe', '{}', '{}', 0, 'ok',"
            " '{\"accuracy\": 0.9}', '{}', '{}', '2024-01-01')")
    conn.close()
    store = ResultsStore(path)
    (row,) = store.rows()
    assert (row["cell_key"], row["suite"], row["metrics"], row["source_task"]) == (
        "k", "demo", {"accuracy": 0.9}, None)
    assert store.scores() == []
    store.add_score(_record(registries, 8, 1.5))
    again = ResultsStore(path)
    assert len(again.rows()) == 1 and [r["value"] for r in again.scores()] == [1.5]


# --- transferlab.harness.ranking -------------------------------------------------------------


def test_correlate_is_undefined_below_two_backbones_or_on_a_constant_side():
    """Catches a validation that reports tau = NaN (invalid JSON) or crashes when one backbone
    was measured, or when every backbone measured the same."""
    assert correlate([], []) == (None, None, None)
    assert correlate([1.0], [0.5]) == (None, None, None)
    tau, p, weighted = correlate([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    assert tau is None and p is None
    with pytest.raises(ValueError, match="2 predicted values but 1 measured"):
        correlate([1.0, 2.0], [1.0])
    tau, _, weighted = correlate([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert tau == pytest.approx(-1.0) and weighted == pytest.approx(-1.0)


def test_one_backbone_is_its_name_and_its_resolved_parameter_values(registries):
    """Catches backbone identity by spelling: a cell stored before a backbone parameter was
    declared (its default missing) must still match, and the default spelled out is the
    same backbone; another value of a parameter, or another tag, is another backbone."""
    full = backbone_id(PIXELS, _pixels(registries, 32))
    assert backbone_id(PIXELS, {}, registries) == full  # the defaults filled in
    assert backbone_id(PIXELS, {"size": 32}, registries) == full  # an older, shorter record
    assert backbone_id(PIXELS, {"size": 16}, registries) != full
    assert backbone_id(PIXELS, {"size": 32, "grayscale": True}, registries) != full
    assert backbone_id(f"{PIXELS}@random", {"size": 32}, registries) != full


def test_one_backbone_is_the_same_whatever_the_order_or_spelling_of_its_values():
    """Bug caught: an identity that depends on the order parameter values were given in (two
    cells of one backbone counted as two candidates), or that cannot hold values JSON does
    not know (a path)."""
    from pathlib import Path

    assert backbone_id("x", {"a": 1, "b": 2}) == backbone_id("x", {"b": 2, "a": 1})
    assert backbone_id("x", {"a": 1, "b": 2}) == ("x", '{"a": 1, "b": 2}')
    assert backbone_id("x", {"p": Path("w.safetensors")}) == ("x", '{"p": "w.safetensors"}')


def test_ground_truths_average_seeds_keep_the_latest_rerun_and_split_parameter_values(
        registries):
    """Catches a ground truth that averages a re-run with the run it replaced, takes one seed
    instead of the mean, mixes cells of different method parameter values, counts failed
    and domain-adaptation cells, or takes a spelled-out setting ("linear-probe[C=0.5]") as a
    method name (a bug this test once let through: it checked only the label)."""
    rows = []

    def add(size, accuracy, seed=0, status="ok", source=None, **params):
        rows.append({"method": "linear-probe", "backbone": PIXELS, "seed": seed,
                     "backbone_params": _pixels(registries, size), "status": status,
                     "params": _probe(registries, **params), "source_task": source,
                     "metrics": {"accuracy": accuracy} if status == "ok" else {}})

    add(4, 0.1)
    add(4, 0.9)  # a re-run of seed 0: replaces 0.1
    add(4, 0.5, seed=1)
    add(4, 0.0, status="error")
    add(4, 0.0, source="mnist_subset")
    add(4, 0.3, C=0.5)
    truths = ground_truths(rows, ["linear-probe"], "accuracy", registries)
    assert [t.label for t in truths] == ["linear-probe", "linear-probe[C=0.5]"]
    bid = backbone_id(PIXELS, _pixels(registries, 4))
    assert truths[0].measured == {bid: pytest.approx(0.7)} and truths[0].seeds == {bid: [0, 1]}
    assert truths[1].measured == {bid: 0.3}
    only = ground_truths(rows, ["linear-probe[C=0.5]"], "accuracy", registries)
    assert [(t.method, t.label, t.measured) for t in only] == [
        ("linear-probe", "linear-probe[C=0.5]", {bid: 0.3})]  # the values select cells
    assert only[0].params["C"] == 0.5 and only[0].params["max_iter"] == 1000  # resolved
    nothing = ground_truths(rows, ["finetune"], "accuracy", registries)
    assert [(t.label, t.measured, t.all_seeds) for t in nothing] == [("finetune", {}, [0])]


def test_ground_truths_skip_unusable_rows_without_stopping_and_resolve_older_records(
        registries):
    """Catches a filter that stops at the first unusable row (``break`` for ``continue``), a
    row without a status taken as failed, a NaN or non-number metric averaged in, an older
    record (fewer stored parameter values) split from the same cell's newer ones, two
    unmatched settings merged into one, or parameter values accepted without the registries
    to check them."""
    full = _pixels(registries, 4)
    short = {"size": 4}  # a record from before raw:pixels declared its other parameters
    probe = _probe(registries)
    older_probe = {k: v for k, v in probe.items() if k != "max_iter"}

    def row(accuracy, seed=0, params=None, backbone_params=None, **more):
        base = {"method": "linear-probe", "backbone": PIXELS, "seed": seed,
                "backbone_params": backbone_params or full, "params": params or probe,
                "source_task": None, "metrics": {"accuracy": accuracy}}
        base.update(more)
        return base

    rows = [row(float("nan")), row("0.99"), row(0.2, params=_probe(registries, C=0.5)),
            {**row(0.4), "status": "error"}, row(0.6, seed=1, params=older_probe),
            row(0.8, seed=2, backbone_params=short)]
    del rows[-1]["source_task"]  # older rows have no source task at all
    rows.append({k: v for k, v in row(0.7, seed=3).items() if k != "status"})
    other, truth = ground_truths(rows, ["linear-probe"], registries=registries)  # accuracy
    bid = backbone_id(PIXELS, full)
    assert truth.label == "linear-probe" and truth.seeds == {bid: [1, 2, 3]}
    assert truth.measured == {bid: pytest.approx((0.6 + 0.8 + 0.7) / 3)}
    assert other.label == "linear-probe[C=0.5]" and other.measured == {bid: 0.2}
    only = ground_truths(rows, ["linear-probe[C=0.5]"], registries=registries)
    assert [(t.label, t.measured) for t in only] == [("linear-probe[C=0.5]", {bid: 0.2})]
    missing = ground_truths(rows, ["finetune", "finetune[max_steps=7]"], registries=registries)
    assert [(t.label, t.params, t.measured) for t in missing] == [
        ("finetune", {}, {}), ("finetune[max_steps=7]", {"max_steps": 7}, {})]
    with pytest.raises(TransferlabError) as caught:
        ground_truths(rows, ["linear-probe[C=0.5]"])
    assert str(caught.value) == ("ground truth 'linear-probe[C=0.5]': parameter values need"
                                 " the registries to be checked")
    # without the registries nothing is resolved: the older records stay apart
    plain = ground_truths(rows, ["linear-probe"])
    assert len(plain) == 3 and sum(len(t.measured) for t in plain) == 4


@pytest.mark.parametrize("spec, message", [
    ("linear-probe[C=0.5", "ground truth: 'linear-probe[C=0.5' must end with ']'"),
    ("linear-probe[C=-1]", "linear-probe: parameter C=-1.0 must be >= 1e-12"),
    ("finetune[objective=nope]", "finetune: parameter objective: unknown objective 'nope'"),
])
def test_a_bad_ground_truth_is_named_in_its_error(registries, spec, message):
    """Catches an error that does not say which ground truth, method or parameter is wrong
    (a malformed setting, a value out of range, an unknown nested setting)."""
    with pytest.raises(TransferlabError) as caught:
        ground_truths([], [spec], registries=registries)
    assert str(caught.value).startswith(message)


def test_resolving_falls_back_to_the_stored_values(registries):
    """Catches a crash (instead of the stored values) for a backbone no longer registered,
    values that no longer validate, or no registries; and non_default naming defaults."""
    assert backbone_id(PIXELS, {"size": -5}, registries) == (PIXELS, '{"size": -5}')
    assert backbone_id("gone:model", {"a": 1}, registries) == ("gone:model", '{"a": 1}')
    assert backbone_id(PIXELS, {"size": 4}) == (PIXELS, '{"size": 4}')
    assert non_default(None, PIXELS, {"size": 32}) == {"size": 32}
    assert non_default(registries.backbones, "gone:model", {"a": 1}) == {"a": 1}
    assert non_default(registries.backbones, PIXELS, _pixels(registries, 8)) == {"size": 8}


def test_validate_scores_compares_only_backbones_both_sides_have():
    """Catches pairing a score with the wrong backbone's accuracy (by position instead of
    identity) or counting backbones only one side has."""
    a, b, c, d = (("x", str(i)) for i in range(4))
    truth = GroundTruth("linear-probe", {}, "linear-probe", {b: 0.2, a: 0.9, c: 0.5})
    (result,) = validate_scores({"s": {a: 3.0, b: 1.0, c: 2.0, d: 9.0}}, [truth])
    assert (result.backbones, result.scored) == (3, 4)
    assert result.kendall_tau == pytest.approx(1.0) and result.weighted_tau == pytest.approx(1.0)


# --- transferlab rank: storing -----------------------------------------------------------------

TWO = ["-b", "raw:pixels[size=8]", "-b", "raw:pixels[size=4]"]


def test_rank_stores_every_value_and_a_rerank_replaces_them(runner, tmp_path):
    """Catches rank computing values it never stores (or stores under the user's spelling
    instead of resolved parameter values), and a re-rank that appends rows or leaves a stale
    value in place."""
    db = str(tmp_path / "rank.sqlite")
    args = ["-t", TASK, *TWO, "--score", "logme", "--score", "hscore", "--no-progress",
            "--db", db]
    result = _invoke(runner, *args, "--json")
    assert result.exit_code == 0, result.output
    shown = {(r["backbone"], s): r["score"] for s, rows in json.loads(result.stdout)["scores"]
             .items() for r in rows}
    store = ResultsStore(db)
    rows = store.scores()
    label = {8: "raw:pixels[size=8]", 4: "raw:pixels[size=4]"}
    stored = {(label[r["backbone_params"]["size"]], r["score"]): r["value"] for r in rows}
    assert stored == shown and len(rows) == 4
    row = rows[0]
    assert (row["task"], row["backbone"], row["split"], row["examples"]) == (
        TASK, PIXELS, "train", json.loads(result.stdout)["examples"])
    assert row["backbone_params"] == {"size": 8, "grayscale": False}
    assert row["score_params"] == get_registries().scores.get("logme").validate("logme", {})
    assert row["seconds"] >= 0 and "numpy" in row["environment"]["packages"]
    assert row["environment"]["plugins"]["score"]["plugin"] == "relational"
    assert set(row["extra"]) == {"backbone_fingerprint", "task_fingerprint"}
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE scores SET value = -999")
    conn.close()
    assert _invoke(runner, *args).exit_code == 0
    again = ResultsStore(db).scores()
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    assert [r["value"] for r in again] == [r["value"] for r in rows]


def test_rank_refuses_two_spellings_of_one_backbone(runner, tmp_path):
    """Catches one backbone ranked, stored and validated twice under two labels (its default
    spelled out or not)."""
    result = _invoke(runner, "-t", TASK, "-b", PIXELS, "-b", "raw:pixels[size=32]",
                     "--score", "logme", "--db", str(tmp_path / "r.sqlite"))
    assert result.exit_code == 1
    assert ("Error: -b 'raw:pixels[size=32]' and -b 'raw:pixels' are one backbone (the same"
            " name and parameter values); name it once") in result.output


def test_stored_ranking_equals_the_computed_one(runner, tmp_path):
    """Catches --stored reading another task's or split's values, losing a score, or
    labelling backbones so that they no longer match the computed ranking."""
    db = str(tmp_path / "r.sqlite")
    computed = _invoke(runner, "-t", TASK, *TWO, "--score", "logme", "--score",
                       "logme[tol=1e-4]", "--json", "--no-progress", "--db", db)
    assert computed.exit_code == 0, computed.output
    ResultsStore(db).add_score(_record(get_registries(), 8, 99.0, task="digits"))
    stored = _invoke(runner, "-t", TASK, "--stored", "--json", "--db", db)
    assert stored.exit_code == 0, stored.output
    want, got = json.loads(computed.stdout), json.loads(stored.stdout)
    assert got["source"] == "stored" and got["scores"] == want["scores"]
    assert got["backbones"] == want["backbones"] and got["examples"] == want["examples"]
    assert list(got["scores"]) == ["logme", "logme[tol=0.0001]"]  # canonical spellings
    one = _invoke(runner, "-t", TASK, "--stored", "--json", "--db", db, "-b",
                  "raw:pixels[size=4,grayscale=false]", "--score", "logme[tol=0.001]")
    assert one.exit_code == 0, one.output  # defaults spelled out: the same backbone and score
    assert json.loads(one.stdout)["scores"] == {"logme": [
        {"rank": 1, "backbone": "raw:pixels[size=4]",
         "score": want["scores"]["logme"][1]["score"]}]}


@pytest.mark.parametrize("args,message", [
    (["--stored", "--db", "{tmp}/absent.sqlite"], "--stored reads {tmp}/absent.sqlite, which"
     " does not exist"),
    (["--stored", "--db", "{tmp}/empty.sqlite"], "no scores of task 'digits[fraction=0.25]'"
     " are stored in {tmp}/empty.sqlite for the chosen backbones and scores; compute them"
     " first: transferlab rank -t 'digits[fraction=0.25]' -b 'raw:pixels[size=4]' --score"
     " logme --db {tmp}/empty.sqlite"),
    (["--against", "finetune"], "--against and --metric choose what --validate compares"
     " with; add --validate"),
    (["--metric", "macro_f1"], "add --validate"),
    (["--validate", "--against", "bogus"], "unknown method 'bogus'"),
])
def test_rank_mistakes_are_one_clean_error_line(runner, tmp_path, args, message):
    """Catches a traceback, or a silently empty ranking, for --stored without a database or
    without stored values, validation options without --validate, and an unknown ground
    truth."""
    ResultsStore(tmp_path / "empty.sqlite")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = _invoke(runner, "-t", TASK, "-b", "raw:pixels[size=4]", "--score", "logme",
                     "--no-progress", *args)
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message.replace("{tmp}", str(tmp_path)) in errors[0], \
        result.output
    assert "Traceback" not in result.output


# --- transferlab rank --validate ---------------------------------------------------------------


@pytest.fixture
def tiny_db(tmp_path, registries):
    """Four backbones (raw:pixels at sizes 2, 4, 6, 8) with stored logme values and
    linear-probe cells, plus cells that must not count."""
    db = tmp_path / "tiny.sqlite"
    store = ResultsStore(db)
    for size, value in ((2, 0.1), (4, 0.15), (6, 0.2), (8, 0.4)):
        store.add_score(_record(registries, size, value))
    for size, value in ((2, 6.0), (4, 5.0), (6, 4.0)):  # hscore: three backbones only
        store.add_score(_record(registries, size, value, score="hscore"))
    _cell(registries, store, 2, 0.5, seed=0)
    _cell(registries, store, 2, 0.95, seed=1)  # mean over seeds: 0.725
    _cell(registries, store, 4, 0.8)
    _cell(registries, store, 6, 0.7)
    _cell(registries, store, 8, 0.1)
    _cell(registries, store, 8, 0.95)  # re-run of seed 0: 0.95 replaces 0.1
    # none of these may count for the ground truth `linear-probe`
    _cell(registries, store, 4, 0.0, status="error")
    _cell(registries, store, 6, 0.0, source_task="digits")  # domain adaptation
    _cell(registries, store, 6, 0.0, task="digits")  # another task
    _cell(registries, store, 8, 0.0, backbone_params=_pixels(registries, 8, grayscale=True))
    _cell(registries, store, 4, 0.1, C=0.5)  # its own ground truth, linear-probe[C=0.5]
    return str(db)


SCORES = {2: 0.1, 4: 0.15, 6: 0.2, 8: 0.4}
MEASURED = {2: 0.725, 4: 0.8, 6: 0.7, 8: 0.95}


def test_validate_matches_kendall_and_weighted_tau_computed_by_hand(runner, tiny_db):
    """Catches wrong tau values from: the first seed instead of the mean over seeds, a re-run
    averaged with the run it replaced, failed / domain-adaptation / other-task / other-
    backbone-parameter cells counted, cells of other method parameters mixed in, or scores
    paired with the wrong backbone's accuracy. By hand: the scores order sizes 2 < 4 < 6 < 8,
    the accuracies 6 < 2 < 4 < 8; pairs (2, 6) and (4, 6) disagree, so tau = (4 - 2) / 6."""
    result = _invoke(runner, "-t", TASK, "--stored", "--validate", "--against", "linear-probe",
                     "--json", "--db", tiny_db)
    assert result.exit_code == 0, result.output
    validation = json.loads(result.stdout)["validation"]
    assert validation["metric"] == "accuracy" and validation["split"] == "test"
    truths = {t["label"]: t for t in validation["ground_truths"]}
    assert list(truths) == ["linear-probe", "linear-probe[C=0.5]"]
    assert truths["linear-probe"]["measured"] == {
        f"raw:pixels[size={s}]": pytest.approx(v) for s, v in MEASURED.items()}
    assert truths["linear-probe"]["seeds"]["raw:pixels[size=2]"] == [0, 1]
    results = {(c["score"], c["ground_truth"]): c for c in validation["correlations"]}
    logme = results["logme", "linear-probe"]
    sizes = sorted(SCORES)
    predicted, measured = [SCORES[s] for s in sizes], [MEASURED[s] for s in sizes]
    assert (logme["backbones"], logme["scored"]) == (4, 4)
    assert logme["kendall_tau"] == pytest.approx(1 / 3)
    assert logme["kendall_tau"] == pytest.approx(kendalltau(predicted, measured).statistic)
    assert logme["kendall_p"] == pytest.approx(kendalltau(predicted, measured).pvalue)
    assert logme["weighted_tau"] == pytest.approx(weightedtau(predicted, measured).statistic)
    hscore = results["hscore", "linear-probe"]
    three = [2, 4, 6]
    hand = {2: 6.0, 4: 5.0, 6: 4.0}
    assert (hscore["backbones"], hscore["scored"]) == (3, 3)
    assert hscore["kendall_tau"] == pytest.approx(1 / 3)  # only the pair (2, 4) disagrees
    assert hscore["weighted_tau"] == pytest.approx(weightedtau(
        [hand[s] for s in three], [MEASURED[s] for s in three]).statistic)
    lonely = results["logme", "linear-probe[C=0.5]"]
    assert lonely["backbones"] == 1 and lonely["kendall_tau"] is lonely["weighted_tau"] is None


def test_validate_lists_the_exact_run_command_of_every_missing_cell(runner, tiny_db):
    """Catches a missing-cell list that names the wrong backbone parameter values, drops the
    method parameters of its ground truth (the command would measure another cell), or
    forgets the database and seeds."""
    result = _invoke(runner, "-t", TASK, "--stored", "--validate", "--json", "--db", tiny_db)
    assert result.exit_code == 0, result.output
    missing = json.loads(result.stdout)["validation"]["missing"]
    by_truth: dict[str, dict[str, list[str]]] = {}
    for item in missing:
        by_truth.setdefault(item["ground_truth"], {})[item["backbone"]] = item["commands"]
    assert set(by_truth) == {"linear-probe[C=0.5]", "finetune"}  # the defaults' finetune
    assert set(by_truth["linear-probe[C=0.5]"]) == {"raw:pixels[size=2]", "raw:pixels[size=6]",
                                                   "raw:pixels[size=8]"}
    assert by_truth["linear-probe[C=0.5]"]["raw:pixels[size=6]"] == [
        f"transferlab run -b raw:pixels -B size=6 -t 'digits[fraction=0.25]' -m linear-probe"
        f" -p C=0.5 --db {tiny_db}"]
    assert by_truth["finetune"]["raw:pixels[size=2]"] == [
        f"transferlab run -b raw:pixels -B size=2 -t 'digits[fraction=0.25]' -m finetune"
        f" --db {tiny_db}"]
    table = _invoke(runner, "-t", TASK, "--stored", "--validate", "--db", tiny_db)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("validation against"))
    assert lines[header + 1].split() == ["score", "ground", "truth", "backbones", "kendall",
                                         "tau", "weighted", "tau"]
    assert lines[header + 2].split()[:6] == ["logme", "linear-probe", "4", "of", "4", "+0.333"]
    assert "  logme   finetune" in table.stdout and "0 of 4" in table.stdout
    assert f"-m linear-probe -p C=0.5 --db {tiny_db}" in table.stdout


def test_a_printed_command_measures_exactly_the_missing_cell(runner, tmp_path):
    """Catches a missing-cell command that runs but measures another cell than the one
    validation looks for (other backbone parameter values, task view or database), so the
    backbone stays missing however often it is run. Scores are computed and stored first,
    then validated from the database alone."""
    db = str(tmp_path / "r.sqlite")
    first = _invoke(runner, "-t", TASK, *TWO, "--score", "logme", "--validate", "--against",
                    "linear-probe", "--json", "--no-progress", "--db", db)
    assert first.exit_code == 0, first.output
    missing = json.loads(first.stdout)["validation"]["missing"]
    assert len(missing) == 2
    for item in missing:
        (command,) = item["commands"]
        ran = runner.invoke(cli, [*shlex.split(command)[1:], "--no-progress"])
        assert ran.exit_code == 0, ran.output
    again = _invoke(runner, "-t", TASK, "--stored", "--validate", "--against", "linear-probe",
                    "--json", "--db", db)
    assert again.exit_code == 0, again.output
    validation = json.loads(again.stdout)["validation"]
    assert validation["missing"] == []
    (correlation,) = validation["correlations"]
    assert correlation["backbones"] == 2 and abs(correlation["kendall_tau"]) == 1.0


def test_validate_names_the_metrics_cells_record(runner, tiny_db):
    """Catches a misspelt --metric silently comparing with nothing (every backbone then
    reported as missing a cell it has)."""
    result = _invoke(runner, "-t", TASK, "--stored", "--validate", "--metric", "acc",
                     "--db", tiny_db)
    assert result.exit_code == 1
    assert ("records the metric 'acc'; choose one of accuracy, macro_f1 with --metric"
            in result.output)
    f1 = _invoke(runner, "-t", TASK, "--stored", "--validate", "--metric", "macro_f1",
                 "--against", "linear-probe", "--json", "--db", tiny_db)
    assert f1.exit_code == 0, f1.output
    (logme,) = [c for c in json.loads(f1.stdout)["validation"]["correlations"]
                if c["score"] == "logme" and c["ground_truth"] == "linear-probe"]
    assert logme["kendall_tau"] == pytest.approx(1 / 3)  # macro_f1 = accuracy in tiny_db
    assert math.isfinite(logme["weighted_tau"])
