"""Distillation in ``transferlab_relational``: the ``kd``, ``rkd`` and ``spkd`` losses (against
values worked out by hand and an independent loop-by-loop reference, plus gradient checks),
their registration as objectives, and the methods of the same names on a tiny student and a
tiny teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlab import hookimpl
from transferlab.api import RunContext
from transferlab.errors import DataError, ParamError, TransferlabError, UnknownNameError
from transferlab.params import Param
from transferlab.plugins import PluginHost
from transferlab.testing import TinyBackbone, TinyTask

torch = pytest.importorskip("torch")

METHODS = ("kd", "rkd", "spkd")
FAST = {"max_steps": 6, "batch_size": 8}


# --- the losses: hand-computed values ----------------------------------------------------------


def test_kd_loss_matches_the_closed_form_of_two_logits():
    """For logits (x, 0) against (0, x) the KL divergence is x * tanh(x / 2); at T = 2 one row
    has x = 1/2, the other row is identical for both (KL 0), so T^2 * mean = tanh(1/4).
    Catches a missing T^2, a sum over the batch instead of the mean, and KL taken the wrong
    way round (KL(student || teacher))."""
    from transferlab_relational.losses import kd_loss

    student = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert kd_loss(student, teacher, temperature=2.0).item() == pytest.approx(math.tanh(0.25))
    assert kd_loss(student, teacher, temperature=1.0).item() == pytest.approx(
        0.5 * math.tanh(0.5))
    skewed = torch.tensor([[2.0, 0.0, 0.0]])  # asymmetric: KL(p || q) != KL(q || p)
    flat = torch.tensor([[0.0, 0.0, 0.0]])
    p = np.exp([2.0, 0, 0]) / np.exp([2.0, 0, 0]).sum()
    expected = float(np.sum(np.full(3, 1 / 3) * np.log((1 / 3) / p)))  # KL(teacher || student)
    assert kd_loss(skewed, flat, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_rkd_losses_match_a_3_4_5_triangle_against_a_right_isosceles_one():
    """Student points (0,0), (3,0), (0,4); teacher (0,0), (1,0), (0,1), each in 2-D.
    Distances over their means: student 3/4, 1, 5/4; teacher c, c, 3*sqrt2 - 3 with
    c = 3(2 - sqrt2)/2. Every difference is under 1, so the Huber loss is x^2 / 2, each pair
    counted twice and the mean over 9 entries. The cosines at the vertices: student 0, 3/5,
    4/5; teacher 0, 1/sqrt2, 1/sqrt2, each twice among the 27 triplets. Catches distances not
    normalised by their mean over i != j (or normalised over the diagonal's zeros too), angles
    at the wrong vertex, a sum instead of RepDistiller's mean, and the weights 25 and 50."""
    from transferlab_relational.losses import rkd_angle_loss, rkd_distance_loss, rkd_loss

    student = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    root2 = math.sqrt(2)
    c = 3 * (2 - root2) / 2
    distance = ((0.75 - c) ** 2 + (1 - c) ** 2 + (1.25 - (3 * root2 - 3)) ** 2) / 9
    angle = ((0.6 - 1 / root2) ** 2 + (0.8 - 1 / root2) ** 2) / 27
    assert rkd_distance_loss(student, teacher).item() == pytest.approx(distance, rel=1e-9)
    assert rkd_angle_loss(student, teacher).item() == pytest.approx(angle, rel=1e-9)
    assert rkd_loss(student, teacher).item() == pytest.approx(25 * distance + 50 * angle,
                                                              rel=1e-9)
    assert rkd_loss(student, teacher, distance_weight=1, angle_weight=0).item() == \
        pytest.approx(distance, rel=1e-9)


def test_spkd_loss_matches_hand_computed_gram_matrices_of_different_widths():
    """Student rows (1,0), (0,1), (1,1) in 2-D, teacher rows (1,0,0), (1,0,0), (0,0,2) in 3-D.
    Row-normalised Gram matrices differ by squared row norms 1, 1 and 2 - 4/sqrt6, so the
    loss is (4 - 4/sqrt6) / 3^2. Catches Gram matrices normalised as a whole (or by columns),
    a missing 1/b^2, and widths that must match."""
    from transferlab_relational.losses import spkd_loss

    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 2.0]], dtype=torch.float64)
    assert spkd_loss(student, teacher).item() == pytest.approx((4 - 4 / math.sqrt(6)) / 9,
                                                               rel=1e-12)


