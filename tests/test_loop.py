"""The shared loop's arithmetic, pinned exactly: how many micro-batches and optimizer steps a
run plans, which micro-batches one step accumulates and how, clipping, budgets and the summary
stored with a cell. ``_train_epoch`` runs here with plain SGD at learning rate 1 and a constant
schedule, so every update is the accumulated gradient itself and can be recomputed by hand."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest

from transferlab.api import Budget, Split
from transferlab.training.config import TrainConfig

torch = pytest.importorskip("torch")

from transferlab.training.accelerator import make_accelerator  # noqa: E402
from transferlab.training.data import BatchSource  # noqa: E402
from transferlab.training.loop import TrainResult, _Plan, _Step, _train_epoch  # noqa: E402


def _config(accumulate: int = 1, grad_clip: float = 0.0, **budget) -> TrainConfig:
    return TrainConfig(budget=Budget(**budget), accumulate=accumulate, grad_clip=grad_clip)


@pytest.mark.parametrize(("n", "batch_size", "accumulate", "budget", "ranks", "expected"), [
    (10, 4, 1, {"epochs": 2}, 1, (10, 3, 6)),    # batches 4, 4, 2
    (9, 4, 1, {"epochs": 2}, 1, (9, 2, 4)),      # 4, 4, and a singleton that is dropped
    (10, 4, 2, {"epochs": 2}, 1, (10, 3, 4)),    # 3 micro-batches make ceil(3/2) = 2 steps
    (4, 4, 1, {"epochs": 3}, 1, (4, 1, 3)),      # one batch: one step per epoch
    (10, 4, 1, {"steps": 5}, 1, (10, 3, 5)),     # no epoch limit: the step budget alone
    (10, 4, 1, {"epochs": 2, "steps": 4}, 1, (10, 3, 4)),  # the tighter of the two
    (17, 4, 1, {"epochs": 1}, 2, (8, 2, 2)),     # each of 2 ranks gets 17 // 2 examples
])
def test_plan_counts_micro_batches_steps_and_shards(n, batch_size, accumulate, budget, ranks,
                                                    expected):
    """Bugs caught: the singleton batch counted, accumulation rounded down or computed in
    floats, a one-batch epoch planned as two steps, the epoch limit required, the step budget
    ignored, and a multi-process run planning every example for every rank."""
    plan = _Plan.of(n, batch_size, _config(accumulate), Budget(**budget), ranks)
    assert (plan.per_rank, plan.micro, plan.total) == expected
    assert isinstance(plan.total, int)


def test_train_result_summary_is_flat_and_rounded():
    """Bug caught: a summary field dropped, renamed or unrounded in the stored cell."""
    result = TrainResult(steps=3, epochs=2, examples=10, train_seconds=2.9996,
                         stop_reason="steps", best_epoch=1, val_accuracy=0.5,
                         history=[{"epoch": 1}])
    assert result.summary() == {
        "steps": 3, "epochs": 2, "stop_reason": "steps", "best_epoch": 1,
        "val_accuracy": 0.5, "train_seconds": 3.0, "train_examples_per_s": 3.33}
    assert TrainResult(examples=5).examples_per_second == 0.0  # no time measured: not inf


class _MeanSquared:
    """0.5 * mean squared output: its gradient is easy to recompute by hand."""

    def __call__(self, outputs, batch):
        return 0.5 * (outputs**2).sum(dim=1).mean()


def _epoch(n: int, batch_size: int, config: TrainConfig, *, start: float | None = None):
    torch.manual_seed(0)
    inputs = [np.random.RandomState(i).randn(3).astype(np.float32) * (1 + i) for i in range(n)]
    data = BatchSource(Split(inputs, np.zeros(n)), lambda xs: torch.as_tensor(np.stack(xs)),
                       batch_size)
    model = torch.nn.Linear(3, 2, bias=False)
    initial = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    plan = _Plan.of(n, batch_size, config, config.budget, 1)
    step = _Step(make_accelerator("cpu", "no"), optimizer, scheduler, _MeanSquared(),
                 [model.weight], config, config.budget, plan,
                 time.perf_counter() if start is None else start)
    result, updates = TrainResult(), []
    losses = _train_epoch(model, data, np.arange(n), step, result, updates.append)
    return initial, torch.stack([torch.as_tensor(x) for x in inputs]), model, result, losses, \
        updates, scheduler


def _by_hand(weight, x, batch_size, accumulate, steps=None, clip=0.0):
    """The expected weights: each step averages the gradients of its micro-batches' mean
    losses over the number of micro-batches in its group (a shorter last group divides by
    its own size), optionally clipped, then takes one SGD step at learning rate 1."""
    micro = [x[i: i + batch_size] for i in range(0, len(x), batch_size)]
    if len(micro) > 1 and len(micro[-1]) == 1:
        micro = micro[:-1]
    weight = weight.clone()
    groups = [micro[i: i + accumulate] for i in range(0, len(micro), accumulate)]
    for group in groups[:steps]:
        grad = sum((weight @ b.T) @ b / len(b) for b in group) / len(group)
        norm = grad.norm()
        if clip > 0 and norm > clip:
            grad = grad * clip / (norm + 1e-6)
        weight = weight - grad
    return weight


@pytest.mark.parametrize(("n", "batch_size", "accumulate"), [
    (10, 2, 1), (10, 2, 2), (10, 3, 2), (9, 2, 3), (11, 4, 2)])
def test_each_step_averages_its_own_group_of_micro_batches(n, batch_size, accumulate):
    """Bugs caught: steps taken at the wrong micro-batch, gradients not divided by the group's
    size (or by the nominal size for a short last group), gradients not zeroed between steps,
    the schedule not stepped with the optimizer, progress or example counts off."""
    initial, x, model, result, losses, updates, scheduler = _epoch(
        n, batch_size, _config(accumulate, epochs=1))
    expected = _by_hand(initial, x, batch_size, accumulate)
    torch.testing.assert_close(model.weight.detach(), expected, rtol=1e-5, atol=1e-6)
    micro = -(-n // batch_size) - (1 if n % batch_size == 1 else 0)
    steps = -(-micro // accumulate)
    assert (result.steps, len(updates), sum(updates), scheduler.last_epoch) == (
        steps, steps, steps, steps)
    assert len(losses) == micro and result.examples == min(n, micro * batch_size)
    assert result.stop_reason == ""  # the epoch ended, no budget ran out


def test_gradients_are_clipped_only_when_clipping_is_on():
    """Bugs caught: clipping skipped, or applied with a limit of 0 when it is off."""
    for clip in (0.0, 0.05):
        initial, x, model, *_ = _epoch(8, 2, _config(2, grad_clip=clip, epochs=1))
        expected = _by_hand(initial, x, 2, 2, clip=clip)
        torch.testing.assert_close(model.weight.detach(), expected, rtol=1e-4, atol=1e-6)
    unclipped = _by_hand(initial, x, 2, 2)
    assert not torch.allclose(unclipped, expected)  # the limit really binds here


def test_step_and_time_budgets_stop_inside_an_epoch():
    """Bugs caught: the step budget checked off by one or only between epochs; the time
    budget ignored."""
    initial, x, model, result, losses, _, _ = _epoch(12, 2, _config(2, steps=2))
    assert (result.steps, result.stop_reason, len(losses), result.examples) == (
        2, "steps", 4, 8)
    torch.testing.assert_close(model.weight.detach(), _by_hand(initial, x, 2, 2, steps=2),
                               rtol=1e-5, atol=1e-6)
    _, _, _, timed, losses, _, _ = _epoch(12, 2, _config(1, epochs=1, seconds=1.0),
                                          start=time.perf_counter() - 10)
    assert (timed.steps, timed.stop_reason, len(losses)) == (1, "seconds", 1)


class _Clock:
    """A perf_counter that advances exactly one second per call."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


