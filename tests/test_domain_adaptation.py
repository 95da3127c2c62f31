"""Domain-adaptation cells: source task -> unlabeled target task, scored on the target."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from conftest import shared_dataset
from fakes import TinyTask
from transferlab.api import RunContext, Split, TransferMethod
from transferlab.cli import cli
from transferlab.errors import IncompatibleError
from transferlab.harness.cell import Cell, run_cell, validate_cell
from transferlab.harness.domain import UnlabeledTarget, check_same_labels
from transferlab.harness.features import FeatureStore
from transferlab.harness.report import leaderboard
from transferlab.harness.store import SCHEMA, ResultsStore
from transferlab.plugins import PluginHost
from transferlab_baselines.raw import RawPixels
from transferlab_feature.coral import Coral, coral_align
from transferlab_feature.linear_probe import LinearProbe
from transferlab_tasks.digits import DigitsTask

PIXELS = {"size": 8, "grayscale": True}


class FadedDigits(DigitsTask):
    """digits seen through another 'scanner': low contrast on a grey background."""

    def _load_split(self, split: str) -> Split:
        data = super()._load_split(split)
        return Split([(0.4 * x + 90).astype(np.uint8) for x in data.inputs], data.labels)

    def fingerprint(self) -> str:
        return "faded-" + super().fingerprint()


def _target_accuracy(method: TransferMethod) -> tuple[float, dict]:
    source, target = DigitsTask(), FadedDigits("faded")
    backbone = RawPixels("raw:pixels", **PIXELS)
    ctx = RunContext(progress=False, feature_store=FeatureStore(None))
    predictor = method.fit_adapted(backbone, source, UnlabeledTarget(target), ctx)
    predictions = predictor.predict_split(target, "test", ctx)
    return float((predictions == target.split("test").labels).mean()), predictor.extra


def test_coral_beats_source_only_under_a_contrast_shift():
    source_only, _ = _target_accuracy(LinearProbe())
    adapted, extra = _target_accuracy(Coral())
    assert extra["adaptation"] == "coral"
    assert source_only < 0.5 < 0.9 < adapted


def test_coral_matches_target_covariance():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(400, 3)) * [1.0, 2.0, 0.5]
    target = rng.normal(size=(500, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 3]]) + 4
    aligned = coral_align(source, target, reg=1e-6, align_means=True)
    np.testing.assert_allclose(np.cov(aligned, rowvar=False), np.cov(target, rowvar=False),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(aligned.mean(axis=0), target.mean(axis=0), atol=1e-4)


class SpyMethod(LinearProbe):
    """Records what the method is allowed to see of the target."""

    seen: dict = {}

    def fit_adapted(self, backbone, source, target, ctx):
        SpyMethod.seen = {s: target.split(s).labels.copy() for s in target.split_names()}
        return super().fit_adapted(backbone, source, target, ctx)


def test_target_labels_are_hidden_from_the_method():
    _target_accuracy(SpyMethod())
    assert set(SpyMethod.seen) == {"train", "test"}
    assert all((labels == -1).all() for labels in SpyMethod.seen.values())


def test_cell_runs_stores_and_reports_source_task(registries, tmp_path):
    plain = validate_cell(Cell("raw:pixels", "digits", "coral", {}, PIXELS), registries)
    adapted = validate_cell(Cell("raw:pixels", "digits", "coral", {}, PIXELS, 0, "digits"),
                            registries)
    assert plain.key != adapted.key and "digits->digits" in adapted.label()
    assert "source_task" not in plain.to_dict()  # old keys unchanged
    store = ResultsStore(tmp_path / "r.sqlite")
    for cell, method in ((adapted, "coral"), (adapted, "linear-probe"), (plain, "coral")):
        result = run_cell(Cell(cell.backbone, cell.task, method, {}, PIXELS, 0,
                               cell.source_task), registries, progress=False)
        assert result.status == "ok", result.error
        store.add(result)
    rows = store.rows()
    assert [r["source_task"] for r in rows] == ["digits", "digits", None]
    assert [r["extra"]["adaptation"] for r in rows] == [
        "coral", "source-only", "none (no source task)"]
    assert {r.task for r in leaderboard(rows)} == {"digits", "digits->digits"}


def test_label_mismatch_is_a_clear_error(registries, tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("text,label\na,x\nb,y\n")
    with pytest.raises(IncompatibleError, match="image but target"):
        check_same_labels(DigitsTask(), registries.tasks.create(f"csv:{tmp_path}"))
    result = run_cell(Cell("raw:pixels", "digits", "coral", {}, PIXELS, 0, f"csv:{tmp_path}"),
                      registries, progress=False)
    assert result.status == "error" and "reads image but task" in result.error


def test_old_results_file_gains_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)  # the first schema, without source_task
        conn.execute(
            "INSERT INTO results (cell_key, backbone, task, method, params, backbone_params,"
            " seed, status, metrics, environment, finished_at) VALUES"
            " ('k', 'b', 't', 'm', '{}', '{}', 0, 'ok', '{}', '{}', 'now')")
    conn.close()
    rows = ResultsStore(path).rows()
    assert rows[0]["source_task"] is None and rows[0]["cell_key"] == "k"
    ResultsStore(path)  # migrating twice is harmless


def test_cli_source_task(runner, tmp_path):
    args = ["run", "-b", "raw:pixels", "-B", "size=8", "-B", "grayscale=true", "-t", "digits",
            "--source-task", "digits", "-m", "coral", "--no-progress", "--db",
            str(tmp_path / "r.sqlite")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "digits->digits x coral" in result.output
    args[args.index("--source-task") + 1] = "digitz"
    bad = runner.invoke(cli, args)
    assert bad.exit_code != 0 and "unknown task 'digitz'" in bad.output


@pytest.mark.slow
def test_mnist_to_usps_source_only_and_coral(registries):
    data = shared_dataset("mnist_subset").parent
    shared_dataset("usps")
    host = PluginHost(data_dirs=[data])
    host.load_entry_points()
    backbone = {"size": 16, "grayscale": True}
    accuracy = {}
    for method in ("linear-probe", "coral"):
        cell = Cell("raw:pixels", "usps", method, {}, backbone, 0, "mnist_subset")
        result = run_cell(cell, host.registries, progress=False)
        assert result.status == "ok", result.error
        accuracy[method] = result.metrics["accuracy"]
    # raw 16x16 pixels: MNIST's always-black border has ~zero variance, so source z-scoring
    # blows up USPS pixels there (source-only is at chance); CORAL re-centres and re-scales
    assert accuracy["coral"] > accuracy["linear-probe"] + 0.1, accuracy


class LettersTask(TinyTask):
    """TinyTask with configurable label names (its labels stay 0/1)."""

    def __init__(self, name, names, modality="image"):
        super().__init__(name)
        self.names, self.modality = names, modality

    @property
    def label_names(self):
        return self.names


def test_check_same_labels_exact_messages():
    check_same_labels(LettersTask("s", ["a", "b"]), LettersTask("t", ["a", "b"]))  # fine
    with pytest.raises(IncompatibleError) as excinfo:
        check_same_labels(LettersTask("s", ["a", "b"]), LettersTask("t", ["a", "b"], "text"))
    assert str(excinfo.value) == ("source task 's' is image but target 't' is text; pick tasks"
                                  " of the same modality")
    with pytest.raises(IncompatibleError) as excinfo:
        check_same_labels(LettersTask("s", list("abcdefgh")), LettersTask("t", ["z", "a"]))
    assert str(excinfo.value) == (
        "source task 's' and target 't' have different labels (only in source: ['b', 'c', 'd',"
        " 'e', 'f'], only in target: ['z']); domain adaptation needs the same label names")
    with pytest.raises(IncompatibleError, match=r"only in source: \[\], only in target: \[\]"):
        check_same_labels(LettersTask("s", ["a", "b"]), LettersTask("t", ["b", "a"]))  # order


def test_unlabeled_target_hides_labels_and_keeps_everything_else():
    target = TinyTask("tgt", fingerprint="tgt-v3")
    target.primary_metric, target.kind = "macro_f1", "classification"
    view = UnlabeledTarget(target)
    assert (view.name, view.modality, view.kind, view.primary_metric) == (
        "tgt", "image", "classification", "macro_f1")
    assert view.fingerprint() == "tgt-v3"  # target features shared with ordinary cells
    assert view.label_names == ["a", "b"] and view.split_names() == ["train", "test"]
    for split, n in (("train", 6), ("test", 4)):
        hidden = view.split(split)
        assert hidden.inputs is target.split(split).inputs
        assert hidden.labels.tolist() == [-1] * n and hidden.labels.dtype == np.int64
    assert target.split("train").labels.tolist() == [0, 1, 0, 1, 0, 1]  # the target untouched
