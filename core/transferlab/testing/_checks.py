"""One conformance check: a readable id, a call that raises on failure, and its outcome.

A check's id is ``KIND[SUBJECT]::CHECK`` (``method[linear-probe]::determinism``,
``plugin[my_plugin]::loads``): the pytest id under
:func:`~transferlab.testing.parametrize_with_checks` and the line of the report of
:func:`~transferlab.testing.run_checks`. Calling a check raises
:class:`ConformanceError` (an ``AssertionError``) whose one-line message names the problem
and the fix, or skips (under pytest) when the component does not declare the capability the
check needs; :meth:`Check.run` never raises and returns a :class:`CheckResult`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CHECK_KINDS", "Check", "CheckResult", "ConformanceError", "NotApplicable"]

CHECK_KINDS = ("plugin", "backbone", "task", "method", "objective", "score")
STATUSES = ("passed", "failed", "xfailed", "xpassed", "skipped")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


class ConformanceError(AssertionError):
    """A component breaks its contract: ``problem; fix: fix``, on one line."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = one_line(problem), one_line(fix)
        super().__init__(f"{self.problem}; fix: {self.fix}")


class NotApplicable(Exception):
    """The component does not declare the capability this check needs (the check is skipped)."""


@dataclass(frozen=True)
class CheckResult:
    """How one check went: ``passed``, ``failed``, ``xfailed`` (an expected failure that
    failed), ``xpassed`` (an expected failure that passed: counted as a failure) or
    ``skipped`` (not applicable), with the message and the seconds it took."""

    check: Check
    status: str
    message: str = ""
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return self.check.id


@dataclass(frozen=True, eq=False)
class Check:
    """One contract check of one component.

    :param id: ``KIND[SUBJECT]::CHECK``, unique within a target.
    :param kind: ``plugin``, ``backbone``, ``task``, ``method``, ``objective`` or ``score``.
    :param subject: the plugin or component (a name, or a setting with parameter values).
    :param name: what is checked (``determinism``).
    :param summary: the rule in words.
    :param expected_failure: the reason, when the failure is declared as expected.
    """

    id: str
    kind: str
    subject: str
    name: str
    summary: str
    func: Callable[[], None] = field(repr=False)
    expected_failure: str | None = None

    def __call__(self) -> None:
        """Run the check; raise :class:`ConformanceError` on failure and ``pytest.skip`` when
        it does not apply (outside pytest, :class:`NotApplicable` propagates)."""
        try:
            self.func()
        except ConformanceError:
            raise
        except NotApplicable as exc:
            try:
                import pytest
            except ImportError:  # pragma: no cover - pytest is how checks are usually called
                raise exc from None
            pytest.skip(f"{self.id}: {exc}")
        except Exception as exc:
            raise crashed(exc) from exc

    def run(self) -> CheckResult:
        """Run the check and return its result; never raises (except on interruption)."""
        start = time.perf_counter()
        try:
            self.func()
            status, message = "passed", ""
        except NotApplicable as exc:
            status, message = "skipped", one_line(str(exc))
        except ConformanceError as exc:
            status, message = "failed", str(exc)
        except Exception as exc:
            status, message = "failed", str(crashed(exc))
        if self.expected_failure is not None and status in ("passed", "failed"):
            status = "xpassed" if status == "passed" else "xfailed"
            if status == "xpassed":
                message = (f"passed but is declared as an expected failure"
                           f" ({self.expected_failure}); fix: remove it from expected_failures")
        return CheckResult(self, status, message, time.perf_counter() - start)

    def expecting_failure(self, reason: str) -> Check:
        """This check, declared as an expected failure for ``reason``."""
        return dataclasses.replace(self, expected_failure=reason)

    def __repr__(self) -> str:
        return f"Check({self.id!r})"

    def __str__(self) -> str:
        return self.id


def crashed(exc: BaseException) -> ConformanceError:
    """A check that crashed in component code: the exception, and where to look."""
    return ConformanceError(
        f"the component raised {type(exc).__name__}: {exc}",
        "make the component handle the kit's tiny inputs (transferlab.testing.TinyTask and"
        " TinyBackbone), or raise a transferlab error that names the problem",
    )
