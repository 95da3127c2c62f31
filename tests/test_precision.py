"""``-B precision=auto|fp32|bf16|fp16``: how ``auto`` resolves, where the concrete precision
goes (cell key, feature-cache key, training loop) and that bf16 autocast really runs.

This machine's CPU may or may not have bf16 matrix units, so every test that depends on them
says which CPU it pretends to have (``cpu_has_bf16_units`` monkeypatched)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from transferlab import precision
from transferlab.errors import ParamError
from transferlab.harness.cell import Cell, validate_cell
from transferlab.harness.features import precision_fingerprint
from transferlab.precision import (
    autocast,
    concrete_inference_params,
    cpu_has_bf16_units,
    keyed_backbone_params,
    resolve_precision,
    training_autocast,
)
from transferlab.training.accelerator import resolve_precision as accelerate_precision


@pytest.fixture
def amx(monkeypatch):
    """Pretend this CPU has bf16 matrix units."""
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: True)


@pytest.fixture
def avx2_only(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: False)


@pytest.mark.parametrize(("flags", "expected"), [
    ("fpu sse avx2 amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", True),
    ("fpu sse avx2 avx512f", False), ("", False)])
def test_bf16_units_are_read_from_the_cpu_flags(tmp_path, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_has_bf16_units.__wrapped__(str(info)) is expected
    assert cpu_has_bf16_units.__wrapped__(str(tmp_path / "missing")) is False


def test_auto_on_a_cpu_with_bf16_units(amx):
    """Bugs caught: bf16 training for a conv net (measured 0.77x: slower), fp32 inference
    where bf16 measured 1.8-1.95x, and MiniLM training left in fp32 (1.27x faster in bf16)."""
    lite0, minilm = "timm:efficientnet_lite0", "sbert:all-MiniLM-L6-v2"
    assert resolve_precision("auto", backbone=lite0, device="cpu", training=False) == "bf16"
    assert resolve_precision("auto", backbone=lite0, device="cpu", training=True) == "fp32"
    assert resolve_precision("auto", backbone=minilm, device="cpu", training=True) == "bf16"
    assert resolve_precision("auto", backbone=minilm + "@ckpt.safetensors", device="cpu",
                             training=True) == "bf16"
    assert resolve_precision("fp32", backbone=lite0, device="cpu", training=False) == "fp32"


def test_auto_on_a_cpu_without_bf16_units_is_fp32(avx2_only):
    """Bug caught: bf16 chosen on a CPU that emulates it (measured 100x slower matmuls)."""
    for training in (False, True):
        assert resolve_precision("auto", backbone="sbert:all-MiniLM-L6-v2", device="cpu",
                                 training=training) == "fp32"
    assert resolve_precision("bf16", backbone="x", device="cpu", training=False) == "bf16"


def test_auto_on_a_gpu_follows_its_bf16_support(monkeypatch):
    monkeypatch.setattr(precision, "_cuda_bf16", lambda: True)
    assert resolve_precision("auto", backbone="timm:x", device="cuda", training=True) == "bf16"
    monkeypatch.setattr(precision, "_cuda_bf16", lambda: False)
    assert resolve_precision("auto", backbone="timm:x", device="cuda:1", training=False) == "fp32"
    assert resolve_precision("fp16", backbone="timm:x", device="cuda", training=True) == "fp16"


def test_bad_precisions_fail_with_the_fix():
    with pytest.raises(ParamError, match=r"fp16 runs on GPUs only .* use -B precision=bf16"):
        resolve_precision("fp16", backbone="timm:x", device="cpu", training=False)
    with pytest.raises(ParamError, match="precision='half' is not one of auto, fp32, bf16"):
        resolve_precision("half", backbone="timm:x", device="cpu", training=False)


def _old_key(cell: Cell) -> str:
    """A cell's key as it was computed before precision was a setting."""
    data = {"backbone": cell.backbone, "task": cell.task, "method": cell.method,
            "params": dict(cell.params), "seed": cell.seed,
            "backbone_params": {k: v for k, v in cell.backbone_params.items()
                                if k != "precision"}}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()
                          ).hexdigest()[:24]


