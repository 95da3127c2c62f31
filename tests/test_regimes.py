"""Multi-task and continual regimes: the metrics of an accuracy matrix (against hand-computed
values), the masked heads, the mixture sampling, the strategies' state, resuming a stream,
suites and reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import entry_points_named
from transferlab import hookimpl
from transferlab.errors import DataError, IncompatibleError, ParamError
from transferlab.harness.cell import Cell, run_cell, validate_cell
from transferlab.plugins import PluginHost, use_host
from transferlab.regimes import continual_scores, parse_regime, split_by_classes
from transferlab.testing import TinyBackbone, TinyTask

torch = pytest.importorskip("torch")

FAST = {"max_steps": 6, "epochs": 50, "batch_size": 8, "lr": 1e-2, "head_lr": 1e-2,
        "val_fraction": 0.0, "patience": 0}


class RegimePlugin:
    @hookimpl
    def register_backbones(self, register):
        register("tiny:*", lambda name, **kw: TinyBackbone("image", name=name),
                 summary="tiny MLP", modality="image")

    @hookimpl
    def register_tasks(self, register):
        register("tiny-a", lambda name: TinyTask("image", name=name), summary="bands")
        register("tiny-b", lambda name: TinyTask("image", shift=True, name=name),
                 summary="brighter bands")


@pytest.fixture
def host():
    host = PluginHost()
    host.load_entry_points(entry_points_named("feature", "parameter", "objectives",
                                              "continual"))
    host.add_plugin(RegimePlugin(), "regime-test")
    with use_host(host):
        yield host


# --- the metrics of an accuracy matrix ------------------------------------------------------

MATRIX = [[0.9, 0.1, 0.2],
          [0.6, 0.8, 0.3],
          [0.5, 0.7, 0.95]]
REFERENCE = [0.3, 0.2, 0.25]


def test_metrics_of_a_known_matrix():
    """Bugs caught: average accuracy over the diagonal or all rows instead of the last row,
    forgetting that counts the last experience (always 0, diluting the mean), BWT with the
    wrong sign, forward transfer read from the diagonal (after training) instead of just
    before it, or from the wrong reference column."""
    scores = continual_scores(MATRIX, REFERENCE)
    assert scores.average_accuracy == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    assert scores.per_experience_forgetting == pytest.approx([0.9 - 0.5, 0.8 - 0.7])
    assert scores.forgetting == pytest.approx(0.25)
    assert scores.bwt == pytest.approx(-0.25)
    assert scores.per_experience_forward_transfer == pytest.approx([0.1 - 0.2, 0.3 - 0.25])
    assert scores.forward_transfer == pytest.approx(-0.025)
    assert scores.metrics() == pytest.approx({"average_accuracy": 0.71666667,
                                              "forgetting": 0.25, "bwt": -0.25,
                                              "forward_transfer": -0.025})


def test_forgetting_is_against_accuracy_right_after_training_not_the_best():
    """Bug caught: forgetting measured from the best accuracy an experience ever had (here
    0.9 after the second experience) instead of the accuracy right after training on it
    (0.5), as Avalanche defines it; an experience that improved later has negative
    forgetting and positive BWT."""
    scores = continual_scores([[0.5, 0.0, 0.0], [0.9, 0.6, 0.0], [0.7, 0.4, 0.8]])
    assert scores.per_experience_forgetting == pytest.approx([0.5 - 0.7, 0.6 - 0.4])
    assert scores.forgetting == pytest.approx(0.0)
    assert scores.forward_transfer is None  # no reference given: not made up


def test_a_joint_row_has_no_forgetting_and_bad_matrices_fail():
    """Bugs caught: a single joint row reported with forgetting 0 (it has none to report),
    and NaNs, ragged or upside-down matrices scored silently."""
    joint = continual_scores([[0.9, 0.8, 0.7]], REFERENCE)
    assert joint.average_accuracy == pytest.approx(0.8)
    assert (joint.forgetting, joint.bwt, joint.forward_transfer) == (None, None, None)
    assert joint.metrics() == {"average_accuracy": pytest.approx(0.8)}
    with pytest.raises(DataError, match="NaN"):
        continual_scores([[0.9, math.nan], [0.5, 0.5]])
    with pytest.raises(DataError, match="rows"):
        continual_scores([[0.9], [0.5]])
    with pytest.raises(DataError, match="2-d"):
        continual_scores([0.9, 0.5])
    with pytest.raises(DataError, match="one per experience"):
        continual_scores(MATRIX, [0.1, 0.2])


# --- heads, masking, sampling ----------------------------------------------------------------


def test_masked_objective_is_cross_entropy_over_the_examples_own_columns():
    """Bugs caught: a mask that lets an example's loss see another task's columns (the heads
    are then not separate), or that hides its own label's column."""
    from torch.nn import functional as F

    from transferlab.regimes.continual import row_masks
    from transferlab.regimes.heads import LabelLayout, MaskedObjective
    from transferlab_objectives.losses import CrossEntropy

    layout = LabelLayout(("a", "b"), (2, 3))
    assert list(layout.columns(1)) == [2, 3, 4] and layout.total == 5
    logits = torch.tensor([[1.0, 2.0, 9.0, 9.0, 9.0], [5.0, 5.0, 0.5, 1.5, -1.0]])
    labels = torch.tensor([0, 3])  # task a's class 0, task b's class 1
    objective = MaskedObjective(CrossEntropy(), layout,
                                row_masks(layout, "task-incremental", [0, 1]))
    expected = (F.cross_entropy(logits[:1, :2], torch.tensor([0]))
                + F.cross_entropy(logits[1:, 2:], torch.tensor([1]))) / 2
    assert float(objective(logits, {"labels": labels})) == pytest.approx(float(expected))
    seen_a = MaskedObjective(CrossEntropy(), layout, row_masks(layout, "class-incremental",
                                                               [0]))
    assert float(seen_a(logits[:1], {"labels": labels[:1]})) == pytest.approx(
        float(F.cross_entropy(logits[:1, :2], torch.tensor([0]))))


