"""``freeze``: reuse and freeze the bottom k layer groups, train the groups above and the head.

Layer groups come from ``backbone.layer_groups()`` (timm: stem, each block stage; the
ImageNet classifier is not on the feature path and is ignored). Low layers hold generic
features (edges, textures) that transfer as they are; high layers are task-specific.
``k=all`` trains only the head; a negative k counts from the top (``k=-1`` trains the top
group and the head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone
from transferlab.errors import IncompatibleError
from transferlab.params import Param
from transferlab.training.config import training_params
from transferlab_parameter.base import ParameterMethod

if TYPE_CHECKING:
    from transferlab.training.method import FitState
    from transferlab.training.model import TransferModel


class int_or_all(str):  # its name is the type shown in parameter errors
    """A layer-group count: an integer (negative counts from the top) or ``all``."""

    def __new__(cls, value: Any) -> int_or_all:
        text = str(value).strip().lower()
        if text != "all":
            int(text)  # ValueError -> a ParamError naming the parameter
        return super().__new__(cls, text)


class Freeze(ParameterMethod):
    """Freeze the bottom ``k`` layer groups; train the rest and a new head."""

    name = "freeze"
    summary = "freeze the bottom k layer groups (k=all: head only), train the rest"
    params = (
        Param("k", int_or_all, int_or_all("all"), "layer groups to freeze from the bottom"
              " (all = head only; negative = all but the top |k|)"),
        *training_params(),
    )

    def frozen_count(self, n_groups: int, backbone: Backbone) -> int:
        """``k`` as a number of groups in ``0..n_groups``, or an IncompatibleError."""
        k = self.hparams["k"]
        if k == "all":
            return n_groups
        count = int(k) if int(k) >= 0 else n_groups + int(k)
        if not 0 <= count <= n_groups:
            raise IncompatibleError(
                f"freeze: k={k} but {backbone.name!r} has {n_groups} layer groups; use"
                f" -{n_groups} <= k <= {n_groups} or k=all"
            )
        return count

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups
        from transferlab_parameter.groups import feature_groups

        backbone = state.backbone
        groups = feature_groups(backbone, model, self.name)
        count = self.frozen_count(len(groups), backbone)
        model.freeze_body()
        trained = [param for _, params in groups[count:] for param in params]
        for param in trained:
            param.requires_grad_(True)
        hp = self.hparams
        return decay_groups(((str(i), p) for i, p in enumerate(trained)), hp["lr"],
                            hp["weight_decay"], "backbone")