# --- the losses: an independent loop-by-loop reference ---------------------------------------


def _huber(x):
    x = abs(x)
    return 0.5 * x * x if x < 1 else x - 0.5


def _reference_rkd(s, t, wd=25.0, wa=50.0):
    """Park et al. written out with loops: pairs (i, j), triplets (i, j, k), means over all
    B^2 / B^3 entries as the authors' release averages them."""
    b = len(s)

    def dist(e):
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(b)] for i in range(b)])
        return d / (d.sum() / (b * (b - 1)))

    def cos(e, i, j, k):
        u, v = e[j] - e[i], e[k] - e[i]
        if not np.linalg.norm(u) or not np.linalg.norm(v):
            return 0.0
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    ds, dt = dist(s), dist(t)
    distance = np.mean([_huber(ds[i, j] - dt[i, j]) for i in range(b) for j in range(b)])
    angle = np.mean([_huber(cos(s, i, j, k) - cos(t, i, j, k))
                     for i in range(b) for j in range(b) for k in range(b)])
    return wd * distance + wa * angle


def _reference_spkd(s, t):
    def gram(e):
        g = np.array([[float(e[i] @ e[j]) for j in range(len(e))] for i in range(len(e))])
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    return float(((gram(t) - gram(s)) ** 2).sum()) / len(s) ** 2


def _reference_kd(s, t, T):
    def log_softmax(z):
        z = z / T
        return z - z.max() - np.log(np.exp(z - z.max()).sum())

    rows = [np.sum(np.exp(log_softmax(tr)) * (log_softmax(tr) - log_softmax(sr)))
            for sr, tr in zip(s, t, strict=True)]
    return T * T * float(np.mean(rows))


def test_losses_match_loop_by_loop_references_on_random_batches():
    """Seven random points, teacher wider than the student and on another scale (so some
    normalised distance differences exceed 1 and RKD's Huber loss takes its linear branch).
    Catches indexing mistakes that three points cannot show (B^3 broadcasting, the diagonal)."""
    from transferlab_relational.losses import kd_loss, rkd_loss, spkd_loss

    rng = np.random.default_rng(0)
    s = rng.normal(size=(7, 3))
    t = np.vstack([rng.normal(size=(6, 5)), 40 * np.ones((1, 5))])  # one far outlier
    st, tt = torch.from_numpy(s), torch.from_numpy(t)
    assert rkd_loss(st, tt).item() == pytest.approx(_reference_rkd(s, t), rel=1e-9)
    assert spkd_loss(st, tt).item() == pytest.approx(_reference_spkd(s, t), rel=1e-9)
    logits_s, logits_t = rng.normal(size=(7, 4)) * 3, rng.normal(size=(7, 4)) * 3
    assert kd_loss(torch.from_numpy(logits_s), torch.from_numpy(logits_t), 4.0).item() == \
        pytest.approx(_reference_kd(logits_s, logits_t, 4.0), rel=1e-9)


def test_rkd_and_spkd_ignore_the_scale_of_either_space():
    """Relations, not vectors: scaling the student's (or the teacher's) embeddings changes
    neither loss. Catches RKD distances left unnormalised."""
    from transferlab_relational.losses import rkd_loss, spkd_loss

    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 4, generator=g, dtype=torch.float64)
    t = torch.randn(6, 9, generator=g, dtype=torch.float64)
    for loss in (rkd_loss, spkd_loss):
        base = loss(s, t).item()
        assert loss(7.5 * s, t).item() == pytest.approx(base, rel=1e-9)
        assert loss(s, 0.01 * t).item() == pytest.approx(base, rel=1e-9)