def test_validation_resolves_auto_into_the_cell_key(registries, amx):
    """Bugs caught: ``auto`` stored as ``auto`` (two machines would store bf16 and fp32
    results under one key), and fp32 cells getting new keys (every stored result would run
    again after the upgrade)."""
    probe = validate_cell(Cell("timm:efficientnet_lite0", "digits", "linear-probe"), registries,
                          device="cpu")
    tune = validate_cell(Cell("timm:efficientnet_lite0", "digits", "finetune"), registries,
                         device="cpu")
    pinned = validate_cell(Cell("timm:efficientnet_lite0", "digits", "linear-probe",
                                backbone_params={"precision": "fp32"}), registries, device="cpu")
    assert probe.backbone_params["precision"] == "bf16"
    assert tune.backbone_params["precision"] == "fp32"
    assert pinned.key == _old_key(pinned) != probe.key
    assert tune.key == _old_key(tune)
    assert "precision" not in pinned.to_dict()["backbone_params"]
    assert probe.to_dict()["backbone_params"]["precision"] == "bf16"
    again = validate_cell(probe, registries, device="cpu")  # workers re-validate
    assert again.key == probe.key


def test_a_weightless_baseline_has_no_precision(registries, amx):
    cell = validate_cell(Cell("raw:pixels", "digits", "linear-probe"), registries, device="cpu")
    assert "precision" not in cell.backbone_params


def test_keys_and_rankings_spell_fp32_by_leaving_it_out(avx2_only):
    assert keyed_backbone_params({"img_size": 64, "precision": "fp32"}) == {"img_size": 64}
    assert keyed_backbone_params({"precision": "bf16"}) == {"precision": "bf16"}
    assert concrete_inference_params("timm:x", {"precision": "auto"}, device="cpu") == {}


def test_the_feature_cache_key_carries_a_reduced_precision(registries):
    backbone = registries.backbones.create("timm:test_resnet@random", {"img_size": 32})
    fp32 = precision_fingerprint(backbone, "cpu")
    assert fp32 == backbone.fingerprint  # fp32 caches written before stay valid
    backbone.precision = "bf16"
    assert precision_fingerprint(backbone, "cpu") == f"{backbone.fingerprint}+bf16"


def test_bf16_extraction_runs_under_autocast_and_stays_close_to_fp32(registries):
    """Bug caught: a precision setting that changes the key but not the computation (or
    breaks it). bf16 carries 8 bits of mantissa: features differ, but little."""
    images = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)
              for i in range(4)]
    backbone = registries.backbones.create("timm:test_resnet@random",
                                           {"img_size": 32, "precision": "fp32"})
    full = backbone.encode(images)
    backbone.precision = "bf16"
    half = backbone.encode(images)
    assert full.dtype == half.dtype == np.float32
    assert not np.array_equal(full, half)
    cosine = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cosine.min() > 0.99


def test_autocast_is_a_no_op_for_fp32():
    import torch

    with autocast("fp32", "cpu") as ctx:
        assert ctx is None and not torch.is_autocast_enabled("cpu")
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_training_follows_the_backbone_precision_and_fp16_needs_a_gpu():
    assert [training_autocast(p) for p in ("fp32", "bf16", "fp16")] == ["no", "bf16", "fp16"]
    assert accelerate_precision("bf16", "cpu") == "bf16"
    assert accelerate_precision("auto", "cpu") == "no"
    with pytest.raises(ParamError, match="fp16 runs on GPUs only"):
        accelerate_precision("fp16", "cpu")


def test_a_bf16_backbone_trains_under_bf16_autocast(registries, monkeypatch):
    """The loop gets the backbone's precision when the method's mixed_precision is auto."""
    from transferlab.training import loop

    asked = []
    real = loop.make_accelerator

    def spy(device, mixed_precision):
        asked.append(mixed_precision)
        return real(device, "no")  # the spy only records; training itself stays quick

    monkeypatch.setattr(loop, "make_accelerator", spy)
    from transferlab.harness.cell import run_cell

    for value in ("bf16", "fp32"):
        cell = Cell("timm:test_resnet@random", "digits", "finetune",
                    {"max_steps": 1, "epochs": 1, "val_fraction": 0.0},
                    {"img_size": 32, "precision": value})
        result = run_cell(cell, registries, device="cpu", progress=False)
        assert result.status == "ok", result.error
    assert asked == ["bf16", "no"]


