"""The core's objective building blocks, pinned to hand-computed values: ``L2Penalty`` (plain
L2 and L2-SP towards a reference) and ``WeightedSum``."""

from __future__ import annotations

import pytest

from transferlab.errors import ParamError

torch = pytest.importorskip("torch")

from transferlab.api import Objective  # noqa: E402
from transferlab.training.losses import L2Penalty, WeightedSum  # noqa: E402


def _model() -> torch.nn.Module:
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.copy_(torch.tensor([3.0]))
    return model


def test_an_unbound_penalty_binds_the_trainable_weights_and_sums_their_squares():
    """Bugs caught: a default weight other than 1, frozen weights penalised, a reference kept
    after binding to the model, the sum or the weight applied wrongly."""
    penalty = L2Penalty()
    assert (penalty.weight, penalty.params, penalty.reference) == (1.0, [], None)
    model = _model()
    model.bias.requires_grad_(False)
    penalty.setup(model)
    assert penalty.params == [model.weight] and penalty.reference is None
    assert penalty().item() == 1 + 4  # 1^2 + (-2)^2; the frozen bias is left out
    assert L2Penalty(0.5).bind(_model().parameters())().item() == pytest.approx(0.5 * 14)


def test_a_reference_penalty_pulls_towards_a_copy_of_the_reference():
    """Bugs caught: the penalty measured from zero instead of the reference, the reference
    aliased (so it moves with the weights), dropped or indexed wrongly in setup."""
    model = _model()
    reference = [torch.tensor([[1.0, 0.0]]), torch.tensor([1.0])]
    penalty = L2Penalty(2.0).bind(model.parameters(), reference)
    reference[0].add_(100.0)  # the caller's tensors change; the bound copy must not
    penalty.setup(model)
    assert penalty().item() == 2.0 * ((-2.0) ** 2 + (3.0 - 1.0) ** 2)
    one = torch.nn.Parameter(torch.tensor([2.0]))
    single = L2Penalty().bind([one], [torch.tensor([0.5])])
    single.setup(torch.nn.Linear(1, 1))  # already bound: keeps its weight and reference
    assert single.params == [one] and single().item() == 1.5**2


def test_a_reference_of_other_shapes_is_refused_in_one_line():
    """Bug caught: a mismatched reference accepted (zip would silently truncate) or an error
    that does not say what is wrong."""
    with pytest.raises(ParamError) as error:
        L2Penalty().bind(_model().parameters(), [torch.zeros(2)])
    assert str(error.value) == "l2: reference tensors do not match the penalised weights"


def test_a_zero_or_empty_penalty_is_a_constant_zero_scalar():
    """Bugs caught: a zero weight still building a graph through the weights, no weights
    failing instead of giving 0, a result that is not a 0-dim tensor."""
    model = _model()
    off = L2Penalty(0.0).bind(model.parameters())()
    assert off.shape == () and float(off) == 0.0 and not off.requires_grad
    lone = L2Penalty(0.0).bind([torch.nn.Parameter(torch.ones(1))])()
    assert lone.shape == () and float(lone) == 0.0  # one weight: its device, no IndexError
    empty = L2Penalty(1.0)()
    assert empty.shape == () and float(empty) == 0.0


class _Constant(Objective):
    name = "constant"

    def __init__(self, value: float) -> None:
        self.value, self.models = value, []

    def setup(self, model):
        self.models.append(model)

    def __call__(self, outputs, batch):
        return torch.tensor(self.value)


class _Exploding(Objective):
    name = "exploding"

    def __call__(self, outputs, batch):
        raise AssertionError("a zero-weight term must not be evaluated")


def test_weighted_sum_adds_weighted_terms_skips_zero_weights_and_sets_each_up():
    """Bugs caught: weights not applied or not floats, zero-weight terms evaluated (a
    distillation term with weight 0 would still need its teacher), setup not passed on, an
    all-zero sum that is a float instead of a tensor, empty sums accepted."""
    a, b = _Constant(2.0), _Constant(5.0)
    total = WeightedSum([(3, a), (0.5, b), (0, _Exploding())])
    assert [w for w, _ in total.terms] == [3.0, 0.5, 0.0]
    assert all(isinstance(w, float) for w, _ in total.terms)
    model = torch.nn.Linear(1, 1)
    total.setup(model)
    assert a.models == [model] and b.models == [model]
    assert float(total(None, {})) == 3 * 2.0 + 0.5 * 5.0
    nothing = WeightedSum([(0, _Exploding())])(None, {})
    assert isinstance(nothing, torch.Tensor) and nothing.shape == () and float(nothing) == 0
    with pytest.raises(ParamError) as error:
        WeightedSum([])
    assert str(error.value) == ("weighted-sum needs at least one term, e.g."
                                " terms=cross-entropy:1+l2:1")
