"""Every feature method on small real data (scikit-learn digits, raw pixels), the MTEB
protocol's sampling, and bad input: NaN features, k larger than a class or the training set,
test labels absent from training."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from fakes import FakeBackbone, TinyTask
from transferlab.api import Budget, RunContext, Split, TransferMethod
from transferlab.errors import DataError, IncompatibleError
from transferlab.harness.cell import Cell, run_cell
from transferlab.harness.features import FeatureStore
from transferlab.plugins import PluginHost
from transferlab_baselines.raw import RawPixels, RawTfidf
from transferlab_feature.adapter import Adapter
from transferlab_feature.coral import Coral
from transferlab_feature.knn import Knn
from transferlab_feature.linear_probe import LinearProbe
from transferlab_feature.mteb import clamped_labels, mteb_undersample
from transferlab_feature.ncm import NearestClassMean
from transferlab_tasks.digits import DigitsTask
from transferlab_tasks.folders import CsvTextTask

PIXELS = {"size": 8, "grayscale": True}
FAST_ADAPTER = {"epochs": 25, "patience": 5, "hidden": 64}


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


def _feature_methods() -> dict[str, TransferMethod]:
    """Every registered method of the feature family, with its defaults: new ones join these
    tests without a hand-kept list (the conformance kit, tests/test_conformance.py, checks
    the rest of their contract)."""
    host = PluginHost()
    host.load_entry_points()
    return {entry.name: entry.create(entry.name) for entry in host.registries.methods
            if entry.info.get("family") == "feature"}


FEATURE_METHODS = _feature_methods()


@pytest.mark.parametrize("name", sorted(FEATURE_METHODS))
def test_predict_agrees_with_predict_split_on_read_only_cached_features(digits, name):
    """Bug caught: a method that predicts differently from the shared on-disk cache (read-only
    memory maps) than from freshly encoded inputs, e.g. one that edits features in place."""
    task, backbone = digits
    ctx = RunContext(progress=False, feature_store=FeatureStore(_CACHE), budget=Budget(steps=30))
    predictor = FEATURE_METHODS[name].fit(backbone, task, ctx)
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
    assert predictor.extra["steps"] == 3 and predictor.extra["stop_reason"] == "steps"


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


@pytest.mark.parametrize("method", [*FEATURE_METHODS.values(), LinearProbe(protocol="mteb")],
                         ids=[*FEATURE_METHODS, "linear-probe-mteb"])
def test_nan_features_fail_clearly_for_every_method(digits, method):
    """Bug caught: a feature method that trains on NaN features (a backbone that overflowed)
    instead of failing with the backbone and split named."""
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


POSITIVE, NEGATIVE = ["great", "fun", "lovely", "superb"], ["awful", "boring", "dull", "poor"]
NEUTRAL = ["film", "plot", "cast", "story"]


def _reviews(n: int, offset: int) -> list[str]:
    """Two sentiment words of the row's class and one neutral word shared by both classes."""
    rows = []
    for j in range(offset, offset + n):
        rows.append(f"{POSITIVE[j % 4]} {NEUTRAL[j % 4]} {POSITIVE[j // 4 % 4]},pos")
        rows.append(f"{NEGATIVE[j % 4]} {NEUTRAL[(j + 1) % 4]} {NEGATIVE[j // 4 % 4]},neg")
    return rows


def test_sparse_tfidf_features(tmp_path):
    """Separable sparse data: every method must get all 12 test rows right (the old check,
    accuracy >= 0.5 on two balanced test rows, passed a constant prediction)."""
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(_reviews(12, 0)) + "\n")
    (tmp_path / "test.csv").write_text("text,label\n" + "\n".join(_reviews(6, 5)) + "\n")
    task = CsvTextTask("csv:t", tmp_path)
    backbone = RawTfidf("raw:tfidf", max_features=100, ngram_max=1, min_df=1)
    backbone.prepare(task)
    assert task.split("test").labels.tolist() == [1, 0] * 6  # pos, neg alternate
    adapter = Adapter(hidden=8, lr=0.05, epochs=40, patience=40, val_fraction=0.25)
    for method in (Knn(k=1), NearestClassMean(), adapter, LinearProbe()):  # no centring
        _, accuracy = _accuracy(method, task, backbone)
        assert accuracy == 1.0, method.name
    with pytest.raises(IncompatibleError, match="needs dense features"):
        ctx = RunContext(progress=False, feature_store=FeatureStore(None))
        Coral().fit_adapted(backbone, task, task, ctx)


# --- the MTEB protocol on synthetic features ---------------------------------------------------


