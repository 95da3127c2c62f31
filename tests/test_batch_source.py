"""BatchSource's defaults and refusals, pinned exactly (the loop's tests cover shuffled
orders; these cover what a method author calls directly)."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.api import Split
from transferlab.errors import DataError

torch = pytest.importorskip("torch")

from transferlab.training.data import BatchSource, carve_validation  # noqa: E402


def _source(n: int = 5, **kwargs) -> BatchSource:
    inputs = [np.full(2, i, dtype=np.float32) for i in range(n)]
    return BatchSource(Split(inputs, np.arange(n) % 2), lambda xs: torch.as_tensor(np.stack(xs)),
                       2, **kwargs)


def test_objective_batches_default_to_the_stored_order_with_their_extras():
    """Bug caught: without an order the batches come in no order (or none at all), or the
    extras lose their rows."""
    source = _source(extras={"teacher": torch.arange(5) * 10})
    batches = list(source.objective_batches())
    assert [b["inputs"][:, 0].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert [b["teacher"].tolist() for b in batches] == [[0, 10], [20, 30], [40]]
    assert [b["labels"].tolist() for b in batches] == [[0, 1], [0, 1], [0]]


def test_extras_that_cannot_line_up_are_refused_with_the_fix():
    """Bug caught: an error that does not say what to do."""
    with pytest.raises(DataError) as reserved:
        _source(extras={"labels": torch.zeros(5)})
    assert str(reserved.value) == ("batch extra 'labels' would replace the batch's own"
                                   " 'labels'; give it another name (e.g. 'teacher')")
    with pytest.raises(DataError) as short:
        _source(extras={"teacher": torch.zeros(4, 3)})
    assert str(short.value) == ("batch extra 'teacher' has shape (4, 3) but the split has 5"
                                " examples; give one row per example, in the split's order")


def test_a_zero_validation_fraction_carves_nothing():
    """Bug caught: a fraction of 0 still carving (an empty or one-example validation split)."""
    from fakes import TinyTask

    data = carve_validation(TinyTask(), 0.0, seed=0)
    assert data.val is None and data.val_indices is None and data.val_from is None
    assert len(data.train) == len(TinyTask().split("train"))
