"""Deliberately broken: ``register_methods`` takes an argument its hook spec does not have.

pluggy refuses the plugin when it is registered; the conformance kit's ``plugin[...]::loads``
check must fail naming the spec's arguments, ``register_methods(register)``.
"""

from __future__ import annotations

from typing import Any

from transferlab import hookimpl


@hookimpl
def register_methods(register: Any, registry: Any) -> None:  # `registry` is not in the spec
    pass
