"""Collecting checks for a target, running them into a report, and parametrizing pytest.

``expected_failures`` maps a check id, or a pattern of ids in which ``*`` and ``?`` are the
only wildcards (brackets are literal: ``method[my-*]::save-load``), to the reason the failure
is expected. Under pytest such a check is ``xfail(strict=True)``: if it starts passing, the
test fails until the entry is removed; :func:`run_checks` counts it the same way. An entry that
matches no check is an error, so a misspelled id never hides a failure.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.testing._checks import Check, CheckResult, ConformanceError
from transferlab.testing._contracts import Suite, select_kinds
from transferlab.testing._target import Target, load_target

__all__ = ["CheckReport", "checks_for", "parametrize_with_checks", "run_checks"]

TargetSpec = str | ModuleType
Targets = TargetSpec | Sequence[TargetSpec]


@dataclass
class CheckReport:
    """What :func:`run_checks` found: every check's result, and what was not checked."""

    target: str
    results: list[CheckResult]
    left_out: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def _with(self, *statuses: str) -> list[CheckResult]:
        return [r for r in self.results if r.status in statuses]

    @property
    def passed(self) -> list[CheckResult]:
        return self._with("passed")

    @property
    def failed(self) -> list[CheckResult]:
        """Failures, including expected failures that passed (``xpassed``)."""
        return self._with("failed", "xpassed")

    @property
    def xfailed(self) -> list[CheckResult]:
        return self._with("xfailed")

    @property
    def skipped(self) -> list[CheckResult]:
        return self._with("skipped")

    @property
    def ok(self) -> bool:
        """True when no check failed (expected failures that failed are fine)."""
        return not self.failed

    def summary(self) -> str:
        counts = [f"{len(self.failed)} failed", f"{len(self.passed)} passed"]
        counts += [f"{len(group)} {word}" for group, word in
                   ((self.xfailed, "xfailed"), (self.skipped, "skipped")) if group]
        verdict = "OK" if self.ok else "FAILED"
        return f"{verdict}: {', '.join(counts)} in {self.seconds:.1f}s"

    def render(self) -> str:
        """The report as text: one line per check, messages below failures and skips."""
        labels = {"passed": "PASS", "failed": "FAIL", "xfailed": "XFAIL", "xpassed": "XPASS",
                  "skipped": "SKIP"}
        lines = [f"transferlab check: {self.target}"]
        for result in self.results:
            lines.append(f"  {labels[result.status]:<6}{result.id}")
            if result.status == "xfailed":
                lines.append(f"        expected: {result.check.expected_failure}")
            if result.message and result.status != "xfailed":
                lines.append(f"        {result.message}")
        if self.left_out:
            lines.append("not checked:")
            lines += [f"  {name}: {why}" for name, why in self.left_out]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "ok": self.ok, "seconds": round(self.seconds, 3),
            "results": [{"id": r.id, "status": r.status, "message": r.message,
                         "expected_failure": r.check.expected_failure,
                         "seconds": round(r.seconds, 3)} for r in self.results],
            "not_checked": [{"name": n, "why": w} for n, w in self.left_out],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _targets(target: Targets) -> list[TargetSpec]:
    if isinstance(target, str | ModuleType):
        return [target]
    return list(target)


def _names(names: Iterable[str] | str | None) -> list[str] | None:
    if names is None:
        return None
    return [names] if isinstance(names, str) else list(names)


def _collect(
    target: Targets, kinds: Iterable[str] | None, names: Iterable[str] | str | None,
    expected_failures: Mapping[str, str] | None, data_dirs: Iterable[Path],
) -> tuple[list[Check], list[tuple[str, str]], list[Target]]:
    chosen_kinds = select_kinds(kinds)
    wanted = _names(names)
    checks: list[Check] = []
    left_out: list[tuple[str, str]] = []
    loaded: list[Target] = []
    served: set[str] = set()
    data_dirs = [Path(d) for d in data_dirs]
    for spec in _targets(target):
        suite = Suite(load_target(spec, data_dirs=data_dirs))
        loaded.append(suite.target)
        mine = None
        if wanted is not None:
            mine = [n for n in wanted if _serves(suite, n, chosen_kinds)]
            served.update(mine)
        found, skipped = suite.checks(chosen_kinds, mine)
        checks += found
        left_out += skipped
    if wanted is not None and (missing := [n for n in wanted if n not in served]):
        where = ", ".join(t.description for t in loaded)
        raise TransferlabError(f"{missing[0]!r} is not registered by {where}; check"
                               " `transferlab list` for the names it registers")
    unique: dict[str, Check] = {}
    for check in checks:
        unique.setdefault(check.id, check)
    return _mark_expected(list(unique.values()), expected_failures or {}), left_out, loaded


