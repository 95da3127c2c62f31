"""Checks of the backbone contract."""

from __future__ import annotations

from typing import Any

import numpy as np

from transferlab.api import (
    MODALITIES,
    Backbone,
    Task,
)
from transferlab.testing._checks import Check, ConformanceError, NotApplicable
from transferlab.testing._contracts.base import Component, SuiteBase, attempt
from transferlab.testing._tiny import TinyTask

__all__ = ["BackboneChecks"]


class BackboneChecks(SuiteBase):
    """``backbone[NAME]::...``: feature shape, fingerprints, layer groups, parameters."""

    def _backbone_checks(self, c: Component) -> list[Check]:
        label = c.label
        return [
            self._check("backbone", label, "feature-shape", "encode gives float [N, feature_dim]"
                        " arrays; features(preprocess(x)) gives [B, feature_dim]",
                        lambda: self.check_feature_shape(c)),
            self._check("backbone", label, "fingerprint-stable", "two instances built alike"
                        " have one non-empty fingerprint", lambda: self.check_fingerprint(c)),
            self._check("backbone", label, "fingerprint-tracks-weights", "changing a weight"
                        " (then invalidate_fingerprint) changes the fingerprint",
                        lambda: self.check_fingerprint_tracks_weights(c)),
            self._check("backbone", label, "layer-groups", "layer groups cover every trainable"
                        " weight on the feature path", lambda: self.check_layer_groups(c)),
            self._check("backbone", label, "bad-params", "bad parameter values fail validation"
                        " before anything is built", lambda: self.check_bad_params(c)),
        ]

    def backbone(self, c: Component, *, prepared: bool = True) -> tuple[Backbone, Task]:
        """A fresh backbone (prepared on the tiny task of its modality) and that task."""
        backbone = attempt(
            f"building backbone {c.label!r}",
            lambda: self.registries.backbones.create(c.setting.name, c.setting.params),
            "the factory must build the backbone from its name and declared parameters,"
            " offline, and raise a transferlab error naming anything missing")
        if not isinstance(backbone, Backbone):
            raise ConformanceError(
                f"the factory of {c.label!r} returned a {type(backbone).__name__}",
                "return an instance of a transferlab.api.Backbone subclass")
        if backbone.modality not in MODALITIES:
            raise ConformanceError(f"backbone {c.label!r} declares modality"
                                   f" {backbone.modality!r}",
                                   f"set `modality` to one of {', '.join(MODALITIES)}")
        task = TinyTask(backbone.modality)
        if prepared:
            attempt("prepare(task)", lambda: backbone.prepare(task),
                    "prepare may only fit preprocessing on task.split('train')")
        return backbone, task

    def check_feature_shape(self, c: Component) -> None:
        backbone, task = self.backbone(c)
        inputs = task.split("train").inputs[:5]
        dim = attempt("feature_dim", lambda: backbone.feature_dim,
                      "feature_dim must be the width D of the features")
        if not isinstance(dim, int | np.integer) or dim <= 0:
            raise ConformanceError(f"feature_dim is {dim!r}", "return a positive int")
        encoded = attempt("encode(inputs)", lambda: backbone.encode(inputs),
                          "encode must map a list of raw inputs to an [N, D] array")
        shape = tuple(getattr(encoded, "shape", ()))
        if shape != (len(inputs), dim):
            raise ConformanceError(
                f"encode of {len(inputs)} inputs returned shape {shape}, not"
                f" ({len(inputs)}, {dim}) (feature_dim is {dim})",
                "return one row per input, as wide as feature_dim")
        values = encoded.data if hasattr(encoded, "tocsr") else np.asarray(encoded)
        if not np.issubdtype(values.dtype, np.floating) or not np.isfinite(values).all():
            raise ConformanceError(f"encode returned {values.dtype} values that are not all"
                                   " finite floats", "return finite float32 features")
        if backbone.module is None:
            return
        import torch

        def trainable_features() -> Any:
            with torch.no_grad():
                return backbone.features(backbone.preprocess(inputs[:3]))

        out = attempt("features(preprocess(inputs))", trainable_features,
                      "features must map a preprocessed batch to a [B, D] tensor")
        if tuple(getattr(out, "shape", ())) != (3, dim):
            raise ConformanceError(
                f"features(preprocess(3 inputs)) has shape {tuple(getattr(out, 'shape', ()))},"
                f" not (3, {dim})", "return a [B, feature_dim] tensor (training uses it)")

    def check_fingerprint(self, c: Component) -> None:
        first, _ = self.backbone(c)
        second, _ = self.backbone(c)
        fix = ("hash the weights and the preprocessing settings, nothing that differs between"
               " two instances (object ids, times, random draws)")
        a = attempt("fingerprint", lambda: first.fingerprint, fix)
        if not isinstance(a, str) or not a:
            raise ConformanceError(f"fingerprint is {a!r}", "return a non-empty str")
        again, b = first.fingerprint, second.fingerprint
        if a != again:
            raise ConformanceError("reading fingerprint twice gave two values", fix)
        if a != b:
            raise ConformanceError(f"two instances of {c.label!r} built alike have different"
                                   f" fingerprints ({a[:12]}..., {b[:12]}...)", fix)

    def check_fingerprint_tracks_weights(self, c: Component) -> None:
        backbone, _ = self.backbone(c)
        module = backbone.module
        if module is None:
            raise NotApplicable(f"{c.label} has no weights (module is None)")
        import torch

        head = backbone.source_head
        off_path = set() if head is None else {id(p) for p in head.parameters()}
        weight = next((p for p in module.parameters()
                       if p.is_floating_point() and id(p) not in off_path), None)
        if weight is None:
            raise NotApplicable(f"{c.label}'s module has no floating-point weights")
        before = backbone.fingerprint
        with torch.no_grad():
            weight.add_(1.0)
        backbone.invalidate_fingerprint()
        if backbone.fingerprint == before:
            raise ConformanceError(
                f"the fingerprint of {c.label!r} did not change after a weight changed and"
                " invalidate_fingerprint() was called; cached features of the old weights"
                " would be served", "hash the module's weights in `fingerprint` and forget a"
                " cached value in invalidate_fingerprint()")

    def check_layer_groups(self, c: Component) -> None:
        backbone, _ = self.backbone(c, prepared=False)
        groups = attempt("layer_groups()", backbone.layer_groups,
                         "return [(name, [modules]), ...] from the input side to the head")
        if not groups:
            raise NotApplicable(f"{c.label} exposes no layer groups")
        module = backbone.module
        if module is None:
            raise ConformanceError(f"{c.label!r} has layer groups but no module",
                                   "return the torch module the groups belong to from `module`")
        inside = {id(m) for m in module.modules()}
        covered: set[int] = set()
        for item in groups:
            if not (isinstance(item, tuple | list) and len(item) == 2
                    and isinstance(item[0], str) and isinstance(item[1], list | tuple)):
                raise ConformanceError(f"layer group {item!r} is not (name, [modules])",
                                       "return a list of (str, list of torch modules) pairs")
            for part in item[1]:
                if id(part) not in inside:
                    raise ConformanceError(
                        f"layer group {item[0]!r} holds a {type(part).__name__} that is not"
                        f" inside {c.label!r}'s module",
                        "list submodules of `module`, so freezing them freezes the backbone")
                covered |= {id(p) for p in part.parameters()}
        head = backbone.source_head
        off_path = set() if head is None else {id(p) for p in head.parameters()}
        missing = [n for n, p in module.named_parameters()
                   if p.requires_grad and id(p) not in covered and id(p) not in off_path]
        if missing:
            raise ConformanceError(
                f"the layer groups of {c.label!r} leave {len(missing)} trainable weights out"
                f" (e.g. {', '.join(missing[:3])})",
                "put every module on the feature path into a group, bottom to top (freeze and"
                " llrd would otherwise never train or freeze them)")
