"""Transferability scores (the ``register_scores`` hook, transferlab_relational) and
``transferlab rank``. Each test's docstring names the bug it catches."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import entry_points_named
from transferlab.api import TransferabilityScore
from transferlab.cli import cli
from transferlab.errors import DataError, IncompatibleError
from transferlab.hookspecs import hookimpl
from transferlab.plugins import PluginHost

SCORE_NAMES = ["hscore", "leep", "logme", "nce", "shrinkage-hscore"]


@pytest.fixture(scope="module")
def scores() -> dict[str, TransferabilityScore]:
    host = PluginHost(strict=True)
    host.load_entry_points(entry_points_named("relational"))
    registry = host.registries.scores
    return {name: registry.create(name) for name in registry.names()}


def _separable(n: int = 300, d: int = 10, classes: int = 3, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    feats = rng.normal(size=(n, d))
    feats[:, :classes] += 3.0 * np.eye(classes)[labels]
    return feats, labels


# --- an independent LogME, written from the paper --------------------------------------------


def _paper_logme(features: np.ndarray, labels: np.ndarray, tol: float = 1e-3,
                 max_iter: int = 11, eps: float = 1e-5) -> float:
    """Algorithm 1 of You et al. (ICML 2021) with explicit matrices: the posterior mean by a
    linear solve with A = alpha I + beta F^T F, the residual by a matrix product, log|A| by
    slogdet, gamma from the eigenvalues of F^T F. The stopping rule and the 1e-5 stabiliser
    are the authors' release defaults."""
    f = features.astype(np.float64)
    n, d = f.shape
    gram = f.T @ f
    eig = np.linalg.eigvalsh(gram)
    evidences = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            a_matrix = alpha * np.eye(d) + beta * gram
            m = beta * np.linalg.solve(a_matrix, f.T @ y)
            gamma = np.sum(beta * eig / (alpha + beta * eig))
            m2 = float(m @ m)
            res2 = float(np.sum((f @ m - y) ** 2))
            old = alpha / beta
            alpha, beta = gamma / (m2 + eps), (n - gamma) / (res2 + eps)
            if abs(alpha / beta - old) / old <= tol:
                break
        _, logdet = np.linalg.slogdet(alpha * np.eye(d) + beta * gram)
        evidence = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * res2 - alpha / 2 * m2 - logdet / 2)
        evidences.append(evidence / n)
    return float(np.mean(evidences))


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 10.0), (2, 0.05)])
def test_logme_equals_an_independent_implementation_of_the_paper(scores, seed, scale):
    """Catches a LogME that drifts from the published algorithm: a wrong closed form for the
    residual or weight norm in the singular basis, a wrong stopping rule, evidence computed
    with stale alpha/beta, or classes averaged wrongly (equal to 1e-6 on full-rank features)."""
    feats, labels = _separable(n=240, d=12, classes=4, seed=seed)
    feats = feats * scale
    assert scores["logme"].score(feats, labels) == pytest.approx(
        _paper_logme(feats, labels), abs=1e-6)


def test_logme_one_iteration_by_hand(scores):
    """Catches a wrong update order or evidence formula, on values derived by hand: F = (1,1)^T,
    one iteration from alpha = beta = 1 gives sigma = 2, gamma = 2/3, |m|^2 = 1/9 and
    |Fm - y|^2 = 5/9 for both classes."""
    from transferlab_relational.scores import LogME

    eps = 1e-5
    alpha, beta = (2 / 3) / (1 / 9 + eps), (2 - 2 / 3) / (5 / 9 + eps)
    expected = (0.5 * math.log(alpha) + math.log(beta) - 0.5 * math.log(alpha + 2 * beta)
                - beta / 2 * 5 / 9 - alpha / 2 / 9 - math.log(2 * math.pi)) / 2
    got = LogME(max_iter=1).score(np.array([[1.0], [1.0]]), np.array([0, 1]))
    assert got == pytest.approx(expected, rel=1e-12)


# --- hand-computed values ----------------------------------------------------------------------

PROBS = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]])
LABELS = np.array([0, 0, 1, 1])
FEATS_1D = np.array([[0.0], [1.0], [2.0], [3.0]])


