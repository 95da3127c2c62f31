"""Objectives by setting, from the ``register_objectives`` hook (cross-entropy by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transferlab.api import Objective
from transferlab.errors import RegistrationError
from transferlab.settings import Setting, parse_setting

__all__ = ["build_objective"]


def build_objective(setting: str | Mapping[str, Any] | Setting,
                    registries: Any = None) -> Objective:
    """Create the objective a setting names (``cross-entropy[label_smoothing=0.1]``) from
    ``registries`` (the run's: ``ctx.registries``; the process's plugins when None)."""
    if registries is None:
        from transferlab.plugins import get_registries

        registries = get_registries()
    parsed = parse_setting(setting, "objective")
    objective = registries.objectives.create(parsed.name, parsed.params)
    if not isinstance(objective, Objective):
        raise RegistrationError(f"objective {parsed.name!r} built a {type(objective).__name__},"
                                " not a transferlab.api.Objective; fix the plugin's factory")
    return objective
