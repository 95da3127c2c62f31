"""``transferlab compare`` and :mod:`transferlab.harness.significance`: paired tests over
matched cells, average ranks and the Nemenyi critical difference, checked against values
computed by hand or in closed form."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from transferlab.cli import cli
from transferlab.errors import ParamError
from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.significance import (
    NO_DIFFERENCE,
    average_ranks,
    compare,
    critical_difference,
    matched_results,
    not_different_groups,
    paired_test,
    rank_test,
)
from transferlab.harness.store import ResultsStore


def _add(store: ResultsStore, method: str, task: str, seed: int, accuracy: float | None, *,
         backbone: str = "bb", params: dict | None = None, backbone_params: dict | None = None,
         status: str = "ok", suite: str | None = None, metrics: dict | None = None,
         **cell: object) -> None:
    """Store one hand-made result (no model runs)."""
    if metrics is None:
        metrics = {"accuracy": accuracy} if status == "ok" else {}
    result = CellResult(
        Cell(backbone, task, method, params or {}, backbone_params or {}, seed, **cell),
        status, metrics=metrics, error=None if status == "ok" else "boom",
        environment={"device": "cpu"}, finished_at="2024-01-01")
    store.add(result, suite=suite)


def _t_two_sided_p_df2(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom, in closed form:
    CDF(t) = 1/2 + t / (2 sqrt(2 + t^2))."""
    return 1.0 - abs(t) / math.sqrt(2.0 + t * t)


# --- paired tests ------------------------------------------------------------------------


def test_paired_t_test_matches_the_hand_computed_statistic():
    """Bug caught: an unpaired (independent samples) t-test, or the difference taken A - B,
    which give another statistic and p-value than the paired test on B - A."""
    a, b = [0.80, 0.82, 0.85], [0.83, 0.86, 0.86]
    d = np.array(b) - np.array(a)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    found = paired_test(a, b)
    assert found.pairs == 3 and (found.a_wins, found.ties, found.b_wins) == (0, 0, 3)
    assert found.mean_difference == pytest.approx(0.02666667, abs=1e-8)
    assert found.t_statistic == pytest.approx(t, rel=1e-9) and t == pytest.approx(3.0237, 1e-4)
    assert found.t_p_value == pytest.approx(_t_two_sided_p_df2(t), rel=1e-9)
    assert found.ci95 == pytest.approx(4.302652729749464 * d.std(ddof=1) / math.sqrt(3))
    assert found.wilcoxon_p_value is None
    assert found.wilcoxon_note == "too few pairs (n=3; Wilcoxon needs >= 6)"


def test_wilcoxon_with_six_pairs_all_for_b_is_the_exact_two_sided_p():
    """Bug caught: the Wilcoxon test refused at 6 pairs (the smallest n that can reach
    p < 0.05: 2/64) or computed with the normal approximation instead of exactly."""
    a = [0.50, 0.60, 0.70, 0.55, 0.65, 0.75]
    b = [x + 0.01 * (i + 1) for i, x in enumerate(a)]
    found = paired_test(a, b)
    assert found.wilcoxon_note is None
    assert found.wilcoxon_statistic == 0.0
    assert found.wilcoxon_p_value == pytest.approx(2 / 64, abs=1e-12)
    assert found.b_wins == 6


def test_too_few_pairs_for_wilcoxon_is_said_not_computed():
    """Bug caught: a Wilcoxon p-value printed for 5 pairs (it can never be below 0.0625), or
    zero differences counted towards the 6 pairs the test needs."""
    five = paired_test([0.1, 0.2, 0.3, 0.4, 0.5], [0.2, 0.3, 0.5, 0.6, 0.8])
    assert five.wilcoxon_p_value is None
    assert five.wilcoxon_note == "too few pairs (n=5; Wilcoxon needs >= 6)"
    assert five.t_p_value is not None
    seven = paired_test([0.1] * 7, [0.2, 0.3, 0.4, 0.5, 0.6, 0.1, 0.1])
    assert seven.ties == 2 and seven.wilcoxon_p_value is None
    assert seven.wilcoxon_note == ("too few non-zero differences (5 of 7 pairs; Wilcoxon"
                                   " needs >= 6)")
    one = paired_test([0.5], [0.6])
    assert one.t_p_value is None and one.t_note == "too few pairs (n=1; a t-test needs >= 2)"


