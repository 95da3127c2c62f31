"""Docs that embed real output must match it (regenerate, never hand-type)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("generate_cli", DOCS / "generate_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "cli.md").read_text() == module.render(), (
        "docs/cli.md is stale: run `python docs/generate_cli.py`"
    )


def test_every_builtin_plugin_is_in_the_docs():
    text = (DOCS / "concepts.md").read_text() + (DOCS / "dependencies.md").read_text()
    for plugin in sorted((DOCS.parent / "plugins").glob("transferlab_*")):
        assert plugin.name in text, f"{plugin.name} is not described in docs/"