@pytest.mark.parametrize("name", METHODS)
def test_each_loss_passes_a_float64_gradient_check(name):
    """torch.autograd.gradcheck of the student's gradient (the teacher is a constant target).
    Catches hand-written backward shortcuts, a square root at zero on the distance diagonal
    (NaN gradients), and a loss that silently drops to float32."""
    from transferlab_relational.losses import kd_loss, rkd_loss, spkd_loss

    g = torch.Generator().manual_seed(2)
    teacher = torch.randn(5, 6 if name != "kd" else 3, generator=g, dtype=torch.float64)
    student = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    loss = {"kd": lambda s: kd_loss(s, teacher, 4.0), "rkd": lambda s: rkd_loss(s, teacher),
            "spkd": lambda s: spkd_loss(s, teacher)}[name]
    assert loss(student).dtype == torch.float64
    assert torch.autograd.gradcheck(loss, (student,), eps=1e-6, atol=1e-5)


def test_losses_give_no_gradient_to_the_teacher_and_refuse_mismatched_rows():
    """Catches a teacher that would be trained through the loss, and a teacher of another
    batch size silently broadcast."""
    from transferlab_relational.losses import kd_loss, rkd_loss, spkd_loss

    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    for loss in (kd_loss, rkd_loss, spkd_loss):
        loss(student, teacher).backward()
        assert teacher.grad is None and student.grad is not None
    with pytest.raises(DataError, match="teacher has 5 rows but the batch has 4"):
        spkd_loss(student, torch.randn(5, 3))
    with pytest.raises(DataError, match="logits over the task's classes"):
        kd_loss(student, torch.randn(4, 7))


# --- the objectives ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registries():
    host = PluginHost()
    host.load_entry_points()
    host.add_plugin(_TestBackbones(), "distill-test-backbones")
    return host.registries


def test_losses_are_registered_objectives_that_compose(registries):
    """A third party combines them in a weighted sum; without a teacher in the batch the
    error says where it comes from. Catches an objective that reads the teacher from the
    outputs, or a KeyError deep in the loss."""
    from transferlab.training.objectives import build_objective
    from transferlab_relational.losses import kd_loss

    objective = build_objective("weighted-sum[terms=cross-entropy:1+kd:0.5]", registries)
    outputs = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 0])
    teacher = torch.randn(4, 3)
    got = objective(outputs, {"inputs": None, "labels": labels, "teacher": teacher})
    expected = torch.nn.functional.cross_entropy(outputs, labels) + 0.5 * kd_loss(outputs,
                                                                                  teacher)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert build_objective("kd[temperature=2]", registries).temperature == 2.0
    rkd = build_objective("rkd[angle_weight=0]", registries)
    assert (rkd.distance_weight, rkd.angle_weight) == (25.0, 0.0)
    for name in METHODS:
        with pytest.raises(DataError, match=r"per-example .* in batch\['teacher'\]"):
            build_objective(name, registries)(outputs, {"inputs": None, "labels": labels})


# --- the methods ------------------------------------------------------------------------------


class DropoutStudent(TinyBackbone):
    """The kit's tiny backbone with dropout, so anything that draws from torch's generator
    between the head's initialisation and training changes what the student learns."""

    def __init__(self) -> None:
        from torch import nn

        super().__init__("image", name="tiny-student")
        self._net = nn.Sequential(super().module, nn.Dropout(0.3))

    @property
    def module(self):
        return self._net

    def features(self, batch):
        return self._net(batch)


class _TestBackbones:
    """Registers a tiny teacher whose creation draws from torch's generator, as timm's random
    initialisation before loading pretrained weights does."""

    @hookimpl
    def register_backbones(self, register):
        def make(name, init_seed):
            torch.rand(3)  # what creating a real backbone does to the generator
            return TinyBackbone("image", name="tiny-teacher", init_seed=init_seed)

        register("tiny-teacher", make, modality="image",
                 params=[Param("init_seed", int, 1, "weights seed")])


def _method(registries, name, **params):
    return registries.methods.create(name, {**FAST, "teacher": "tiny-teacher", **params})


def _fit(registries, name, *, seed=0, store=None, method=None, **params):
    task = TinyTask("image")
    ctx = RunContext(seed=seed, progress=False, registries=registries, feature_store=store)
    ctx.seed_everything()
    method = method or _method(registries, name, **params)
    predictor = method.fit(DropoutStudent(), task, ctx)
    return predictor, predictor.predict_split(task, "test", ctx), task, ctx