def _serves(suite: Suite, name: str, kinds: Sequence[str]) -> bool:
    try:
        suite.components(kinds, [name])
    except TransferlabError:
        return False
    return True


def _pattern(key: str) -> re.Pattern[str]:
    """A check-id pattern: ``*`` and ``?`` are wildcards, everything else is literal."""
    wild = {"*": ".*", "?": "."}
    return re.compile("".join(wild.get(ch, re.escape(ch)) for ch in key))


def _mark_expected(checks: list[Check], expected: Mapping[str, str]) -> list[Check]:
    unused = dict(expected)
    marked = []
    for check in checks:
        for key, reason in expected.items():
            if key == check.id or _pattern(key).fullmatch(check.id):
                check = check.expecting_failure(reason)
                unused.pop(key, None)
                break
        marked.append(check)
    if unused:
        raise ValueError(
            f"expected_failures entry {next(iter(unused))!r} matches no check; ids look like"
            " 'method[linear-probe]::determinism' (only * and ? are wildcards)")
    return marked


def checks_for(
    target: Targets, *, kinds: Iterable[str] | None = None,
    names: Iterable[str] | str | None = None,
    expected_failures: Mapping[str, str] | None = None, data_dirs: Iterable[Path] = (),
) -> list[Check]:
    """Every applicable check of ``target``, in a stable order.

    :param target: a module name, an installed distribution name (``transferlab`` = the
        built-in plugins), a module, a path to a ``.py`` file, or a list of these.
    :param kinds: only checks of these kinds (``plugin``, ``backbone``, ``task``, ``method``,
        ``objective``, ``score``); the ``plugin[...]::loads`` check is always included.
    :param names: check only these components instead of every exact name the target
        registers; a name may carry parameter values (``timm:resnet18@random[img_size=32]``)
        and may be one that a registered pattern serves.
    :param expected_failures: ``{check id or pattern: reason}``; see the module docs.
    :param data_dirs: folders passed to ``register_tasks`` (as ``--data-dir``).
    """
    return _collect(target, kinds, names, expected_failures, data_dirs)[0]


def run_checks(
    target: Targets, *, kinds: Iterable[str] | None = None,
    names: Iterable[str] | str | None = None,
    expected_failures: Mapping[str, str] | None = None, data_dirs: Iterable[Path] = (),
    on_result: Callable[[CheckResult], None] | None = None,
) -> CheckReport:
    """Run every applicable check of ``target`` (arguments as for :func:`checks_for`) and
    return the :class:`CheckReport`; never raises for a failing plugin. ``on_result`` is
    called after each check (progress output)."""
    start = time.perf_counter()
    checks, left_out, loaded = _collect(target, kinds, names, expected_failures, data_dirs)
    results = []
    for check in checks:
        result = check.run()
        results.append(result)
        if on_result is not None:
            on_result(result)
    label = ", ".join(t.description for t in loaded)
    return CheckReport(label, results, left_out, time.perf_counter() - start)


def parametrize_with_checks(
    target: Targets, *, kinds: Iterable[str] | None = None,
    names: Iterable[str] | str | None = None,
    expected_failures: Mapping[str, str] | None = None, data_dirs: Iterable[Path] = (),
) -> Any:
    """A ``pytest.mark.parametrize`` over the checks of ``target`` (arguments as for
    :func:`checks_for`), one test per check with the check's id as the test id; declared
    expected failures are ``xfail(strict=True)`` with their reason::

        @parametrize_with_checks("my_plugin")
        def test_conformance(check):
            check()
    """
    import pytest

    params = []
    for check in checks_for(target, kinds=kinds, names=names,
                            expected_failures=expected_failures, data_dirs=data_dirs):
        marks = []
        if check.expected_failure is not None:
            marks.append(pytest.mark.xfail(strict=True, raises=ConformanceError,
                                           reason=check.expected_failure))
        params.append(pytest.param(check, id=check.id, marks=marks))
    return pytest.mark.parametrize("check", params)