def test_task_weights_scale_each_tasks_share_of_the_loss():
    """Bug caught: per-task weights ignored, or applied to the whole batch."""
    from torch.nn import functional as F

    from transferlab.regimes.continual import row_masks
    from transferlab.regimes.heads import LabelLayout, MaskedObjective
    from transferlab_objectives.losses import CrossEntropy

    layout = LabelLayout(("a", "b"), (2, 2))
    masks = row_masks(layout, "task-incremental", [0, 1])
    logits = torch.tensor([[1.0, 0.0, 3.0, 3.0], [0.0, 2.0, 0.0, 0.0], [4.0, 4.0, 1.0, 3.0]])
    labels = torch.tensor([0, 1, 3])
    weighted = MaskedObjective(CrossEntropy(), layout, masks, [2.0, 0.5])
    a = F.cross_entropy(logits[:2, :2], torch.tensor([0, 1]))
    b = F.cross_entropy(logits[2:, 2:], torch.tensor([1]))
    assert float(weighted(logits, {"labels": labels})) == pytest.approx(
        float(2.0 * 2 / 3 * a + 0.5 * 1 / 3 * b))


def test_mixture_sizes_follow_the_sampling_rule():
    """Bugs caught: temperature sampling with n^T instead of n^(1/T), uniform that keeps the
    sizes, or a rule that changes the total number of examples."""
    from transferlab.regimes.multitask import mixture_sizes

    assert mixture_sizes([100, 400], "proportional") == [100, 400]
    assert mixture_sizes([100, 400], "uniform") == [250, 250]
    assert mixture_sizes([100, 400], "temperature", 2.0) == [167, 333]  # p ~ 10 : 20
    assert mixture_sizes([100, 400], "temperature", 1.0) == [100, 400]
    assert mixture_sizes([1, 999], "uniform") == [500, 500]


def test_split_by_classes_cuts_consecutive_classes_and_keeps_view_parameters():
    """Bugs caught: overlapping or missing classes between experiences, and a split that drops
    the task's own view parameters (a subsample)."""
    labels = [str(i) for i in range(10)]
    assert split_by_classes("mnist_subset", 5, labels) == [
        f"mnist_subset[classes={a}+{a + 1}]" for a in range(0, 10, 2)]
    assert split_by_classes("d", 3, labels) == ["d[classes=0+1+2]", "d[classes=3+4+5+6]",
                                                "d[classes=7+8+9]"]
    assert split_by_classes("d[fraction=0.5]", 2, labels[:4]) == [
        "d[fraction=0.5,classes=0+1]", "d[fraction=0.5,classes=2+3]"]
    with pytest.raises(ParamError, match="cannot split"):
        split_by_classes("d", 11, labels)


# --- regime settings and cells ---------------------------------------------------------------


