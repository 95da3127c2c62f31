"""One cell of a benchmark: (backbone, task, method, params, seed) -> a scored result.

``validate_cell`` resolves names and parameters without loading anything, so bad input fails
before work starts; ``run_cell`` never raises for a failing cell (the error is recorded) except
on interruption.

A cell with a ``source_task`` is a domain-adaptation cell: the method gets the labeled source
training split and the target training inputs with their labels hidden
(:class:`transferlab.harness.domain.UnlabeledTarget`), and is scored on the target test split.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferlab.api import (
    Backbone,
    Budget,
    FeatureSource,
    Predictor,
    RunContext,
    Task,
    TransferMethod,
)
from transferlab.errors import (
    CheckpointError,
    DataError,
    IncompatibleError,
    TransferlabError,
)
from transferlab.harness.domain import UnlabeledTarget, check_same_labels
from transferlab.harness.environment import default_device, environment, peak_memory_mb
from transferlab.harness.metrics import classification_metrics
from transferlab.harness.validation import check_device, check_seed
from transferlab.params import Param
from transferlab.precision import keyed_backbone_params, likely_device, resolve_precision
from transferlab.registry import Registries
from transferlab.settings import parse_setting, validate_settings
from transferlab.views import create_task, validate_task

__all__ = ["Cell", "CellResult", "run_cell", "validate_cell"]


@dataclass(frozen=True)
class Cell:
    """What to run. ``params`` go to the method, ``backbone_params`` to the backbone;
    ``source_task`` (optional) makes it a domain-adaptation cell scored on ``task``."""

    backbone: str
    task: str
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    backbone_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    source_task: str | None = None
    regime: str | None = None
    tasks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = {
            "backbone": self.backbone, "task": self.task, "method": self.method,
            "params": dict(self.params), "backbone_params": keyed_backbone_params(
                self.backbone_params),
            "seed": self.seed,
        }
        if self.source_task is not None:  # absent otherwise, so older cell keys stay valid
            data["source_task"] = self.source_task
        if self.regime is not None:  # likewise: only regime cells carry these keys
            data["regime"] = self.regime
            data["tasks"] = list(self.tasks)
        return data

    @property
    def key(self) -> str:
        """Content hash identifying the cell (after parameter resolution)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def label(self) -> str:
        return self._label(self.params)

    def short_label(self, registries: Registries) -> str:
        """:meth:`label` with only the method parameters that differ from the defaults the
        method declares (a validated cell carries every default), for one-line messages;
        every parameter when ``registries`` do not know the method."""
        try:
            declared = {p.name: p for p in registries.methods.get(self.method).params}
        except TransferlabError:
            return self.label()
        return self._label({k: v for k, v in self.params.items()
                            if k not in declared or not _is_default(declared[k], v, self.method)})

    def _label(self, params: Mapping[str, Any]) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
        task = self.task if self.source_task is None else f"{self.source_task}->{self.task}"
        if self.regime is not None:
            task = f"{self.regime}({self.task})"
        return f"{self.backbone} x {task} x {self.method}" + (f"[{extra}]" if extra else "")


def _is_default(param: Param, value: Any, owner: str) -> bool:
    """Whether ``value`` is ``param``'s default, as declared or as validation spells it (a
    setting's canonical text)."""
    if value == param.default:
        return True
    try:
        return param.coerce(param.default, owner) == value
    except TransferlabError:
        return False


@dataclass
class CellResult:
    """The outcome of one cell: metrics, costs, status, error and environment."""

    cell: Cell
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    peak_memory_mb: float = 0.0
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cell"] = self.cell.to_dict()
        data["key"] = self.cell.key
        return data


