"""Calling transformers' ``from_pretrained`` with failures turned into one-line errors."""

from __future__ import annotations

from typing import Any

from transferlab.errors import CheckpointError


def load_or_explain(loader: Any, location: str, name: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(location, **kwargs)``, or a :class:`CheckpointError` naming
    the backbone, the location and the library's first line of explanation."""
    try:
        return loader.from_pretrained(location, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CheckpointError(f"{name}: {loader.__name__} could not load {location} ({first});"
                              " check that it is a transformers model directory or hub id"
                              ) from None
