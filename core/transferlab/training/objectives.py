"""Objectives by name, from the ``register_objectives`` hook (cross-entropy by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transferlab.api import Objective
from transferlab.errors import RegistrationError
from transferlab.params import parse_assignments


def parse_objective_params(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """``"label_smoothing=0.1,other=2"`` (or a mapping) -> a dict of raw values."""
    if isinstance(text, Mapping):
        return dict(text)
    return parse_assignments(p for p in text.split(",") if p.strip())


def build_objective(name: str, params: str | Mapping[str, Any] = "",
                    registries: Any = None) -> Objective:
    """Create the objective registered as ``name`` with ``params`` (validated)."""
    if registries is None:
        from transferlab.plugins import get_registries

        registries = get_registries()
    objective = registries.objectives.create(name, parse_objective_params(params))
    if not isinstance(objective, Objective):
        raise RegistrationError(f"objective {name!r} built a {type(objective).__name__}, not a"
                                " transferlab.api.Objective; fix the plugin's factory")
    return objective
