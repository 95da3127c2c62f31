"""Backbone checkpoints: one safetensors file whose metadata holds the backbone's name and
config, so ``NAME@PATH`` restores exactly. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import CheckpointError

__all__ = ["METADATA_KEY", "load_checkpoint", "read_metadata", "save_checkpoint"]

if TYPE_CHECKING:
    from torch import nn

METADATA_KEY = "transferlab"


def save_checkpoint(
    module: nn.Module, path: str | Path, *, name: str, config: dict[str, Any] | None = None
) -> Path:
    """Write ``module``'s state dict and ``{name, config}`` atomically to ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    seen: set[int] = set()
    for key, value in module.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        where = tensor.untyped_storage().data_ptr()
        # tied weights (an LM head sharing the embedding) share memory, which safetensors
        # refuses: store a copy; loading the state dict restores both, still equal
        state[key] = tensor.clone() if where in seen else tensor
        seen.add(where)
    meta = {METADATA_KEY: json.dumps({"name": name, "config": config or {}}, sort_keys=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``{name, config}`` stored in a checkpoint, or a :class:`CheckpointError`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is not a valid safetensors file ({exc});"
                              " re-save it with transferlab") from None
    if METADATA_KEY not in meta:
        raise CheckpointError(f"checkpoint {path} has no transferlab metadata; save it with"
                              " transferlab.checkpoint.save_checkpoint")
    return json.loads(meta[METADATA_KEY])


def load_checkpoint(path: str | Path, module: nn.Module, *, expected_name: str) -> str:
    """Load weights into ``module`` after checking the recorded name and every shape."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    recorded = meta.get("name", "")
    if recorded.split("@", 1)[0] != expected_name:
        raise CheckpointError(
            f"checkpoint {path} was saved from {recorded!r}, not {expected_name!r};"
            f" load it as {recorded.split('@', 1)[0]}@{path}"
        )
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt ({exc})") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"checkpoint {path} does not match {expected_name}: missing {missing[:3]},"
            f" unexpected {extra[:3]}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint {path}: {key} has shape {tuple(tensor.shape)}, model expects"
                f" {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state, strict=True)
    return f"checkpoint:{path}"