def test_identical_pairs_say_no_difference_instead_of_crashing_scipy():
    """Bug caught: scipy's wilcoxon raising (all differences zero) and ttest_rel returning
    NaN for identical sides, or float noise (0.3 - 0.1 vs 0.2) counted as a difference."""
    same = paired_test([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert same.t_note == same.wilcoxon_note == NO_DIFFERENCE
    assert same.t_p_value is same.wilcoxon_p_value is None
    assert (same.a_wins, same.ties, same.b_wins) == (0, 7, 0)
    assert same.mean_difference == 0.0
    noise = paired_test([0.3 - 0.1, 0.5], [0.2, 0.5])
    assert noise.ties == 2 and noise.t_note == NO_DIFFERENCE


def test_constant_nonzero_differences_have_no_t_test():
    """Bug caught: ttest_rel's t = inf, p = 0 for pairs that all differ by the same amount
    printed as overwhelming evidence."""
    found = paired_test([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert found.t_p_value is None and found.t_statistic is None
    assert found.t_note == "every pair differs by +0.1: no variance for a t-test"


def test_lower_is_better_counts_a_lower_value_as_a_win():
    """Bug caught: perplexity compared as if higher were better (the sign count inverted)."""
    found = paired_test([10.0, 12.0, 11.0], [9.0, 11.5, 11.0], lower_is_better=True)
    assert (found.a_wins, found.ties, found.b_wins) == (0, 1, 2)
    assert found.mean_difference == pytest.approx(-0.5)


# --- ranks and the critical difference ------------------------------------------------------


def test_average_ranks_share_tied_ranks():
    """Bug caught: ties broken by order (1 and 2) instead of sharing 1.5, or rank 1 given to
    the lowest accuracy."""
    means = {"t1": {"A": 0.9, "B": 0.8, "C": 0.8}, "t2": {"A": 0.7, "B": 0.7, "C": 0.9}}
    assert average_ranks(means) == {"A": 1.75, "B": 2.5, "C": 1.75}
    assert average_ranks(means, lower_is_better=True) == {"A": 2.25, "B": 1.5, "C": 2.25}


def test_critical_difference_for_three_sides_and_five_tasks():
    """Bug caught: a wrong q value or formula (k(k+1)/(6N) under the root, Demšar 2006)."""
    assert critical_difference(3, 5) == pytest.approx(2.343 * math.sqrt(3 * 4 / 30), abs=1e-12)
    assert critical_difference(3, 5) == pytest.approx(1.4819, abs=1e-4)
    assert critical_difference(2, 4) == pytest.approx(1.960 * math.sqrt(2 * 3 / 24))
    with pytest.raises(ValueError, match="2 to 10"):
        critical_difference(11, 5)


def test_rank_test_friedman_and_groups_match_the_closed_form():
    """Bug caught: the Friedman statistic or p-value off (chi2 with k - 1 = 2 degrees of
    freedom has p = exp(-chi2 / 2)), or groups joining sides further apart than CD."""
    means = {f"t{i}": {"A": 0.9, "B": 0.8, "C": 0.7} for i in range(4)}
    means["t4"] = {"A": 0.9, "B": 0.7, "C": 0.8}
    found = rank_test(means)
    assert found.average_ranks == pytest.approx({"A": 1.0, "B": 2.2, "C": 2.8})
    chi2 = 12 * 5 / (3 * 4) * (1.0**2 + 2.2**2 + 2.8**2 - 3 * 4**2 / 4)
    assert chi2 == pytest.approx(8.4)
    assert found.friedman_statistic == pytest.approx(chi2)
    assert found.friedman_p_value == pytest.approx(math.exp(-chi2 / 2))
    assert found.critical_difference == pytest.approx(1.4819, abs=1e-4)
    assert found.groups == [["A", "B"], ["B", "C"]]  # A and C are 1.8 > CD apart
    assert found.notes == []  # 5 tasks: no warning


def test_few_tasks_warn_and_two_sides_skip_friedman():
    """Bug caught: a rank comparison over 3 tasks presented without saying it cannot mean
    much, or a Friedman test run on two sides."""
    found = rank_test({"t1": {"A": 0.9, "B": 0.8}, "t2": {"A": 0.8, "B": 0.7},
                       "t3": {"A": 0.6, "B": 0.7}})
    assert found.average_ranks == pytest.approx({"A": 4 / 3, "B": 5 / 3})
    assert found.friedman_p_value is None and "3 sides or more" in found.friedman_note
    assert any("fewer than 5 tasks" in note and "not meaningful" in note
               for note in found.notes)
    assert found.groups == [["A", "B"]]


def test_not_different_groups_drop_groups_inside_another():
    """Bug caught: a group nested in a longer one drawn as a second thick line."""
    ranks = {"a": 1.0, "b": 1.5, "c": 2.0, "d": 4.0, "e": 4.2}
    assert not_different_groups(ranks, 1.2) == [["a", "b", "c"], ["d", "e"]]
    assert not_different_groups(ranks, 0.1) == []


# --- matching results ---------------------------------------------------------------------


def test_pairs_match_on_task_seed_and_backbone_latest_ok_row_per_cell(tmp_path):
    """Bug caught: pairs formed across backbones or seeds, a failed row or an older re-run
    of a cell used instead of the latest success."""
    store = ResultsStore(tmp_path / "r.sqlite")
    for backbone, base in (("bb1", 0.5), ("bb2", 0.7)):
        for seed in range(2):
            _add(store, "lp", "t", seed, base + 0.01 * seed, backbone=backbone,
                 params={"C": 1.0})
            _add(store, "ft", "t", seed, base + 0.1 + 0.01 * seed, backbone=backbone,
                 params={"lr": 0.1})
    _add(store, "ft", "t", 0, 0.99, backbone="bb1", params={"lr": 0.1})  # re-run: latest wins
    _add(store, "ft", "t", 1, None, backbone="bb1", params={"lr": 0.1}, status="error")
    _add(store, "ft", "t", 5, 0.99, backbone="bb1", params={"lr": 0.1})  # no lp partner
    found = matched_results(store.rows(status=None), "method", ["lp", "ft"])
    assert found["t"]["lp"] == {(0, "bb1"): 0.5, (1, "bb1"): 0.51, (0, "bb2"): 0.7,
                                (1, "bb2"): 0.71}
    assert found["t"]["ft"][(0, "bb1")] == 0.99 and found["t"]["ft"][(1, "bb1")] == 0.61
    report = compare(store.rows(), "method", ["lp", "ft"])
    (comparison,) = report.comparisons
    assert comparison.overall.pairs == 4  # seed 5 has no partner
    assert comparison.overall.mean_difference == pytest.approx((0.49 + 0.1 + 0.1 + 0.1) / 4)
    assert report.contexts == ["bb1", "bb2"]


def test_backbones_match_on_method_and_its_params(tmp_path):
    """Bug caught: backbone comparisons pairing results of different methods."""
    store = ResultsStore(tmp_path / "r.sqlite")
    for seed in range(3):
        _add(store, "lp", "t", seed, 0.6, backbone="x", backbone_params={"size": 8})
        _add(store, "lp", "t", seed, 0.7 + 0.01 * seed, backbone="y")
        _add(store, "ft", "t", seed, 0.1, backbone="y")  # no x partner with ft
    report = compare(store.rows(), "backbone", ["x", "y"])
    (comparison,) = report.comparisons
    assert [p.context for p in comparison.pairs] == ["lp"] * 3
    assert comparison.overall.mean_difference == pytest.approx(0.11)


def test_two_params_settings_of_one_side_on_a_task_is_an_error(tmp_path):
    """Bug caught: a learning-rate sweep of one method silently averaged into one side."""
    store = ResultsStore(tmp_path / "r.sqlite")
    for seed in range(2):
        _add(store, "lp", "t", seed, 0.5)
        _add(store, "ft", "t", seed, 0.6, params={"lr": 0.1})
        _add(store, "ft", "t", seed, 0.7, params={"lr": 0.01})
    with pytest.raises(ParamError, match=r"method ft has 2 parameter settings on task t"
                       r" \(ft\[lr=0.01\]; ft\[lr=0.1\]\).*--suite"):
        compare(store.rows(), "method", ["lp", "ft"])


def test_multi_task_rows_compare_per_task(tmp_path):
    """Bug caught: a multi-task row (one row, metrics 'task/accuracy') left out or compared
    as one task named 'a & b'."""
    store = ResultsStore(tmp_path / "r.sqlite")
    for seed in range(2):
        for task, value in (("a", 0.5), ("b", 0.6)):
            _add(store, "ft", task, seed, value + 0.01 * seed)
        _add(store, "ft", "a & b", seed, None, regime="multi-task", tasks=("a", "b"),
             metrics={"a/accuracy": 0.55 + 0.02 * seed, "b/accuracy": 0.6})
    report = compare(store.rows(), "method", ["ft", "ft (multi-task)"])
    (comparison,) = report.comparisons
    assert sorted(comparison.tasks) == ["a", "b"]
    assert comparison.tasks["a"].mean_difference == pytest.approx(0.055)
    b = comparison.tasks["b"]
    assert b.mean_difference == pytest.approx(-0.005)
    assert (b.a_wins, b.ties, b.b_wins) == (1, 1, 0)


# --- the command line -----------------------------------------------------------------------


def _five_task_db(path) -> str:
    """Three methods on five tasks, two seeds each: A best everywhere, B then C except on
    t4 (the case of test_rank_test_friedman_and_groups_match_the_closed_form)."""
    store = ResultsStore(path)
    for i in range(5):
        order = {"A": 0.9, "B": 0.8, "C": 0.7} if i < 4 else {"A": 0.9, "B": 0.7, "C": 0.8}
        for seed in range(2):
            for method, value in order.items():
                step = 0.01 if method == "A" else 0.005  # differences vary with the seed
                _add(store, method, f"t{i}", seed, value + step * seed * (i + 1), suite="s")
    return str(path)


def test_cli_markdown_end_to_end(runner, tmp_path):
    """Bug caught: the command not registered, or its Markdown missing the pooled row, the
    too-few-pairs note, the ranks or the CD."""
    db = _five_task_db(tmp_path / "r.sqlite")
    result = runner.invoke(cli, ["compare", "--db", db, "-m", "C", "-m", "A", "-m", "B"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Comparing methods on accuracy (higher is better): C, A, B." in out
    assert "### A = C vs B = A" in out and "### A = C vs B = B" in out
    d = np.array([0.2, 0.205])  # A - C on t0, seeds 0 and 1
    t = d.mean() / (d.std(ddof=1) / math.sqrt(2))  # 81.0: t-test p = 0.00786 (1 dof)
    assert (f"| t0 | 2 | 0.7025 | 0.9050 | +0.2025 ± 0.0318 | 0 / 0 / 2"
            f" | {2 * math.atan(1 / t) / math.pi:.4g} (t = {t:.3f})") in out
    assert "too few pairs (n=2; Wilcoxon needs >= 6)" in out
    # pooled: 10 pairs all for A, exact two-sided Wilcoxon p = 2 / 2**10
    assert "| **all tasks (pooled)** | 10 | 0.7275 | 0.9150 |" in out
    assert f"| {2 / 2**10:.4g} |" in out
    assert "Friedman test: chi2 = 8.400, p = 0.015 (3 sides, 5 tasks)." in out
    assert "| A | 1.000 |" in out and "| B | 2.200 |" in out and "| C | 2.800 |" in out
    assert "CD = 1.4818" in out and "Not significantly different: A, B; B, C." in out
    assert "not meaningful" not in out  # five tasks


def test_cli_json_and_task_filter(runner, tmp_path):
    """Bug caught: --task ignored, or JSON that is not valid (NaN) or lacks the p-values."""
    db = _five_task_db(tmp_path / "r.sqlite")
    result = runner.invoke(cli, ["compare", "--db", db, "-m", "A", "-m", "B", "-t", "t0",
                                 "-t", "t1", "--format", "json", "--suite", "s"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["sides"] == ["A", "B"] and data["dimension"] == "method"
    (comparison,) = data["comparisons"]
    assert sorted(comparison["tasks"]) == ["t0", "t1"]
    assert comparison["overall"]["pairs"] == 4
    assert comparison["overall"]["t_p_value"] is not None
    assert data["ranks"]["average_ranks"] == {"A": 1.0, "B": 2.0}
    assert any("not meaningful" in note for note in data["ranks"]["notes"])


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "A"], "compare needs two sides or more, got 1: pass -m A -m B"),
    (["-m", "A", "-b", "x"], "give methods (-m) or backbones (-b) to compare, not both"),
    (["-m", "A", "-m", "nope"], "no successful results of method 'nope'; methods with"
     " results: A, B, C (pass them with -m)"),
    (["-m", "A", "-m", "B", "--metric", "f1"], "has the metric 'f1'; metrics stored:"
     " accuracy (pass one with --metric)"),
    (["-m", "A", "-m", "B", "-t", "t9"], "no results of 'A', 'B' on task t9; tasks with"
     " results: t0, t1, t2, t3, t4"),
    (["-m", "A", "-m", "A"], "method A given twice"),
    (["-m", "A", "-m", "B", "--plot", "cd.pdf"], "must end in .png or .svg"),
])
def test_cli_bad_input_is_one_clear_error(runner, tmp_path, args, message):
    """Bug caught: a traceback (or a silent empty table) for bad sides, metric or task."""
    db = _five_task_db(tmp_path / "r.sqlite")
    result = runner.invoke(cli, ["compare", "--db", db, *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert message in line


def test_cli_no_matching_pairs_is_an_error(runner, tmp_path):
    """Bug caught: two sides on different tasks printing empty tables instead of saying
    there is nothing to compare."""
    store = ResultsStore(tmp_path / "r.sqlite")
    _add(store, "A", "t1", 0, 0.5)
    _add(store, "B", "t2", 0, 0.6)
    result = runner.invoke(cli, ["compare", "--db", str(tmp_path / "r.sqlite"),
                                 "-m", "A", "-m", "B"])
    assert result.exit_code != 0
    assert "Error: no matching pairs of A and B on accuracy" in result.output


def test_cli_plot_writes_a_png(runner, tmp_path):
    """Bug caught: --plot writing nothing, an empty file, or failing without a display."""
    db = _five_task_db(tmp_path / "r.sqlite")
    out = tmp_path / "plots" / "cd.png"
    result = runner.invoke(cli, ["compare", "--db", db, "-m", "A", "-m", "B", "-m", "C",
                                 "--plot", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_cli_plot_needs_two_tasks(runner, tmp_path):
    """Bug caught: --plot with one task failing inside matplotlib (or drawing nothing)."""
    db = _five_task_db(tmp_path / "r.sqlite")
    result = runner.invoke(cli, ["compare", "--db", db, "-m", "A", "-m", "B", "-t", "t0",
                                 "--plot", str(tmp_path / "cd.svg")])
    assert result.exit_code != 0 and "--plot draws ranks across tasks" in result.output
    assert not (tmp_path / "cd.svg").exists()


def test_compare_help_imports_neither_scipy_nor_matplotlib():
    """Bug caught: a module-level scipy or matplotlib import making every --help slow."""
    code = ("import sys; from click.testing import CliRunner; from transferlab.cli import cli;"
            " r = CliRunner().invoke(cli, ['compare', '--help']); assert r.exit_code == 0;"
            " print(sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
