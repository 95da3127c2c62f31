"""The public training API, used the way a third party would: the LP-FT plugin in
``tests/plugins/lpft.py`` is written only against ``transferlab.training``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from fakes import small_digits
from transferlab.api import RunContext
from transferlab.plugins import PluginHost

pytest.importorskip("torch")

PLUGIN_DIR = Path(__file__).parent / "plugins"
TINY = "timm:test_efficientnet@random"
FAST = {"max_steps": 8, "batch_size": 24, "val_fraction": 0.0}


def SmallDigits():
    return small_digits(200, 100)


def _load_plugin(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so inspect finds its source
    spec.loader.exec_module(module)
    return module


LPFT = _load_plugin(PLUGIN_DIR / "lpft.py")


@pytest.fixture(scope="module")
def registries():
    host = PluginHost()
    host.load_entry_points()
    host.add_plugin(LPFT, "lpft-example")
    return host.registries


def _fit(registries, method, **params):
    task = SmallDigits()
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    ctx = RunContext(seed=0, progress=False, registries=registries)
    predictor = registries.methods.create(method, {**FAST, **params}).fit(backbone, task, ctx)
    return predictor, predictor.predict_split(task, "test", ctx), task


def test_the_third_party_lpft_is_about_40_lines_of_method_code():
    """The public API is the point: LP-FT must not need to re-implement fit."""
    source = inspect.getsource(LPFT.LinearProbeThenFinetune)
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) <= 50, len(lines)
    assert "def fit" not in source


def test_registering_the_class_alone_reads_name_params_and_family(registries):
    """Bug caught: params declared on the class but not passed to register() were ignored
    ("unknown parameter ... Valid parameters: (none)")."""
    entry = registries.methods.get("lp-ft-example")
    assert entry.summary.startswith("fit the head on frozen features")
    assert entry.info["family"] == "parameter"
    assert {"probe", "probe_C", "lr", "epochs"} <= {p.name for p in entry.params}
    assert entry.validate("lp-ft-example", {"probe": "no"})["probe"] is False


def test_lpft_without_its_probe_predicts_exactly_as_finetune(registries):
    """The staged API adds nothing to a one-stage fit: same seed, same predictions."""
    _, expected, _ = _fit(registries, "finetune")
    _, got, _ = _fit(registries, "lp-ft-example", probe="false")
    np.testing.assert_array_equal(got, expected)


def test_lpft_probe_stage_starts_finetuning_from_the_fitted_probe(registries):
    """The head after the probe stage must be a logistic regression fitted on the cached
    features of exactly the training indices; stage results are recorded per stage."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from transferlab.training import Callback

    seen = {}

    class AtProbeEnd(Callback):
        def on_stage_end(self, state, result):
            if state.stage.name == "probe":
                seen["head"] = state.model.head.weight.detach().clone()
                features = state.ctx.features(state.backbone, state.task, "train")
                seen["features"] = np.asarray(features)[state.data.train_indices]
                seen["labels"] = state.data.train.labels

    method = registries.methods.create("lp-ft-example", {**FAST, "max_steps": 2})
    method.callbacks = lambda state: [AtProbeEnd()]
    task = SmallDigits()
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    predictor = method.fit(backbone, task, RunContext(seed=0, progress=False,
                                                      registries=registries))
    probe = LogisticRegression(C=1.0, max_iter=2000).fit(seen["features"], seen["labels"])
    torch.testing.assert_close(seen["head"], torch.as_tensor(probe.coef_, dtype=torch.float32),
                               rtol=1e-4, atol=1e-5)
    assert set(predictor.extra["stages"]) == {"probe", "finetune"}
    assert predictor.extra["stages"]["probe"]["stop_reason"] == "no-training"
    assert predictor.extra["stages"]["finetune"]["steps"] == 2
    assert predictor.extra["steps"] == 2  # the last stage's summary is the top level


def test_callbacks_see_stages_and_epochs_in_order(registries):
    from transferlab.training import Callback

    events: list[str] = []

    class Recorder(Callback):
        def on_stage_start(self, state):
            events.append(f"start:{state.stage.name}")

        def on_epoch_end(self, state, record):
            events.append(f"epoch:{state.stage.name}:{record['epoch']}")

        def on_stage_end(self, state, result):
            events.append(f"end:{state.stage.name}:{result.stop_reason}")

    method = registries.methods.create("lp-ft-example", {**FAST, "max_steps": None,
                                                          "epochs": 2})
    method.callbacks = lambda state: [Recorder()]
    task = SmallDigits()
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    method.fit(backbone, task, RunContext(seed=0, progress=False, registries=registries))
    assert events == ["start:probe", "end:probe:no-training", "start:finetune",
                      "epoch:finetune:1", "epoch:finetune:2", "end:finetune:epochs"]


def test_carved_validation_indices_point_into_the_training_split():
    """Methods that use cached features need the indices of the examples they train on."""
    from transferlab.training import carve_validation

    task = SmallDigits()
    data = carve_validation(task, 0.2, seed=3)
    full = task.split("train")
    assert data.val_from == "train"
    assert len(data.train_indices) + len(data.val_indices) == len(full)
    assert not set(data.train_indices) & set(data.val_indices)
    np.testing.assert_array_equal(data.train.labels, full.labels[data.train_indices])
    np.testing.assert_array_equal(np.stack(data.val.inputs),
                                  np.stack([full.inputs[i] for i in data.val_indices]))
    again = carve_validation(task, 0.2, seed=3)
    np.testing.assert_array_equal(again.val_indices, data.val_indices)
    none = carve_validation(task, 0.0, seed=3)
    assert none.val is None and none.val_indices is None and none.val_from is None
    np.testing.assert_array_equal(none.train_indices, np.arange(len(full)))


def test_trained_backbone_forgets_its_cached_fingerprint(registries):
    """Bug caught: timm cached its fingerprint with no way to invalidate it, so features of
    fine-tuned weights could be served from the pretrained weights' cache entry."""
    task = SmallDigits()
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    before = backbone.fingerprint
    registries.methods.create("finetune", FAST).fit(
        backbone, task, RunContext(seed=0, progress=False, registries=registries))
    assert backbone.fingerprint != before


def test_a_predictor_without_parameter_counts_is_an_error_not_zero():
    """Bug caught: a predictor that forgot trainable_params / total_params reported 0 / 0."""
    from transferlab.api import Predictor, TransferMethod
    from transferlab.harness.cell import Cell, run_cell
    from transferlab.hookspecs import hookimpl

    class Forgetful(Predictor):
        def predict(self, inputs, ctx):
            return np.zeros(len(inputs), dtype=int)

    class Careless(TransferMethod):
        name = "careless"

        def fit(self, backbone, task, ctx):
            return Forgetful()

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register(Careless)

    host = PluginHost()
    host.load_entry_points()
    host.add_plugin(Plugin(), "careless")
    result = run_cell(Cell("raw:pixels", "digits", "careless",
                           backbone_params={"size": 8, "grayscale": True}),
                      host.registries, progress=False)
    assert result.status == "error"
    assert result.error == ("predictor Forgetful does not report trainable_params and"
                            " total_params; set both in the predictor (weights trained,"
                            " weights used)")
