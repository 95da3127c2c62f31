"""Docs that embed real output must match it (regenerate, never hand-type)."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
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


SUITE_BLOCK = re.compile(r'^```toml title="([^"]+)"\n(.*?)^```$', re.S | re.M)


def test_suite_examples_in_the_docs_parse_and_validate():
    """docs/suites.md documents the suite format with examples that must stay valid."""
    from transferlab.harness.cell import validate_cell
    from transferlab.harness.suite import parse_suite
    from transferlab.plugins import PluginHost

    host = PluginHost(only=["tasks", "timm", "feature", "baselines", "parameter",
                            "objectives"], strict=True)
    host.load_entry_points()
    examples = SUITE_BLOCK.findall((DOCS / "suites.md").read_text())
    assert len(examples) >= 2
    for title, body in examples:
        suite = parse_suite(tomllib.loads(body), default_name=Path(title).stem)
        assert suite.cells, title
        for cell in suite.cells:
            validate_cell(cell, host.registries)
    counts = {title: len(parse_suite(tomllib.loads(body)).cells) for title, body in examples}
    assert counts["example.toml"] == 36  # the number the page states


def test_the_shipped_suites_parse():
    """A suite that splits a real dataset into experiences reads its class names while it is
    parsed, so it is parsed with ../shared/data when that exists and skipped otherwise."""
    from conftest import SHARED_DATA
    from transferlab.harness.suite import load_suite
    from transferlab.plugins import PluginHost, use_host

    host = PluginHost(data_dirs=[SHARED_DATA] if SHARED_DATA.is_dir() else [])
    host.load_entry_points()
    with use_host(host):
        for path in sorted((DOCS.parent / "benchmarks" / "suites").glob("*.toml")):
            if "split =" in path.read_text() and not SHARED_DATA.is_dir():
                continue  # needs the real dataset's class names
            assert load_suite(path).cells, path


def test_catalogue_lists_every_builtin_component():
    """docs/gen_catalogue.py (an MkDocs hook) writes the catalogue page at build time."""
    spec = importlib.util.spec_from_file_location("gen_catalogue", DOCS / "gen_catalogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = module.render()
    for name in ("raw:pixels", "timm:*", "digits", "linear-probe", "finetune", "cross-entropy",
                 "local", "process"):
        assert f"### `{name}`" in page, name
    assert "| `parameter` |" in page and "[`finetune`](#finetune)" in page


def test_the_plugin_in_one_file_of_writing_a_plugin_passes_the_kit(tmp_path, monkeypatch):
    """Bug caught: the `majority` example set no parameter counts, so it failed the kit's
    `parameter-counts` check and the harness refused its results; the page says it passes."""
    from transferlab.testing import run_checks

    page = (DOCS / "writing-a-plugin.md").read_text()
    example = next(body for body in re.findall(r"^```python\n(.*?)^```$", page, re.S | re.M)
                   if "class Majority(" in body)
    path = tmp_path / "transferlab_majority.py"
    path.write_text(example)
    monkeypatch.delitem(sys.modules, "transferlab_majority", raising=False)
    report = run_checks(str(path))
    assert report.ok, report.render()
    assert "method[majority]::parameter-counts" in {r.id for r in report.passed}
