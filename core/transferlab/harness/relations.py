"""Task-relation maps: which tasks help which, when a backbone fine-tuned on one task is
transferred to another (``transferlab relate``).

For tasks T1..Tn, a backbone B, a fine-tuning method M and transfer methods X1..Xk:

1. **Sources.** B is fine-tuned with M on each task, one ordinary cell per task and seed, and
   the fine-tuned weights are saved (:meth:`transferlab.api.Backbone.save`, backbone only, no
   task head) as a checkpoint that loads as ``B@PATH``. The checkpoint's file name holds the
   fine-tuning cell's key, so other settings never reuse it; an existing one is reused.
2. **Transfers.** Each fine-tuned backbone goes to every other task, and B itself to every
   task, with each Xj: ordinary cells run through :func:`~transferlab.harness.suite.run_suite`,
   so they are stored, share the feature cache and are skipped when already finished.
3. **Gains.** ``gain[s][t] = accuracy(B fine-tuned on s, Xj on t) - accuracy(B, Xj on t)``,
   the mean over seeds of the paired differences (same seed on both sides), with a 95%
   t-interval when there are several seeds. The map is stored in the results file
   (:meth:`~transferlab.harness.store.ResultsStore.add_relation`) next to its cells.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from transferlab.api import Backbone, Predictor
from transferlab.errors import CheckpointError, IncompatibleError, ParamError
from transferlab.harness import plotting
from transferlab.harness.cell import Cell, CellResult, run_cell, validate_cell
from transferlab.harness.intervals import t_critical
from transferlab.precision import keyed_backbone_params
from transferlab.registry import Registries
from transferlab.settings import parse_setting

__all__ = [
    "DEFAULT_TRANSFER_METHODS", "METRIC", "SUITE", "Gain", "RelationMap", "RelationPlan",
    "SourceFit", "Transfer", "check_plot_path", "fit_sources", "plan_relations",
    "plot_relation_map", "relation_figure", "relation_map", "run_relations", "transfer_gains",
]

SUITE = "relate"  # the suite name stored with every cell of a relation map
METRIC = "accuracy"
DEFAULT_TRANSFER_METHODS = ("linear-probe", "finetune[max_steps=50]")


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFit:
    """Fine-tuning the backbone on one task with one seed, and where its weights go."""

    task: str
    seed: int
    cell: Cell
    checkpoint: Path
    backbone: str  # the fine-tuned backbone's name, ``BASE@CHECKPOINT``


@dataclass(frozen=True)
class Transfer:
    """One transfer cell: ``source`` None is the original backbone (the baseline)."""

    source: str | None
    target: str
    method: str  # the transfer method as a setting, e.g. finetune[max_steps=50]
    seed: int
    cell: Cell


@dataclass(frozen=True)
class RelationPlan:
    """Every cell of a relation map, validated; nothing loaded or run yet."""

    backbone: str
    backbone_params: Mapping[str, Any]
    method: str
    params: Mapping[str, Any]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    transfer_methods: tuple[str, ...]
    fits: tuple[SourceFit, ...]
    transfers: tuple[Transfer, ...]


def _slug(text: str) -> str:
    """A file-name-safe spelling: ``timm:efficientnet_lite0`` -> ``timm-efficientnet_lite0``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.")[:80] or "x"


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def plan_relations(
    backbone: str, tasks: Sequence[str], registries: Registries, *, method: str = "finetune",
    params: Mapping[str, Any] | None = None, backbone_params: Mapping[str, Any] | None = None,
    transfer_methods: Sequence[str] | None = None, seeds: Sequence[int] = (0,),
    out: str | Path = "relate",
) -> RelationPlan:
    """Resolve and validate every cell of the map (names, parameter values, views), so a bad
    input fails before any training. ``backbone`` may carry parameter values as a setting
    (``timm:efficientnet_lite0[img_size=64]``); ``backbone_params`` add to them.

    Checkpoints go to ``out/<backbone>/<task>-s<seed>-<key>.safetensors``; their paths are
    part of the transfer cells' names, so run again from the same folder with the same
    ``out`` to resume. ``transfer_methods`` default to :data:`DEFAULT_TRANSFER_METHODS`."""
    from transferlab.views import create_task, validate_task

    setting = parse_setting(backbone, "backbone")
    bparams = {**setting.params, **(backbone_params or {})}
    canonical = [validate_task(t, registries) for t in tasks]
    repeated = sorted({t for t in canonical if canonical.count(t) > 1})
    if repeated:
        raise ParamError(f"task {repeated[0]!r} is given twice; name each task once with -t")
    if len(canonical) < 2:
        raise ParamError(f"a relation map needs at least two tasks, got {len(canonical)}"
                         f" ({', '.join(canonical) or 'none'}); name more with -t A -t B ...")
    if not seeds:
        raise ParamError("a relation map needs at least one seed; pass --seed 0")
    seeds = _unique(int(s) for s in seeds)
    modalities = {t: create_task(t, registries).modality for t in canonical}  # data stays lazy
    if len(set(modalities.values())) > 1:
        raise IncompatibleError(
            "the tasks of a relation map must share one modality, got "
            + ", ".join(f"{t} ({m})" for t, m in modalities.items())
            + "; relate image tasks with image tasks and text tasks with text tasks")
    entry = registries.methods.get(method)
    if entry.info.get("family") in ("feature", "baseline"):
        raise IncompatibleError(
            f"method {method!r} (family {entry.info['family']}) does not train the backbone's"
            " weights, so its fine-tuned backbone would be the original; pass -m finetune"
            " (or another parameter method that trains the backbone's own weights)")
    base = setting.name.split("@", 1)[0]
    folder = Path(out) / _slug(setting.name)
    fits = []
    for seed in seeds:
        for task in canonical:
            cell = validate_cell(Cell(setting.name, task, method, dict(params or {}), bparams,
                                      seed), registries)
            path = folder / f"{_slug(task)}-s{seed}-{cell.key[:8]}.safetensors"
            fits.append(SourceFit(task, seed, cell, path, f"{base}@{path.as_posix()}"))
    methods = _unique(parse_setting(m, "transfer method").canonical()
                      for m in (DEFAULT_TRANSFER_METHODS if transfer_methods is None
                                else transfer_methods))
    if not methods:
        raise ParamError("a relation map needs a transfer method; pass --transfer-method"
                         " linear-probe")
    transfers = []
    for label in methods:
        how = parse_setting(label, "transfer method")
        for seed in seeds:
            for target in canonical:
                sources: list[tuple[str | None, str]] = [(None, setting.name)]
                sources += [(f.task, f.backbone) for f in fits
                            if f.seed == seed and f.task != target]
                for source, name in sources:
                    # checked as the base backbone: the fine-tuned checkpoint is written by
                    # the fit (run_relations validates the cell again once it exists)
                    cell = validate_cell(Cell(setting.name, target, how.name, dict(how.params),
                                              bparams, seed), registries)
                    cell = replace(cell, backbone=name)
                    transfers.append(Transfer(source, target, label, seed, cell))
    first = fits[0].cell
    return RelationPlan(setting.name, keyed_backbone_params(first.backbone_params), method,
                        first.params, tuple(canonical), tuple(seeds), tuple(methods), tuple(fits),
                        tuple(transfers))


