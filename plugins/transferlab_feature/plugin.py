"""Registers the feature-transfer methods (scikit-learn and torch imports happen at fit time)."""

from __future__ import annotations

from typing import Any

from transferlab.hookspecs import hookimpl


@hookimpl
def register_methods(register: Any) -> None:
    from transferlab_feature.adapter import Adapter
    from transferlab_feature.coral import Coral
    from transferlab_feature.knn import Knn
    from transferlab_feature.linear_probe import LinearProbe
    from transferlab_feature.ncm import NearestClassMean

    for method in (LinearProbe, Knn, NearestClassMean, Adapter, Coral):
        register(method.name, method, summary=method.summary, params=method.params,
                 family=method.family)
