"""One cell of a benchmark: (backbone, task, method, params, seed) -> a scored result.

``validate_cell`` resolves names and parameters without loading anything, so bad input fails
before work starts; ``run_cell`` never raises for a failing cell (the error is recorded) except
on interruption.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from transferlab.api import Budget, RunContext
from transferlab.errors import TransferlabError
from transferlab.harness.environment import default_device, environment, peak_memory_mb
from transferlab.harness.metrics import classification_metrics
from transferlab.registry import Registries


@dataclass(frozen=True)
class Cell:
    """What to run. ``params`` go to the method, ``backbone_params`` to the backbone."""

    backbone: str
    task: str
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    backbone_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone, "task": self.task, "method": self.method,
            "params": dict(self.params), "backbone_params": dict(self.backbone_params),
            "seed": self.seed,
        }

    @property
    def key(self) -> str:
        """Content hash identifying the cell (after parameter resolution)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.backbone} x {self.task} x {self.method}" + (f"[{extra}]" if extra else "")


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


def validate_cell(cell: Cell, registries: Registries) -> Cell:
    """Resolve names and parameters (no loading); return the cell with full parameters."""
    backbone_params = registries.backbones.get(cell.backbone).validate(
        cell.backbone, cell.backbone_params
    )
    registries.tasks.get(cell.task).validate(cell.task)
    params = registries.methods.get(cell.method).validate(cell.method, cell.params)
    return Cell(cell.backbone, cell.task, cell.method, params, backbone_params, cell.seed)


def run_cell(
    cell: Cell, registries: Registries, *, device: str | None = None, progress: bool = True,
    feature_store: Any = None, budget: Budget | None = None,
) -> CellResult:
    """Build backbone, task and method, fit, predict on the test split and score."""
    device = device or default_device()
    ctx = RunContext(
        seed=cell.seed, device=device, budget=budget or Budget(), progress=progress,
        feature_store=feature_store,
    )
    result = CellResult(cell=cell, status="error", environment=environment(device))
    try:
        cell = validate_cell(cell, registries)
        result.cell = cell
        ctx.seed_everything()
        task = registries.tasks.create(cell.task)
        backbone = registries.backbones.create(cell.backbone, cell.backbone_params).to(device)
        method = registries.methods.create(cell.method, cell.params)
        method.check(backbone, task)
        test = task.split("test")
        backbone.prepare(task)
        start = time.perf_counter()
        predictor = method.fit(backbone, task, ctx)
        result.fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predictions = predictor.predict_split(task, "test", ctx)
        result.predict_seconds = time.perf_counter() - start
        result.metrics = classification_metrics(test.labels, predictions)
        result.trainable_params = int(predictor.trainable_params)
        result.total_params = int(predictor.total_params)
        result.extra = dict(getattr(predictor, "extra", {}) or {})
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