def test_regime_settings_are_checked_and_spelled_canonically(host):
    """Bugs caught: an unknown regime or strategy accepted until the cell runs, wrong weight
    counts found after training, and two spellings of one regime making two cell keys."""
    registries = host.registries
    spec, canonical = parse_regime("continual[scenario=class-incremental,strategy=naive]",
                                   registries, ("a", "b"))
    assert canonical == "continual[scenario=class-incremental]"
    assert spec.params["strategy"] == "naive"
    assert parse_regime("continual[strategy=ewc[weight=1000.0]]", registries)[1] == \
        "continual[strategy=ewc]"  # 1000 is ewc's default weight
    with pytest.raises(ParamError, match="unknown regime 'multitask'"):
        parse_regime("multitask", registries)
    with pytest.raises(Exception, match="unknown strategy 'ewcc'"):
        parse_regime("continual[strategy=ewcc]", registries)
    with pytest.raises(ParamError, match="2 weights for 3 tasks"):
        parse_regime("multi-task[weights=1+2]", registries, ("a", "b", "c"))
    with pytest.raises(ParamError, match="at least two tasks"):
        parse_regime("multi-task", registries, ("a",))


def test_regime_cells_validate_and_refuse_what_cannot_run(host):
    """Bugs caught: a feature method (no shared loop) or an adapter method in a stream (its
    adapters would be injected again at each experience) accepted and failing mid-run, and
    a task-specific cell whose key changes because regime fields were added."""
    registries = host.registries
    cell = validate_cell(Cell("tiny:mlp", "", "finetune", FAST, regime="multi-task",
                              tasks=("tiny-a", "tiny-b")), registries)
    assert cell.task == "tiny-a & tiny-b" and cell.regime == "multi-task"
    assert cell.to_dict()["tasks"] == ["tiny-a", "tiny-b"]
    stream = validate_cell(Cell("tiny:mlp", "", "finetune", FAST, regime="continual",
                                tasks=("tiny-a", "tiny-b")), registries)
    assert stream.task == "tiny-a -> tiny-b" and stream.key != cell.key
    plain = Cell("tiny:mlp", "tiny-a", "finetune", FAST)
    assert "regime" not in plain.to_dict() and "tasks" not in plain.to_dict()
    with pytest.raises(IncompatibleError, match="linear-probe"):
        validate_cell(Cell("tiny:mlp", "", "linear-probe", {}, regime="multi-task",
                           tasks=("tiny-a", "tiny-b")), registries)
    result = run_cell(Cell("tiny:mlp", "", "lora", {"max_steps": 2}, regime="continual",
                           tasks=("tiny-a", "tiny-b")), registries, progress=False)
    assert result.status == "error" and "adds modules" in result.error


def test_a_multi_task_cell_scores_every_task_with_its_own_head(host):
    """Bugs caught: test predictions taken over every task's columns (a sample could be
    labelled with another task's class), per-task metrics lost, and a budget that does not
    count per task."""
    result = run_cell(Cell("tiny:mlp", "", "finetune", FAST, regime="multi-task",
                           tasks=("tiny-a", "tiny-b")), host.registries, progress=False)
    assert result.status == "ok", result.error
    per_task = result.extra["per_task"]
    assert set(per_task) == {"tiny-a", "tiny-b"}
    assert result.metrics["tiny-a/accuracy"] == per_task["tiny-a"]["accuracy"]
    assert result.metrics["accuracy"] == pytest.approx(
        (per_task["tiny-a"]["accuracy"] + per_task["tiny-b"]["accuracy"]) / 2)
    assert result.extra["steps"] == 2 * FAST["max_steps"]
    assert result.extra["mixture"] == {"tiny-a": 24, "tiny-b": 24}


# --- continual streams -----------------------------------------------------------------------


def _stream(registries, strategy="naive", scenario="task-incremental", tasks=None, **kw):
    from transferlab.regimes.continual import run_stream
    from transferlab.settings import parse_setting
    from transferlab.views import create_task

    tasks = tasks or ("tiny-a[classes=0+1]", "tiny-a[classes=2]", "tiny-b")
    setting = parse_setting(strategy)
    method = registries.methods.create("finetune", FAST)
    from transferlab.api import RunContext

    ctx = RunContext(seed=3, progress=False, registries=registries)
    return run_stream(method, registries.strategies.create(setting.name, setting.params),
                      TinyBackbone("image", name="tiny:mlp"),
                      [create_task(t, registries) for t in tasks], ctx, scenario=scenario,
                      **kw)