@pytest.mark.parametrize("name", METHODS)
def test_methods_fit_are_relational_and_leave_no_hook_behind(registries, name):
    """Each method fits and predicts valid labels, declares family ``relational``, records its
    teacher, and removes its embedding hook (a hook left on the predictor's head would keep
    capturing every prediction batch). Catches a wrong family and a leaked hook."""
    predictor, predicted, _, _ = _fit(registries, name)
    assert registries.methods.get(name).info["family"] == "relational"
    assert predicted.shape == (12,) and set(predicted) <= {0, 1, 2}
    assert predictor.extra["teacher"] == "tiny-teacher" and predictor.extra["steps"] == 6
    assert predictor.extra["teacher_feature_dim"] == 8
    assert not predictor.model.head._forward_pre_hooks
    assert registries.methods.create(name, {}).hparams["teacher"] == (
        "timm:efficientnet_lite0[img_size=128]")


def test_the_teacher_is_extracted_once_across_fits(registries):
    """Two methods and two seeds share one feature store: the teacher's training features are
    extracted once and the student's never (it trains; it is not read from the cache).
    Catches a teacher run inside the training loop, features computed outside the shared
    cache, or a teacher fingerprint that changes between fits."""
    from transferlab.harness.features import FeatureStore

    store = FeatureStore(cache_dir=None)
    _fit(registries, "rkd", store=store)
    _fit(registries, "spkd", seed=1, store=store)
    _fit(registries, "kd", seed=2, store=store)
    assert store.misses == 1 and store.hits == 2


@pytest.mark.parametrize("name", METHODS)
def test_zero_distill_weight_trains_exactly_as_finetune(registries, name):
    """With distill_weight=0 and task_weight=1 the student must end with finetune's weights
    and predictions, same seed. Catches teacher creation that draws from torch's generator
    (the dropout masks then differ), a distillation term still computed into the loss, and
    training settings that differ from finetune's."""
    expected, expected_pred, _, _ = _fit(registries, "finetune", method=registries.methods
                                         .create("finetune", FAST))
    got, got_pred, _, _ = _fit(registries, name, distill_weight=0, task_weight=1)
    np.testing.assert_array_equal(got_pred, expected_pred)
    want = expected.model.state_dict()
    for key, value in got.model.state_dict().items():
        assert torch.equal(value, want[key]), key
    changed, _, _, _ = _fit(registries, name, distill_weight=5, task_weight=1)
    assert not torch.equal(changed.model.head.weight, expected.model.head.weight)