def test_leep_by_hand(scores):
    """Catches P(y|z) normalised over the wrong axis or the log taken before the mean: with
    P(y|z=0) = (1, 0) and P(y|z=1) = (0.2, 0.8) the predictor gives 1, 0.6, 0.8, 0.8."""
    expected = (math.log(1.0) + math.log(0.6) + 2 * math.log(0.8)) / 4
    assert scores["leep"].score(FEATS_1D, LABELS, PROBS) == pytest.approx(expected, rel=1e-12)


def test_nce_by_hand(scores):
    """Catches NCE computed as H(Z|Y) or with log base 2: Z = (0, 0, 0, 1) (argmax, ties to
    the first class) and Y = (0, 0, 1, 1) give -H(Y|Z) = -3/4 H(2/3, 1/3) nats."""
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.6, 0.4], [0.0, 1.0]])
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert scores["nce"].score(FEATS_1D, LABELS, probs) == pytest.approx(-0.75 * entropy)


def test_hscore_by_hand(scores):
    """Catches biased/unbiased covariance mix-ups or the trace of the wrong product:
    cov(f) = 5/3, cov(E[f|y]) = 4/3 for f = 0..3, so H = 0.8."""
    assert scores["hscore"].score(FEATS_1D, LABELS) == pytest.approx(0.8)


def test_shrinkage_hscore_by_hand(scores):
    """Catches a shrinkage H-score that ignores the Ledoit-Wolf estimate: in one dimension the
    shrinkage is 0 and the estimate is the biased variance 5/4, so H = (4/3) / (5/4)."""
    assert scores["shrinkage-hscore"].score(FEATS_1D, LABELS) == pytest.approx(16 / 15)


# --- properties --------------------------------------------------------------------------------


def test_leep_is_the_mean_log_of_the_empirical_predictor_at_the_true_label(scores):
    """Catches a LEEP that is not the definition: recomputed with explicit sums over
    examples, source classes and target classes on random probabilities."""
    rng = np.random.default_rng(3)
    n, cs, ct = 60, 5, 3
    theta = rng.dirichlet(np.ones(cs), n)
    y = rng.integers(0, ct, n)
    joint = np.zeros((ct, cs))
    for i in range(n):
        joint[y[i]] += theta[i] / n
    logs = []
    for i in range(n):
        p = sum(theta[i, z] * joint[y[i], z] / joint[:, z].sum() for z in range(cs))
        logs.append(math.log(p))
    got = scores["leep"].score(rng.normal(size=(n, 2)), y, theta)
    assert got == pytest.approx(float(np.mean(logs)), rel=1e-10)


def test_nce_is_minus_the_conditional_entropy(scores):
    """Catches an NCE that is not -H(Y|Z) = I(Y;Z) - H(Y), checked with scikit-learn's mutual
    information; and LEEP on one-hot source probabilities must equal it (same quantity)."""
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(4)
    z = rng.integers(0, 6, 200)
    y = (z + rng.integers(0, 2, 200)) % 4
    theta = np.eye(6)[z]
    counts = np.bincount(y) / len(y)
    h_y = -float(np.sum(counts * np.log(counts)))
    expected = mutual_info_score(y, z) - h_y
    feats = rng.normal(size=(200, 2))
    assert scores["nce"].score(feats, y, theta) == pytest.approx(expected, abs=1e-12)
    assert scores["leep"].score(feats, y, theta) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["hscore", "shrinkage-hscore", "logme"])
def test_scores_do_not_depend_on_the_order_of_features(scores, name):
    """Catches a score that treats feature columns asymmetrically (e.g. a covariance taken
    over rows instead of columns): permuting the columns leaves it unchanged."""
    feats, labels = _separable()
    order = np.random.default_rng(5).permutation(feats.shape[1])
    assert scores[name].score(feats[:, order], labels) == pytest.approx(
        scores[name].score(feats, labels), rel=1e-9)