def test_a_stream_fills_the_accuracy_matrix_row_by_row(host):
    """Bugs caught: a row per experience missing or evaluated on the wrong experiences,
    class-incremental accuracy on classes not seen yet above zero (the growing head has no
    column for them), the summary not computed from the matrix, and a class-incremental
    forward transfer reported (it only restates the reference there)."""
    result = _stream(host.registries, scenario="class-incremental")
    assert np.shape(result.matrix) == (3, 3)
    assert result.matrix[0][1] == result.matrix[0][2] == result.matrix[1][2] == 0.0
    assert result.steps == [6, 6, 6]
    assert result.scores == continual_scores(result.matrix)
    assert result.scores.forward_transfer is None
    task_incremental = _stream(host.registries)
    assert task_incremental.scores == continual_scores(task_incremental.matrix,
                                                       task_incremental.reference)
    assert task_incremental.scores.forward_transfer is not None


def test_joint_trains_once_on_everything_with_the_streams_budget(host):
    """Bugs caught: joint trained experience by experience (it would forget like naive), or
    with one experience's budget instead of the stream's."""
    result = _stream(host.registries, strategy="joint")
    assert len(result.matrix) == 1 and result.steps == [18]
    assert result.scores.forgetting is None


def test_a_stream_interrupted_after_an_experience_resumes_there_with_the_same_result(
        host, tmp_path):
    """Bugs caught: a re-run that trains finished experiences again, a checkpoint without the
    strategy's state (EWC's Fisher and anchors) or the matrix rows so far, and a resumed
    experience seeded differently from an uninterrupted run."""
    registries = host.registries
    whole = _stream(registries, strategy="ewc[weight=10]")

    def stop_after_second(position, row):
        if position == 1:
            raise KeyboardInterrupt

    folder = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        _stream(registries, strategy="ewc[weight=10]", checkpoint_dir=folder,
                on_experience=stop_after_second)
    assert (folder / "latest").read_text() == "exp-1"
    assert sorted(p.name for p in folder.glob("exp-*")) == ["exp-1"]  # older ones pruned
    trained = []
    resumed = _stream(registries, strategy="ewc[weight=10]", checkpoint_dir=folder,
                      on_experience=lambda position, row: trained.append(position))
    assert resumed.resumed_from == 2 and trained == [2]
    assert resumed.matrix == whole.matrix and resumed.steps == whole.steps


def test_replay_keeps_a_fixed_memory_split_between_experiences(host):
    """Bugs caught: a memory that grows with every experience, that drops an experience, or
    whose examples lose their labels on the global head."""
    from transferlab.api import Split
    from transferlab.regimes.strategy import Experience

    replay = host.registries.strategies.create("replay", {"memory": 10})

    class State:
        class ctx:
            seed = 0

        experiences = [Experience(k, f"e{k}", Split([[k, i] for i in range(8)],
                                                    np.full(8, 2 * k)), None)
                       for k in range(3)]

    for experience in State.experiences:
        replay.after_experience(experience, State)
    assert {k: len(v) for k, v in replay.stored.items()} == {0: 4, 1: 3, 2: 3}
    mixed = replay.training_split(State.experiences[2], State)
    assert len(mixed) == 8 + 10
    assert sorted(set(mixed.labels[8:].tolist())) == [0, 2, 4]
    restored = host.registries.strategies.create("replay", {"memory": 10})
    restored.load_state({}, replay.state_json())
    assert restored.stored == replay.stored


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_with_fisher_weighted_distance(host):
    """Bugs caught: a penalty not anchored at the weights the experience ended with, or not
    weighted by the Fisher information (a weight that no example's loss depends on must be
    free to move)."""
    from transferlab.regimes.continual import row_masks
    from transferlab.regimes.heads import LabelLayout
    from transferlab.regimes.strategy import Experience, StreamState
    from transferlab.training.model import TransferModel
    from transferlab_objectives.losses import CrossEntropy

    registries = host.registries
    backbone = TinyBackbone("image", name="tiny:mlp")
    model = TransferModel(backbone, 4)
    task = TinyTask("image")
    layout = LabelLayout(("a", "b"), (2, 2))
    train = task.split("train")
    keep = train.labels < 2
    experience = Experience(0, "a", type(train)([x for x, k in zip(train.inputs, keep,
                                                                     strict=True) if k],
                                                  train.labels[keep]), None)
    from transferlab.api import RunContext

    state = StreamState(model, None, layout, [experience], "task-incremental",
                        RunContext(seed=0, registries=registries))
    state.row_masks = row_masks(layout, "task-incremental", [0, 1])
    ewc = registries.strategies.create("ewc", {"weight": 2.0, "fisher_samples": 8})
    ewc.after_experience(experience, state)
    fisher = ewc.fishers[0]
    assert float(fisher["head.weight"][2:].abs().sum()) == 0.0  # task b's columns: masked
    assert float(fisher["head.weight"][:2].sum()) > 0.0
    objective = ewc.extend_objective(CrossEntropy(), Experience(1, "b", train, None), state)
    objective.setup(model)
    outputs = torch.zeros(2, 4)
    batch = {"labels": torch.tensor([0, 1])}
    assert float(objective(outputs, batch)) == pytest.approx(math.log(4))  # no penalty
    with torch.no_grad():
        model.head.weight[3] += 5.0  # a weight with zero Fisher: still no penalty
    assert float(objective(outputs, batch)) == pytest.approx(math.log(4))
    with torch.no_grad():
        model.head.weight[0] += 1.0
    expected = 2.0 / 2 * float(fisher["head.weight"][0].sum())
    assert float(objective(outputs, batch)) == pytest.approx(math.log(4) + expected, rel=1e-5)