def test_kd_probe_is_fitted_on_the_training_rows_only(registries):
    """The teacher logits attached to the batches must be those of a standardised logistic
    regression fitted on the teacher's features of exactly the training rows, on the
    training rows and on the carved validation rows. Catches a probe fitted on every row
    (validation included), logits attached in the wrong row order, and validation logits
    taken from the wrong split or rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from transferlab.training import Callback

    seen = {}

    class Capture(Callback):
        def on_stage_end(self, state, result):
            seen["train"] = state.train_batches.extras["teacher"].double().numpy()
            seen["val"] = state.val_batches.extras["teacher"].double().numpy()
            seen["data"] = state.data

    method = _method(registries, "kd", val_fraction=0.25)
    method.callbacks = lambda state, base=method.callbacks: [*base(state), Capture()]
    _, _, task, _ = _fit(registries, "kd", method=method)
    data = seen["data"]
    assert data.val_from == "train" and len(data.val_indices) == 6
    teacher = TinyBackbone("image", name="tiny-teacher", init_seed=1)
    features = teacher.encode(task.split("train").inputs).astype(np.float64)
    labels = np.asarray(task.split("train").labels)
    rows, val_rows = np.asarray(data.train_indices), np.asarray(data.val_indices)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    probe.fit(features[rows], labels[rows])

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(softmax(seen["train"]), probe.predict_proba(features[rows]),
                               atol=1e-4)
    np.testing.assert_allclose(softmax(seen["val"]), probe.predict_proba(features[val_rows]),
                               atol=1e-4)
    everything = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000,
                                                                    random_state=0))
    everything.fit(features, labels)
    assert np.abs(everything.predict_proba(features[rows])
                  - probe.predict_proba(features[rows])).max() > 1e-3  # the check can fail


def test_probe_logits_handle_binary_and_unseen_classes():
    """Catches a binary probe's single score put on the wrong class, and a class absent from
    the training rows left at logit 0 (the teacher would then put mass on it)."""
    from transferlab_relational.distill import probe_logits

    rng = np.random.default_rng(3)
    labels = np.array([0, 2] * 20)
    features = rng.normal(size=(40, 3)) + labels[:, None]
    train, (other,) = probe_logits(features, labels, [features[:5]], 4, seed=0)
    assert train.shape == (40, 4) and other.shape == (5, 4)
    assert (train.argmax(axis=1) == labels).mean() > 0.8
    assert (train[:, [1, 3]] < train[:, [0, 2]].min(axis=1, keepdims=True) - 1e3).all()
    np.testing.assert_array_equal(train[:, 0], 0.0)  # the binary probe's reference class


def test_embeddings_are_the_input_of_the_head(registries):
    """rkd and spkd must compare the student's embeddings (backbone features, the head's
    input), not its logits. Catches the loss applied to the outputs."""
    from transferlab.training import TransferModel
    from transferlab_relational.distill import HeadInput

    seen = {}

    class Record:
        def __call__(self, student, batch):
            seen["student"] = student
            return student.sum()

    backbone = TinyBackbone("image")
    model = TransferModel(backbone, 3)
    term = HeadInput(Record(), model)
    batch = backbone.preprocess(TinyTask("image").split("train").inputs[:4])
    outputs = model(batch)
    term(outputs, {"inputs": batch})
    assert torch.equal(seen["student"], backbone.features(batch))
    term.close()
    assert not model.head._forward_pre_hooks


def test_an_unregistered_teacher_fails_with_one_line_naming_it(registries):
    """Catches a teacher name that passes cell validation and fails mid-fit, or fails with a
    traceback-sized message that does not say which parameter is wrong."""
    from transferlab.harness.cell import Cell, validate_cell

    with pytest.raises(UnknownNameError) as at_validation:
        validate_cell(Cell("tiny-teacher", "digits", "rkd", {"teacher": "nope:model"}),
                      registries)
    message = str(at_validation.value)
    assert "\n" not in message and message.startswith(
        "rkd: parameter teacher: unknown backbone 'nope:model'")
    with pytest.raises(UnknownNameError) as at_fit:
        _fit(registries, "rkd", teacher="nope:model")
    message = str(at_fit.value)
    assert "\n" not in message and message.startswith(
        "rkd: teacher 'nope:model': unknown backbone 'nope:model'")
    with pytest.raises(TransferlabError, match="init_seed"):
        _fit(registries, "kd", teacher="tiny-teacher[init_seed=x]")


def test_zero_weights_everywhere_are_refused(registries):
    """Catches a configuration that trains nothing passing silently."""
    with pytest.raises(ParamError, match="task_weight and distill_weight are both 0"):
        _method(registries, "spkd", task_weight=0, distill_weight=0)


def test_defaults_follow_repdistiller():
    """The documented defaults (RepDistiller's scripts/run_cifar_distill.sh, distiller_zoo).
    Catches a default changed without the docs."""
    from transferlab_relational.distill import KD, RKD, SPKD

    def defaults(cls):
        return {p.name: p.default for p in cls.params}

    assert {k: defaults(KD)[k] for k in ("task_weight", "distill_weight", "temperature")} == \
        {"task_weight": 0.1, "distill_weight": 0.9, "temperature": 4.0}
    assert {k: defaults(RKD)[k] for k in ("task_weight", "distill_weight", "distance_weight",
                                          "angle_weight")} == \
        {"task_weight": 1.0, "distill_weight": 1.0, "distance_weight": 25.0,
         "angle_weight": 50.0}
    assert (defaults(SPKD)["task_weight"], defaults(SPKD)["distill_weight"]) == (1.0, 3000.0)
