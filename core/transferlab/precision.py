"""Numeric precision of a backbone: ``-B precision=auto|fp32|bf16|fp16``.

``auto`` (the default) becomes a concrete precision when a cell is validated, from what runs
where (never from a timing taken at run time, which would depend on the load of the moment):

- **inference** (feature extraction, predictions): bf16 autocast on CPUs with bf16 matrix
  units (AMX or AVX-512 BF16, read from ``/proc/cpuinfo``) and on GPUs that support bf16; fp32
  elsewhere. Measured on this project's 2-core AMX machine: EfficientNet-Lite0 1.8-1.9x,
  all-MiniLM-L6-v2 1.95x (``python benchmarks/precision.py``).
- **training** follows :data:`TRAINING_BF16`, backbones whose bf16 training step measured
  faster than fp32 on such a CPU; everything else trains in fp32 on CPUs (a depthwise-conv
  net's training step measured 0.77x in bf16: slower). On GPUs ``auto`` trains in bf16 where
  supported.

The concrete precision is part of the cell's key (``fp32`` leaves the key as it was before
precision existed, so stored fp32 results keep their keys), the feature cache's key and the
stored result, so workers on different hardware never store different precisions under one
key.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from transferlab.errors import ParamError
from transferlab.params import Param

__all__ = [
    "PRECISIONS",
    "PRECISION_PARAM",
    "TRAINING_BF16",
    "autocast",
    "concrete_inference_params",
    "cpu_has_bf16_units",
    "effective",
    "keyed_backbone_params",
    "likely_device",
    "resolve_precision",
    "training_autocast",
    "trains_in_bf16",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

PRECISION_PARAM = Param(
    "precision", str, "auto", "numeric precision of the backbone's forward passes: auto ="
    " bf16 for inference on CPUs with bf16 matrix units and GPUs that support it, and for"
    " training where measured faster (see docs/precision.md); else fp32. fp16: GPUs only",
    choices=PRECISIONS)

# Backbones (fnmatch patterns of their names) whose bf16 training step measured faster than
# fp32 on a CPU with AMX: all-MiniLM-L6-v2 1.27x (batch 32). Conv nets are absent on purpose
# (EfficientNet-Lite0: 0.77x, slower). ``python benchmarks/precision.py`` re-measures both.
TRAINING_BF16: tuple[str, ...] = ("sbert:all-MiniLM-L6-v2", "sbert:all-MiniLM-L6-v2@*")

_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}


@functools.cache
def cpu_has_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bf16 matrix units (AMX-BF16 or AVX-512 BF16), from the kernel's
    CPU flags; False where they cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.partition(":")[2].split()))
    return False


def _cuda_bf16() -> bool:
    """Whether torch sees a GPU that computes in bf16 (compute capability 8.0 and up)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def trains_in_bf16(backbone: str) -> bool:
    """Whether ``backbone`` is in :data:`TRAINING_BF16`."""
    return any(fnmatch.fnmatchcase(backbone, pattern) for pattern in TRAINING_BF16)


def resolve_precision(requested: str, *, backbone: str, device: str, training: bool) -> str:
    """The concrete precision (``fp32``, ``bf16`` or ``fp16``) ``requested`` means for
    ``backbone`` on ``device``, for a cell that trains weights (``training``) or not."""
    if requested not in PRECISIONS:
        raise ParamError(f"backbone {backbone!r}: precision={requested!r} is not one of"
                         f" {', '.join(PRECISIONS)}; e.g. -B precision=auto")
    gpu = device.startswith("cuda")
    if requested == "fp16" and not gpu:
        raise ParamError(f"backbone {backbone!r}: precision=fp16 runs on GPUs only (device"
                         f" {device!r}); use -B precision=bf16 or fp32 on a CPU")
    if requested != "auto":
        return requested
    if gpu:
        return "bf16" if _cuda_bf16() else "fp32"
    if device != "cpu" or not cpu_has_bf16_units():
        return "fp32"
    if training and not trains_in_bf16(backbone):
        return "fp32"
    return "bf16"


def keyed_backbone_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Backbone parameters as cell keys and stored rows spell them: ``precision=fp32`` is
    left out, so every result stored before precision was a setting (all fp32) keeps its
    key."""
    return {k: v for k, v in params.items() if not (k == "precision" and v == "fp32")}


def concrete_inference_params(backbone: str, params: Mapping[str, Any],
                              device: str | None = None) -> dict[str, Any]:
    """``params`` with ``precision=auto`` resolved for inference on ``device`` (default: the
    likely one) and spelled as keys spell it (:func:`keyed_backbone_params`): how rankings,
    which only extract features, name a backbone."""
    params = dict(params)
    if params.get("precision") == "auto":
        params["precision"] = resolve_precision("auto", backbone=backbone, training=False,
                                                device=device or likely_device())
    return keyed_backbone_params(params)


def likely_device() -> str:
    """``cuda`` when torch would see a GPU, else ``cpu``, without importing torch on a machine
    with no NVIDIA driver (validation stays fast)."""
    if "torch" not in sys.modules and not (os.path.exists("/proc/driver/nvidia/version")
                                           or os.path.exists("/dev/nvidia0")):
        return "cpu"
    from transferlab.harness.environment import default_device

    return default_device()


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[Any]:
    """torch autocast to ``precision`` on ``device``'s type; nothing for fp32 (or ``auto``
    left unresolved on a backbone built outside the harness: see :func:`effective`)."""
    if precision not in ("bf16", "fp16"):
        yield None
        return
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.split(":")[0], dtype=dtype) as ctx:
        yield ctx


def training_autocast(precision: str) -> str:
    """The training loop's ``mixed_precision`` (Accelerate's words) for a backbone
    precision: ``no`` for fp32, else the same name."""
    return "no" if precision == "fp32" else precision


def effective(backbone: Any, device: str, *, training: bool = False) -> str:
    """A built backbone's concrete precision: its ``precision`` attribute, with ``auto`` (a
    backbone built outside a validated cell) resolved for ``device`` now."""
    precision = getattr(backbone, "precision", "fp32")
    if precision != "auto":
        return precision
    return resolve_precision("auto", backbone=str(getattr(backbone, "name", "?")),
                             device=device, training=training)