@pytest.mark.parametrize("name", SCORE_NAMES)
def test_separable_features_rank_above_noise(scores, name):
    """Catches a score with its sign flipped (lower = better) or that ignores the labels:
    class-separable features (and source probabilities that follow the labels) must score
    above noise."""
    feats, labels = _separable()
    rng = np.random.default_rng(6)
    noise = rng.normal(size=feats.shape)
    informative = np.eye(3)[labels] * 0.7 + 0.1
    random_probs = rng.dirichlet(np.ones(3), len(labels))
    score = scores[name]
    assert score.score(feats, labels, informative) > score.score(noise, labels, random_probs)


def test_shrinkage_keeps_the_hscore_meaningful_when_features_outnumber_examples(scores):
    """Catches the shrinkage not being applied: with D > N pure noise, the plain H-score's
    pseudo-inverse fits the labels perfectly (C - 1 = 2), the shrunk one stays well below."""
    rng = np.random.default_rng(7)
    feats, labels = rng.normal(size=(40, 200)), rng.integers(0, 3, 40)
    assert scores["hscore"].score(feats, labels) == pytest.approx(2.0, abs=0.1)
    assert scores["shrinkage-hscore"].score(feats, labels) < 1.0


# --- bad input ---------------------------------------------------------------------------------

BAD = [
    ("nan", DataError, "NaN/inf", "remove those rows"),
    ("length", DataError, "one integer label per feature row", "feature rows"),
    ("one-class", DataError, "at least two classes", "several classes"),
]


@pytest.mark.parametrize("name", SCORE_NAMES)
@pytest.mark.parametrize("case,error,problem,fix", BAD)
def test_bad_input_fails_with_one_line_naming_the_fix(scores, name, case, error, problem, fix):
    """Catches NaN features scored as a number, labels silently truncated to the features'
    length, and a single class giving a meaningless score: one line, naming the fix."""
    feats, labels = _separable(n=30)
    probs = np.full((30, 3), 1 / 3)
    if case == "nan":
        feats[3, 1] = np.nan
    elif case == "length":
        labels = labels[:-1]
    else:
        labels = np.zeros_like(labels)
    with pytest.raises(error) as excinfo:
        scores[name].score(feats, labels, probs)
    message = str(excinfo.value)
    assert "\n" not in message and problem in message and fix in message
    assert repr(name) in message


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_missing_source_probabilities_name_the_fix(scores, name):
    """Catches LEEP/NCE crashing on None (a TypeError deep in numpy) instead of saying they
    need the backbone's source probabilities, and which score works without them."""
    feats, labels = _separable(n=30)
    with pytest.raises(IncompatibleError) as excinfo:
        scores[name].score(feats, labels)
    message = str(excinfo.value)
    assert "\n" not in message and "source_probabilities" in message and "logme" in message


def test_probabilities_that_are_logits_are_refused(scores):
    """Catches logits passed as probabilities being scored (a LEEP of garbage)."""
    feats, labels = _separable(n=30)
    with pytest.raises(DataError, match="apply a softmax"):
        scores["leep"].score(feats, labels, np.random.default_rng(0).normal(size=(30, 3)))


# --- registration ------------------------------------------------------------------------------


class _ThirdParty:
    """A plugin registering one score through the hook."""

    class Constant(TransferabilityScore):
        name = "constant"
        summary = "always 1"

        def compute(self, features, labels, source_probabilities):
            return 1.0

    @hookimpl
    def register_scores(self, register):
        register(self.Constant)


def test_register_scores_hook_fills_the_scores_registry():
    """Catches the scores kind missing from the host (the hook never called, or its
    registrations dropped): built-in and third-party scores land in registries.scores, with
    the source-probability flag shown as metadata."""
    host = PluginHost(strict=True)
    host.load_entry_points(entry_points_named("relational"))
    host.add_plugin(_ThirdParty(), "third")
    registry = host.registries.scores
    assert registry.names() == ["constant", *SCORE_NAMES]
    assert registry.create("constant").score(*_separable(n=20)) == 1.0
    assert registry.get("leep").info["needs_source_probabilities"] is True
    assert registry.get("logme").info["needs_source_probabilities"] is False
    assert host.plugins["relational"].registered["scores"] == [
        "logme", "leep", "nce", "hscore", "shrinkage-hscore"]