def validate_cell(cell: Cell, registries: Registries, *, device: str | None = None) -> Cell:
    """Resolve names and parameters (no loading); return the cell with full parameters.

    Settings that name other components (``-p objective=...``) are checked against the same
    registries, and task views and settings are spelled canonically, so the cell key does not
    depend on how the user wrote them.

    What the names and the registered metadata tell is checked too: the seed's range, a
    ``NAME@PATH`` checkpoint that does not exist, a backbone whose modality (``modality=``
    of its registration) is not the task's, and a method that trains weights
    (``needs_module``) on a backbone registered with ``has_weights=False``. Metadata a plugin
    did not declare is not checked here (building the cell still checks it).

    The backbone's ``precision=auto`` becomes the concrete precision the cell runs in on
    ``device`` (default: the GPU when there is one, else the CPU); see
    :mod:`transferlab.precision`."""
    check_seed(cell.seed, "seed", "seed=0")
    backbone_params = registries.backbones.get(cell.backbone).validate(
        cell.backbone, cell.backbone_params
    )
    _check_checkpoint(cell.backbone)
    if "precision" in backbone_params:
        backbone_params["precision"] = _resolve_precision(cell, backbone_params["precision"],
                                                          registries, device)
    if cell.regime is not None:
        return _validate_regime_cell(cell, backbone_params, registries)
    task = validate_task(cell.task, registries)
    source = None if cell.source_task is None else validate_task(cell.source_task, registries)
    method = registries.methods.get(cell.method)
    params = method.validate(cell.method, cell.params)
    params = validate_settings(method.params, params, registries, owner=cell.method)
    _check_compatible(cell.backbone, (task,) if source is None else (source, task), cell.method,
                      registries)
    return Cell(cell.backbone, task, cell.method, params, backbone_params, cell.seed, source)


def _resolve_precision(cell: Cell, requested: str, registries: Registries,
                       device: str | None) -> str:
    """``requested`` for this cell's backbone on ``device``: for training when the method
    trains weights (or the cell is a regime), else for inference."""
    training = cell.regime is not None or _trains_weights(cell.method, registries)
    return resolve_precision(requested, backbone=cell.backbone, training=training,
                             device=device or likely_device())


def _check_checkpoint(backbone: str) -> None:
    """``NAME@FILE.safetensors`` names a checkpoint file: it must exist (``@random`` and a
    plugin's other tags are left to the plugin's own ``validate``)."""
    base, _, tag = backbone.partition("@")
    if tag.endswith(".safetensors") and not Path(tag).is_file():
        raise CheckpointError(f"checkpoint {tag} does not exist; pass an existing safetensors"
                              f" file as {base}@PATH")


def _check_compatible(backbone: str, tasks: Sequence[str], method: str,
                      registries: Registries) -> None:
    """Refuse what the registrations already tell cannot run (the checks of
    :meth:`TransferMethod.check`, before anything is built)."""
    entry = registries.backbones.get(backbone)
    reads = entry.info.get("modality")
    for task in tasks:
        modality = registries.tasks.get(parse_setting(task).name).info.get("modality")
        if isinstance(reads, str) and isinstance(modality, str) and reads != modality:
            article = "an" if modality[:1] in tuple("aeiou") else "a"
            raise IncompatibleError(f"backbone {backbone!r} reads {reads} but task {task!r} is"
                                    f" {modality}; pick {article} {modality} backbone")
    if entry.info.get("has_weights") is False and _trains_weights(method, registries):
        raise IncompatibleError(f"method {method!r} trains weights but {backbone!r} has none;"
                                " use a feature method such as linear-probe")


def _method_class(method: str, registries: Registries) -> type[TransferMethod] | None:
    """The method's class when it is registered as one (a factory function tells nothing)."""
    factory = registries.methods.get(method).factory
    return factory if isinstance(factory, type) and issubclass(factory, TransferMethod) else None


def _trains_weights(method: str, registries: Registries) -> bool:
    factory = _method_class(method, registries)
    return factory is not None and factory.needs_module


def reads_features(cell: Cell, registries: Registries) -> bool:
    """Whether ``cell`` only reads its backbone's extracted features (a feature method
    outside a regime), so it runs sooner where those features are already in memory."""
    factory = _method_class(cell.method, registries)
    return cell.regime is None and factory is not None and not factory.needs_module


def regime_label(regime: str, tasks: tuple[str, ...]) -> str:
    """The ``task`` a regime cell is stored under: its tasks, in order, joined by ``&``
    (multi-task) or ``->`` (a continual stream)."""
    joiner = " -> " if regime.startswith("continual") else " & "
    return joiner.join(tasks)