# --- running -------------------------------------------------------------------------------


def _checkpoint_ok(path: Path) -> bool:
    """Whether a finished checkpoint is there (saves are atomic, so a file is complete)."""
    from transferlab.checkpoint import read_metadata

    if not path.is_file():
        return False
    try:
        read_metadata(path)
    except CheckpointError:
        return False
    return True


def _saver(fit: SourceFit, registries: Registries) -> Callable[[Backbone, Predictor], None]:
    """``after_fit`` for a source cell: save the fine-tuned backbone and check that
    ``BASE@PATH`` restores exactly these weights (a family that ignores ``@PATH``, or a method
    that added adapters to the backbone, fails here rather than in every transfer)."""

    def after_fit(backbone: Backbone, predictor: Predictor) -> None:
        import torch

        path = backbone.save(fit.checkpoint)
        try:
            restored = registries.backbones.create(fit.backbone, fit.cell.backbone_params)
            saved = backbone.module.state_dict() if backbone.module is not None else {}
            loaded = restored.module.state_dict() if restored.module is not None else {}
            same = saved.keys() == loaded.keys() and all(
                torch.equal(saved[k].detach().cpu(), loaded[k].detach().cpu()) for k in saved)
        except Exception as exc:
            path.unlink(missing_ok=True)
            raise CheckpointError(
                f"the backbone fine-tuned on {fit.task!r} does not reload as {fit.backbone}"
                f" ({type(exc).__name__}: {exc}); relate needs a method that trains the"
                " backbone's own weights (e.g. finetune, not lora)") from None
        if not same:
            path.unlink(missing_ok=True)
            raise CheckpointError(
                f"{fit.backbone} does not restore the weights saved after fine-tuning on"
                f" {fit.task!r}; relate needs a backbone family that loads @PATH checkpoints"
                " (timm:, sbert:, hf:, gpt:, bert:)")

    return after_fit


