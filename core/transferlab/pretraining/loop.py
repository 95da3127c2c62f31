"""The pretraining loop: AdamW with warm-up and cosine decay over a step budget, periodic
checkpoints, and an exact resume.

Why a loop of its own rather than the fine-tuning loop (:mod:`transferlab.training.loop`):
pretraining has no labels, no validation accuracy and no early stopping, but it must survive
being killed. Its unit of progress is the optimizer step ``s``: batch ``s`` is rows
``[p*B, (p+1)*B)`` of the permutation of epoch ``s // steps_per_epoch`` (the same
:func:`~transferlab.training.data.shuffled` the fine-tuning loop uses, at ``p = s mod
steps_per_epoch``), and its random draws (masks, views) come from a generator seeded by
``(seed, s)``. A checkpoint therefore needs only the weights, the optimizer and scheduler
state, the global torch random state (dropout) and ``s``; resuming from it replays exactly
the steps an uninterrupted run takes, so both end with the same weights.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle  # only for its error type: checkpoints load with weights_only=True
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from transferlab.api import Budget
from transferlab.errors import CheckpointError, DataError, ParamError
from transferlab.pretraining.setup import PretrainingSetup
from transferlab.training.data import shuffled, to_device
from transferlab.training.schedule import build_optimizer, build_scheduler, decay_groups

__all__ = ["PretrainConfig", "PretrainResult", "Term", "run_pretraining"]

LATEST = "latest"  # the file in a run directory naming its newest complete checkpoint


@dataclass(frozen=True)
class PretrainConfig:
    """How a pretraining run trains. ``budget`` needs ``steps`` or ``epochs`` (the schedule's
    length); ``seconds`` may cap it further, counted across resumes (a run cut by its time
    budget is not reproducible step for step, unlike one cut by steps or epochs)."""

    budget: Budget
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    log_every: int = 10
    validation_batches: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.budget.steps or self.budget.epochs):
            raise ParamError("pretraining needs a budget of steps or epochs (the learning-rate"
                             " schedule's length), e.g. --steps 1000; --seconds only caps it")
        for name in ("batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ParamError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.warmup < 1 or self.lr <= 0 or self.grad_clip < 0:
            raise ParamError(f"need lr > 0, 0 <= warmup < 1 and grad_clip >= 0; got lr"
                             f" {self.lr}, warmup {self.warmup}, grad_clip {self.grad_clip}")


@dataclass(frozen=True)
class Term:
    """One objective of the run, with the name it is reported under and its weight."""

    name: str
    objective: Any
    weight: float = 1.0


@dataclass
class PretrainResult:
    """What a run did; ``history`` has one record per ``log_every`` steps (mean loss of
    those steps, per objective too, and the learning rate)."""

    steps: int = 0
    total_steps: int = 0
    units: int = 0
    train_seconds: float = 0.0
    resumed_from: int = 0
    stop_reason: str = ""
    validation_loss: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        """The mean training loss of the last logged window."""
        return self.history[-1]["loss"] if self.history else None

    @property
    def units_per_second(self) -> float:
        return self.units / self.train_seconds if self.train_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {"steps": self.steps, "total_steps": self.total_steps,
                "stop_reason": self.stop_reason, "resumed_from": self.resumed_from,
                "final_loss": self.final_loss, "validation_loss": self.validation_loss,
                "train_seconds": round(self.train_seconds, 3),
                "units_per_s": round(self.units_per_second, 2)}


def total_steps(examples: int, config: PretrainConfig) -> int:
    """The schedule's length: the step budget, or epochs of ``examples // batch_size``
    full batches (the last partial batch of an epoch is dropped), whichever is smaller."""
    per_epoch = examples // config.batch_size
    if per_epoch < 1:
        raise DataError(f"only {examples} pretraining examples, fewer than one batch of"
                        f" {config.batch_size}; give more data or a smaller --batch-size")
    epochs = config.budget.epochs
    return int(min(config.budget.steps or math.inf, epochs * per_epoch if epochs else math.inf))


# the permutation of the current epoch, drawn once per epoch rather than at every step (read
# only: callers slice it)
_epoch_order = functools.lru_cache(maxsize=2)(shuffled)


def batch_rows(step: int, examples: int, config: PretrainConfig) -> Sequence[int]:
    """The rows of optimizer step ``step``: a slice of its epoch's permutation."""
    per_epoch = examples // config.batch_size
    epoch, position = divmod(step, per_epoch)
    order = _epoch_order(examples, config.seed, epoch)
    return order[position * config.batch_size:(position + 1) * config.batch_size].tolist()


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s random draws: a function of (seed, step) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))


