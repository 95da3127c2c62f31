"""Is the Hugging Face Hub usable right now? Answered before any library touches the network.

Hugging Face loaders retry an unreachable hub for over a minute before failing with a
multi-line message; the model families call these checks first so an offline user gets one
line at once, while online users keep the libraries' own hub loading unchanged.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


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


def usable(repo_id: str, filename: str = "config.json") -> bool:
    """True when ``repo_id`` is cached locally, or the hub is reachable and allowed."""
    return in_cache(repo_id, filename) or (not offline_requested() and hub_reachable())
