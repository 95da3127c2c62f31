"""``adapter``: a small MLP g trained on frozen features, with early stopping.

It shares the training loop's parts rather than keeping its own: the validation examples come
from :func:`transferlab.training.data.carve_validation` (the task's ``val`` split, or a
stratified, seeded carve of train, by index into the cached training features), early stopping
and best-weight restoring from :class:`transferlab.training.stopping.EarlyStopping` (validation
accuracy, ties broken by loss), and stop reasons use the loop's words (``epochs``, ``steps``,
``seconds``, ``early-stopping``). What stays its own is the inner loop over feature rows: the
shared loop batches raw inputs through a backbone, which here was already run once and cached.
Training runs on one CPU thread: the head's matmuls are tiny and thread hand-offs dominated
(1.0 s vs 15 s for 700 steps on the 2-core machine under load). torch is imported inside the
functions so that loading the plugin stays cheap.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab_feature.common import is_sparse, labeled_features
from transferlab_feature.predictor import FeaturePredictor

if TYPE_CHECKING:
    import numpy as np

PREDICT_BATCH = 4096


class TorchHead:
    """A fitted torch module used like a scikit-learn estimator (``predict`` on features)."""

    def __init__(self, module: Any, mean: np.ndarray | None, scale: np.ndarray | None) -> None:
        self.module = module
        self.mean, self.scale = mean, scale

    def transform(self, features: Any) -> np.ndarray:
        """Dense float32 rows, standardised with the training statistics when fitted so."""
        import numpy as np

        x = features.toarray() if is_sparse(features) else np.array(features, np.float32)
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        return x.astype(np.float32, copy=False)

    def logits(self, features: Any) -> Any:
        import torch

        self.module.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, features.shape[0], PREDICT_BATCH):
                batch = torch.from_numpy(self.transform(features[start : start + PREDICT_BATCH]))
                out.append(self.module(batch))
        return torch.cat(out)

    def predict(self, features: Any) -> np.ndarray:
        return self.logits(features).argmax(dim=1).numpy()


def validation_split(
    task: Task, backbone: Backbone, ctx: RunContext, fraction: float
) -> tuple[Any, np.ndarray, Any, np.ndarray | None, str]:
    """(train x, train y, val x, val y, where val came from); val is None when the training
    split is too small to spare one example per class."""
    from transferlab.training.data import carve_validation

    x, y = labeled_features(backbone, task, "train", ctx)
    data = carve_validation(task, fraction, ctx.seed)
    if data.val_from == "val":
        xv, yv = labeled_features(backbone, task, "val", ctx)
        return x, y, xv, yv, "val split"
    if data.val_indices is None:
        return x, y, None, None, "none (train too small)"
    return (x[data.train_indices], y[data.train_indices], x[data.val_indices],
            y[data.val_indices], f"{fraction:g} of train")


class Adapter(TransferMethod):
    """Linear(D, hidden) -> ReLU -> Dropout -> Linear(hidden, classes), trained with AdamW."""

    name = "adapter"
    family = "feature"
    summary = "small MLP on frozen features, early stopping on a validation split (torch)"
    params = (
        Param("hidden", int, 256, "hidden width; 0 gives a linear head", min=0),
        Param("dropout", float, 0.1, "dropout before the output layer", min=0.0, max=0.9),
        Param("lr", float, 1e-3, "AdamW learning rate", min=1e-8),
        Param("weight_decay", float, 1e-4, "AdamW weight decay", min=0.0),
        Param("epochs", int, 100, "most epochs (the budget may stop earlier)", min=1),
        Param("batch_size", int, 128, "minibatch size", min=1),
        Param("patience", int, 10, "epochs without a better val loss before stopping", min=1),
        Param("val_fraction", float, 0.1, "share of train held out when there is no val split",
              min=0.01, max=0.5),
        Param("standardize", bool, True, "z-score dense features (train statistics)"),
    )

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> FeaturePredictor:
        import numpy as np
        import torch
        from torch import nn

        hp = self.hparams
        x, y, xv, yv, val_source = validation_split(task, backbone, ctx, hp["val_fraction"])
        mean = scale = None
        if hp["standardize"] and not is_sparse(x):
            mean = np.asarray(x, np.float64).mean(axis=0).astype(np.float32)
            scale = np.asarray(x, np.float64).std(axis=0).astype(np.float32)
            scale[scale < 1e-6] = 1.0
        n_classes = len(task.label_names)
        dim = x.shape[1]
        torch.manual_seed(ctx.seed)
        if hp["hidden"] == 0:
            module: nn.Module = nn.Linear(dim, n_classes)
        else:
            module = nn.Sequential(nn.Linear(dim, hp["hidden"]), nn.ReLU(),
                                   nn.Dropout(hp["dropout"]), nn.Linear(hp["hidden"], n_classes))
        head = TorchHead(module, mean, scale)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matmuls: 1 thread measured 15x faster than 2 on 2 cores
        try:
            history = train_head(head, x, y, xv, yv, hp, ctx)
        finally:
            torch.set_num_threads(threads)
        params = sum(p.numel() for p in module.parameters())
        predictor = FeaturePredictor(head, backbone, params)
        predictor.extra.update({"validation": val_source, **history})
        return predictor


def train_head(
    head: TorchHead, x: Any, y: np.ndarray, xv: Any, yv: np.ndarray | None,
    hp: dict[str, Any], ctx: RunContext,
) -> dict[str, Any]:
    """Minibatch AdamW on feature rows, early stopping on validation (the loop's
    :class:`EarlyStopping`, best weights restored)."""
    import numpy as np
    import torch
    from torch.nn import functional

    from transferlab.training.stopping import EarlyStopping

    module = head.module
    optimizer = torch.optim.AdamW(module.parameters(), lr=hp["lr"],
                                  weight_decay=hp["weight_decay"])
    budget = ctx.budget
    max_epochs = min(hp["epochs"], budget.epochs or hp["epochs"])
    dense = None if is_sparse(x) else torch.from_numpy(head.transform(x))
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    stopper = EarlyStopping(hp["patience"]) if yv is not None else None
    yv_t = None if yv is None else torch.from_numpy(np.asarray(yv, dtype=np.int64))
    rng = ctx.rng(salt=1)
    steps, start, epoch, reason = 0, time.perf_counter(), 0, "epochs"
    for epoch in range(1, max_epochs + 1):
        module.train()
        order = rng.permutation(len(y))
        for begin in range(0, len(order), hp["batch_size"]):
            idx = order[begin : begin + hp["batch_size"]]
            batch = dense[idx] if dense is not None else torch.from_numpy(head.transform(x[idx]))
            loss = functional.cross_entropy(module(batch), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if budget.steps is not None and steps >= budget.steps:
                reason = "steps"
                break
        if stopper is not None:
            logits = head.logits(xv)  # batched, eval mode
            accuracy = float((logits.argmax(dim=1) == yv_t).float().mean())
            val_loss = float(functional.cross_entropy(logits, yv_t))
            if stopper.update(epoch, accuracy, val_loss, module) and reason == "epochs":
                reason = "early-stopping"
        if reason != "epochs":
            break
        if budget.seconds is not None and time.perf_counter() - start >= budget.seconds:
            reason = "seconds"
            break
    best_epoch = epoch
    if stopper is not None and stopper.restore(module):
        best_epoch = stopper.best_epoch
    return {"epochs": epoch, "best_epoch": best_epoch, "steps": steps, "stop_reason": reason,
            "val_accuracy": None if stopper is None or stopper.best is None
            else stopper.best[0]}