def _validate_regime_cell(cell: Cell, backbone_params: dict[str, Any],
                          registries: Registries) -> Cell:
    from transferlab.regimes.spec import parse_regime
    from transferlab.training.method import GradientMethod

    if cell.source_task is not None:
        raise IncompatibleError("a regime cell cannot also be a domain-adaptation cell; drop"
                                " the source task or the regime")
    tasks = tuple(validate_task(t, registries) for t in cell.tasks)
    spec, regime = parse_regime(cell.regime or "", registries, tasks)
    entry = registries.methods.get(cell.method)
    if isinstance(entry.factory, type) and not issubclass(entry.factory, GradientMethod):
        raise IncompatibleError(f"regime {spec.name}: method {cell.method!r} does not train"
                                " with the shared loop; use a parameter method such as"
                                " finetune or bitfit")
    params = entry.validate(cell.method, cell.params)
    params = validate_settings(entry.params, params, registries, owner=cell.method)
    _check_compatible(cell.backbone, tasks, cell.method, registries)
    return Cell(cell.backbone, regime_label(regime, tasks), cell.method, params,
                backbone_params, cell.seed, None, regime, tasks)


@dataclass
class _Parts:
    """What one cell builds before fitting."""

    task: Task
    backbone: Backbone
    method: TransferMethod
    source: Task | None


def _build(cell: Cell, registries: Registries, device: str) -> _Parts:
    task = create_task(cell.task, registries, cell_seed=cell.seed)
    backbone = registries.backbones.create(cell.backbone, cell.backbone_params).to(device)
    method = registries.methods.create(cell.method, cell.params)
    method.check(backbone, task)
    task.split("test")  # load and validate the scored split before any training
    if cell.source_task is None:
        _check_classes(task)
    source = None
    if cell.source_task is not None:
        source = create_task(cell.source_task, registries, cell_seed=cell.seed)
        method.check(backbone, source)
        _check_classes(source)
        check_same_labels(source, task)
    backbone.prepare(task if source is None else source)  # fitted on training data only
    return _Parts(task, backbone, method, source)


def _check_classes(task: Task) -> None:
    """A classification task's training split needs two classes or more (else scikit-learn's
    error, with its file and line, would be the first word of the problem)."""
    if task.kind != "classification":
        return
    found = sorted(set(task.split("train").labels.tolist()))
    if len(found) < 2:
        names = task.label_names
        shown = ", ".join(repr(names[i]) if 0 <= i < len(names) else str(i) for i in found)
        raise DataError(f"task {task.name!r}: the train split has {len(found)} class"
                        f"{'' if len(found) == 1 else 'es'} ({shown or 'none'}), and a"
                        " classifier needs at least two; add training examples of another"
                        " class")


def _provenance(cell: Cell, registries: Registries) -> dict[str, Any]:
    """Which plugin distribution served each component of the cell."""
    found = {
        "backbone": registries.backbones.get(cell.backbone),
        "method": registries.methods.get(cell.method),
    }
    for index, name in enumerate(cell.tasks or (cell.task,)):
        found["task" if index == 0 else f"task{index}"] = registries.tasks.get(
            parse_setting(name).name)
    if cell.source_task is not None:
        found["source_task"] = registries.tasks.get(parse_setting(cell.source_task).name)
    return {role: entry.provenance() for role, entry in found.items()}


def _score(result: CellResult, parts: _Parts, predictor: Predictor, ctx: RunContext) -> None:
    if parts.task.kind == "language-modelling":
        start = time.perf_counter()
        result.metrics = dict(predictor.language_model_metrics(parts.task, "test", ctx))
        result.predict_seconds = time.perf_counter() - start
        result.extra = dict(predictor.extra)
        result.trainable_params, result.total_params = predictor.counts()
        return
    test = parts.task.split("test")
    start = time.perf_counter()
    experiments = predictor.predict_experiments(parts.task, "test", ctx)
    if experiments is None:
        predictions = predictor.predict_split(parts.task, "test", ctx)
    result.predict_seconds = time.perf_counter() - start
    result.extra = dict(predictor.extra)
    if experiments is None:
        result.metrics = classification_metrics(test.labels, predictions)
    else:
        result.metrics, result.extra["experiments"] = _experiment_metrics(test.labels, experiments)
    result.trainable_params, result.total_params = predictor.counts()