def test_mteb_undersample_reshuffles_the_same_permutation_each_experiment():
    """Experiment i applies seed's permutation i + 1 times (mteb re-seeds before every
    shuffle of one shared index array); with k above every count nothing is dropped."""
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    perm = np.random.RandomState(7).permutation(10)
    picks = mteb_undersample(labels, k=10, n_experiments=3, seed=7)
    assert [p.tolist() for p in picks] == [perm.tolist(), perm[perm].tolist(),
                                           perm[perm][perm].tolist()]
    assert all(p.dtype == np.int64 for p in picks)


def test_mteb_undersample_keeps_the_first_k_of_each_label_in_shuffled_order():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    perm = np.random.RandomState(3).permutation(8)
    (pick,) = mteb_undersample(labels, k=2, n_experiments=1, seed=3)
    expected, counts = [], {}
    for i in perm:
        if counts.get(labels[i], 0) < 2:
            expected.append(i)
            counts[labels[i]] = counts.get(labels[i], 0) + 1
    assert pick.tolist() == expected
    assert sorted(np.bincount(labels[pick]).tolist()) == [1, 2, 2]  # label 2 has only one
    assert mteb_undersample(labels, k=1, n_experiments=0) == []


def test_mteb_undersample_depends_on_the_seed():
    """Catches a sampler that ignores its seed (always 42)."""
    labels = np.repeat(np.arange(3), 20)
    runs = {seed: [p.tolist() for p in mteb_undersample(labels, 2, 4, seed)]
            for seed in (0, 1, 42)}
    assert runs[0] != runs[1] != runs[42] != runs[0]
    assert runs[42] == [p.tolist() for p in mteb_undersample(labels, 2, 4)]  # default seed
    assert runs[1] == [p.tolist() for p in mteb_undersample(labels, 2, 4, 1)]


def test_clamped_labels_reports_labels_below_k_only():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 8)
    assert clamped_labels(labels, 3) == {1: 2}
    assert clamped_labels(labels, 2) == {}  # exactly k examples is not clamped
    assert clamped_labels(labels, 6) == {0: 5, 1: 2}


def _blobs(seed: int = 0, per_label: int = 20) -> tuple[TinyTask, np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes in 3-D, wrapped as a task (features = inputs)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_label)
    features = rng.normal(size=(len(labels), 3)) + labels[:, None] * 0.8
    task = TinyTask("blobs", fingerprint=f"blobs-{seed}-{per_label}")
    task._splits = {"train": Split(list(features), labels),
                    "test": Split(list(rng.normal(size=(30, 3)) + np.repeat(np.arange(3), 10)
                                       [:, None] * 0.8), np.repeat(np.arange(3), 10))}
    return task, features.astype(np.float32), labels


def _fit_mteb_probe(task, **params):
    ctx = RunContext(progress=False, feature_store=FeatureStore(None))
    return LinearProbe(protocol="mteb", **params).fit(FakeBackbone(), task, ctx), ctx


def test_mteb_protocol_fits_each_experiment_on_its_subsample():
    from sklearn.linear_model import LogisticRegression

    task, features, labels = _blobs()
    predictor, ctx = _fit_mteb_probe(task, k_per_label=4, n_experiments=3, protocol_seed=5)
    picks = mteb_undersample(labels, 4, 3, 5)
    assert len(predictor.estimators) == 3
    for estimator, idx in zip(predictor.estimators, picks, strict=True):
        reference = LogisticRegression(max_iter=100, random_state=42).fit(features[idx],
                                                                           labels[idx])
        np.testing.assert_allclose(estimator.coef_, reference.coef_, rtol=1e-6)
        assert (estimator.max_iter, estimator.random_state) == (100, 42)
    assert predictor.extra == {
        "protocol": "mteb", "k_per_label": 4, "n_experiments": 3, "protocol_seed": 5,
        "classifier": "LogisticRegression(max_iter=100, random_state=42)",
        "train_sizes": [12, 12, 12], "clamped_labels": {}, "converged": [True, True, True],
    }
    assert predictor.trainable_params == 3 * 3 + 3 and predictor.total_params == 12
    experiments = predictor.predict_experiments(task, "test", ctx)
    test_features = np.asarray(task.split("test").inputs, dtype=np.float32)
    assert [e.tolist() for e in experiments] == [
        est.predict(test_features).tolist() for est in predictor.estimators]
    assert predictor.predict_split(task, "test", ctx).tolist() == experiments[0].tolist()
    assert predictor.predict(task.split("test").inputs, ctx).tolist() == (
        experiments[0].tolist())
    assert predictor.backbone.calls[-1] == (30, "cpu")  # encoded on the context's device


def test_mteb_protocol_seed_changes_the_subsamples_and_same_seed_repeats():
    """Catches ignoring ``protocol_seed`` (linear-probe always sampling with 42)."""
    task, _, _ = _blobs()

    def coefs(seed):
        predictor, _ = _fit_mteb_probe(task, k_per_label=3, n_experiments=2, protocol_seed=seed)
        assert predictor.extra["protocol_seed"] == seed
        return np.concatenate([e.coef_.ravel() for e in predictor.estimators])

    assert np.array_equal(coefs(1), coefs(1))
    assert not np.allclose(coefs(1), coefs(2))
    assert not np.allclose(coefs(42), coefs(2))


