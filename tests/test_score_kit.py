"""The conformance kit's checks of transferability scores (``score[NAME]::...``): every
built-in score passes them, each deliberately broken score fails exactly the check of its bug
with a message naming the fix, checks follow what a score declares, and ``transferlab check``
reports scores. Each test's docstring names the bug it catches."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

from transferlab import hookimpl
from transferlab.api import TransferabilityScore
from transferlab.cli import cli
from transferlab.params import Param
from transferlab.testing import checks_for, parametrize_with_checks, run_checks
from transferlab.testing._target import builtin_entry_points

BUILTINS = sorted(ep.value for ep in builtin_entry_points())
SCORE_CHECKS = ("finite-value", "determinism", "label-permutation", "bad-input",
                "separable-above-random", "bad-params")


@parametrize_with_checks(BUILTINS, kinds=("score",))
def test_builtin_scores_keep_their_contract(check):
    """Catches a built-in score (logme, leep, nce, hscore, shrinkage-hscore, and any added
    later, with no list to update) returning a non-finite or non-float value, depending on
    state or on the label ids, accepting bad input or bad parameters, ranking random
    features above separable ones, or scoring without the source probabilities it needs."""
    check()


# --- broken scores -----------------------------------------------------------------------------


class Fisher(TransferabilityScore):
    """A correct score (between- over within-class scatter) the broken ones start from."""

    name = "fisher"
    params = (Param("eps", float, 1e-12, "added to the within-class scatter", min=0.0),)

    def compute(self, features, labels, source_probabilities):
        overall = features.mean(axis=0)
        between = within = 0.0
        for label in np.unique(labels):
            members = features[labels == label]
            between += len(members) * float(np.sum((members.mean(axis=0) - overall) ** 2))
            within += float(np.sum((members - members.mean(axis=0)) ** 2))
        return between / (within + self.hparams["eps"])


class LabelArithmetic(Fisher):
    """Adds a term that uses the label ids as numbers."""

    name = "label-arithmetic"

    def compute(self, features, labels, source_probabilities):
        return super().compute(features, labels, None) + 1e-3 * float(
            np.corrcoef(features[:, 0], labels)[0, 1])


class Stateful(Fisher):
    """Drifts with every call."""

    name = "stateful"
    calls = 0

    def compute(self, features, labels, source_probabilities):
        self.calls += 1
        return super().compute(features, labels, None) + 1e-6 * self.calls


class Unchecked(Fisher):
    """Overrides score() and so skips the input checks."""

    name = "unchecked"

    def score(self, features, labels, source_probabilities=None):
        return float(self.compute(np.asarray(features, dtype=float), np.asarray(labels), None))


class LowerIsBetter(Fisher):
    """Returns a quantity where lower means better transfer."""

    name = "lower-is-better"

    def compute(self, features, labels, source_probabilities):
        return -super().compute(features, labels, None)


class SilentWithoutProbabilities(Fisher):
    """Declares that it reads source probabilities, then scores 0 without them."""

    name = "silent-without-probabilities"
    needs_source_probabilities = True

    def score(self, features, labels, source_probabilities=None):
        if source_probabilities is None:
            return 0.0
        return super().score(features, labels, source_probabilities)

    def compute(self, features, labels, source_probabilities):
        confidence = np.mean(source_probabilities.max(axis=1))
        return super().compute(features, labels, None) + float(confidence)


class SwallowsParams(Fisher):
    """A constructor that never checks its parameter values."""

    name = "swallows-params"

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        self.hparams = {"eps": 1e-12, **params}


def _module(name: str, *classes: type[TransferabilityScore]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.register_scores = hookimpl(lambda register: [register(c) for c in classes])
    return module


BROKEN = [
    (LabelArithmetic, "label-permutation", "treat labels as names of classes"),
    (Stateful, "determinism", "keep no state between calls"),
    (Unchecked, "bad-input", "implement compute, not score"),
    (LowerIsBetter, "separable-above-random", "negate a score where lower is better"),
    (SilentWithoutProbabilities, "missing-probabilities", "implement compute, not score"),
    (SwallowsParams, "bad-params", "call super().__init__(registered_name, **params)"),
]


@pytest.mark.parametrize(("score", "check", "fix"), BROKEN, ids=[b[1] for b in BROKEN])
def test_a_broken_score_fails_exactly_its_check_naming_the_fix(score, check, fix):
    """Catches checks without teeth (a broken score passing) and checks that blame the wrong
    rule (a broken score failing several, so the report hides which bug it has)."""
    report = run_checks(_module(f"broken_{check.replace('-', '_')}", score), kinds=("score",))
    assert [r.id for r in report.failed] == [f"score[{score.name}]::{check}"], report.render()
    assert fix in report.failed[0].message and "\n" not in report.failed[0].message


def test_a_correct_score_passes_and_checks_follow_its_declarations():
    """Catches the missing-probabilities check chosen by name instead of by the score's
    needs_source_probabilities, or skipped checks counted as passes."""
    report = run_checks(_module("good_fisher", Fisher), kinds=("score",))
    assert report.ok and not report.skipped, report.render()
    assert [r.id for r in report.passed] == ["plugin[good_fisher]::loads"] + [
        f"score[fisher]::{name}" for name in SCORE_CHECKS]
    needing = {c.id for c in checks_for(_module("needing", SilentWithoutProbabilities),
                                        kinds=("score",))}
    assert "score[silent-without-probabilities]::missing-probabilities" in needing


def test_check_command_reports_scores(runner):
    """Catches `transferlab check` not offering the score kind, or not checking the scores a
    distribution registers."""
    result = runner.invoke(cli, ["check", "transferlab_relational.plugin", "-k", "score",
                                 "-n", "leep"])
    assert result.exit_code == 0, result.output
    assert "PASS  score[leep]::missing-probabilities" in result.output
    assert "score[logme]" not in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("OK: 0 failed, 8 passed")
