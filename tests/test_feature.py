"""Feature transfer methods on small real data (scikit-learn digits)."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.api import Backbone, RunContext
from transferlab.errors import DataError
from transferlab_baselines.raw import RawPixels
from transferlab_feature.linear_probe import LinearProbe
from transferlab_tasks.digits import DigitsTask


def _fit(method, backbone, seed=0):
    task = DigitsTask()
    ctx = RunContext(seed=seed, progress=False)
    predictor = method.fit(backbone, task, ctx)
    predictions = predictor.predict_split(task, "test", ctx)
    return predictor, float((predictions == task.split("test").labels).mean())


def test_linear_probe_on_raw_digits_is_accurate_and_deterministic():
    backbone = RawPixels("raw:pixels", size=8, grayscale=True)
    predictor, accuracy = _fit(LinearProbe(), backbone)
    assert accuracy > 0.94
    assert predictor.trainable_params == 64 * 10 + 10
    assert predictor.extra["converged"] is True
    assert _fit(LinearProbe(), backbone)[1] == accuracy


def test_linear_probe_predict_matches_predict_split():
    backbone = RawPixels("raw:pixels", size=8, grayscale=True)
    task = DigitsTask()
    ctx = RunContext(progress=False)
    predictor = LinearProbe(C=0.1, standardize=False).fit(backbone, task, ctx)
    direct = predictor.predict(task.split("test").inputs[:20], ctx)
    assert np.array_equal(direct, predictor.predict_split(task, "test", ctx)[:20])


class NanBackbone(RawPixels):
    def preprocess(self, inputs):
        out = super().preprocess(inputs)
        out[0, 0] = np.nan
        return out


def test_nan_features_fail_clearly():
    with pytest.raises(DataError, match="NaN/inf feature values"):
        _fit(LinearProbe(), NanBackbone("raw:nan", size=8, grayscale=True))


def test_backbone_contract_is_abstract():
    with pytest.raises(TypeError):
        Backbone()  # type: ignore[abstract]
