"""Device placement and mixed precision through Hugging Face Accelerate.

``accelerate launch`` then scales a fine-tune across GPUs without code changes: the loop shards
each epoch's batches by process and Accelerate wraps the model for gradient synchronisation.
Accelerate keeps one process-wide state; a cell asking for another device or precision than
the previous cell resets it (never the distributed part).
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import ParamError


def resolve_precision(requested: str, device: str) -> str:
    """``auto`` -> bf16 on a GPU that supports it, else no (methods pass their backbone's
    resolved precision instead of ``auto``: :mod:`transferlab.precision`). On a CPU, bf16
    autocast is honoured (the backbone asked for it: a transformer on bf16 matrix units
    trains faster); fp16 needs a GPU."""
    if not device.startswith("cuda"):
        if requested == "fp16":
            raise ParamError(f"mixed_precision=fp16 runs on GPUs only (device {device!r}); use"
                             " bf16 or no")
        return "bf16" if requested == "bf16" else "no"
    if requested != "auto":
        return requested
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "no"


def make_accelerator(device: str, mixed_precision: str) -> Any:
    """An :class:`accelerate.Accelerator` for ``device`` with the resolved precision."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParamError(f"device {device!r} was requested but torch sees no GPU; use --device"
                         " cpu")
    precision = resolve_precision(mixed_precision, device)
    kwargs = {"cpu": not device.startswith("cuda"), "mixed_precision": precision}
    try:
        return Accelerator(**kwargs)
    except ValueError:  # the process-wide state was set up differently by an earlier cell
        AcceleratorState._reset_state(reset_partial_state=False)
        return Accelerator(**kwargs)
