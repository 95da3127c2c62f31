"""Frozen-feature extraction shared by every feature method, seed and process.

Features are keyed on (backbone fingerprint, task fingerprint, split): the backbone fingerprint
hashes weights and preprocessing, the task fingerprint hashes the data, so a change to any of
them is a different key and a stale entry can never be read. Two levels:

- **memory**: a dict in this process (every method and seed of a suite run share it);
- **disk**: ``<cache dir>/<key>.npy`` plus ``<key>.json`` (shape, dtype, CRC-32 and what the
  entry is), read back memory-mapped. Both files are written to a temporary name and moved
  into place with ``os.replace``; the ``.json`` goes last and marks the entry complete, so a
  concurrent reader sees either nothing or a whole entry. An entry that fails to load or whose
  checksum or shape disagrees is reported, deleted and recomputed, never fatal.

Sparse features (``raw:tfidf``) stay in memory only: transforming is as cheap as reading an
``.npz`` back, and the vectoriser must be fitted in every process anyway.

The cache folder is ``TRANSFERLAB_CACHE`` or ``~/.cache/transferlab/features``;
``TRANSFERLAB_CACHE=off`` disables the disk level.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

__all__ = [
    "CACHE_ENV", "CACHE_FORMAT", "CacheEntry", "DiskFeatureCache", "FeatureStore",
    "default_cache_dir", "feature_key", "precision_fingerprint",
]

if TYPE_CHECKING:
    from transferlab.api import Backbone, RunContext, Task

CACHE_ENV = "TRANSFERLAB_CACHE"
CACHE_FORMAT = "transferlab-features-v1"
_OFF = {"off", "0", "none", "false", "no"}
_CRC_CHUNK = 1 << 24

logger = logging.getLogger("transferlab.features")


def default_cache_dir() -> Path | None:
    """The disk cache folder from ``TRANSFERLAB_CACHE`` (None when set to ``off``)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    return Path.home() / ".cache" / "transferlab" / "features"


def feature_key(backbone_fingerprint: str, task_fingerprint: str, split: str) -> str:
    """The file-name-safe cache key of one split's features."""
    blob = json.dumps([CACHE_FORMAT, backbone_fingerprint, task_fingerprint, split])
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes, streamed so a memory-mapped file is read once."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.size, _CRC_CHUNK):
        crc = zlib.crc32(flat[start : start + _CRC_CHUNK], crc)
    return crc


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(handle)`` on a temporary file next to ``path``, then rename it over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class CacheEntry:
    """One stored split: its key, what it holds, and its size on disk."""

    key: str
    backbone: str
    task: str
    split: str
    shape: tuple[int, ...]
    bytes: int
    created: str


class DiskFeatureCache:
    """Dense feature arrays on disk, one ``.npy`` + ``.json`` pair per key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def load(self, key: str) -> np.ndarray | None:
        """The memory-mapped array for ``key``; None when absent or corrupt (then deleted)."""
        data_path, meta_path = self._paths(key)
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            array = np.load(data_path, mmap_mode="r", allow_pickle=False)
            problem = None
            if meta.get("format") != CACHE_FORMAT:
                problem = f"format {meta.get('format')!r}"
            elif list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
                problem = f"shape {array.shape} {array.dtype}, expected {meta['shape']}"
            elif _crc32(array) != meta["crc32"]:
                problem = "checksum mismatch"
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return array
        logger.warning("feature cache entry %s is corrupt (%s); recomputing it", key, problem)
        self.remove(key)
        return None

    def save(self, key: str, array: np.ndarray, describe: dict[str, str]) -> None:
        """Store ``array`` atomically; a failure to write only logs (the cache is optional)."""
        data_path, meta_path = self._paths(key)
        array = np.ascontiguousarray(array)
        meta = {
            "format": CACHE_FORMAT, "shape": list(array.shape), "dtype": str(array.dtype),
            "crc32": _crc32(array), "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **describe,
        }
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _atomic_write(data_path, lambda h: np.save(h, array, allow_pickle=False))
            _atomic_write(meta_path, lambda h: h.write(json.dumps(meta, indent=1).encode()))
        except OSError as exc:
            logger.warning("could not write feature cache entry to %s (%s)", self.root, exc)

    def remove(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def entries(self) -> list[CacheEntry]:
        """Complete entries (those with readable metadata), oldest first."""
        found = []
        for meta_path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            data_path = meta_path.with_suffix(".npy")
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                size = data_path.stat().st_size + meta_path.stat().st_size
                found.append(CacheEntry(
                    meta_path.stem, meta.get("backbone", "?"), meta.get("task", "?"),
                    meta.get("split", "?"), tuple(meta.get("shape", ())), size,
                    meta.get("created", ""),
                ))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda e: e.created)

    def clear(self) -> int:
        """Delete every entry and leftover temporary file; return the number of files removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.iterdir():
            if path.is_file() and (path.suffix in {".npy", ".json"} or path.name.endswith(".tmp")):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def precision_fingerprint(backbone: Backbone, device: str) -> str:
    """The backbone's fingerprint with its precision when that is not fp32 (bf16 features
    differ from fp32 ones; fp32 keys stay those cached before precision was a setting)."""
    from transferlab.precision import effective

    precision = "fp32" if backbone.module is None else effective(backbone, device)
    return backbone.fingerprint if precision == "fp32" else f"{backbone.fingerprint}+{precision}"


class FeatureStore:
    """Features of (backbone, task, split), computed once and shared.

    ``cache_dir`` defaults to :func:`default_cache_dir`; pass ``None`` for memory only, and
    ``memory=False`` as well for no caching at all (every call extracts again).
    """

    _DEFAULT: Any = object()

    def __init__(self, cache_dir: str | Path | None = _DEFAULT, *, memory: bool = True) -> None:
        if cache_dir is FeatureStore._DEFAULT:
            cache_dir = default_cache_dir()
        self.disk = DiskFeatureCache(cache_dir) if cache_dir is not None else None
        self.memory = memory
        self._memory: dict[tuple[str, str, str], Any] = {}
        self.hits = 0  # served from this process's memory
        self.disk_hits = 0  # read back from the disk cache
        self.misses = 0  # extracted by running the backbone

    def get(self, backbone: Backbone, task: Task, split: str, ctx: RunContext) -> Any:
        """Features of ``task``'s ``split`` (dense float32 ``[N, D]`` or scipy sparse)."""
        ids = (precision_fingerprint(backbone, ctx.device), task.fingerprint(), split)
        if ids in self._memory:
            self.hits += 1
            return self._memory[ids]
        key = feature_key(*ids)
        feats = self.disk.load(key) if self.disk is not None else None
        if feats is not None:
            self.disk_hits += 1
        else:
            self.misses += 1
            feats = self._extract(backbone, task, split, ctx)
            if self.disk is not None and not hasattr(feats, "tocsr"):
                self.disk.save(key, feats, {"backbone": backbone.name, "task": task.name,
                                            "split": split, "backbone_fingerprint": ids[0],
                                            "task_fingerprint": ids[1]})
        if self.memory:
            self._memory[ids] = feats
        return feats

    @staticmethod
    def _extract(backbone: Backbone, task: Task, split: str, ctx: RunContext) -> Any:
        from transferlab.api import extract_features

        return extract_features(backbone, task, split, ctx)