def run_cell(
    cell: Cell, registries: Registries, *, device: str | None = None, progress: bool = True,
    feature_store: FeatureSource | None = None, budget: Budget | None = None,
    after_fit: Callable[[Backbone, Predictor], None] | None = None,
    work_dir: Any = None,
) -> CellResult:
    """Build backbone, task and method, fit, predict on the test split and score.

    ``after_fit(backbone, predictor)``, when given, runs once the predictor is scored, with
    the backbone as the fit left it (``transferlab relate`` saves fine-tuned backbones this
    way); an exception it raises fails the cell like any other. ``work_dir`` is where a
    continual cell checkpoints each finished experience (``WORK_DIR/continual/KEY``), so an
    interrupted stream resumes; without it a stream restarts."""
    device = device or default_device()
    if feature_store is None:
        from transferlab.harness.features import FeatureStore

        feature_store = FeatureStore()
    ctx = RunContext(
        seed=cell.seed, device=device, budget=budget or Budget(), progress=progress,
        feature_store=feature_store, registries=registries,
    )
    result = CellResult(cell=cell, status="error", environment=environment(device))
    try:
        check_device(device, other_torch_devices=True)  # before anything loads
        cell = validate_cell(cell, registries, device=device)
        result.cell = cell
        result.environment["plugins"] = _provenance(cell, registries)
        ctx.seed_everything()
        if cell.regime is not None:
            _run_regime(result, cell, registries, ctx, device, work_dir)
            # run_regime builds the tasks, so it reports their fingerprints in extra
            result.environment["fingerprints"] = result.extra.pop("fingerprints", {})
        else:
            parts = _build(cell, registries, device)
            result.environment["fingerprints"] = {"task": parts.task.fingerprint()}
            if parts.source is not None:
                result.environment["fingerprints"]["source_task"] = parts.source.fingerprint()
            start = time.perf_counter()
            if parts.source is None:
                predictor = parts.method.fit(parts.backbone, parts.task, ctx)
            else:
                predictor = parts.method.fit_adapted(
                    parts.backbone, parts.source, UnlabeledTarget(parts.task), ctx)
            result.fit_seconds = time.perf_counter() - start
            _score(result, parts, predictor, ctx)
            if after_fit is not None:
                after_fit(parts.backbone, predictor)
            if cell.source_task is not None:
                result.extra.setdefault(
                    "adaptation", "adapted" if parts.method.adapts_domains else "source-only")
        result.status = "ok"
    except KeyboardInterrupt:
        raise
    except TransferlabError as exc:
        result.error = str(exc)
    except Exception as exc:
        ctx.logger.debug("cell failed", exc_info=True)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        result.error = f"{type(exc).__name__}: {exc}{where}"
    result.peak_memory_mb = peak_memory_mb(device)
    result.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def _run_regime(result: CellResult, cell: Cell, registries: Registries, ctx: RunContext,
                device: str, work_dir: Any) -> None:
    """Fit and score a multi-task or continual cell into ``result``."""
    from transferlab.regimes.cell import run_regime

    backbone = registries.backbones.create(cell.backbone, cell.backbone_params).to(device)
    method = registries.methods.create(cell.method, cell.params)
    outcome = run_regime(cell, backbone, method, registries, ctx, work_dir)
    result.metrics, result.extra = outcome.metrics, outcome.extra
    result.trainable_params, result.total_params = outcome.counts
    result.fit_seconds = outcome.fit_seconds


def _experiment_metrics(
    labels: Any, experiments: list[Any]
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Mean of each metric over repeated experiments, its sample standard deviation as
    ``<metric>_std``, and the per-experiment metrics (kept in ``extra``)."""
    import numpy as np

    per = [classification_metrics(labels, p) for p in experiments]
    summary: dict[str, float] = {}
    for name in per[0]:
        values = np.array([m[name] for m in per])
        summary[name] = float(values.mean())
        summary[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary, per