def test_validation_imports_no_torch_on_a_machine_without_nvidia_devices():
    code = ("import sys; from transferlab.precision import likely_device;"
            " print(likely_device(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    if out[0] == "cuda":
        pytest.skip("this machine has an NVIDIA device")
    assert out == ["cpu", "False"]


@pytest.mark.parametrize(("available", "bf16", "expected"), [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False)])
def test_cuda_bf16_needs_a_gpu_that_supports_it(monkeypatch, available, bf16, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert precision._cuda_bf16() is expected


def test_rankings_resolve_auto_for_inference(amx):
    """Bug caught: a ranking naming a conv net's backbone by its training precision (fp32)
    while the cells it is validated against extract in bf16."""
    assert concrete_inference_params("timm:efficientnet_lite0", {"precision": "auto",
                                                                 "img_size": 64},
                                     device="cpu") == {"precision": "bf16", "img_size": 64}
    assert concrete_inference_params("timm:x", {"precision": "fp32"}) == {}


@pytest.mark.parametrize(("torch_loaded", "nvidia", "expected"), [
    (False, False, "cpu"), (False, True, "cuda"), (True, False, "cuda")])
def test_likely_device_asks_torch_only_when_a_gpu_may_be_there(monkeypatch, torch_loaded,
                                                               nvidia, expected):
    """Bugs caught: importing torch (3 s) to validate a suite on a machine with no NVIDIA
    driver, or answering cpu without asking torch where a GPU may be."""
    import types

    from transferlab.harness import environment

    fake_sys = types.SimpleNamespace(modules={"torch": object()} if torch_loaded else {})
    monkeypatch.setattr(precision, "sys", fake_sys)
    monkeypatch.setattr(precision.os.path, "exists", lambda path: nvidia)
    monkeypatch.setattr(environment, "default_device", lambda: "cuda")
    assert precision.likely_device() == expected


@pytest.mark.parametrize("present", ["/proc/driver/nvidia/version", "/dev/nvidia0"])
def test_either_nvidia_device_file_sends_the_question_to_torch(monkeypatch, present):
    import types

    from transferlab.harness import environment

    monkeypatch.setattr(precision, "sys", types.SimpleNamespace(modules={}))
    monkeypatch.setattr(precision.os.path, "exists", lambda path: path == present)
    monkeypatch.setattr(environment, "default_device", lambda: "cuda")
    assert precision.likely_device() == "cuda"


def test_effective_resolves_auto_on_a_backbone_built_outside_a_cell(amx, monkeypatch):
    """Bugs caught: a backbone built by hand (``auto`` never validated) running in a
    precision the table does not give its name, or a backbone class without the attribute
    (a third-party family predating it) not treated as fp32."""
    import types

    conv = types.SimpleNamespace(name="timm:efficientnet_lite0", precision="auto")
    minilm = types.SimpleNamespace(name="sbert:all-MiniLM-L6-v2", precision="auto")
    assert precision.effective(conv, "cpu") == "bf16"
    assert precision.effective(conv, "cpu", training=True) == "fp32"
    assert precision.effective(minilm, "cpu", training=True) == "bf16"
    assert precision.effective(types.SimpleNamespace(name="x"), "cpu") == "fp32"
    assert precision.effective(types.SimpleNamespace(precision="bf16"), "cpu") == "bf16"
    assert precision.effective(types.SimpleNamespace(precision="auto"), "cpu") == "bf16"  # no name
    monkeypatch.setattr(precision, "likely_device", lambda: "cpu")
    assert concrete_inference_params("timm:x", {"precision": "auto"}) == {"precision": "bf16"}
