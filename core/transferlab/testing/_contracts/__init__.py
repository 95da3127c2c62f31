"""The checks per contract, and which of them apply to which component.

Which checks a component gets depends on what it *declares*, never on its name:

==========  ==================================  ==========================================
kind        check                               applies when
==========  ==================================  ==========================================
plugin      ``loads``, ``unique-names``         always
backbone    ``feature-shape``,                  always
            ``fingerprint-stable``
backbone    ``fingerprint-tracks-weights``      it has weights (``module`` is not None)
backbone    ``layer-groups``                    ``layer_groups()`` is not empty
backbone    ``bad-params``                      always (unknown names, declared bounds)
task        ``splits``, ``labels``, ``inputs``, always
            ``fingerprint-stable``
method      ``fit-predict[MODALITY]``           for each modality in ``modalities``
method      ``determinism``,                    always
            ``parameter-counts``, ``bad-params``
method      ``save-load``                       ``saves_predictor = True``
method      ``backbone-untouched``              ``family == "feature"``
method      ``domain-adaptation``               ``adapts_domains = True``
objective   ``finite-loss``,                    always
            ``finite-gradients``, ``bad-params``
score       ``finite-value``, ``determinism``,  always
            ``label-permutation``,
            ``bad-input``,
            ``separable-above-random``,
            ``bad-params``
score       ``missing-probabilities``           ``needs_source_probabilities = True``
==========  ==================================  ==========================================

Methods run on the kit's :class:`~transferlab.testing.TinyTask` and
:class:`~transferlab.testing.TinyBackbone` under a budget of 2 epochs / 4 steps, so the
checks of a method take well under a second on a CPU; one fit per method and modality is
shared by the checks that only read its predictor. A method that declares
``needs_source_head = True`` gets a tiny backbone with a source head (5 source classes).
Scores run on small synthetic features (numpy only; see ``_contracts/scores.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from transferlab.errors import TransferlabError
from transferlab.settings import parse_setting
from transferlab.testing._checks import CHECK_KINDS, Check
from transferlab.testing._contracts.backbones import BackboneChecks
from transferlab.testing._contracts.base import UNKNOWN_PARAM, Component, SuiteBase
from transferlab.testing._contracts.methods import TINY_BUDGET, MethodChecks
from transferlab.testing._contracts.objectives import ObjectiveChecks
from transferlab.testing._contracts.plugins import PluginChecks
from transferlab.testing._contracts.scores import ScoreChecks
from transferlab.testing._contracts.tasks import TaskChecks

__all__ = ["TINY_BUDGET", "UNKNOWN_PARAM", "Component", "Suite", "SuiteBase", "select_kinds"]


class Suite(PluginChecks, BackboneChecks, TaskChecks, MethodChecks, ObjectiveChecks,
            ScoreChecks):
    """The checks of one loaded :class:`~transferlab.testing._target.Target`, with the state
    they share (fits, loaded splits)."""

    # -- selection -------------------------------------------------------------------------
    def components(self, kinds: Sequence[str], names: Sequence[str] | None
                   ) -> tuple[list[Component], list[tuple[str, str]]]:
        """The components to check, and (name, why) of those left out."""
        if names is not None:
            return [c for name in names for c in self._named(name, kinds)], []
        chosen: list[Component] = []
        left_out: list[tuple[str, str]] = []
        for kind in kinds:
            if kind == "plugin":
                continue
            registry = self.registries.of(f"{kind}s")
            for plugin, name in self.target.registered(f"{kind}s"):
                try:
                    entry = registry.get(name)
                except TransferlabError:
                    continue  # a name another plugin won: unique-names reports it
                if entry.plugin != plugin:
                    continue
                if entry.is_pattern:
                    left_out.append((name, f"a name pattern; check a name it serves with"
                                           f" names=[...] / --name (e.g. {_example(name)})"))
                elif entry.info.get("offline") is False:
                    left_out.append((name, "registered as needing the network (offline=False)"))
                else:
                    chosen.append(Component(kind, parse_setting(name), entry))
        return chosen, left_out

    def _named(self, name: str, kinds: Sequence[str]) -> list[Component]:
        setting = parse_setting(name)
        found = []
        for kind in kinds:
            if kind == "plugin":
                continue
            registry = self.registries.of(f"{kind}s")
            try:
                entry = registry.get(setting.name)
            except TransferlabError:
                continue
            if entry.plugin in self.target.plugins:
                found.append(Component(kind, setting, entry))
        if not found:
            raise TransferlabError(
                f"{name!r} is not a {' or '.join(k for k in kinds if k != 'plugin')} registered"
                f" by {self.target.description}; check `transferlab list` for its names"
            )
        return found

    def checks(self, kinds: Sequence[str], names: Sequence[str] | None
               ) -> tuple[list[Check], list[tuple[str, str]]]:
        """Every applicable check of the target, and the components left out (and why)."""
        checks: list[Check] = []
        every = "plugin" in kinds and self.target.import_error is None
        for plugin in self.target.plugins:  # `loads` always: nothing else runs without it
            checks += self._plugin_checks(plugin)[: None if every else 1]
        components, left_out = self.components(kinds, names)
        builders = {"backbone": self._backbone_checks, "task": self._task_checks,
                    "method": self._method_checks, "objective": self._objective_checks,
                    "score": self._score_checks}
        for component in components:
            checks += builders[component.kind](component)
        return checks, left_out


def _example(pattern: str) -> str:
    return pattern.replace("*", "NAME").replace("?", "X")


def select_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    """Normalise ``kinds`` (singular or plural, any case); None means every kind."""
    if kinds is None:
        return CHECK_KINDS
    chosen = []
    for kind in kinds:
        singular = kind.strip().lower().removesuffix("s")
        if singular not in CHECK_KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(CHECK_KINDS)}")
        chosen.append(singular)
    return tuple(k for k in CHECK_KINDS if k in chosen)
