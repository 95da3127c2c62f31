"""The shared loop's arithmetic, pinned exactly: how many micro-batches and optimizer steps a
run plans, which micro-batches one step accumulates and how, clipping, budgets and the summary
stored with a cell. ``_train_epoch`` runs here with plain SGD at learning rate 1 and a constant
schedule, so every update is the accumulated gradient itself and can be recomputed by hand."""

from __future__ import annotations

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
    result = TrainResult(steps=3, epochs=2, examples=10, train_seconds=1.23456,
                         stop_reason="steps", best_epoch=1, val_accuracy=0.5,
                         history=[{"epoch": 1}])
    assert result.summary() == {
        "steps": 3, "epochs": 2, "stop_reason": "steps", "best_epoch": 1,
        "val_accuracy": 0.5, "train_seconds": 1.235, "train_examples_per_s": 8.1}
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
