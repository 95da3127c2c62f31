"""Checks of run-wide inputs (seeds, devices) shared by the command line and the harness.

Both fail with one line naming the problem and the fix, before any work starts. Importing
this module is cheap: torch is imported only to check a device other than ``cpu``.
"""

from __future__ import annotations

import numbers
from typing import Any

from transferlab.errors import IncompatibleError, ParamError

SEED_MAX = 2**32 - 1  # numpy's seed range (and what scikit-learn's random_state accepts)
SEED_RANGE = f"an integer from 0 to {SEED_MAX} (2**32 - 1)"
DEVICE_FORMS = "cpu, cuda, cuda:N or mps"


def check_seed(seed: Any, name: str = "seed", example: str = "0") -> int:
    """Return ``seed`` if it is an integer in ``0..2**32-1``, else raise :class:`ParamError`
    naming it as ``name`` and suggesting ``example``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ParamError(f"{name} must be {SEED_RANGE}, got {seed!r}; use e.g. {example}")
    if not 0 <= seed <= SEED_MAX:
        raise ParamError(f"{name} {seed} is out of range: a seed must be {SEED_RANGE};"
                         f" use e.g. {example}")
    return seed


def check_device(device: str, *, other_torch_devices: bool = False) -> str:
    """Return ``device`` if it is ``cpu``, or ``cuda``, ``cuda:N`` or ``mps`` and torch can use
    it here; otherwise raise a one-line error. ``other_torch_devices`` also accepts any other
    device string torch parses (``meta``, ``xpu``...; the Python API's callers), unchecked."""
    text = str(device)
    if text == "cpu":
        return device  # no torch import: the command line stays fast
    kind, colon, index = text.partition(":")
    if kind == "cuda" and (not colon or index.isdigit()):
        _check_cuda(text, int(index) if colon else None)
    elif text == "mps":
        _check_mps(text)
    elif other_torch_devices and _torch_parses(text):
        pass
    else:
        raise ParamError(f"device {text!r} is not one of {DEVICE_FORMS}; pass one of those,"
                         " e.g. cpu")
    return device


def _torch(text: str) -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch-less installs
        raise IncompatibleError(f"device {text!r} needs torch, which is not installed; use cpu"
                                ) from None
    return torch


def _check_cuda(text: str, index: int | None) -> None:
    torch = _torch(text)
    if not torch.backends.cuda.is_built():
        raise IncompatibleError(f"device {text!r} is not available: this torch"
                                f" ({torch.__version__}) was built without CUDA; use cpu, or"
                                " install a CUDA build of torch")
    if not torch.cuda.is_available():
        raise IncompatibleError(f"device {text!r} is not available: torch finds no CUDA GPU on"
                                " this machine; use cpu (or leave the device unset: cuda when"
                                " available, else cpu)")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        gpus = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise IncompatibleError(f"device {text!r} is not available: torch finds {count} CUDA"
                                f" GPU{'s' if count != 1 else ''} ({gpus}); use one of those"
                                " or cpu")


def _check_mps(text: str) -> None:
    torch = _torch(text)
    if not torch.backends.mps.is_available():
        raise IncompatibleError(f"device {text!r} is not available: torch finds no Apple"
                                " silicon GPU (MPS) on this machine; use cpu")


def _torch_parses(text: str) -> bool:
    try:
        import torch

        torch.device(text)
    except (ImportError, RuntimeError):
        return False
    return True
