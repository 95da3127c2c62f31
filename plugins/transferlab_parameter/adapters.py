"""LoRA adapters in place through ``peft``: choosing, checking and injecting target layers.

See :mod:`transferlab_parameter.lora` for why the defaults are what they are.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from transferlab.api import Backbone
from transferlab.errors import IncompatibleError
from transferlab.training.model import TransferModel

ADAPTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def inject_lora(model: TransferModel, spec: dict[str, Any]) -> None:
    """Inject adapters named by ``spec`` (full layer names) into ``model.body`` in place;
    afterwards only adapter weights of the body are trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=spec["dropout"],
                        target_modules=list(spec["targets"]), bias="none")
    inject_adapter_in_model(config, model.body)
    for name, param in model.body.named_parameters():
        param.requires_grad_("lora_" in name)


def default_targets(model: TransferModel, backbone: Backbone) -> list[str]:
    """Full names of the layers ``target_modules=auto`` adapts (see :mod:`..lora`)."""
    unused = {id(p) for p in model.unused_parameters()}
    scope = _transformer_scope(model.body, backbone)
    names = []
    for name, module in model.body.named_modules():
        if any(id(p) in unused for p in module.parameters(recurse=False)):
            continue
        if scope is not None:
            if (name.startswith(scope) and _adaptable(module)
                    and not isinstance(module, nn.Embedding) and "pooler" not in name):
                names.append(name)
        elif isinstance(module, nn.Linear) or (
            isinstance(module, nn.Conv2d) and module.groups == 1
            and tuple(module.kernel_size) == (1, 1)
        ):
            names.append(name)
    return names


def resolve_targets(model: TransferModel, backbone: Backbone, requested: str, rank: int
                    ) -> list[str]:
    """Full layer names for ``requested`` (``auto`` or peft-style names/suffixes), checked:
    matching nothing, or a grouped convolution peft cannot adapt at this rank, is an
    :class:`IncompatibleError` before any training."""
    unused = {id(p) for p in model.unused_parameters()}
    layers = {
        name: module for name, module in model.body.named_modules()
        if _adaptable(module) and not any(id(p) in unused for p in module.parameters())
    }
    if requested.strip().lower() == "auto":
        names = default_targets(model, backbone)
    else:
        wanted = [t.strip() for t in requested.split(",") if t.strip()]
        names = [n for n in layers if any(n == t or n.endswith("." + t) for t in wanted)]
    if not names:
        examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in layers})[:8]) or "none"
        raise IncompatibleError(
            f"lora: target_modules={requested!r} match no adaptable layer of"
            f" {backbone.name!r}; layer names there end in {examples} (or use auto)"
        )
    for name in names:
        module = layers.get(name)
        groups = getattr(module, "groups", 1)
        if groups > 1 and rank % groups:
            raise IncompatibleError(
                f"lora: {name} is a grouped convolution (groups={groups}) that peft adapts only"
                f" when the rank divides by {groups}, and r={rank}; drop it from"
                " target_modules (auto skips depthwise convolutions)"
            )
    return names


def _adaptable(module: nn.Module) -> bool:
    if isinstance(module, ADAPTABLE):
        return True
    return type(module).__name__ == "Conv1D" and "transformers" in sys.modules  # GPT-2 style


def _transformer_scope(body: nn.Module, backbone: Backbone) -> str | None:
    """Name prefix (within ``body``) of the transformer computing the features: the text
    backbones' ``base_model()`` (which leaves LM heads out), else the first Hugging Face
    ``PreTrainedModel`` (found without importing transformers when nothing loaded it)."""
    target = backbone.base_model()
    if target is None and "transformers" in sys.modules:
        from transformers import PreTrainedModel

        target = next((m for m in body.modules() if isinstance(m, PreTrainedModel)), None)
    if not isinstance(target, nn.Module):
        return None
    for name, module in body.named_modules():
        if module is target:
            return f"{name}." if name else ""
    return None