def fit_sources(
    plan: RelationPlan, registries: Registries, store: Any, *, device: str | None = None,
    progress: bool = True, feature_store: Any = None,
    note: Callable[[str], None] = lambda message: None,
) -> dict[tuple[str, int], CellResult | None]:
    """Fine-tune the backbone on every task and seed whose checkpoint is missing, store each
    cell's result in ``store`` (suite ``relate``) and save its checkpoint; reuse existing
    checkpoints. Returns ``(task, seed) -> result`` (None where a checkpoint was reused)."""
    outcome: dict[tuple[str, int], CellResult | None] = {}
    for number, fit in enumerate(plan.fits, 1):
        where = f"[{number}/{len(plan.fits)}] {plan.method} on {fit.task} (seed {fit.seed})"
        if _checkpoint_ok(fit.checkpoint):
            note(f"relate: {where}: reusing {fit.checkpoint}")
            outcome[(fit.task, fit.seed)] = None
            continue
        note(f"relate: {where}: fine-tuning {plan.backbone}")
        result = run_cell(fit.cell, registries, device=device, progress=progress,
                          feature_store=feature_store, after_fit=_saver(fit, registries))
        store.add(result, suite=SUITE)
        outcome[(fit.task, fit.seed)] = result
        if result.status == "ok":
            note(f"relate: {where}: {METRIC} {result.metrics.get(METRIC, math.nan):.4f},"
                 f" saved {fit.checkpoint}")
        else:
            note(f"relate: {where}: FAILED: {result.error}")
    return outcome


def run_relations(
    plan: RelationPlan, registries: Registries, store: Any, *, device: str | None = None,
    progress: bool = True, note: Callable[[str], None] = lambda message: None,
) -> tuple[RelationMap, list[str]]:
    """Fine-tune the sources, run every transfer cell not yet finished, compute the map and
    append it to ``store``. Returns the map and one line per failed cell."""
    from transferlab.harness.executors import LocalExecutor
    from transferlab.harness.features import FeatureStore
    from transferlab.harness.suite import Suite, run_suite

    features = FeatureStore()
    fitted = fit_sources(plan, registries, store, device=device, progress=progress,
                         feature_store=features, note=note)
    failures = [f"fine-tuning on {task} (seed {seed}): {result.error}"
                for (task, seed), result in fitted.items()
                if result is not None and result.status != "ok"]
    ready = {f.backbone for f in plan.fits if _checkpoint_ok(f.checkpoint)}
    cells = [t.cell for t in plan.transfers if t.source is None or t.cell.backbone in ready]
    skipped = len(plan.transfers) - len(cells)
    if skipped:
        note(f"relate: {skipped} transfer cells skipped: their source was not fine-tuned")

    def run_one(cell: Cell) -> CellResult:
        return run_cell(cell, registries, device=device, progress=progress,
                        feature_store=features)

    done = failed = 0
    for result, cell in run_suite(Suite(SUITE, cells), registries, store, LocalExecutor(),
                                  run_one, progress=progress):
        if result is None:
            done += 1
        elif result.status != "ok":
            failed += 1
            failures.append(f"{cell.label()} seed={cell.seed}: {result.error}")
    note(f"relate: {len(cells)} transfer cells, {done} already finished, {failed} failed")
    found = relation_map(plan, store.rows(suite=None, status="ok"))
    store.add_relation(found.to_dict())
    return found, failures


