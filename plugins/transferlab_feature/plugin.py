"""Registers the feature-transfer methods (scikit-learn and torch imports happen at fit time)."""

from __future__ import annotations

from transferlab.hookspecs import hookimpl
from transferlab.registry import RegisterCallback


@hookimpl
def register_methods(register: RegisterCallback) -> None:
    from transferlab_feature.adapter import Adapter
    from transferlab_feature.coral import Coral
    from transferlab_feature.knn import Knn
    from transferlab_feature.linear_probe import LinearProbe
    from transferlab_feature.ncm import NearestClassMean

    for method in (LinearProbe, Knn, NearestClassMean, Adapter, Coral):
        register(method)  # name, summary, params and family are read from the class
