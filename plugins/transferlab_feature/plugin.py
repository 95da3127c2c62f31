"""Registers the feature-transfer methods (scikit-learn imports happen at fit time)."""

from __future__ import annotations

from typing import Any

from transferlab.hookspecs import hookimpl


@hookimpl
def register_methods(register: Any) -> None:
    from transferlab_feature.linear_probe import LinearProbe

    for method in (LinearProbe,):
        register(method.name, method, summary=method.summary, params=method.params,
                 family=method.family)