def test_lwf_adds_nothing_while_the_model_matches_its_copy_and_pulls_back_after(host):
    """Bugs caught: distillation against the live model (always zero: it teaches itself) or
    over the new experience's columns (it would fight learning the new classes)."""
    from transferlab.regimes.heads import LabelLayout
    from transferlab.regimes.strategy import Experience, StreamState
    from transferlab.training.model import TransferModel
    from transferlab_objectives.losses import CrossEntropy

    backbone = TinyBackbone("image", name="tiny:mlp")
    model = TransferModel(backbone, 6)
    layout = LabelLayout(("a", "b"), (3, 3))
    from transferlab.api import RunContext

    state = StreamState(model, None, layout, [], "task-incremental",
                        RunContext(seed=0, registries=host.registries))
    lwf = host.registries.strategies.create("lwf", {})
    task = TinyTask("image")
    objective = lwf.extend_objective(CrossEntropy(), Experience(1, "b", None, None), state)
    inputs = backbone.preprocess(task.split("train").inputs[:4])
    batch = {"inputs": inputs, "labels": torch.tensor([3, 4, 5, 3])}
    base = CrossEntropy()
    outputs = model(inputs)
    assert float(objective(outputs, batch)) == pytest.approx(float(base(outputs, batch)))
    shifted = outputs.detach().clone()
    shifted[:, 3:] += torch.randn(4, 3)  # the new experience's columns: not distilled
    assert float(objective(shifted, batch)) == pytest.approx(float(base(shifted, batch)))
    shifted[:, 0] += 3.0  # an old column moved: distillation pulls back
    assert float(objective(shifted, batch)) > float(base(shifted, batch)) + 1e-3


def test_suites_expand_regime_entries_and_reject_malformed_ones(host):
    """Bugs caught: regime entries dropped or crossed with every single task, a split that
    ignores its experience count, and malformed entries accepted."""
    from transferlab.harness.suite import parse_suite

    suite = parse_suite({
        "tasks": ["tiny-a", {"tasks": ["tiny-a", "tiny-b"], "regime": "multi-task"},
                  {"split": "tiny-a", "experiences": 3,
                   "regimes": ["continual", "continual[strategy=ewc]"]}],
        "backbones": ["tiny:mlp"], "methods": ["finetune"], "seeds": [0, 1]})
    assert [(c.regime, c.tasks) for c in suite.cells[::2]] == [
        (None, ()), ("multi-task", ("tiny-a", "tiny-b")),
        ("continual", ("tiny-a[classes=0]", "tiny-a[classes=1]", "tiny-a[classes=2]")),
        ("continual[strategy=ewc]", ("tiny-a[classes=0]", "tiny-a[classes=1]",
                                     "tiny-a[classes=2]"))]
    assert len(suite.cells) == 8
    for bad, message in [({"tasks": ["a"], "split": "b", "regime": "x"}, "either tasks"),
                         ({"tasks": ["a", "b"]}, "needs regime"),
                         ({"split": "tiny-a", "regime": "continual"}, "experiences"),
                         ({"tasks": ["a", "b"], "regime": "x", "order": 1}, "unknown key")]:
        with pytest.raises(DataError, match=message):
            parse_suite({"tasks": [bad], "backbones": ["b"], "methods": ["m"]})


