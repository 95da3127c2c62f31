"""Significance of differences between methods or backbones (``transferlab compare``).

Two or more *sides* (methods, or backbones) are compared on the cells they share: a *pair* is
the two sides' results on the same task, seed and every other setting. Per task and over all
pairs this gives a paired t-test and a Wilcoxon signed-rank test; across several tasks, the
sides' average ranks with the Friedman test and the Nemenyi critical difference (Demšar 2006,
"Statistical comparisons of classifiers over multiple data sets", JMLR 7). Where there are too
few pairs or tasks for a test to mean much, the result says so instead of giving a p-value.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transferlab.api import LOWER_IS_BETTER
from transferlab.errors import IncompatibleError, ParamError
from transferlab.harness import plotting

__all__ = [
    "DIMENSIONS", "MIN_RANK_TASKS", "MIN_TTEST_PAIRS", "MIN_WILCOXON_PAIRS", "NEMENYI_Q05",
    "Comparison", "Pair", "PairedTest", "RankTest", "SignificanceReport", "average_ranks",
    "check_plot_path", "compare", "critical_difference", "matched_results",
    "not_different_groups", "paired_test", "plot_cd_diagram", "rank_test", "to_json",
    "to_markdown",
]

DIMENSIONS = ("method", "backbone")
MIN_TTEST_PAIRS = 2
# With n pairs all on one side the smallest two-sided exact Wilcoxon p-value is 2 / 2**n:
# 0.0625 for n = 5, 0.03125 for n = 6, so fewer than 6 pairs can never reach p < 0.05.
MIN_WILCOXON_PAIRS = 6
# Below about 5 data sets (tasks) average ranks and the Friedman/Nemenyi tests are too coarse
# to mean much (Demšar 2006 recommends many more); the ranks are still shown.
MIN_RANK_TASKS = 5
# Critical values q_0.05 of the Nemenyi test for k = 2..10 sides (Demšar 2006, Table 5a).
NEMENYI_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031,
               9: 3.102, 10: 3.164}
NO_DIFFERENCE = "no difference in any pair"


@dataclass(frozen=True)
class Pair:
    """The two sides' values on one matched cell: ``context`` names the settings held equal
    (the backbone when methods are compared, the method when backbones are)."""

    task: str
    seed: int
    context: str
    a: float
    b: float


@dataclass
class PairedTest:
    """Side A against side B over matched pairs: means, ``mean_difference`` = B - A, the sign
    count, and each test's p-value, or a ``*_note`` saying why there is none."""

    pairs: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci95: float | None
    a_wins: int
    ties: int
    b_wins: int
    t_statistic: float | None = None
    t_p_value: float | None = None
    t_note: str | None = None
    wilcoxon_statistic: float | None = None
    wilcoxon_p_value: float | None = None
    wilcoxon_note: str | None = None


@dataclass
class Comparison:
    """The first side (``a``) against one other side (``b``): a test per task and one over
    every pair pooled."""

    a: str
    b: str
    tasks: dict[str, PairedTest]
    overall: PairedTest
    pairs: list[Pair]


