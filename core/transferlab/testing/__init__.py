"""The conformance kit: checks that a plugin keeps the contracts of ``transferlab.api``.

In the manner of scikit-learn's ``check_estimator`` / ``parametrize_with_checks``: every
backbone, task, method, objective and score a plugin registers gets the checks of its
contract, on tiny offline inputs (:class:`TinyTask`, :class:`TinyBackbone`, small synthetic
features for scores), chosen by what it declares (a method's ``family``,
``saves_predictor``, ``adapts_domains``, ``needs_source_head``, ``modalities``; a backbone's
``module`` and ``layer_groups()``; a score's ``needs_source_probabilities``), never by its
name. Each check has a readable id, ``KIND[NAME]::CHECK``, and fails with one line that
names the problem and the fix.

In a plugin's tests::

    from transferlab.testing import parametrize_with_checks

    @parametrize_with_checks("my_plugin", expected_failures={
        "method[my-method]::determinism": "uses a CUDA kernel without a deterministic mode",
    })
    def test_conformance(check):
        check()

From Python, ``run_checks("my_plugin").render()``; from a shell, ``transferlab check
my_plugin`` (module or installed distribution name). The ``transferlab_plugins`` pytest
fixture (:mod:`transferlab.testing.fixtures`) tests a plugin's registrations and commands in
isolation.

Importing this package is cheap (no torch): names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and documentation tools; at run time names load lazily
    from transferlab.testing._checks import (
        CHECK_KINDS,
        Check,
        CheckResult,
        ConformanceError,
        NotApplicable,
    )
    from transferlab.testing._runner import (
        CheckReport,
        checks_for,
        parametrize_with_checks,
        run_checks,
    )
    from transferlab.testing._tiny import TinyBackbone, TinyTask
    from transferlab.testing.fixtures import PluginSandbox

__all__ = [
    "CHECK_KINDS", "Check", "CheckReport", "CheckResult", "ConformanceError", "NotApplicable",
    "PluginSandbox", "TinyBackbone", "TinyTask", "checks_for", "parametrize_with_checks",
    "run_checks",
]

_LAZY = {
    "CHECK_KINDS": "transferlab.testing._checks",
    "Check": "transferlab.testing._checks",
    "CheckResult": "transferlab.testing._checks",
    "ConformanceError": "transferlab.testing._checks",
    "NotApplicable": "transferlab.testing._checks",
    "CheckReport": "transferlab.testing._runner",
    "checks_for": "transferlab.testing._runner",
    "parametrize_with_checks": "transferlab.testing._runner",
    "run_checks": "transferlab.testing._runner",
    "PluginSandbox": "transferlab.testing.fixtures",
    "TinyBackbone": "transferlab.testing._tiny",
    "TinyTask": "transferlab.testing._tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlab.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