# --- checkpoints ------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def save_state(run_dir: Path, module: Any, optimizer: Any, scheduler: Any,
               result: PretrainResult) -> Path:
    """Write checkpoint ``step-N`` (weights as safetensors; optimizer, scheduler and random
    state as tensors torch loads with ``weights_only=True``), then point ``latest`` at it
    and delete older ones. A kill before the pointer moves leaves the previous checkpoint
    in charge, so a half-written one is never read."""
    from transferlab.checkpoint import save_checkpoint

    target = run_dir / f"step-{result.steps:08d}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    save_checkpoint(module, target / "weights.safetensors", name="pretraining")
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, target / "state.pt")
    _write_json(target / "progress.json", {**asdict(result), "history": result.history})
    _write_json(run_dir / LATEST, {"checkpoint": target.name, "step": result.steps})
    for old in run_dir.glob("step-*"):
        if old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(run_dir: Path, module: Any, optimizer: Any, scheduler: Any
               ) -> PretrainResult | None:
    """Restore the newest checkpoint of ``run_dir`` into the objects; None when there is
    none. A damaged checkpoint is a :class:`CheckpointError` naming the directory."""
    pointer = run_dir / LATEST
    if not pointer.is_file():
        return None
    from transferlab.checkpoint import load_checkpoint

    try:
        target = run_dir / json.loads(pointer.read_text())["checkpoint"]
        load_checkpoint(target / "weights.safetensors", module, expected_name="pretraining")
        state = torch.load(target / "state.pt", weights_only=True, map_location="cpu")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        progress = json.loads((target / "progress.json").read_text())
    except (OSError, KeyError, ValueError, RuntimeError, CheckpointError,
            pickle.UnpicklingError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise CheckpointError(f"the pretraining checkpoint in {run_dir} is damaged ({reason});"
                              f" delete {run_dir} to start over") from None
    return PretrainResult(**progress)


# --- the loop ---------------------------------------------------------------------------------


@contextmanager
def stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """While active, Ctrl-C (SIGINT) only raises a flag, so the loop can finish its step and
    checkpoint before stopping; a second Ctrl-C interrupts at once."""
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield lambda: False
        return
    try:
        yield lambda: flag["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


class Interrupted(Exception):
    """The run stopped on request after checkpointing step :attr:`step`."""

    def __init__(self, step: int, run_dir: Path) -> None:
        super().__init__(f"interrupted after step {step}; checkpoint in {run_dir}")
        self.step = step


def _loss(setup: PretrainingSetup, terms: Sequence[Term], batch: dict[str, Any]
          ) -> tuple[torch.Tensor, dict[str, float]]:
    outputs = setup.forward(batch)
    total, parts = None, {}
    for term in terms:
        value = term.objective(outputs, batch)
        parts[term.name] = float(value.detach())
        total = term.weight * value if total is None else total + term.weight * value
    assert total is not None
    return total, parts


def _validation_loss(setup: PretrainingSetup, terms: Sequence[Term], config: PretrainConfig,
                     device: str) -> float | None:
    """Mean weighted loss over the first validation batches, in eval mode, seeded draws."""
    data = setup.validation
    if data is None or data.count == 0 or config.validation_batches == 0:
        return None
    setup.module.eval()
    losses = []
    with torch.no_grad():
        for index in range(min(config.validation_batches,
                               -(-data.count // config.batch_size))):
            rows = range(index * config.batch_size,
                         min(data.count, (index + 1) * config.batch_size))
            batch = to_device(data.batch(list(rows), step_generator(config.seed, -1 - index)),
                              device)
            losses.append(float(_loss(setup, terms, batch)[0]))
    return sum(losses) / len(losses)


def run_pretraining(
    setup: PretrainingSetup, terms: Sequence[Term], config: PretrainConfig, run_dir: Path, *,
    device: str = "cpu", progress: Callable[[int, int, dict[str, float]], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PretrainResult:
    """Train ``setup.module`` in place with the weighted sum of ``terms``, checkpointing into
    ``run_dir`` every ``checkpoint_every`` steps and at the end, resuming from its newest
    checkpoint when there is one. ``progress(steps_done, total, last_record)`` is called after
    each step. When ``should_stop()`` turns true the run checkpoints and raises
    :class:`Interrupted`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    module = setup.module.to(device)
    total = total_steps(setup.train.count, config)
    groups = decay_groups(module.named_parameters(), config.lr, config.weight_decay, "all")
    optimizer = build_optimizer(groups, (0.9, 0.999))
    scheduler = build_scheduler(optimizer, total, config.warmup)
    torch.manual_seed(config.seed)  # dropout; a resume then restores the saved state
    result = load_state(run_dir, module, optimizer, scheduler) or PretrainResult()
    result.total_steps, result.resumed_from = total, result.steps
    for term in terms:
        term.objective.setup(module)
    window: list[tuple[float, dict[str, float], int, float]] = []
    while result.steps < total:
        if config.budget.seconds and result.train_seconds >= config.budget.seconds:
            result.stop_reason = "seconds"
            break
        module.train()
        tick = time.perf_counter()
        step = result.steps
        batch = setup.train.batch(batch_rows(step, setup.train.count, config),
                                  step_generator(config.seed, step))
        batch = to_device(batch, device)
        loss, parts = _loss(setup, terms, batch)
        if not bool(torch.isfinite(loss)):
            raise DataError(f"pretraining loss became {float(loss.detach())} at step {step};"
                            f" lower the learning rate (now {config.lr}) and resume from {run_dir}")
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        result.steps += 1
        units, seconds = setup.units(batch), time.perf_counter() - tick
        result.units += units
        result.train_seconds += seconds
        window.append((float(loss.detach()), parts, units, seconds))
        if result.steps % config.log_every == 0 or result.steps == total:
            record = {"step": result.steps, "loss": sum(w[0] for w in window) / len(window),
                      "lr": scheduler.get_last_lr()[0],
                      "units_per_s": sum(w[2] for w in window) / max(
                          1e-9, sum(w[3] for w in window))}
            for name in parts:
                record[name] = sum(w[1][name] for w in window) / len(window)
            result.history.append(record)
            window = []
        if progress is not None:
            progress(result.steps, total, result.history[-1] if result.history else {})
        stop = should_stop is not None and should_stop()
        if stop or result.steps % config.checkpoint_every == 0 or result.steps == total:
            save_state(run_dir, module, optimizer, scheduler, result)
        if stop:
            raise Interrupted(result.steps, run_dir)
    if result.stop_reason == "seconds":
        save_state(run_dir, module, optimizer, scheduler, result)
    result.stop_reason = result.stop_reason or "steps"
    result.validation_loss = _validation_loss(setup, terms, config, device)
    module.eval()
    return result
