"""The software and hardware a result was produced with, stored beside every result."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

GIT_TIMEOUT = 3.0  # seconds per git call; a slower or hanging git means "no revision"

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
    """Python, platform, device and package versions, plus ``git`` (see
    :func:`git_revision`) when transferlab runs from a git checkout."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "packages": package_versions(),
    }
    revision = git_revision()
    if revision is not None:
        env["git"] = revision
    return env


def git_revision(path: str | Path | None = None) -> dict[str, Any] | None:
    """The revision of the git checkout that holds ``path`` (default: the imported
    ``transferlab`` package): ``{"commit": "<short hash>", "dirty": bool}``, ``dirty`` when
    tracked files have uncommitted changes (untracked files do not count).

    ``None``, never an error, when git is not installed, ``path`` is in no checkout (an
    installed wheel) or is not tracked by the one found above it, or git fails or takes longer
    than :data:`GIT_TIMEOUT`. A few short ``git`` calls, made once per process for the
    default path (every result of a process shares it) and at each call for another path."""
    found = _own_revision() if path is None else _git_revision(Path(path).resolve())
    return None if found is None else dict(found)


@functools.cache
def _own_revision() -> dict[str, Any] | None:
    import transferlab

    return _git_revision(Path(transferlab.__file__).resolve().parent)


def _git_revision(path: Path) -> dict[str, Any] | None:
    root = next((p for p in (path, *path.parents) if (p / ".git").exists()), None)
    if root is None:
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True,
                text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError):  # no git, or it hung
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if not git("ls-files", "--", str(path)):  # not tracked: a checkout that merely encloses it
        return None
    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    if not commit or status is None:
        return None
    return {"commit": commit, "dirty": bool(status)}


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
