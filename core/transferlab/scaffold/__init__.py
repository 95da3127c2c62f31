"""``transferlab new``: write a pip-installable plugin package with a working example.

The templates are package data (``templates/*.tmpl``, filled with :class:`string.Template`):
a ``pyproject.toml`` registering the module under the ``transferlab`` entry-point group, the
module itself (a working backbone, task, method, objective or score), tests that run the
conformance kit (:mod:`transferlab.testing`), a README and a ``.gitignore``.

Names follow one rule: the component is registered as ``NAME`` (``my-method``), the
distribution and its folder are ``transferlab-NAME``, the module is ``transferlab_NAME`` with
underscores. Nothing is ever overwritten: an existing folder is an error.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

__all__ = ["SCAFFOLD_KINDS", "PluginNames", "ScaffoldError", "create_plugin", "plugin_names",
           "render_plugin"]

#: The kinds ``transferlab new --kind`` writes (the glossary's words, singular).
SCAFFOLD_KINDS = ("method", "backbone", "task", "objective", "score")
PREFIX = "transferlab"
MAX_NAME_LENGTH = 40
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")

# What differs between kinds besides the module template: the registry the component lands
# in, the class-name suffix, extra dependencies, and how the README says to try it.
_KIND_FACTS: dict[str, dict[str, Any]] = {
    "method": {
        "registry": "methods",
        "suffix": "Method",
        "dependencies": "",
        "summary": "a ridge-regression classifier on frozen features",
        "try_it": ("transferlab run -b raw:pixels -B size=8 -B grayscale=true -t digits",
                   "-m {name} -p alpha=0.5"),
        "then": "Compare it with the built-ins: `-m linear-probe`, `-m ncm`.",
    },
    "backbone": {
        "registry": "backbones",
        "suffix": "Backbone",
        "dependencies": ', "torch>=2.4", "pillow>=10"',
        "summary": "random features: grey pixels through a fixed random projection and ReLU",
        "try_it": ("transferlab run -b {name} -B dim=256 -t digits -m linear-probe",),
        "then": "It has torch weights, so parameter methods train it too:"
                " `-m finetune -p max_steps=50`.",
    },
    "task": {
        "registry": "tasks",
        "suffix": "Task",
        "dependencies": "",
        "summary": "a tiny synthetic image task: which way does the bar run?",
        "try_it": ("transferlab run -b raw:pixels -B size=12 -B grayscale=true -t {name}",
                   "-m linear-probe"),
        "then": "Every task takes a view: `-t '{name}[fraction=0.25]'`.",
    },
    "objective": {
        "registry": "objectives",
        "suffix": "Objective",
        "dependencies": ', "torch>=2.4"',
        "summary": "focal loss: cross-entropy that down-weights easy examples",
        "try_it": ("transferlab run -b timm:efficientnet_lite0 -B img_size=64 -t digits",
                   "-m finetune -p max_steps=50 -p 'objective={name}[gamma=2]'"),
        "then": "Parameter methods take it as a setting: `-p objective={name}`.",
    },
    "score": {
        "registry": "scores",
        "suffix": "Score",
        "dependencies": "",
        "summary": "Fisher's criterion: between-class over within-class scatter",
        "try_it": ("transferlab rank -t 'digits[fraction=0.25]' -b 'raw:pixels[size=8]'",
                   "-b 'raw:pixels[size=4]' --score {name}"),
        "then": "Check it against measured accuracies: run `-m linear-probe` on each backbone"
                " and add `--validate` to the rank command (it prints the `transferlab run`"
                " commands it lacks).",
    },
}

_TEMPLATES = "templates"


class ScaffoldError(TransferlabError, ValueError):
    """A plugin name or target folder ``transferlab new`` cannot use."""


@dataclass(frozen=True)
class PluginNames:
    """Every name a new plugin package uses, derived from one component name."""

    name: str
    kind: str

    @property
    def distribution(self) -> str:
        """``transferlab-NAME``: what ``pip install`` and ``transferlab check`` take."""
        return f"{PREFIX}-{self.name}"

    @property
    def folder(self) -> str:
        """The package's folder, named as its distribution."""
        return self.distribution

    @property
    def module(self) -> str:
        """``transferlab_NAME`` with underscores: the one module holding the plugin."""
        return f"{PREFIX}_{self.name.replace('-', '_')}"

    @property
    def entry_point(self) -> str:
        """The entry point's name in the ``transferlab`` group (shown by ``plugins``)."""
        return self.name

    @property
    def registry(self) -> str:
        """The registry (the kind's plural) the component is registered in."""
        return _KIND_FACTS[self.kind]["registry"]

    @property
    def class_name(self) -> str:
        """CamelCase of the name with the kind as suffix (``MyMethod``, ``BarsTask``)."""
        camel = "".join(part.capitalize() for part in self.name.split("-"))
        suffix = _KIND_FACTS[self.kind]["suffix"]
        return camel if camel.endswith(suffix) else camel + suffix

    @property
    def stem(self) -> str:
        """CamelCase of the name without the kind suffix (for helper classes)."""
        return "".join(part.capitalize() for part in self.name.split("-"))