class _RecordingObjective(_MeanSquared):
    def setup(self, model):
        self.model = model


def test_train_follows_each_epochs_shuffled_order_and_records_every_epoch(monkeypatch):
    """``train`` end to end with SGD at lr 1 and a constant schedule. Bugs caught: epochs not
    shuffled by (seed, epoch) or the order not passed on; the objective set up without the
    model; a history record with a wrong key, mean loss or learning rate; the callback not
    given the record; train time overwritten instead of summed over epochs; the progress bar
    not sized to the plan or not named; validation loss not recorded; a steps-only budget
    refused."""
    from types import SimpleNamespace

    from transferlab.api import RunContext
    from transferlab.training import loop
    from transferlab.training.data import shuffled

    monkeypatch.setattr(loop, "build_optimizer",
                        lambda groups, betas: torch.optim.SGD(groups[0]["params"], lr=1.0))
    monkeypatch.setattr(loop, "build_scheduler", lambda optimizer, total, warmup:
                        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
    clock = _Clock()
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    n, batch_size, seed = 6, 2, 3
    inputs = [np.random.RandomState(i).randn(3).astype(np.float32) for i in range(n)]
    data = BatchSource(Split(inputs, np.zeros(n)), lambda xs: torch.as_tensor(np.stack(xs)),
                       batch_size)
    x = torch.as_tensor(np.stack(inputs))
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, bias=False)
    weight = model.weight.detach().clone()
    ctx = RunContext(seed=seed, progress=False)
    bars = []

    @contextlib.contextmanager
    def progress_bar(total, desc):
        bars.append((total, desc))
        yield lambda k: None

    monkeypatch.setattr(ctx, "progress_bar", progress_bar)
    objective, seen = _RecordingObjective(), []
    config = TrainConfig(budget=Budget(epochs=2), batch_size=batch_size, grad_clip=0.0,
                         patience=0)
    result = loop.train(model, data, None, objective, [{"params": [model.weight]}], config,
                        ctx, on_epoch_end=seen.append)
    expected_history = []
    for epoch in range(2):
        order = shuffled(n, seed, epoch)
        losses = []
        for start in range(0, n, batch_size):
            batch = x[order[start: start + batch_size]]
            losses.append(float(0.5 * ((batch @ weight.T) ** 2).sum(dim=1).mean()))
            weight = weight - (weight @ batch.T) @ batch / len(batch)
        expected_history.append((epoch + 1, sum(losses) / len(losses), 1.0))
    torch.testing.assert_close(model.weight.detach(), weight, rtol=1e-5, atol=1e-6)
    assert [(r["epoch"], r["lr"]) for r in result.history] == [(e, lr) for e, _, lr in
                                                                 expected_history]
    assert [r["train_loss"] for r in result.history] == pytest.approx(
        [loss for _, loss, _ in expected_history], rel=1e-5)
    assert seen == result.history and objective.model is model
    assert (result.epochs, result.steps, result.stop_reason) == (2, 6, "epochs")
    assert result.train_seconds == 2.0  # one fake second per epoch, summed
    assert bars == [(6, "train")]
    validated = loop.train(model, data, data, objective, [{"params": [model.weight]}], config,
                           ctx, on_epoch_end=seen.append)
    assert all(set(r) == {"epoch", "train_loss", "lr", "val_accuracy", "val_loss"}
               and r["val_loss"] > 0 for r in validated.history)
    assert seen[2:] == validated.history and validated.best_epoch in (1, 2)
    steps_only = TrainConfig(budget=Budget(steps=4), batch_size=batch_size, patience=0)
    again = loop.train(model, data, None, objective, [{"params": [model.weight]}],
                       steps_only, ctx)
    assert (again.steps, again.epochs, again.stop_reason) == (4, 2, "steps")


def test_the_time_budget_stops_at_exactly_its_limit(monkeypatch):
    """Bugs caught: elapsed time computed with the wrong sign, or a budget reached exactly
    not counted as spent."""
    from types import SimpleNamespace

    from transferlab.training import loop

    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: 1000.0))
    *_, spent, _, _, _ = _epoch(8, 2, _config(1, epochs=1, seconds=5.0), start=995.0)
    assert (spent.steps, spent.stop_reason) == (1, "seconds")
    *_, fresh, _, _, _ = _epoch(8, 2, _config(1, epochs=1, seconds=1500.0), start=999.0)
    assert (fresh.steps, fresh.stop_reason) == (4, "")
