"""Validating transferability scores against measured results (``transferlab rank --validate``).

A score predicts, before any training, which backbone transfers best to a task; the cells of
the results store say what happened. For one task, a **ground truth** is a transfer method
with its parameter values (``linear-probe``; ``finetune[max_steps=60]``): per backbone, the
mean over seeds of a test metric of its successful cells (the latest row of each seed, so a
re-run replaces an earlier one). Each score's values are compared with each ground truth over
the backbones both have, by Kendall's tau (``scipy.stats.kendalltau``, tau-b) and the weighted
tau with scipy's default hyperbolic weigher (``scipy.stats.weightedtau``), the statistic
TLlib's ``examples/model_selection`` reports; fewer than two common backbones give no value.

**One backbone** is its name and its fully resolved parameter values (:data:`BackboneId`):
``timm:efficientnet_lite0`` at ``img_size=128`` and at ``img_size=224`` are two candidates,
and ``raw:pixels`` and ``raw:pixels[size=32]`` (its default) are one. Stored parameter values
are resolved again against the backbone's current declarations, so a parameter declared after
a cell was stored takes its default instead of making the cell unrecognisable. Cells of
domain adaptation (with a source task) and failed cells never count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.registry import Registries, Registry
from transferlab.settings import Setting, parse_setting, validate_settings

__all__ = [
    "DEFAULT_GROUND_TRUTHS", "BackboneId", "Correlation", "GroundTruth", "backbone_id",
    "correlate", "ground_truths", "non_default", "validate_scores",
]

#: The methods ``rank --validate`` compares with unless told otherwise: the accuracy of a
#: retrained head on frozen features, and of the whole fine-tuned model (they rank differently).
DEFAULT_GROUND_TRUTHS = ("linear-probe", "finetune")

#: A backbone's identity: its name and the JSON (sorted keys) of its resolved parameter values.
BackboneId = tuple[str, str]


def _dumps(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, default=str)


def _resolve(registry: Registry[Any] | None, name: str, params: Mapping[str, Any]
             ) -> dict[str, Any]:
    """``params`` resolved against the current declarations of ``name`` (defaults filled in);
    as stored when the name is no longer registered or the values no longer validate."""
    if registry is None:
        return dict(params)
    try:
        return registry.get(name).validate(name, params)
    except TransferlabError:
        return dict(params)


def backbone_id(name: str, params: Mapping[str, Any],
                registries: Registries | None = None) -> BackboneId:
    """The identity of backbone ``name`` with parameter values ``params``; with
    ``registries``, the values are resolved against its declarations first (see the module
    docs), so the same backbone stored and named two ways compares equal."""
    from transferlab.precision import concrete_inference_params

    registry = None if registries is None else registries.backbones
    return name, _dumps(concrete_inference_params(name, _resolve(registry, name, params)))


def non_default(registry: Registry[Any] | None, name: str, params: Mapping[str, Any]
                ) -> dict[str, Any]:
    """The values of ``params`` that differ from the defaults ``name`` declares (all of them
    when it is not registered): what a command line or a label needs to name it."""
    if registry is None or name not in registry:
        return dict(params)
    defaults = {p.name: p.default for p in registry.get(name).params}
    return {k: v for k, v in params.items() if k not in defaults or v != defaults[k]}


@dataclass
class GroundTruth:
    """Measured results of one method with one set of parameter values on one task.

    :param method: the method's name.
    :param params: the resolved parameter values of its cells (the values given with
        ``--against`` when no cell matched).
    :param label: the method with the parameter values that differ from its defaults.
    :param measured: per backbone, the metric's mean over seeds.
    :param seeds: per backbone, the seeds measured.
    """

    method: str
    params: dict[str, Any]
    label: str
    measured: dict[BackboneId, float] = field(default_factory=dict)
    seeds: dict[BackboneId, list[int]] = field(default_factory=dict)

    @property
    def all_seeds(self) -> list[int]:
        """Every seed measured for any backbone (``[0]`` when none was)."""
        return sorted({s for seeds in self.seeds.values() for s in seeds}) or [0]


def ground_truths(rows: Iterable[Mapping[str, Any]], against: Sequence[Setting | str],
                  metric: str = "accuracy", registries: Registries | None = None
                  ) -> list[GroundTruth]:
    """The ground truths among ``rows`` (results-store rows of one task) for each method
    setting in ``against``.

    A setting's parameter values select cells (``finetune[max_steps=60]`` keeps the cells
    whose ``max_steps`` is 60); cells of one method with different parameter values are
    separate ground truths, since they are different transfers. A setting no cell matches
    gives a ground truth with nothing measured, so its missing cells can be listed. Rows
    without ``metric`` are ignored; a re-run of a seed replaces its earlier value.
    """
    methods = None if registries is None else registries.methods
    found: dict[tuple[str, str], GroundTruth] = {}
    per_seed: dict[tuple[str, str], dict[BackboneId, dict[int, float]]] = {}
    for spec in against:
        setting = parse_setting(spec, "ground truth")
        wanted: dict[str, Any] = {}
        if setting.params:
            if methods is None:
                raise TransferlabError(f"ground truth {setting.canonical()!r}: parameter"
                                       " values need the registries to be checked")
            entry = methods.get(setting.name)
            resolved = entry.validate(setting.name, setting.params)
            # settings among the values (objective=...) in the canonical spelling cells store
            resolved = validate_settings(entry.params, resolved, registries, setting.name)
            wanted = {k: resolved[k] for k in setting.params}
        matched = False
        for row in rows:
            if row["method"] != setting.name or row.get("source_task") is not None:
                continue
            if row.get("status", "ok") != "ok":
                continue
            value = row["metrics"].get(metric)
            if not isinstance(value, int | float) or not math.isfinite(value):
                continue
            params = _resolve(methods, setting.name, row["params"])
            if any(k not in params or params[k] != v for k, v in wanted.items()):
                continue
            matched = True
            key = (setting.name, _dumps(params))
            if key not in found:
                label = Setting(setting.name, non_default(methods, setting.name, params))
                found[key] = GroundTruth(setting.name, params, label.canonical())
                per_seed[key] = {}
            bid = backbone_id(row["backbone"], row["backbone_params"], registries)
            per_seed[key].setdefault(bid, {})[int(row["seed"])] = float(value)  # latest wins
        if not matched:
            key = (setting.name, "wanted:" + _dumps(wanted))
            found.setdefault(key, GroundTruth(setting.name, wanted, setting.canonical()))
    for key, measured in per_seed.items():
        truth = found[key]
        for bid, by_seed in measured.items():
            truth.measured[bid] = sum(by_seed.values()) / len(by_seed)
            truth.seeds[bid] = sorted(by_seed)
    return list(found.values())


@dataclass(frozen=True)
class Correlation:
    """How well one score's ranking agrees with one ground truth.

    :param backbones: how many backbones were compared (scored and measured).
    :param scored: how many backbones the score ranked.
    :param kendall_tau: Kendall's tau-b, None with fewer than two backbones or when either
        side is constant.
    :param kendall_p: its two-sided p-value (exact for small samples without ties).
    :param weighted_tau: the weighted tau, hyperbolic weights (top ranks count most).
    """

    score: str
    ground_truth: str
    backbones: int
    scored: int
    kendall_tau: float | None
    kendall_p: float | None
    weighted_tau: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "ground_truth": self.ground_truth,
                "backbones": self.backbones, "scored": self.scored,
                "kendall_tau": self.kendall_tau, "kendall_p": self.kendall_p,
                "weighted_tau": self.weighted_tau}


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def correlate(predicted: Sequence[float], measured: Sequence[float]
              ) -> tuple[float | None, float | None, float | None]:
    """(Kendall's tau, its p-value, weighted tau) of two paired sequences; None where
    undefined (fewer than two pairs, or a constant side)."""
    if len(predicted) != len(measured):
        raise ValueError(f"{len(predicted)} predicted values but {len(measured)} measured")
    if len(predicted) < 2:
        return None, None, None
    from scipy.stats import kendalltau, weightedtau

    tau = kendalltau(predicted, measured)
    weighted = weightedtau(predicted, measured)
    return _finite(tau.statistic), _finite(tau.pvalue), _finite(weighted.statistic)


def validate_scores(scored: Mapping[str, Mapping[BackboneId, float]],
                    truths: Sequence[GroundTruth]) -> list[Correlation]:
    """One :class:`Correlation` per score and ground truth, over the backbones both have
    (in a fixed order, so the values never depend on the order backbones were given)."""
    results = []
    for score, values in scored.items():
        for truth in truths:
            common = sorted(set(values) & set(truth.measured))
            tau, p, weighted = correlate([values[b] for b in common],
                                         [truth.measured[b] for b in common])
            results.append(Correlation(score, truth.label, len(common), len(values), tau, p,
                                       weighted))
    return results