# --- the map -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gain:
    """The effect of fine-tuning on ``source`` on transfer to ``target``.

    ``gain`` is the mean over ``seeds`` of the paired differences, ``ci95`` the half-width
    of its 95% t-interval (None with one seed), ``accuracy`` and ``baseline`` the means of the
    two sides over the same seeds; all None when no seed has both."""

    source: str
    target: str
    gain: float | None
    ci95: float | None
    seeds: int
    accuracy: float | None
    baseline: float | None

    @property
    def verdict(self) -> str:
        """``helps`` / ``hurts``: the interval lies above / below 0 (with one seed, the sign
        alone); ``unclear``: the interval covers 0; ``missing``: no paired result."""
        if self.gain is None:
            return "missing"
        low = self.gain - (self.ci95 or 0.0)
        high = self.gain + (self.ci95 or 0.0)
        if low > 0:
            return "helps"
        if high < 0:
            return "hurts"
        return "unclear" if self.ci95 else "no change"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "gain": self.gain,
                "ci95": self.ci95, "seeds": self.seeds, "accuracy": self.accuracy,
                "baseline": self.baseline, "verdict": self.verdict}


def transfer_gains(
    accuracy: Mapping[tuple[str | None, str, int], float], tasks: Sequence[str],
    seeds: Sequence[int],
) -> list[Gain]:
    """Gains of every ordered pair of distinct tasks, sources outermost.

    ``accuracy[(source, target, seed)]`` is the measured accuracy on ``target`` of the
    backbone fine-tuned on ``source`` (``None``: the original backbone) and transferred with
    ``seed``; missing keys are cells without a result. Only seeds with both sides count."""
    gains = []
    for source in tasks:
        for target in tasks:
            if source == target:
                continue
            pairs = [(accuracy[(source, target, s)], accuracy[(None, target, s)])
                     for s in seeds
                     if (source, target, s) in accuracy and (None, target, s) in accuracy]
            if not pairs:
                gains.append(Gain(source, target, None, None, 0, None, None))
                continue
            diffs = [a - b for a, b in pairs]
            n = len(diffs)
            mean = sum(diffs) / n
            ci = None
            if n > 1:
                std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
                ci = t_critical(n - 1) * std / math.sqrt(n)
            gains.append(Gain(source, target, mean, ci, n, sum(a for a, _ in pairs) / n,
                              sum(b for _, b in pairs) / n))
    return gains


