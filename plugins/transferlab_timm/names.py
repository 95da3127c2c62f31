"""timm's architecture names without importing timm (which takes seconds: it imports
torchvision and torch's compiler), so validating ``timm:ARCH`` before work is instant.

The list is read from timm once per installed timm version and kept in
``$XDG_CACHE_HOME/transferlab/timm-models-VERSION.txt`` (default ``~/.cache``): a pure
function of the version, shared by every process. A cache that cannot be written only costs
the import.
"""

from __future__ import annotations

import contextlib
import functools
import os
from importlib import metadata
from pathlib import Path

from transferlab.errors import UnknownNameError

__all__ = ["architectures", "check_arch", "parse_name"]


def parse_name(name: str) -> tuple[str, str | None]:
    """``timm:arch@tag`` -> (arch, tag)."""
    body = name.split(":", 1)[1] if ":" in name else name
    arch, _, tag = body.partition("@")
    return arch, (tag or None)


def _cache_file(version: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "transferlab" / f"timm-models-{version}.txt"


def architectures() -> list[str]:
    """Every architecture name ``timm.list_models()`` gives, from the cache when it has them
    (read once per process: a suite validates many cells)."""
    return list(_architectures())


@functools.cache
def _architectures() -> tuple[str, ...]:
    try:
        version = metadata.version("timm")
    except metadata.PackageNotFoundError:
        version = "unknown"
    path = _cache_file(version)
    with contextlib.suppress(OSError):
        names = path.read_text(encoding="utf-8").split()
        if names:
            return tuple(names)
    import timm

    names = list(timm.list_models())
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text("\n".join(names) + "\n", encoding="utf-8")
        os.replace(partial, path)
    return tuple(names)


def check_arch(arch: str) -> None:
    """Raise :class:`UnknownNameError` with suggestions if timm has no such architecture."""
    names = architectures()
    if arch not in names:
        import difflib

        close = difflib.get_close_matches(arch, names, n=3)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"timm has no architecture {arch!r}.{hint}"
                               " (see `timm.list_models()`)")