def test_list_scores_and_plugins_show_the_scores(runner):
    """Catches `transferlab list scores` rejecting the kind or `plugins` hiding what the
    relational plugin registered."""
    listed = runner.invoke(cli, ["list", "scores", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [e["name"] for e in json.loads(listed.stdout)] == SCORE_NAMES
    shown = runner.invoke(cli, ["plugins"]).output
    assert "scores: logme, leep, nce, hscore, shrinkage-hscore" in shown


# --- transferlab rank --------------------------------------------------------------------------

RANK_BACKBONES = ["-b", "raw:pixels[size=8]", "-b", "raw:pixels[size=4]",
                  "-b", "timm:test_efficientnet@random[img_size=32]"]


def test_rank_json_on_digits(runner):
    """Catches a ranking that is not sorted best first, scores computed on the wrong split,
    or LEEP/NCE silently scored without a source head (raw:pixels has none: a note)."""
    pytest.importorskip("timm")
    task = "digits[fraction=0.5]"
    result = runner.invoke(cli, ["rank", "-t", task, *RANK_BACKBONES, "--json",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["task"] == task and data["split"] == "train"
    assert set(data["scores"]) == set(SCORE_NAMES)
    for name in ("logme", "hscore", "shrinkage-hscore"):
        rows = data["scores"][name]
        assert [r["rank"] for r in rows] == [1, 2, 3]
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    timm_name = "timm:test_efficientnet@random[img_size=32]"
    for name in ("leep", "nce"):
        assert [r["backbone"] for r in data["scores"][name]] == [timm_name]
    skipped = {(s["backbone"], s["score"]) for s in data["skipped"]}
    assert skipped == {(b, s) for b in ("raw:pixels[size=8]", "raw:pixels[size=4]")
                       for s in ("leep", "nce")}
    # the same features straight from the score: rank used the train split's labels
    from transferlab.plugins import get_registries
    from transferlab.views import create_task

    registries = get_registries()
    base = create_task(task, registries)
    pixels = registries.backbones.create("raw:pixels", {"size": 8})
    pixels.prepare(base)
    feats = pixels.encode(base.split("train").inputs)
    expected = registries.scores.create("logme").score(feats, base.split("train").labels)
    got = {r["backbone"]: r["score"] for r in data["scores"]["logme"]}
    assert got["raw:pixels[size=8]"] == pytest.approx(expected, rel=1e-9)


def test_rank_table_and_notes(runner):
    """Catches the text output losing its tables or the skip notes."""
    result = runner.invoke(cli, ["rank", "-t", "digits[fraction=0.25]", "-b",
                                 "raw:pixels[size=8]", "-b", "raw:pixels[size=4]", "--score",
                                 "logme", "--score", "leep", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = lines.index("logme")
    assert lines[at + 2].split()[:2] == ["1", "raw:pixels[size=8]"]
    assert "(no backbone could be scored)" in result.stdout  # leep: no source head
    assert "note: leep skipped for raw:pixels[size=4]: it has no source head" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--score", "bogus"], "unknown score 'bogus'. Available: hscore, leep, logme"),
    (["--score", "logme[tol=2]"], "tol"),
    (["-b", "raw:tfidf"], "pick a backbone that reads image"),
    (["--score", "leep"], "no score could be computed"),
])
def test_rank_bad_input_is_one_clean_error_line(runner, args, message):
    """Catches a traceback (or a silent empty ranking) for a misspelt score, a bad score
    parameter, a backbone of the wrong modality, or a ranking where nothing could be scored."""
    if "-b" not in args:
        args = [*args, "-b", "raw:pixels[size=4]"]
    result = runner.invoke(cli, ["rank", "-t", "digits[fraction=0.1]", *args, "--no-progress"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output


def test_rank_defaults_to_offline_backbones_of_the_task_modality(runner, monkeypatch):
    """Catches the default set including patterns, online-only names or text backbones on an
    image task: with only the baselines installed, digits ranks raw:pixels alone."""
    monkeypatch.setenv("TRANSFERLAB_PLUGINS", "tasks,baselines,relational")
    result = runner.invoke(cli, ["rank", "-t", "digits[fraction=0.1]", "--score", "hscore",
                                 "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["backbones"] == ["raw:pixels"]