def test_reports_show_multi_task_rows_per_task_and_continual_figures(host, tmp_path):
    """Bugs caught: multi-task results missing from each task's leaderboard (or mixed into
    single-task fine-tuning's row), and continual figures averaged over the wrong cells."""
    from transferlab.harness.continual_report import continual_board, to_markdown
    from transferlab.harness.report import leaderboard
    from transferlab.harness.store import ResultsStore

    store = ResultsStore(tmp_path / "r.sqlite")
    registries = host.registries
    for seed in (0, 1):
        for cell in (Cell("tiny:mlp", "tiny-a", "finetune", FAST, seed=seed),
                     Cell("tiny:mlp", "", "finetune", FAST, seed=seed, regime="multi-task",
                          tasks=("tiny-a", "tiny-b")),
                     Cell("tiny:mlp", "", "finetune", FAST, seed=seed, regime="continual",
                          tasks=("tiny-a", "tiny-b"))):
            result = run_cell(cell, registries, progress=False)
            assert result.status == "ok", result.error
            store.add(result)
    rows = store.rows()
    board = leaderboard(rows)
    methods = {(r.task, r.method, r.seeds) for r in board}
    assert ("tiny-a", "finetune", 2) in methods
    assert ("tiny-a", "finetune (multi-task)", 2) in methods
    assert ("tiny-b", "finetune (multi-task)", 2) in methods
    assert ("tiny-a -> tiny-b", "finetune (continual)", 2) in methods
    (stream,) = continual_board(rows)
    matrices = [r["extra"]["accuracy_matrix"] for r in rows if r["regime"] == "continual"]
    assert np.allclose(stream.matrix, np.mean(matrices, axis=0))
    values = [r["metrics"]["average_accuracy"] for r in rows if r["regime"] == "continual"]
    assert stream.figures["average_accuracy"][0] == pytest.approx(np.mean(values))
    text = to_markdown([stream])
    assert "| naive | finetune | tiny:mlp | 2 |" in text and "E1 = tiny-b" in text


def test_a_cell_killed_mid_stream_resumes_from_its_work_dir(host, tmp_path, monkeypatch):
    """Bugs caught: ``run_cell`` not passing its work folder to the stream (a re-run after
    Ctrl-C trains every experience again), and checkpoints of one cell found by another."""
    from transferlab_continual.strategies import Naive

    registries = host.registries
    cell = Cell("tiny:mlp", "", "finetune", FAST, seed=1, regime="continual",
                tasks=("tiny-a[classes=0+1]", "tiny-a[classes=2]", "tiny-b"))
    whole = run_cell(cell, registries, progress=False)
    calls = []

    def interrupt_second(self, experience, state):
        calls.append(experience.index)
        if experience.index == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Naive, "after_experience", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        run_cell(cell, registries, progress=False, work_dir=tmp_path)
    monkeypatch.setattr(Naive, "after_experience", lambda self, e, s: calls.append(e.index))
    other = run_cell(Cell("tiny:mlp", "", "finetune", FAST, seed=2, regime="continual",
                          tasks=cell.tasks), registries, progress=False, work_dir=tmp_path)
    assert "resumed_after_experience" not in other.extra  # another cell starts afresh
    calls.clear()
    resumed = run_cell(cell, registries, progress=False, work_dir=tmp_path)
    assert resumed.status == "ok", resumed.error
    assert calls == [1, 2] and resumed.extra["resumed_after_experience"] == 1
    assert resumed.extra["accuracy_matrix"] == whole.extra["accuracy_matrix"]
    assert resumed.metrics == whole.metrics


def test_run_with_a_regime_prints_the_accuracy_matrix(host, tmp_path):
    """Bugs caught: several -t without --regime silently using the first task, and a stream
    run that prints no matrix."""
    from click.testing import CliRunner

    from transferlab.cli import cli

    db = str(tmp_path / "r.sqlite")
    common = ["run", "-b", "tiny:mlp", "-m", "finetune", "-t", "tiny-a", "-t", "tiny-b",
              "--no-progress", "--db", db, *[a for k, v in FAST.items()
                                              for a in ("-p", f"{k}={v}")]]
    refused = CliRunner().invoke(cli, common)
    assert refused.exit_code != 0 and "need --regime" in refused.output
    result = CliRunner().invoke(cli, [*common, "-r", "continual[scenario=class-incremental]"])
    assert result.exit_code == 0, result.output
    assert "| after \\ on | E0 | E1 |" in result.output and "E1 = tiny-b" in result.output
    assert (tmp_path / "r.work" / "continual").is_dir()  # checkpoints beside the results


