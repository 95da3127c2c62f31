"""Checks of the transfer-method contract, on the kit's tiny task and backbone."""

from __future__ import annotations

import inspect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.api import (
    FAMILIES,
    MODALITIES,
    Backbone,
    Budget,
    Predictor,
    RunContext,
    Task,
    TransferMethod,
)
from transferlab.errors import TransferlabError
from transferlab.testing._checks import Check, ConformanceError, NotApplicable
from transferlab.testing._contracts.base import (
    Component,
    SuiteBase,
    attempt,
    declared_traits,
    valid_labels,
    weights,
)
from transferlab.testing._tiny import TinyBackbone, TinyTask

__all__ = ["TINY_BUDGET", "MethodChecks"]

TINY_BUDGET = Budget(epochs=2, steps=4)
SOURCE_CLASSES = 5  # the tiny backbone's source head, for methods with needs_source_head


def _tiny_backbone(method: TransferMethod, modality: str, name: str | None = None
                   ) -> TinyBackbone:
    """The kit's tiny backbone, with a source head when the method declares it needs one."""
    classes = SOURCE_CLASSES if method.needs_source_head else 0
    return TinyBackbone(modality, name=name, source_classes=classes)


@dataclass
class _Fitted:
    """One fit of a method on the tiny task, shared by the checks that only read it."""

    method: TransferMethod
    backbone: Backbone
    task: Task
    ctx: RunContext
    predictor: Predictor
    weights_before: dict[str, np.ndarray]


