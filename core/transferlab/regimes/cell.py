"""Running a cell in a multi-task or continual regime (``Cell.regime``), for
:func:`transferlab.harness.cell.run_cell`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.api import Backbone, RunContext
from transferlab.errors import IncompatibleError
from transferlab.registry import Registries
from transferlab.views import create_task

__all__ = ["RegimeOutcome", "check_regime_method", "run_regime"]


@dataclass
class RegimeOutcome:
    """What a regime cell stores: metrics, extra fields, weight counts and timings."""

    metrics: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    counts: tuple[int, int] = (0, 0)
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0


def check_regime_method(method: Any, regime: str) -> None:
    """Regimes train one model with several heads, so the method must be a gradient-based
    :class:`~transferlab.training.method.GradientMethod`; a continual stream also re-runs the
    method's ``configure`` on the same model, so it must not change the model's structure."""
    from transferlab.training.method import GradientMethod

    if not isinstance(method, GradientMethod):
        raise IncompatibleError(f"regime {regime}: method {method.name!r} does not train a"
                                " model with the shared loop; use a parameter method such as"
                                " finetune or bitfit")
    if regime == "continual" and type(method).structure is not GradientMethod.structure:
        raise IncompatibleError(f"regime continual: method {method.name!r} adds modules to the"
                                " model, which a stream would add again at every experience;"
                                " use finetune, bitfit, freeze or llrd")


def run_regime(cell: Any, backbone: Backbone, method: Any, registries: Registries,
               ctx: RunContext, work_dir: Path | None) -> RegimeOutcome:
    """Fit and score ``cell`` (whose ``regime`` is set) on ``backbone`` with ``method``.

    ``extra["fingerprints"]`` holds each task's data fingerprint, by role (``task``,
    ``task1``...), taken once the tasks are loaded."""
    from transferlab.regimes.spec import parse_regime

    spec, _ = parse_regime(cell.regime, registries, cell.tasks)
    check_regime_method(method, spec.name)
    tasks = [create_task(name, registries, cell_seed=cell.seed) for name in cell.tasks]
    for task in tasks:
        method.check(backbone, task)
        task.split("test")  # load and validate the scored splits before any training
    backbone.prepare(tasks[0])
    # roles as in the cell's plugin provenance; run_cell moves them to the environment
    fingerprints = {"task" if i == 0 else f"task{i}": task.fingerprint()
                    for i, task in enumerate(tasks)}
    start = time.perf_counter()
    if spec.name == "multi-task":
        from transferlab.regimes.multitask import run_multitask, summary_metrics

        result = run_multitask(method, backbone, tasks, ctx, sampling=spec.params["sampling"],
                               temperature=spec.params["temperature"],
                               weights=spec.weights(len(tasks)), names=cell.tasks)
        elapsed = time.perf_counter() - start
        return RegimeOutcome(summary_metrics(result.per_task),
                             {"regime": "multi-task", "steps": result.steps,
                              "mixture": result.mixture, "per_task": result.per_task,
                              "fingerprints": fingerprints},
                             result.counts, elapsed)
    from transferlab.regimes.continual import run_stream
    from transferlab.settings import parse_setting

    strategy_setting = parse_setting(spec.params["strategy"], "strategy")
    strategy = registries.strategies.create(strategy_setting.name, strategy_setting.params)
    checkpoints = None if work_dir is None else Path(work_dir) / "continual" / cell.key
    stream = run_stream(method, strategy, backbone, tasks, ctx,
                        scenario=spec.params["scenario"], checkpoint_dir=checkpoints,
                        names=cell.tasks)
    elapsed = time.perf_counter() - start
    from transferlab.regimes.metrics import describe

    metrics = {"accuracy": stream.scores.average_accuracy, **stream.scores.metrics()}
    extra = {"regime": "continual", "scenario": spec.params["scenario"],
             "strategy": spec.params["strategy"], "experiences": stream.names,
             "accuracy_matrix": stream.matrix, "reference": stream.reference,
             "steps": stream.steps, **describe(stream.scores), "fingerprints": fingerprints}
    if stream.resumed_from is not None:
        extra["resumed_after_experience"] = stream.resumed_from
    if "memory" in strategy.hparams:  # a replay strategy's fixed memory, for the report
        extra["memory"] = strategy.hparams["memory"]
    return RegimeOutcome(metrics, extra, stream.counts, elapsed)