@dataclass
class RankTest:
    """Average ranks of the sides across tasks (1 = best), the Friedman test (3 or more
    sides), the Nemenyi critical difference and the groups of sides it cannot separate."""

    sides: list[str]
    tasks: list[str]
    average_ranks: dict[str, float]
    friedman_statistic: float | None = None
    friedman_p_value: float | None = None
    friedman_note: str | None = None
    critical_difference: float | None = None
    groups: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SignificanceReport:
    """Everything ``transferlab compare`` prints: which sides, on what metric, the pairwise
    comparisons of the first side with each other side, and the ranks when there are several
    tasks."""

    dimension: str
    metric: str
    lower_is_better: bool
    sides: list[str]
    contexts: list[str]
    comparisons: list[Comparison]
    ranks: RankTest | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN as None)."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def paired_test(a: Sequence[float], b: Sequence[float], *, lower_is_better: bool = False
                ) -> PairedTest:
    """Paired t-test (``scipy.stats.ttest_rel``, from 2 pairs) and Wilcoxon signed-rank test
    (``scipy.stats.wilcoxon``, from 6 non-zero differences) of ``b`` against ``a``, with a note
    instead of a p-value where a test cannot run or cannot mean much."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired_test needs equally many values on both sides, got"
                         f" {len(a)} and {len(b)}")
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(va)
    tolerance = 1e-12 * max(1.0, float(np.max(np.abs(np.concatenate([va, vb])))))
    diff = vb - va
    diff[np.abs(diff) <= tolerance] = 0.0  # float noise is no difference
    b_better = diff < 0 if lower_is_better else diff > 0
    ties = int(np.sum(diff == 0))
    result = PairedTest(
        pairs=n, mean_a=float(va.mean()), mean_b=float(vb.mean()),
        mean_difference=float(diff.mean()), ci95=None,
        a_wins=n - ties - int(np.sum(b_better)), ties=ties, b_wins=int(np.sum(b_better)))
    if ties == n:
        result.t_note = result.wilcoxon_note = NO_DIFFERENCE
        return result
    from scipy import stats

    if n < MIN_TTEST_PAIRS:
        result.t_note = f"too few pairs (n={n}; a t-test needs >= {MIN_TTEST_PAIRS})"
    elif float(np.max(np.abs(diff - diff.mean()))) <= tolerance:
        result.t_note = (f"every pair differs by {diff.mean():+.4g}: no variance for a"
                         " t-test")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t = stats.ttest_rel(vb, va)
        result.t_statistic, result.t_p_value = _finite(t.statistic), _finite(t.pvalue)
        sd = float(diff.std(ddof=1))
        result.ci95 = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    nonzero = n - ties
    if n < MIN_WILCOXON_PAIRS:
        result.wilcoxon_note = f"too few pairs (n={n}; Wilcoxon needs >= {MIN_WILCOXON_PAIRS})"
    elif nonzero < MIN_WILCOXON_PAIRS:
        result.wilcoxon_note = (f"too few non-zero differences ({nonzero} of {n} pairs;"
                                f" Wilcoxon needs >= {MIN_WILCOXON_PAIRS})")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            w = stats.wilcoxon(diff)  # zero differences are dropped ('wilcox')
        result.wilcoxon_statistic = _finite(w.statistic)
        result.wilcoxon_p_value = _finite(w.pvalue)
    return result


def average_ranks(means: Mapping[str, Mapping[str, float]], *, lower_is_better: bool = False
                  ) -> dict[str, float]:
    """The sides' mean rank over tasks: ``means[task][side]`` is ranked within each task
    (1 = best, ties share the average of their ranks), then averaged over tasks."""
    from scipy.stats import rankdata

    if not means:
        raise ValueError("average_ranks needs at least one task")
    sides = list(next(iter(means.values())))
    totals = dict.fromkeys(sides, 0.0)
    for task, by_side in means.items():
        if set(by_side) != set(sides):
            raise ValueError(f"task {task} does not have a value for every side")
        values = [round(float(by_side[s]), 12) for s in sides]  # float noise is a tie
        ranks = rankdata(values if lower_is_better else [-v for v in values], method="average")
        for side, rank in zip(sides, ranks, strict=True):
            totals[side] += float(rank)
    return {side: total / len(means) for side, total in totals.items()}


def critical_difference(k: int, n_tasks: int) -> float:
    """Nemenyi critical difference at alpha = 0.05, ``q * sqrt(k (k + 1) / (6 N))`` for ``k``
    sides over ``N`` tasks (Demšar 2006): two average ranks further apart differ
    significantly."""
    if k not in NEMENYI_Q05:
        raise ValueError(f"the Nemenyi table here covers 2 to 10 sides, not {k}")
    if n_tasks < 1:
        raise ValueError("the critical difference needs at least one task")
    return NEMENYI_Q05[k] * math.sqrt(k * (k + 1) / (6.0 * n_tasks))


def not_different_groups(ranks: Mapping[str, float], cd: float) -> list[list[str]]:
    """The maximal groups (two sides or more, best first) whose average ranks all lie less
    than ``cd`` apart: the thick lines of a critical-difference diagram."""
    ordered = sorted(ranks, key=lambda s: (ranks[s], s))
    groups: list[list[str]] = []
    last_end = -1
    for i, side in enumerate(ordered):
        j = i
        while j + 1 < len(ordered) and ranks[ordered[j + 1]] - ranks[side] < cd:
            j += 1
        if j > i and j > last_end:  # not inside the previous group
            groups.append(ordered[i:j + 1])
            last_end = j
    return groups


def rank_test(means: Mapping[str, Mapping[str, float]], *, lower_is_better: bool = False
              ) -> RankTest:
    """Average ranks of the sides over the tasks of ``means`` (``means[task][side]``), the
    Friedman test for 3 or more sides, and the Nemenyi critical difference with its groups."""
    import numpy as np

    tasks = list(means)
    sides = list(next(iter(means.values())))
    k, n = len(sides), len(tasks)
    ranks = average_ranks(means, lower_is_better=lower_is_better)
    result = RankTest(sides=sides, tasks=tasks, average_ranks=ranks)
    if n < MIN_RANK_TASKS:
        result.notes.append(
            f"only {n} task{'s' * (n != 1)}: with fewer than {MIN_RANK_TASKS} tasks the rank"
            " comparison and the critical-difference diagram are not meaningful (Demšar"
            " 2006); the ranks are shown for reference")
    if k < 3:
        result.friedman_note = "needs 3 sides or more (the paired tests compare two)"
    elif all(len({round(float(v), 12) for v in means[t].values()}) == 1 for t in tasks):
        result.friedman_note = "every task ties all sides"
    else:
        from scipy.stats import friedmanchisquare

        columns = [np.array([means[t][s] for t in tasks], dtype=float) for s in sides]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            found = friedmanchisquare(*columns)
        result.friedman_statistic = _finite(found.statistic)
        result.friedman_p_value = _finite(found.pvalue)
    if k in NEMENYI_Q05:
        result.critical_difference = critical_difference(k, n)
        result.groups = not_different_groups(ranks, result.critical_difference)
    else:
        result.notes.append(f"no Nemenyi critical value for {k} sides here (the table covers"
                            " 2 to 10)")
    return result


def _task_label(row: Mapping[str, Any]) -> str:
    source = row.get("source_task")
    return f"{source}->{row['task']}" if source else str(row["task"])


def _method_label(row: Mapping[str, Any]) -> str:
    """The method as the leaderboard names it: a continual cell's regime in parentheses (a
    multi-task row is already ``M (multi-task...)`` once expanded)."""
    method = str(row["method"])
    if str(row.get("regime") or "").startswith("continual"):
        method = f"{method} ({row['regime']})"
    return method


def _setting(name: str, params: Mapping[str, Any]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}[{inner}]" if inner else name


def _one_of(names: Iterable[str]) -> str:
    found = sorted(set(names))
    return ", ".join(found) if found else "none"


def matched_results(rows: Iterable[Mapping[str, Any]], dimension: str, sides: Sequence[str],
                    metric: str = "accuracy", tasks: Sequence[str] = ()
                    ) -> dict[str, dict[str, dict[tuple[int, str], float]]]:
    """The successful results of each side (latest per cell, multi-task rows split per task)
    as ``found[task][side][(seed, context)] = value``; a side must have one parameter setting
    per task, so the same key on two sides is a pair."""
    from transferlab.harness.continual_report import expand_multitask

    if dimension not in DIMENSIONS:
        raise ParamError(f"dimension must be one of {', '.join(DIMENSIONS)}, not {dimension!r}")
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["status"] == "ok":
            for each in expand_multitask(dict(row)):
                latest[each["cell_key"]] = each
    side_of = _method_label if dimension == "method" else (lambda r: str(r["backbone"]))
    names = {side_of(r) for r in latest.values()}
    for side in sides:
        if side not in names:
            flag = "-m" if dimension == "method" else "-b"
            raise ParamError(f"no successful results of {dimension} {side!r}; {dimension}s"
                             f" with results: {_one_of(names)} (pass them with {flag})")
    kept = [r for r in latest.values() if side_of(r) in sides]
    labels = {_task_label(r) for r in kept}
    unknown = [t for t in tasks if t not in labels]
    if unknown:
        raise ParamError(f"no results of {', '.join(map(repr, sides))} on task"
                         f" {', '.join(unknown)}; tasks with results: {_one_of(labels)}")
    if tasks:
        kept = [r for r in kept if _task_label(r) in tasks]
    if not any(metric in r["metrics"] for r in kept):
        stored = {m for r in kept for m in r["metrics"]}
        raise ParamError(f"no result of {', '.join(map(repr, sides))} has the metric"
                         f" {metric!r}; metrics stored: {_one_of(stored)} (pass one with"
                         " --metric)")
    settings: dict[tuple[str, str], set[str]] = defaultdict(set)
    entries = []
    for row in kept:
        if metric not in row["metrics"]:
            continue
        side, task = side_of(row), _task_label(row)
        if dimension == "method":
            own = _setting(side, row["params"])
            context = _setting(str(row["backbone"]), row["backbone_params"])
        else:
            own = _setting(side, row["backbone_params"])
            context = _setting(_method_label(row), row["params"])
        settings[(task, side)].add(own)
        entries.append((task, side, own, (int(row["seed"]), context),
                        float(row["metrics"][metric])))
    for (task, side), seen in sorted(settings.items()):
        if len(seen) > 1:
            raise ParamError(f"{dimension} {side} has {len(seen)} parameter settings on task"
                             f" {task} ({'; '.join(sorted(seen))}); compare one setting per"
                             " side: keep one with --suite or --task")
    found: dict[str, dict[str, dict[tuple[int, str], float]]] = defaultdict(
        lambda: {s: {} for s in sides})
    for task, side, own, key, value in entries:
        if key in found[task][side]:  # e.g. two multi-task cells over different task lists
            raise ParamError(f"two results of {own} on task {task} (seed {key[0]}, {key[1]})"
                             " would be one pair; keep one with --suite")
        found[task][side][key] = value
    return {task: found[task] for task in sorted(found)}


def compare(rows: Iterable[Mapping[str, Any]], dimension: str, sides: Sequence[str],
            metric: str = "accuracy", tasks: Sequence[str] = ()) -> SignificanceReport:
    """Compare the first of ``sides`` with each other side on their matched pairs (per task
    and pooled), and rank all sides across tasks when there are two tasks or more."""
    sides = list(sides)
    if len(sides) < 2:
        raise ParamError(f"compare needs two {dimension}s or more, got {len(sides)}")
    repeated = sorted({s for s in sides if sides.count(s) > 1})
    if repeated:
        raise ParamError(f"{dimension} {', '.join(repeated)} given twice; name each side once")
    lower = metric in LOWER_IS_BETTER
    found = matched_results(rows, dimension, sides, metric, tasks)
    first = sides[0]
    comparisons = []
    notes = []
    for other in sides[1:]:
        pairs = [Pair(task, seed, context, by_side[first][(seed, context)], value)
                 for task, by_side in found.items()
                 for (seed, context), value in sorted(by_side[other].items())
                 if (seed, context) in by_side[first]]
        if not pairs:
            raise IncompatibleError(
                f"no matching pairs of {first} and {other} on {metric}: no task, seed and"
                f" {'backbone' if dimension == 'method' else 'method'} setting has results of"
                " both; run the missing cells or pick other sides")
        per_task = {}
        for task in sorted({p.task for p in pairs}):
            mine = [p for p in pairs if p.task == task]
            per_task[task] = paired_test([p.a for p in mine], [p.b for p in mine],
                                         lower_is_better=lower)
        overall = paired_test([p.a for p in pairs], [p.b for p in pairs],
                              lower_is_better=lower)
        comparisons.append(Comparison(first, other, per_task, overall, pairs))
        unpaired = [task for task in found if task not in per_task]
        if unpaired:
            notes.append(f"no pairs of {first} and {other} on {', '.join(unpaired)}")
    means: dict[str, dict[str, float]] = {}
    for task, by_side in found.items():
        common = set.intersection(*(set(by_side[s]) for s in sides))
        if common:
            means[task] = {s: sum(by_side[s][key] for key in common) / len(common)
                           for s in sides}
        else:
            notes.append(f"task {task} has no cell with results of every side: left out of"
                         " the ranks")
    ranks = rank_test(means, lower_is_better=lower) if len(means) >= 2 else None
    if ranks is None:
        notes.append("ranks across tasks need results of every side on two tasks or more;"
                     f" {len(means)} task{'s' * (len(means) != 1)} here")
    contexts = sorted({p.context for c in comparisons for p in c.pairs})
    return SignificanceReport(dimension, metric, lower, sides, contexts, comparisons, ranks,
                              notes)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float | None, note: str | None) -> str:
    if value is None:
        return note or "-"
    return f"{value:.4g}"


def _test_row(label: str, test: PairedTest) -> str:
    ci = "" if test.ci95 is None else f" ± {test.ci95:.4f}"
    t_stat = "" if test.t_statistic is None else f" (t = {test.t_statistic:.3f})"
    return (f"| {label} | {test.pairs} | {test.mean_a:.4f} | {test.mean_b:.4f}"
            f" | {test.mean_difference:+.4f}{ci} | {test.a_wins} / {test.ties} / {test.b_wins}"
            f" | {_p(test.t_p_value, test.t_note)}{t_stat}"
            f" | {_p(test.wilcoxon_p_value, test.wilcoxon_note)} |")


def to_markdown(report: SignificanceReport) -> str:
    """The comparison as Markdown: one table per pair of sides, then the ranks."""
    better = "lower" if report.lower_is_better else "higher"
    held = "backbone" if report.dimension == "method" else "method"
    out = [f"Comparing {report.dimension}s on {report.metric} ({better} is better):"
           f" {', '.join(report.sides)}.",
           f"A pair is the same task, seed and {held} (with its parameter values):"
           f" {', '.join(report.contexts)}. Differences are B - A; p-values are two-sided.",
           ""]
    for comparison in report.comparisons:
        out += [
            f"### A = {comparison.a} vs B = {comparison.b}",
            "",
            "| task | pairs | mean A | mean B | B - A (95% CI) | A wins / ties / B wins"
            " | paired t-test p | Wilcoxon p |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        out += [_test_row(task, test) for task, test in comparison.tasks.items()]
        if len(comparison.tasks) > 1:
            out.append(_test_row("**all tasks (pooled)**", comparison.overall))
        out.append("")
    ranks = report.ranks
    if ranks is not None:
        out += [f"### Average ranks over {len(ranks.tasks)} tasks (1 = best)", "",
                "| side | average rank |", "|---|---:|"]
        for side in sorted(ranks.average_ranks, key=lambda s: (ranks.average_ranks[s], s)):
            out.append(f"| {side} | {ranks.average_ranks[side]:.3f} |")
        out.append("")
        if ranks.friedman_p_value is not None:
            out.append(f"Friedman test: chi2 = {_num(ranks.friedman_statistic, 3)},"
                       f" p = {ranks.friedman_p_value:.4g}"
                       f" ({len(ranks.sides)} sides, {len(ranks.tasks)} tasks).")
        else:
            out.append(f"Friedman test: {ranks.friedman_note}.")
        if ranks.critical_difference is not None:
            out.append(f"Nemenyi critical difference (alpha = 0.05): CD ="
                       f" {ranks.critical_difference:.4f}; average ranks closer than CD are"
                       " not significantly different.")
            groups = "; ".join(", ".join(g) for g in ranks.groups) or "none"
            out.append(f"Not significantly different: {groups}.")
        out += [f"Note: {note}." for note in ranks.notes]
        out.append("")
    out += [f"Note: {note}." for note in report.notes]
    return "\n".join(out).rstrip() + "\n"


def to_json(report: SignificanceReport) -> str:
    """The comparison as JSON (:meth:`SignificanceReport.to_dict`)."""
    return json.dumps(report.to_dict(), indent=2)


def check_plot_path(path: str | Path) -> Path:
    """Refuse, before any work, a plot file not ending in .png or .svg, or a missing
    matplotlib (:func:`transferlab.harness.plotting.check_plot_path`)."""
    return plotting.check_plot_path(path, "the critical-difference diagram")


def plot_cd_diagram(ranks: RankTest, path: str | Path) -> Path:
    """Write the critical-difference diagram of ``ranks`` to ``path`` (PNG or SVG by suffix):
    an axis of ranks 1..k, each side at its average rank, a bar as long as the critical
    difference, and a thick line under each group of sides it cannot separate."""
    path = check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(ranks.sides)
    order = sorted(ranks.average_ranks, key=lambda s: (ranks.average_ranks[s], s))
    half = math.ceil(k / 2)
    left, right = order[:half], order[half:]  # best half labelled on the left
    rows = max(len(left), len(right))
    step, clique_step = 0.35, 0.12
    cliques_bottom = -0.15 - clique_step * len(ranks.groups)
    fig, ax = plt.subplots(figsize=(7.0, 1.6 + 0.32 * (rows + len(ranks.groups))))
    ax.plot([1, k], [0, 0], color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, 0.1], color="black", linewidth=1)
        ax.text(tick, 0.16, str(tick), ha="center", va="bottom", fontsize=9)
    for index, side in enumerate(left):
        rank, y = ranks.average_ranks[side], cliques_bottom - step * (index + 1)
        ax.plot([rank, rank, 0.6], [0, y, y], color="black", linewidth=0.8)
        ax.text(0.55, y, f"{side} ({rank:.2f})", ha="right", va="center", fontsize=9)
    for index, side in enumerate(reversed(right)):  # worst at the top on the right
        rank, y = ranks.average_ranks[side], cliques_bottom - step * (index + 1)
        ax.plot([rank, rank, k + 0.4], [0, y, y], color="black", linewidth=0.8)
        ax.text(k + 0.45, y, f"({rank:.2f}) {side}", ha="left", va="center", fontsize=9)
    for index, group in enumerate(ranks.groups):
        y = -0.15 - clique_step * index
        low, high = (ranks.average_ranks[group[0]], ranks.average_ranks[group[-1]])
        ax.plot([low - 0.03, high + 0.03], [y, y], color="black", linewidth=3.5,
                solid_capstyle="butt")
    top = 0.55
    if ranks.critical_difference is not None:
        cd = ranks.critical_difference
        ax.plot([1, 1 + cd], [top, top], color="black", linewidth=1.2)
        for x in (1, 1 + cd):
            ax.plot([x, x], [top - 0.06, top + 0.06], color="black", linewidth=1.2)
        ax.text(1 + cd / 2, top + 0.1, f"CD = {cd:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(cliques_bottom - step * (rows + 0.7), top + 0.45)
    ax.axis("off")
    ax.set_title(f"Average ranks over {len(ranks.tasks)} tasks (1 = best)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower().lstrip("."), bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path