class MethodChecks(SuiteBase):
    """``method[NAME]::...``: fit and predict, determinism, counts, save/load, frozen
    backbones, domain adaptation, parameters."""

    def traits(self, c: Component) -> type[TransferMethod] | TransferMethod:
        """Where the method's declarations are read (:func:`declared_traits`)."""
        return declared_traits(c, TransferMethod)

    def _method_checks(self, c: Component) -> list[Check]:
        label, traits = c.label, self.traits(c)
        if "classification" not in getattr(traits, "task_kinds", ("classification",)):
            return self._other_kind_checks(c)
        modalities = [m for m in traits.modalities if m in MODALITIES]
        check = self._check
        checks = [check("method", label, f"fit-predict[{m}]", f"fit on the tiny {m} task;"
                        " predict and predict_split give the same valid labels",
                        lambda m=m: self.check_fit_predict(c, m)) for m in modalities]
        if not modalities:
            checks.append(check("method", label, "fit-predict", "fit and predict",
                                lambda: self._no_modality(c)))
        checks += [
            check("method", label, "determinism", "two fits with one seed predict the same",
                  lambda: self.check_determinism(c)),
            check("method", label, "parameter-counts", "the predictor reports trainable and"
                  " total weights", lambda: self.check_counts(c)),
            check("method", label, "bad-params", "bad parameter values fail validation and"
                  " construction, before fit", lambda: self.check_bad_params(c)),
        ]
        if traits.saves_predictor:
            checks.append(check("method", label, "save-load", "a saved predictor reloads"
                                " around a fresh backbone to identical predictions",
                                lambda: self.check_save_load(c)))
        if traits.family == "feature":
            checks.append(check("method", label, "backbone-untouched", "fit and predict leave"
                                " the backbone's weights as they were",
                                lambda: self.check_backbone_untouched(c)))
        if traits.adapts_domains:
            checks.append(check("method", label, "domain-adaptation", "fit_adapted on a labeled"
                                " source and an unlabeled target predicts valid target labels",
                                lambda: self.check_domain_adaptation(c)))
        return checks

    def _other_kind_checks(self, c: Component) -> list[Check]:
        """A method for other task types (language modelling): its parameters are checked;
        fitting needs a tiny task of that type, which the kit does not have yet."""
        kinds = ", ".join(self.traits(c).task_kinds)

        def not_applicable() -> None:
            raise NotApplicable(f"the kit's tiny tasks are classification tasks; a {kinds}"
                                " method is fitted by its own tests")

        return [self._check("method", c.label, "fit-predict", "fit on the tiny task",
                            not_applicable),
                self._check("method", c.label, "bad-params", "bad parameter values fail"
                            " validation and construction, before fit",
                            lambda: self.check_bad_params(c))]

    def _no_modality(self, c: Component) -> None:
        raise ConformanceError(
            f"method {c.label!r} declares modalities {self.traits(c).modalities!r}, none of"
            f" which the kit has tiny inputs for", f"declare some of {', '.join(MODALITIES)}")

    def _modality(self, c: Component) -> str:
        modalities = [m for m in self.traits(c).modalities if m in MODALITIES]
        if not modalities:
            self._no_modality(c)
        return modalities[0]

    def method(self, c: Component) -> TransferMethod:
        method = attempt(f"creating method {c.label!r}",
                         lambda: self.registries.methods.create(c.setting.name,
                                                                c.setting.params),
                         "the class must construct from its declared parameters alone")
        if not isinstance(method, TransferMethod):
            raise ConformanceError(f"{c.label!r} built a {type(method).__name__}",
                                   "register a transferlab.api.TransferMethod subclass")
        family = method.family
        if family not in FAMILIES:
            raise ConformanceError(f"method {c.label!r} declares family {family!r}",
                                   f"set `family` to one of {', '.join(FAMILIES)}")
        return method

    def fit(self, c: Component, modality: str, *, fresh: bool = False) -> _Fitted:
        """A fit on the tiny task of ``modality`` (seed 0); the shared one unless ``fresh``."""
        key = (c.label, modality)
        cached = None if fresh else self._fits.get(key)
        if isinstance(cached, ConformanceError):
            raise ConformanceError(cached.problem, cached.fix)
        if cached is not None:
            return cached
        try:
            fitted = self._fit(c, modality)
        except ConformanceError as exc:
            if not fresh:
                self._fits[key] = exc
            raise
        if not fresh:
            self._fits[key] = fitted
        return fitted

    def _fit(self, c: Component, modality: str) -> _Fitted:
        method = self.method(c)
        backbone, task = _tiny_backbone(method, modality), TinyTask(modality)
        try:
            method.check(backbone, task)
        except TransferlabError as exc:
            raise ConformanceError(
                f"method {c.label!r} refused the kit's tiny {modality} task and trainable"
                f" backbone: {exc}", "declare in `modalities` only what the method supports;"
                " refuse a pair only for a reason named in the message") from None
        ctx = RunContext(seed=0, progress=False, budget=TINY_BUDGET, registries=self.registries)
        before = weights(backbone)
        ctx.seed_everything()  # as the harness does before every fit
        predictor = attempt(
            f"fit on the tiny {modality} task", lambda: method.fit(backbone, task, ctx),
            "fit must work on any task and backbone its declarations accept (here 24 training"
            " examples of 3 classes, 8-d features, a 2-epoch / 4-step budget in ctx.budget)")
        if not isinstance(predictor, Predictor):
            raise ConformanceError(f"fit returned a {type(predictor).__name__}",
                                   "return a transferlab.api.Predictor from fit")
        return _Fitted(method, backbone, task, ctx, predictor, before)

    def predictions(self, fitted: _Fitted, how: str = "predict_split") -> np.ndarray:
        task, ctx, predictor = fitted.task, fitted.ctx, fitted.predictor
        test = task.split("test")
        if how == "predict_split":
            out = attempt("predict_split(task, 'test', ctx)",
                          lambda: predictor.predict_split(task, "test", ctx),
                          "return one int label per example of the split")
        else:
            out = attempt("predict(inputs, ctx)", lambda: predictor.predict(test.inputs, ctx),
                          "return one int label per input")
        return valid_labels(out, len(test), len(task.label_names), how)

    def check_fit_predict(self, c: Component, modality: str) -> None:
        fitted = self.fit(c, modality)
        whole = self.predictions(fitted)
        direct = self.predictions(fitted, "predict")
        if not np.array_equal(whole, direct):
            differ = int((whole != direct).sum())
            raise ConformanceError(
                f"predict and predict_split disagree on {differ} of {len(whole)} test examples",
                "predict_split may reuse cached features but must return what predict returns"
                " for the split's inputs")
        task, ctx = fitted.task, fitted.ctx
        experiments = attempt("predict_experiments(task, 'test', ctx)",
                              lambda: fitted.predictor.predict_experiments(task, "test", ctx),
                              "return None (one model) or one prediction array per experiment")
        if experiments is not None:
            if not isinstance(experiments, list) or not experiments:
                raise ConformanceError(f"predict_experiments returned {type(experiments)}",
                                       "return None or a non-empty list of arrays")
            for run in experiments:
                valid_labels(run, len(whole), len(task.label_names), "predict_experiments")

    def check_determinism(self, c: Component) -> None:
        modality = self._modality(c)
        first = self.predictions(self.fit(c, modality))
        second = self.predictions(self.fit(c, modality, fresh=True))
        if not np.array_equal(first, second):
            differ = int((first != second).sum())
            raise ConformanceError(
                f"two fits of {c.label!r} with seed 0 predicted {differ} of {len(first)} test"
                " examples differently", "draw all randomness from the run's seed"
                " (ctx.seed_everything(), ctx.rng(), random_state=ctx.seed)")

    def check_counts(self, c: Component) -> None:
        fitted = self.fit(c, self._modality(c))
        predictor = fitted.predictor
        fix = ("set trainable_params and total_params on the predictor (weights that training"
               " changed, and every weight on the prediction path, the backbone's included)")
        try:
            trainable, total = predictor.counts()
        except TransferlabError:
            raise ConformanceError(
                f"predictor {type(predictor).__name__} of {c.label!r} does not report"
                " trainable_params and total_params (the harness refuses it)", fix) from None
        except Exception as exc:
            raise ConformanceError(f"predictor.counts() raised {type(exc).__name__}: {exc}",
                                   fix) from exc
        if not 0 <= trainable <= total:
            raise ConformanceError(f"predictor reports {trainable} trainable of {total} total"
                                   " weights", "0 <= trainable_params <= total_params")
        family = fitted.method.family
        backbone = fitted.backbone.num_parameters()
        if family in ("feature", "parameter") and total < backbone:
            raise ConformanceError(
                f"a {family} method's predictor reports {total} total weights, fewer than the"
                f" backbone's {backbone} it predicts through", fix)
        if family == "parameter" and trainable == 0:
            raise ConformanceError("a parameter method's predictor reports no trained weights",
                                   fix)

    def check_save_load(self, c: Component) -> None:
        fitted = self.fit(c, self._modality(c))
        predictor = fitted.predictor
        cls = type(predictor)
        save, load = getattr(cls, "save", None), getattr(cls, "load", None)
        if not callable(save) or not callable(load):
            raise ConformanceError(
                f"{c.label!r} declares saves_predictor = True but its {cls.__name__} has no"
                " save(path) and classmethod load(path, backbone)",
                "implement both (transferlab.training.ModelPredictor does), or set"
                " saves_predictor = False")
        test = fitted.task.split("test")
        expected = self.predictions(fitted, "predict")
        with tempfile.TemporaryDirectory(prefix="transferlab-check-") as folder:
            target = Path(folder) / "predictor.safetensors"
            written = attempt("predictor.save(path)", lambda: predictor.save(target),
                              "save must write the fitted predictor to the path")
            path = Path(written) if isinstance(written, str | Path) else target
            fresh = _tiny_backbone(fitted.method, fitted.backbone.modality,
                                   fitted.backbone.name)
            kwargs: dict[str, Any] = {}
            rebuild = getattr(type(fitted.method), "rebuild", None)
            if rebuild is not None and "rebuild" in inspect.signature(load).parameters:
                kwargs["rebuild"] = rebuild
            restored = attempt(f"{cls.__name__}.load(path, backbone)",
                               lambda: load(path, fresh, **kwargs),
                               "load must rebuild the predictor around a freshly built backbone")
            again = attempt("the reloaded predictor's predict",
                            lambda: restored.predict(test.inputs, fitted.ctx),
                            "the reloaded predictor must predict like the saved one")
        again = valid_labels(again, len(test), len(fitted.task.label_names), "predict")
        if not np.array_equal(again, expected):
            raise ConformanceError(
                f"the reloaded predictor of {c.label!r} predicts"
                f" {int((again != expected).sum())} of {len(expected)} test examples"
                " differently", "save every trained weight and re-apply structure changes"
                " (adapters) in load before the weights load")
        if restored.counts() != predictor.counts():
            raise ConformanceError("the reloaded predictor reports other parameter counts",
                                   "store trainable_params and total_params with the weights")

    def check_backbone_untouched(self, c: Component) -> None:
        fitted = self.fit(c, self._modality(c))
        self.predictions(fitted)
        self.predictions(fitted, "predict")
        after = weights(fitted.backbone)
        changed = [k for k, v in fitted.weights_before.items()
                   if k not in after or not np.array_equal(v, after[k])]
        if changed or set(after) != set(fitted.weights_before):
            names = changed or sorted(set(after) ^ set(fitted.weights_before))
            raise ConformanceError(
                f"feature method {c.label!r} changed the backbone's weights ({len(names)}"
                f" tensor{'s' if len(names) > 1 else ''}, e.g. {', '.join(names[:3])})",
                "a feature method must leave the backbone frozen: read features through"
                " ctx.features(...) or backbone.encode(...) and train only its own head; a"
                " method that trains the backbone declares family = 'parameter'")

    def check_domain_adaptation(self, c: Component) -> None:
        from transferlab.harness.domain import UnlabeledTarget

        modality = self._modality(c)
        method = self.method(c)
        backbone = _tiny_backbone(method, modality)
        source, target = TinyTask(modality), TinyTask(modality, shift=True)
        ctx = RunContext(seed=0, progress=False, budget=TINY_BUDGET, registries=self.registries)
        ctx.seed_everything()
        predictor = attempt(
            "fit_adapted(backbone, source, target, ctx)",
            lambda: method.fit_adapted(backbone, source, UnlabeledTarget(target), ctx),
            "fit_adapted must train on the source's labels and the target's inputs (whose"
            " labels are hidden as -1) and return a Predictor")
        if not isinstance(predictor, Predictor):
            raise ConformanceError(f"fit_adapted returned a {type(predictor).__name__}",
                                   "return a transferlab.api.Predictor")
        out = attempt("predict_split on the target",
                      lambda: predictor.predict_split(target, "test", ctx),
                      "predict the target's test split")
        valid_labels(out, len(target.split("test")), len(target.label_names), "predict_split")
