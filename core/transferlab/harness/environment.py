"""The software and hardware a result was produced with, stored beside every result."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

_PACKAGES = (
    "transferlab", "torch", "torchvision", "timm", "transformers", "sentence-transformers",
    "peft", "scikit-learn", "numpy",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment(device: str) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "packages": package_versions(),
    }


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_memory_mb(device: str) -> float:
    """Peak CUDA memory allocated on GPU runs; the process's peak RSS on CPU runs."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