def plugin_names(name: str, kind: str) -> PluginNames:
    """Validate ``name`` and ``kind`` and derive the package's names, or raise
    :class:`ScaffoldError` with a one-line message naming the fix."""
    if kind not in SCAFFOLD_KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; choose one of {', '.join(SCAFFOLD_KINDS)}")
    if name.startswith((f"{PREFIX}-", f"{PREFIX}_")):
        rest = name[len(PREFIX) + 1:]
        raise ScaffoldError(f"plugin name {name!r}: give the component's name without the"
                            f" {PREFIX}- prefix (e.g. {rest!r}); the distribution is named"
                            f" {PREFIX}-NAME for you")
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(f"invalid plugin name {name!r}: use lowercase letters, digits and"
                            " single hyphens, starting with a letter, at most"
                            f" {MAX_NAME_LENGTH} characters (e.g. my-{kind})")
    return PluginNames(name, kind)


def _template(filename: str) -> string.Template:
    text = resources.files(__name__).joinpath(_TEMPLATES, filename).read_text(encoding="utf-8")
    return string.Template(text)


def _min_version() -> str:
    """``transferlab>=MAJOR.MINOR`` of the running version (plain ``transferlab`` when the
    version is unknown, as in a source tree that was never installed)."""
    from transferlab import __version__

    match = re.match(r"(\d+)\.(\d+)", __version__)
    if match is None or __version__.startswith("0.0.0"):
        return PREFIX
    return f"{PREFIX}>={match.group(1)}.{match.group(2)}"


def render_plugin(names: PluginNames) -> dict[str, str]:
    """The package's files, relative path -> text, without writing anything."""
    facts = _KIND_FACTS[names.kind]
    values: dict[str, Any] = {
        "name": names.name,
        "kind": names.kind,
        "registry": names.registry,
        "distribution": names.distribution,
        "module": names.module,
        "entry_point": names.entry_point,
        "class_name": names.class_name,
        "stem": names.stem,
        "summary": facts["summary"],
        "requirement": _min_version(),
        "dependencies": facts["dependencies"],
        "try_it_doc": "\n        ".join(facts["try_it"]).format(name=names.name),
        "try_it_md": " \\\n    ".join(facts["try_it"]).format(name=names.name),
        "then": facts["then"].format(name=names.name),
    }
    return {
        "pyproject.toml": _template("pyproject.toml.tmpl").substitute(values),
        "README.md": _template("README.md.tmpl").substitute(values),
        ".gitignore": _template("gitignore.tmpl").substitute(values),
        f"{names.module}.py": _template(f"{names.kind}.py.tmpl").substitute(values),
        f"tests/test_{names.module}.py": _template("test_plugin.py.tmpl").substitute(values),
    }


def _check_free(names: PluginNames, registries: Any) -> None:
    """A name a built-in already registers would lose the conflict: refuse it up front. So
    would an entry-point name an installed plugin already has (``text``, ``timm``, ...): the
    plugin manager refuses the second plugin of one name, whichever loads second."""
    from importlib import metadata

    from transferlab.plugins import ENTRY_POINT_GROUP

    taken = next((ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
                  if ep.name == names.entry_point), None)
    if taken is not None:
        dist = getattr(taken, "dist", None)
        owner = f"distribution {dist.metadata['Name']}" if dist is not None else taken.value
        raise ScaffoldError(f"plugin name {names.entry_point!r} is already an installed"
                            f" plugin's entry point ({owner}); two plugins of one name cannot"
                            " both load, pick another name")
    registry = registries.of(names.registry)
    if names.name in registry:
        entry = registry.get(names.name)
        owner = "a built-in" if entry.is_builtin else entry.distribution or "another plugin"
        raise ScaffoldError(f"{names.kind} {names.name!r} is already registered ({owner},"
                            f" plugin {entry.plugin!r}); pick another name")


def create_plugin(name: str, kind: str, parent: str | Path = ".", *,
                  registries: Any = None) -> Path:
    """Write the plugin package for ``name`` into ``parent/transferlab-NAME`` and return
    that folder. ``registries`` (the process's plugins when None) are checked for the name;
    an existing folder, or a name already registered for that kind, is a
    :class:`ScaffoldError` and nothing is written."""
    names = plugin_names(name, kind)
    if registries is None:
        from transferlab.plugins import get_registries

        registries = get_registries()
    _check_free(names, registries)
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise ScaffoldError(f"--dir {parent} is a file, not a folder")
    target = parent / names.folder
    if target.exists() or target.is_symlink():
        raise ScaffoldError(f"{target} already exists; nothing was written (choose another"
                            " NAME or --dir)")
    files = render_plugin(names)  # render everything before writing anything
    parent.mkdir(parents=True, exist_ok=True)
    try:
        target.mkdir()
    except FileExistsError:
        raise ScaffoldError(f"{target} already exists; nothing was written") from None
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite
            handle.write(text)
    return target