THIRD_PARTY_STRATEGY = """
from transferlab import hookimpl
from transferlab.params import Param
from transferlab.regimes import ContinualStrategy
from transferlab.regimes.strategy import concatenate


class ReplayLast(ContinualStrategy):
    name = "replay-last"
    summary = "rehearse the previous experience's first examples"
    params = (Param("memory", int, 4, "examples kept", min=1),)

    def training_split(self, experience, state):
        if experience.index == 0:
            return experience.train
        previous = state.experiences[experience.index - 1].train
        n = self.hparams["memory"]
        self.seen = len(experience.train) + n
        kept = type(previous)(previous.inputs[:n], previous.labels[:n])
        return concatenate([experience.train, kept])


@hookimpl
def register_strategies(register):
    register(ReplayLast)
"""


def test_a_third_party_strategy_registers_and_runs_in_a_stream(fake_dists):
    """Bugs caught: the ``register_strategies`` hook not called (a plugin's strategy unknown
    to ``continual[strategy=...]``), or a strategy's parameters not validated before the
    stream starts."""
    fake_dists.add("transferlab-replay-last", "replay_last", "tl_replay_last",
                   THIRD_PARTY_STRATEGY)
    host = PluginHost()
    host.load_entry_points(entry_points_named("feature", "parameter", "objectives",
                                              "replay_last"))
    host.add_plugin(RegimePlugin(), "regime-test")
    with use_host(host):
        entry = host.registries.strategies.get("replay-last")
        assert entry.plugin == "replay_last" and entry.distribution == "transferlab-replay-last"
        cell = Cell("tiny:mlp", "", "finetune", FAST, regime="continual[strategy=replay-last"
                    "[memory=3]]", tasks=("tiny-a", "tiny-b"))
        result = run_cell(cell, host.registries, progress=False)
        assert result.status == "ok", result.error
        assert result.extra["strategy"] == "replay-last[memory=3]"
        with pytest.raises(ParamError, match="memory"):
            validate_cell(Cell("tiny:mlp", "", "finetune", FAST, regime="continual[strategy="
                               "replay-last[memory=0]]", tasks=("tiny-a", "tiny-b")),
                          host.registries)


def test_a_single_experience_and_text_matrices_are_scored_and_described_exactly():
    """Bugs caught: a 1x1 matrix (one experience) refused or given a forgetting of NaN
    (the mean of no experience) instead of none, matrices read from text (CSV) not
    converted to numbers, error messages that name the wrong dimension, and a
    ``describe`` that drops or renames a figure."""
    from transferlab.regimes.metrics import describe

    one = continual_scores([[0.7]], [0.5])
    assert (one.average_accuracy, one.forgetting, one.bwt, one.forward_transfer) == (
        pytest.approx(0.7), None, None, None)
    assert one.per_experience_forgetting == [] and one.per_experience_forward_transfer == []
    text = continual_scores([["1", "0"], ["0.5", "1"]], ["0.5", "0.25"])
    assert text.average_accuracy == pytest.approx(0.75)
    assert text.per_experience_forward_transfer == pytest.approx([-0.25])
    assert continual_scores(MATRIX).per_experience_forward_transfer == []
    with pytest.raises(DataError) as raised:
        continual_scores([[0.9], [0.5]])
    assert str(raised.value) == ("an accuracy matrix has one row per training experience and"
                                 " one column per experience; 2 rows > 1 columns")
    with pytest.raises(DataError) as raised:
        continual_scores([[0.9, math.inf]])
    assert str(raised.value) == "an accuracy matrix holds NaN or infinite values"
    assert describe(continual_scores(MATRIX, REFERENCE)) == {
        "average_accuracy": pytest.approx(0.71666667), "forgetting": pytest.approx(0.25),
        "bwt": pytest.approx(-0.25), "forward_transfer": pytest.approx(-0.025),
        "per_experience_forgetting": pytest.approx([0.4, 0.1]),
        "per_experience_forward_transfer": pytest.approx([-0.1, 0.05])}


