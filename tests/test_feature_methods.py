"""Every feature method on small real data (scikit-learn digits, raw pixels), the MTEB
protocol's sampling, and bad input: NaN features, k larger than a class or the training set,
test labels absent from training."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from transferlab.api import Budget, RunContext
from transferlab.errors import DataError, IncompatibleError
from transferlab.harness.cell import Cell, run_cell
from transferlab.harness.features import FeatureStore
from transferlab.plugins import PluginHost
from transferlab_baselines.raw import RawPixels, RawTfidf
from transferlab_feature.adapter import Adapter
from transferlab_feature.coral import Coral
from transferlab_feature.knn import Knn
from transferlab_feature.linear_probe import LinearProbe
from transferlab_feature.mteb import mteb_undersample
from transferlab_feature.ncm import NearestClassMean
from transferlab_tasks.digits import DigitsTask
from transferlab_tasks.folders import CsvTextTask

PIXELS = {"size": 8, "grayscale": True}
FAST_ADAPTER = {"epochs": 25, "patience": 5, "hidden": 64}


@pytest.fixture(scope="module")
def registries():
    host = PluginHost()
    host.load_entry_points()
    return host.registries


@pytest.fixture(scope="module")
def digits():
    return DigitsTask(), RawPixels("raw:pixels", **PIXELS)


@pytest.fixture(scope="module", autouse=True)
def warm_cache(tmp_path_factory, digits):
    """One disk cache for the module, filled once: every method then reads read-only
    memory-mapped features, as it does in a real run."""
    global _CACHE
    _CACHE = tmp_path_factory.mktemp("features")
    task, backbone = digits
    for split in ("train", "test"):
        FeatureStore(_CACHE).get(backbone, task, split, RunContext(progress=False))


_CACHE = None


def _accuracy(method, task, backbone, seed=0, **ctx_kwargs):
    ctx = RunContext(seed=seed, progress=False, feature_store=FeatureStore(_CACHE), **ctx_kwargs)
    predictor = method.fit(backbone, task, ctx)
    predictions = predictor.predict_split(task, "test", ctx)
    return predictor, float((predictions == task.split("test").labels).mean())


@pytest.mark.parametrize(
    ("method", "floor"),
    [
        (Knn(), 0.95), (Knn(k=1, metric="euclidean"), 0.95), (Knn(weights="distance"), 0.95),
        (NearestClassMean(), 0.88), (NearestClassMean(metric="euclidean"), 0.88),
        (Adapter(**FAST_ADAPTER), 0.93), (Coral(), 0.94),
    ],
    ids=["knn", "knn-euclid-1", "knn-distance", "ncm", "ncm-euclid", "adapter", "coral"],
)
def test_each_method_learns_digits(digits, method, floor):
    task, backbone = digits
    _, accuracy = _accuracy(method, task, backbone)
    assert accuracy > floor


def test_predict_agrees_with_predict_split(digits):
    task, backbone = digits
    for method in (Knn(), NearestClassMean(), Adapter(**FAST_ADAPTER)):
        ctx = RunContext(progress=False, feature_store=FeatureStore(_CACHE))
        predictor = method.fit(backbone, task, ctx)
        assert isinstance(ctx.features(backbone, task, "train"), np.memmap)
        direct = predictor.predict(task.split("test").inputs[:25], ctx)
        assert np.array_equal(direct, predictor.predict_split(task, "test", ctx)[:25])


def test_adapter_is_seeded_and_reports_early_stopping(digits):
    task, backbone = digits
    first, acc1 = _accuracy(Adapter(**FAST_ADAPTER), task, backbone, seed=3)
    _, acc2 = _accuracy(Adapter(**FAST_ADAPTER), task, backbone, seed=3)
    assert acc1 == acc2
    assert first.extra["validation"] == "0.1 of train"
    assert 1 <= first.extra["best_epoch"] <= first.extra["epochs"] <= 25
    assert first.trainable_params == 64 * 64 + 64 + 64 * 10 + 10


def test_adapter_respects_the_step_budget(digits):
    task, backbone = digits
    predictor, _ = _accuracy(Adapter(), task, backbone, budget=Budget(steps=3))
    assert predictor.extra["steps"] == 3 and predictor.extra["stopped_by"] == "budget steps"


def _mteb_reference(y, k, n_experiments, seed=42):
    """mteb 1.12's loop, verbatim in spirit: the global generator is re-seeded by every
    evaluator, and one index array is shuffled in place across experiments."""
    idxs, picks = None, []
    for _ in range(n_experiments):
        np.random.seed(seed)
        if idxs is None:
            idxs = np.arange(len(y))
        np.random.shuffle(idxs)
        counter, chosen = defaultdict(int), []
        for i in idxs:
            if counter[y[i]] < k:
                chosen.append(i)
                counter[y[i]] += 1
        picks.append(chosen)
    return picks


def test_mteb_undersampling_matches_mteb_and_clamps_small_labels():
    labels = np.array([0] * 30 + [1] * 20 + [2] * 3)  # label 2 has fewer than k
    picks = mteb_undersample(labels, k=8, n_experiments=4)
    assert [p.tolist() for p in picks] == _mteb_reference(labels, 8, 4)
    assert all(np.bincount(labels[p]).tolist() == [8, 8, 3] for p in picks)
    assert len({tuple(p) for p in picks}) == 4  # each experiment draws a new subsample


def test_mteb_protocol_reports_mean_std_and_each_experiment(registries):
    cell = Cell("raw:pixels", "digits", "linear-probe",
                {"protocol": "mteb", "k_per_label": 4, "n_experiments": 5}, PIXELS)
    result = run_cell(cell, registries, progress=False)
    assert result.status == "ok", result.error
    scores = [e["accuracy"] for e in result.extra["experiments"]]
    assert len(scores) == 5 and len(set(scores)) > 1
    assert result.metrics["accuracy"] == pytest.approx(np.mean(scores))
    assert result.metrics["accuracy_std"] == pytest.approx(np.std(scores, ddof=1))
    assert result.extra["train_sizes"] == [40] * 5 and result.extra["clamped_labels"] == {}
    assert 0.6 < result.metrics["accuracy"] < 0.97


def test_mteb_k_larger_than_every_class_keeps_all_and_says_so(digits):
    task, backbone = digits
    predictor, _ = _accuracy(LinearProbe(protocol="mteb", k_per_label=500, n_experiments=2),
                             task, backbone)
    counts = np.bincount(task.split("train").labels)
    assert predictor.extra["train_sizes"] == [len(task.split("train"))] * 2
    assert predictor.extra["clamped_labels"] == {i: int(c) for i, c in enumerate(counts)}


def test_knn_k_larger_than_training_set_is_a_clear_error(digits):
    task, backbone = digits
    with pytest.raises(DataError, match=r"k=5000 exceeds the 1347 training examples"):
        _accuracy(Knn(k=5000), task, backbone)


def test_knn_k_larger_than_a_class_still_works(digits):
    task, backbone = digits
    smallest = int(np.bincount(task.split("train").labels).min())
    predictor, accuracy = _accuracy(Knn(k=smallest + 20), task, backbone)
    assert predictor.extra["smallest_class"] == smallest and accuracy > 0.85


class NanPixels(RawPixels):
    fingerprint = "raw-pixels-with-a-nan"

    def preprocess(self, inputs):
        out = super().preprocess(inputs)
        out[0, 3] = np.nan
        return out


@pytest.mark.parametrize("method", [Knn(), NearestClassMean(), Adapter(), Coral(),
                                    LinearProbe(protocol="mteb")])
def test_nan_features_fail_clearly_for_every_method(digits, method):
    task, _ = digits
    with pytest.raises(DataError, match="NaN/inf feature values"):
        _accuracy(method, task, NanPixels("raw:nan", **PIXELS))


def test_test_labels_absent_from_training_fail_the_cell_end_to_end(tmp_path, registries):
    for split, classes in (("train", "ab"), ("test", "abc")):
        for name in classes:
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("L", (8, 8), color=40 * i + 10).save(folder / f"{i}.png")
    cell = Cell("raw:pixels", f"imagefolder:{tmp_path}", "knn", {"k": 1}, PIXELS)
    result = run_cell(cell, registries, progress=False)
    assert result.status == "error"
    assert "['c'] that never occur in train" in result.error


def test_sparse_tfidf_features(tmp_path):
    rows = ["great fun film,pos", "awful boring film,neg", "fun and great,pos",
            "boring and awful,neg", "great great,pos", "awful awful,neg"]
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("text,label\ngreat film,pos\nboring film,neg\n")
    task = CsvTextTask("csv:t", tmp_path)
    backbone = RawTfidf("raw:tfidf", max_features=100, ngram_max=1, min_df=1)
    backbone.prepare(task)
    for method in (Knn(k=1), NearestClassMean(), Adapter(hidden=8, epochs=30, val_fraction=0.5)):
        _, accuracy = _accuracy(method, task, backbone)
        assert accuracy >= 0.5
    with pytest.raises(IncompatibleError, match="needs dense features"):
        ctx = RunContext(progress=False, feature_store=FeatureStore(None))
        Coral().fit_adapted(backbone, task, task, ctx)