def test_mteb_protocol_seed_changes_the_cell_result(registries):
    """The same through run_cell: the seed reaches the sampler and changes the scores."""
    def accuracy(seed):
        cell = Cell("raw:pixels", "digits", "linear-probe",
                    {"protocol": "mteb", "k_per_label": 2, "n_experiments": 2,
                     "protocol_seed": seed}, PIXELS)
        result = run_cell(cell, registries, progress=False,
                          feature_store=FeatureStore(_CACHE))
        assert result.status == "ok", result.error
        return [e["accuracy"] for e in result.extra["experiments"]]

    assert accuracy(3) == accuracy(3) != accuracy(4)


def test_mteb_smallest_protocol_one_example_per_label_once():
    task, _, labels = _blobs()
    predictor, _ = _fit_mteb_probe(task, k_per_label=1, n_experiments=1, protocol_seed=0)
    (pick,) = mteb_undersample(labels, 1, 1, 0)
    assert predictor.extra["train_sizes"] == [3] and len(predictor.estimators) == 1
    assert sorted(labels[pick].tolist()) == [0, 1, 2]


def test_mteb_clamps_small_labels_and_reports_them():
    """k above every class keeps all of each class and says so (this replaces a digits test
    that fitted MTEB's classifier on all of train twice, 14 s)."""
    task, _, _ = _blobs(per_label=3)
    predictor, _ = _fit_mteb_probe(task, k_per_label=5, n_experiments=2)
    assert predictor.extra["train_sizes"] == [9, 9]
    assert predictor.extra["clamped_labels"] == {0: 3, 1: 3, 2: 3}


def test_full_protocol_passes_every_hyper_parameter_to_the_classifier():
    task, features, _ = _blobs()
    ctx = RunContext(seed=11, progress=False, feature_store=FeatureStore(None))
    predictor = LinearProbe(C=0.25, max_iter=7, standardize=False,
                            class_weight="balanced").fit(FakeBackbone(), task, ctx)
    (classifier,) = [step for _, step in predictor.estimator.steps]  # no scaler
    assert (classifier.C, classifier.max_iter, classifier.random_state,
            classifier.class_weight) == (0.25, 7, 11, "balanced")
    predictor = LinearProbe().fit(FakeBackbone(), task, ctx)
    scaler, classifier = [step for _, step in predictor.estimator.steps]
    assert type(scaler).__name__ == "StandardScaler" and scaler.with_mean is True
    assert (classifier.C, classifier.max_iter, classifier.class_weight) == (1.0, 1000, None)
    assert predictor.trainable_params == 3 * 3 + 3 and predictor.extra == {"converged": True}
    np.testing.assert_allclose(scaler.mean_, features.mean(axis=0), rtol=1e-5)


def test_full_protocol_reports_non_convergence():
    task, _, _ = _blobs()
    ctx = RunContext(progress=False, feature_store=FeatureStore(None))
    predictor = LinearProbe(max_iter=1).fit(FakeBackbone(), task, ctx)
    assert predictor.extra == {"converged": False}


def test_mteb_protocol_reports_which_experiments_did_not_converge():
    """Catches MTEB's convergence record always True (warnings not captured, or the wrong
    warning class looked for): 100 lbfgs iterations on badly scaled, overlapping features
    do not converge, and the record must say so per experiment."""
    from transferlab_feature.mteb import fit_mteb

    rng = np.random.default_rng(0)
    labels = np.arange(300) % 5
    features = rng.normal(size=(300, 40)) * np.logspace(0, 4, 40) + labels[:, None]
    predictor = fit_mteb(features, labels, FakeBackbone(), k=60, n_experiments=2, seed=0)
    assert predictor.extra["converged"] == [False, False]
    scaled = fit_mteb(features / np.logspace(0, 4, 40), labels, FakeBackbone(), k=60,
                      n_experiments=2, seed=0)
    assert scaled.extra["converged"] == [True, True]


def test_mteb_predictor_encodes_new_inputs_on_the_runs_device():
    """Catches ``predict`` encoding on the default CPU whatever device the run asked for
    (a GPU run would then encode every new input on the CPU)."""
    task, _, _ = _blobs()
    backbone = FakeBackbone()
    ctx = RunContext(progress=False, feature_store=FeatureStore(None), device="cuda:1")
    predictor = LinearProbe(protocol="mteb", k_per_label=4, n_experiments=2).fit(
        backbone, task, ctx)
    backbone.calls.clear()
    predictor.predict(task.split("test").inputs[:5], ctx)
    assert backbone.calls == [(5, "cuda:1")]