def test_weighted_tasks_slice_per_example_extras_and_keep_the_rest():
    """Bugs caught: equal weights other than 1 ignored (weights 2+2 must double the loss),
    per-example extras (a teacher's outputs) handed whole to one task's share of the loss,
    the preprocessed inputs or a non-per-example tensor sliced as if they were, an empty
    batch's loss detached from the model, and ``setup`` not reaching the base objective."""
    from torch.nn import functional as F

    from transferlab.api import Objective
    from transferlab.regimes.continual import row_masks
    from transferlab.regimes.heads import LabelLayout, MaskedObjective
    from transferlab_objectives.losses import CrossEntropy

    class Recording(Objective):
        name = "recording"

        def __init__(self) -> None:
            self.batches, self.model = [], None

        def setup(self, model):
            self.model = model

        def __call__(self, outputs, batch):
            self.batches.append(batch)
            return F.cross_entropy(outputs, batch["labels"])

    layout = LabelLayout(("a", "b"), (2, 2))
    masks = row_masks(layout, "task-incremental", [0, 1])
    logits = torch.tensor([[1.0, 0.0, 3.0, 3.0], [0.0, 2.0, 0.0, 0.0], [4.0, 4.0, 1.0, 3.0]])
    labels = torch.tensor([0, 1, 3])
    doubled = MaskedObjective(CrossEntropy(), layout, masks, [2.0, 2.0])
    plain = MaskedObjective(CrossEntropy(), layout, masks)
    assert doubled.layout is layout
    assert float(doubled(logits, {"labels": labels})) == pytest.approx(
        2 * float(plain(logits, {"labels": labels})))
    base = Recording()
    weighted = MaskedObjective(base, layout, masks, [1.0, 0.5])
    inputs, teacher, scale = torch.randn(3, 4), torch.randn(3, 2), torch.tensor([1.0, 2.0])
    weighted(logits, {"labels": labels, "inputs": inputs, "teacher": teacher, "scale": scale})
    first, second = base.batches
    assert torch.equal(first["teacher"], teacher[:2]) and torch.equal(second["teacher"],
                                                                      teacher[2:])
    assert first["inputs"] is inputs and first["scale"] is scale
    model = torch.nn.Linear(2, 2)
    weighted.setup(model)
    assert base.model is model
    empty = torch.zeros(0, 4, requires_grad=True)
    loss = weighted(empty, {"labels": torch.zeros(0, dtype=torch.long)})
    assert isinstance(loss, torch.Tensor) and float(loss) == 0.0 and loss.requires_grad


def test_regime_errors_name_the_regime_and_budgets_scale_steps_and_seconds(host):
    """Bugs caught: messages that do not say which regime or parameter is wrong (or list the
    regimes badly), weights that refuse 0 or a weight under 1 (a task may be switched off or
    down-weighted), default weights other than 1, a negative weight accepted, and a scaled
    budget that forgets ``max_seconds`` or scales the epochs."""
    from transferlab.regimes.spec import RegimeSpec, scale_budget

    registries = host.registries
    with pytest.raises(ParamError) as raised:
        parse_regime("multitask", registries)
    assert str(raised.value) == ("unknown regime 'multitask'; use one of multi-task, continual"
                                 " (a cell without one is task-specific)")
    with pytest.raises(ParamError, match=r"^regime multi-task: .*sampling"):
        parse_regime("multi-task[sampling=random]", registries)
    with pytest.raises(Exception, match=r"^regime continual: parameter strategy"):
        parse_regime("continual[strategy=ewcc]", registries)
    with pytest.raises(Exception, match=r"regime.*\[x"):
        parse_regime("continual[x", registries)
    assert RegimeSpec("multi-task", {"weights": None}).weights(2) == [1.0, 1.0]
    assert RegimeSpec("multi-task", {"weights": "0+0.5"}).weights(2) == [0.0, 0.5]
    with pytest.raises(ParamError) as raised:
        RegimeSpec("multi-task", {"weights": "1+x"}).weights(2)
    assert str(raised.value) == ("multi-task: weights='1+x' must be numbers joined by +, e.g."
                                 " weights=1+0.5+1")
    with pytest.raises(ParamError, match="non-negative"):
        RegimeSpec("multi-task", {"weights": "1+-1"}).weights(2)
    method = registries.methods.create("finetune", {"max_steps": 5, "max_seconds": 2.0})
    scaled = scale_budget(method, 3)
    assert scaled.hparams["max_steps"] == 15 and scaled.hparams["max_seconds"] == 6.0
    assert scaled.hparams["epochs"] == method.hparams["epochs"]