@dataclass
class RelationMap:
    """A computed map: per transfer method, the gain of every (source, target) pair, the
    original backbone's accuracy per target, and each source's own fine-tuned accuracy."""

    backbone: str
    backbone_params: dict[str, Any]
    method: str
    params: dict[str, Any]
    tasks: list[str]
    seeds: list[int]
    fine_tuned: dict[str, float | None] = field(default_factory=dict)
    checkpoints: dict[str, dict[int, str]] = field(default_factory=dict)
    baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)
    gains: dict[str, list[Gain]] = field(default_factory=dict)
    metric: str = METRIC

    def matrix(self, transfer_method: str) -> list[list[float | None]]:
        """``matrix[i][j]``: gain of fine-tuning on ``tasks[i]`` for ``tasks[j]`` (None on
        the diagonal and where results are missing)."""
        found = {(g.source, g.target): g.gain for g in self.gains[transfer_method]}
        return [[found.get((s, t)) for t in self.tasks] for s in self.tasks]

    def by_verdict(self, verdict: str) -> list[tuple[str, Gain]]:
        """(transfer method, gain) pairs with this verdict, largest effect first."""
        found = [(m, g) for m, gains in self.gains.items() for g in gains
                 if g.verdict == verdict]
        return sorted(found, key=lambda pair: -abs(pair[1].gain or 0.0))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``transferlab relate --json`` and the ``relations`` table):
        ``transfers[i].gain[source][target]``, null on the diagonal and where missing."""
        return {
            "backbone": self.backbone, "backbone_params": self.backbone_params,
            "method": self.method, "params": self.params, "tasks": self.tasks,
            "seeds": self.seeds, "metric": self.metric, "fine_tuned": self.fine_tuned,
            "checkpoints": {t: {str(s): p for s, p in by.items()}
                            for t, by in self.checkpoints.items()},
            "transfers": [
                {"transfer_method": label, "baseline": self.baselines[label],
                 "gain": {s: dict(zip(self.tasks, row, strict=True))
                          for s, row in zip(self.tasks, self.matrix(label), strict=True)},
                 "pairs": [g.to_dict() for g in self.gains[label]]}
                for label in self.gains
            ],
        }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def relation_map(plan: RelationPlan, rows: Iterable[Mapping[str, Any]]) -> RelationMap:
    """The map from stored result rows (the latest successful row per cell key, as the
    leaderboard takes them); cells without one count as missing."""
    latest: dict[str, float] = {}
    for row in rows:
        if row["status"] == "ok" and METRIC in row["metrics"]:
            latest[row["cell_key"]] = float(row["metrics"][METRIC])
    found = RelationMap(plan.backbone, dict(plan.backbone_params), plan.method,
                        dict(plan.params), list(plan.tasks), list(plan.seeds))
    for task in plan.tasks:
        fits = [f for f in plan.fits if f.task == task]
        found.fine_tuned[task] = _mean([latest[f.cell.key] for f in fits if f.cell.key in latest])
        found.checkpoints[task] = {f.seed: f.checkpoint.as_posix() for f in fits}
    for label in plan.transfer_methods:
        accuracy = {(t.source, t.target, t.seed): latest[t.cell.key] for t in plan.transfers
                    if t.method == label and t.cell.key in latest}
        found.gains[label] = transfer_gains(accuracy, plan.tasks, plan.seeds)
        found.baselines[label] = {
            target: _mean([v for (s, t, _), v in accuracy.items() if s is None and t == target])
            for target in plan.tasks}
    return found


# --- the heat map --------------------------------------------------------------------------


def check_plot_path(path: str | Path) -> Path:
    """Refuse, before any work, a plot file not ending in .png or .svg, or a missing
    matplotlib (:func:`transferlab.harness.plotting.check_plot_path`)."""
    return plotting.check_plot_path(path, "the heat map")


def plot_relation_map(found: RelationMap, path: str | Path) -> Path:
    """Write :func:`relation_figure` of ``found`` to ``path``, PNG or SVG by its suffix."""
    path = check_plot_path(path)
    fig = relation_figure(found)  # selects the non-interactive backend before pyplot loads
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower().lstrip("."), bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def relation_figure(found: RelationMap) -> Any:
    """One heat map per transfer method (rows: fine-tuned on, columns: transferred to; a
    diverging colour map centred at 0, each cell annotated with its gain), as a matplotlib
    figure: the caller saves or shows it and closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(found.gains)
    n = len(found.tasks)
    values = {m: np.array([[np.nan if v is None else v for v in row]
                           for row in found.matrix(m)], dtype=float) for m in labels}
    finite = [abs(v) for m in labels for v in values[m].ravel() if np.isfinite(v)]
    limit = max(finite, default=0.0) or 0.01  # symmetric limits: 0 is the middle colour
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#dddddd")  # blue helps, red hurts
    side = 1.0 + 0.9 * n
    fig, axes = plt.subplots(1, len(labels), figsize=(side * len(labels) + 3.0, side + 1.5),
                             squeeze=False, layout="constrained")
    image = None
    for index, (ax, label) in enumerate(zip(axes[0], labels, strict=True)):
        grid = values[label]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-limit, vmax=limit)
        for i in range(n):
            for j in range(n):
                if i == j:
                    text, colour = "-", "#777777"
                elif np.isfinite(grid[i, j]):
                    text = f"{grid[i, j]:+.3f}"
                    colour = "white" if abs(grid[i, j]) > 0.6 * limit else "black"
                else:
                    text, colour = "n/a", "#777777"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
        ax.set_xticks(range(n), found.tasks, rotation=35, ha="right")
        ax.set_xlabel("transferred to")
        ax.set_yticks(range(n), found.tasks if index == 0 else [""] * n)
        if index == 0:  # the rows are the same tasks in every panel
            ax.set_ylabel("fine-tuned on")
        ax.set_title(label, fontsize=10)
    fig.suptitle(f"{found.metric} gain over {found.backbone}"
                 f" ({found.method}, {len(found.seeds)} seed{'s' * (len(found.seeds) > 1)})",
                 fontsize=11)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8,
                     label=f"{found.metric} gain (blue helps, red hurts)")
    return fig
