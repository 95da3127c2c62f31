"""Generate the built-in catalogue page (catalogue.md) from the live registries.

An MkDocs hook (``hooks:`` in mkdocs.yml): the page is generated at build time, so it always
matches the code:
every backbone, task, method, objective and executor the ``transferlab`` distribution itself
registers, with its summary, metadata and declared parameters. Third-party plugins installed
in the same environment are left out, so the page does not depend on the machine.

    python docs/gen_catalogue.py     # print the page (what the build writes)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transferlab.plugins import PluginHost
from transferlab.registry import BUILTIN_DISTRIBUTION, KINDS, Entry

PAGE = "catalogue.md"
ENV = ("TRANSFERLAB_PLUGINS", "TRANSFERLAB_DISABLE", "TRANSFERLAB_PREFER", "TRANSFERLAB_DATA",
       "TRANSFERLAB_STRICT", "TRANSFERLAB_TRACE")
INTRO = {
    "backbones": "Pretrained (or deliberately untrained) mappings from inputs to `[N, D]`"
    " features. A name ending in `*` is a pattern: it serves every name it matches, and"
    " `@random` / `@PATH` tags choose the weights. Set parameters with `-B key=value`.",
    "tasks": "Datasets with splits and labels. Besides these, every suitable subfolder of"
    " `--data-dir DIR` (or `TRANSFERLAB_DATA`) is a task, and any task takes a view"
    " (`digits[fraction=0.25]`, see the [glossary](concepts.md#task-views)).",
    "methods": "Transfer methods, grouped by `family` in the tables below. Set parameters"
    " with `-p key=value` or in a suite's `params` table.",
    "objectives": "Losses for the shared training loop, chosen with"
    " `-p 'objective=NAME[key=value]'` on any gradient method.",
    "executors": "How `transferlab bench --executor NAME` runs a suite's cells.",
    "scores": "Transferability scores that `transferlab rank` computes on a task's training"
    " features to predict, before training, which backbone transfers best (see"
    " [Transferability scores](scores.md)).",
}


@contextmanager
def _clean_environment() -> Iterator[None]:
    """The user's plugin filters and data folders must not change the page."""
    saved = {name: os.environ.pop(name) for name in ENV if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _cell(value: Any) -> str:
    text = "" if value is None else repr(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _entry(entry: Entry[Any]) -> list[str]:
    lines = [f"### `{entry.name}`", "", entry.summary or "(no summary)", ""]
    info = {k: v for k, v in entry.describe().items()
            if k not in {"name", "plugin", "distribution", "summary", "params"}}
    facts = [f"plugin `{entry.plugin}`"] + [f"{k} `{_cell(v)}`" for k, v in sorted(info.items())]
    lines += ["; ".join(facts), ""]
    if entry.params:
        lines += ["| parameter | type | default | allowed | meaning |",
                  "|---|---|---|---|---|"]
        for param in entry.params:
            default = "" if param.default is None else f"`{param.default!r}`"
            lines.append(f"| `{param.name}` | {param.type.__name__} | {default} |"
                         f" {_cell(param.constraint_text())} | {_cell(param.help)} |")
        lines.append("")
    return lines


def render() -> str:
    """The catalogue page as Markdown."""
    with _clean_environment():
        host = PluginHost(strict=True)
        host.load_entry_points()
        registries = host.registries
    parts = [
        "# Built-in catalogue",
        "",
        "Generated from the registries when the site is built (`docs/gen_catalogue.py`): every"
        " component the `transferlab` distribution registers through its own plugins, with"
        " its declared parameters. `transferlab list KIND` prints the same for whatever is"
        " installed, third-party plugins included.",
        "",
    ]
    for kind in ("backbones", "tasks", "methods", "objectives", "executors", "scores"):
        assert kind in KINDS
        entries = [e for e in registries.of(kind) if e.distribution == BUILTIN_DISTRIBUTION]
        parts += [f"## {kind.capitalize()}", "", INTRO[kind], ""]
        if kind == "methods":
            parts += ["| family | methods |", "|---|---|"]
            for family in sorted({str(e.info.get("family", "")) for e in entries}):
                names = ", ".join(f"[`{e.name}`](#{_anchor(e.name)})" for e in entries
                                  if e.info.get("family") == family)
                parts.append(f"| `{family}` | {names} |")
            parts.append("")
        for entry in entries:
            parts += _entry(entry)
    return "\n".join(parts).rstrip() + "\n"


def _anchor(name: str) -> str:
    """The id Python-Markdown's toc gives a heading made of ``name`` in backticks."""
    slug = re.sub(r"[^\w\s-]", "", name).strip().lower()
    return re.sub(r"[-\s]+", "-", slug)


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":  # by hand
    print(render(), end="")
