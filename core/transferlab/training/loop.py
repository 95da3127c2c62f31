"""The shared training loop: objective, AdamW + warm-up/cosine, budget, early stopping,
gradient clipping and accumulation, Accelerate for device and precision, tqdm progress.

Deterministic for a given seed: the caller seeds torch (head init, dropout) and the example
order of each epoch depends only on (seed, epoch). Nothing here catches KeyboardInterrupt, so
an interrupted fit stops at once and the progress bar is closed on the way out.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from transferlab.api import Objective, RunContext
from transferlab.training.accelerator import make_accelerator
from transferlab.training.config import TrainConfig, check_budget
from transferlab.training.data import BatchSource, count_batches, shuffled, to_device
from transferlab.training.evaluate import evaluate
from transferlab.training.schedule import build_optimizer, build_scheduler
from transferlab.training.stopping import EarlyStopping


@dataclass
class TrainResult:
    """What happened during training, for the results store (``predictor.extra``)."""

    steps: int = 0
    epochs: int = 0
    examples: int = 0
    train_seconds: float = 0.0
    stop_reason: str = ""
    best_epoch: int | None = None
    val_accuracy: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.train_seconds if self.train_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Flat JSON-friendly fields (the per-epoch history stays out of the store)."""
        return {
            "steps": self.steps, "epochs": self.epochs, "stop_reason": self.stop_reason,
            "best_epoch": self.best_epoch, "val_accuracy": self.val_accuracy,
            "train_seconds": round(self.train_seconds, 3),
            "train_examples_per_s": round(self.examples_per_second, 2),
        }


def set_train_mode(model: nn.Module) -> None:
    """Training mode, except batch-norm layers that are not fully trained: their running
    statistics stay frozen too, so a frozen layer computes exactly what it did before."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if not params or not all(p.requires_grad for p in params):
                module.eval()


@dataclass
class _Plan:
    """How many micro-batches and optimizer steps one run takes (after sharding by rank)."""

    per_rank: int
    micro: int
    total: int

    @classmethod
    def of(cls, n: int, batch_size: int, config: TrainConfig, budget: Any, ranks: int) -> _Plan:
        per_rank = n // ranks if ranks > 1 else n
        micro = count_batches(per_rank, batch_size, drop_singleton=True)
        steps_per_epoch = max(1, -(-micro // config.accumulate))
        total = steps_per_epoch * budget.epochs if budget.epochs else math.inf
        return cls(per_rank, micro, int(min(total, budget.steps or math.inf)))


@dataclass
class _Step:
    """What one optimizer step needs: the prepared optimizer, schedule and objective."""

    accelerator: Any
    optimizer: Any
    scheduler: Any
    objective: Objective
    trained: list[nn.Parameter]
    config: TrainConfig
    budget: Any
    plan: _Plan
    start: float


def _train_epoch(model: nn.Module, data: BatchSource, order: Any, step: _Step,
                 result: TrainResult, update: Callable[[int], Any]) -> list[float]:
    """One pass over ``order``; stops early (setting ``result.stop_reason``) when the step or
    time budget runs out. Returns the micro-batch losses."""
    config, accelerator = step.config, step.accelerator
    losses: list[float] = []
    for index, batch in enumerate(data.objective_batches(order, drop_singleton=True)):
        group_end = min(step.plan.micro, (index // config.accumulate + 1) * config.accumulate)
        group_size = group_end - (index // config.accumulate) * config.accumulate
        sync = index + 1 == group_end
        batch = to_device(batch, accelerator.device)  # inputs, labels and the source's extras
        with contextlib.nullcontext() if sync else accelerator.no_sync(model):
            outputs = model(batch["inputs"])
            loss = step.objective(outputs, batch)
            accelerator.backward(loss / group_size)
        losses.append(float(loss.detach()))
        result.examples += len(batch["labels"])
        if not sync:
            continue
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(step.trained, config.grad_clip)
        step.optimizer.step()
        step.optimizer.zero_grad(set_to_none=True)
        step.scheduler.step()
        result.steps += 1
        update(1)
        if result.steps >= (step.budget.steps or math.inf):
            result.stop_reason = "steps"
        elif step.budget.seconds and time.perf_counter() - step.start >= step.budget.seconds:
            result.stop_reason = "seconds"
        if result.stop_reason:
            break
    return losses


def train(
    model: nn.Module, train_data: BatchSource, val_data: BatchSource | None,
    objective: Objective, groups: Sequence[dict[str, Any]], config: TrainConfig,
    ctx: RunContext, *, desc: str = "train",
    on_epoch_end: Callable[[dict[str, float]], Any] | None = None,
) -> TrainResult:
    """Train ``model`` (forward: preprocessed batch -> logits) in place and return a summary.

    ``groups`` are AdamW parameter groups with their own peak ``lr``/``weight_decay``;
    parameters outside them do not change. The objective is called with the outputs and
    ``{"inputs", "labels", **train_data.extras}`` (each extra's rows for the batch's
    examples). With ``val_data`` the best epoch by validation accuracy (ties: lower loss) is
    restored at the end. ``on_epoch_end(record)`` is called after each epoch with its history
    record.
    """
    budget = check_budget(config.budget)
    accelerator = make_accelerator(ctx.device, config.mixed_precision)
    optimizer = build_optimizer(groups, config.betas)
    ranks, rank = accelerator.num_processes, accelerator.process_index
    plan = _Plan.of(len(train_data), train_data.batch_size, config, budget, ranks)
    scheduler = build_scheduler(optimizer, plan.total, config.warmup)
    model, optimizer = accelerator.prepare(model, optimizer)
    objective.setup(model)  # after placement, so penalties see weights on their final device
    step = _Step(accelerator, optimizer, scheduler, objective,
                 [p for g in groups for p in g["params"]], config, budget, plan,
                 time.perf_counter())
    stopper = EarlyStopping(config.patience) if val_data is not None else None
    result = TrainResult()
    epoch_limit = budget.epochs or math.inf
    with ctx.progress_bar(plan.total, desc) as update:
        epoch = 0
        while not result.stop_reason:
            if epoch >= epoch_limit:
                result.stop_reason = "epochs"
                break
            set_train_mode(model)
            order = shuffled(len(train_data), ctx.seed, epoch)
            if ranks > 1:
                order = order[: plan.per_rank * ranks][rank::ranks]
            tick = time.perf_counter()
            losses = _train_epoch(model, train_data, order, step, result, update)
            result.train_seconds += time.perf_counter() - tick
            epoch += 1
            result.epochs = epoch
            record = {"epoch": epoch, "train_loss": sum(losses) / max(1, len(losses)),
                      "lr": scheduler.get_last_lr()[0]}
            if stopper is not None:
                accuracy, val_loss = evaluate(model, val_data, accelerator.device)
                record.update(val_accuracy=accuracy, val_loss=val_loss)
                if stopper.update(epoch, accuracy, val_loss, model) and not result.stop_reason:
                    result.stop_reason = "early-stopping"
            result.history.append(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
            if result.steps >= plan.total and not result.stop_reason:
                result.stop_reason = "steps" if budget.steps == plan.total else "epochs"
    if stopper is not None and stopper.restore(model):
        result.best_epoch = stopper.best_epoch
        result.val_accuracy = stopper.best[0] if stopper.best else None
    model.eval()
    return result
