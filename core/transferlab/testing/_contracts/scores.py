"""Checks of the transferability-score contract, on small synthetic features (numpy only).

The features are made from a fixed seed: 3 classes of 30 examples in 8 dimensions, where
*separable* features shift each class's mean far along its own axis and *random* features
ignore the labels. Source-label probabilities, for scores that declare
``needs_source_probabilities``, are a softmax over the first 5 feature dimensions, the way
``transferlab rank`` applies a backbone's source head to its own features: informative on the
separable features, noise on the random ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transferlab.api import TransferabilityScore
from transferlab.errors import TransferlabError
from transferlab.testing._checks import Check, ConformanceError, one_line
from transferlab.testing._contracts.base import Component, SuiteBase, attempt, declared_traits

__all__ = ["ScoreChecks"]

CLASSES, PER_CLASS, WIDTH, SOURCE_CLASSES = 3, 30, 8, 5
SEPARATION = 6.0  # class means this many noise deviations apart along their own axes
RELATIVE_TOLERANCE = 1e-9


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def tiny_scoring_data(separable: bool = True, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features ``[90, 8]``, labels ``[90]`` in 0..2, source probabilities ``[90, 5]``)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    rng.shuffle(labels)
    features = rng.normal(size=(len(labels), WIDTH))
    if separable:
        features[:, :CLASSES] += SEPARATION * np.eye(CLASSES)[labels]
    probs = _softmax(2.0 * features[:, :SOURCE_CLASSES])
    return features, labels, probs


class ScoreChecks(SuiteBase):
    """``score[NAME]::...``: a finite float, determinism, invariance to label ids, refused
    bad input, separable features above random ones, missing probabilities, parameters."""

    def score_traits(self, c: Component) -> type[TransferabilityScore] | TransferabilityScore:
        """Where the score's declarations are read (:func:`declared_traits`)."""
        return declared_traits(c, TransferabilityScore)

    def _score_checks(self, c: Component) -> list[Check]:
        label, check = c.label, self._check
        checks = [
            check("score", label, "finite-value", "a finite Python float on small features",
                  lambda: self.check_finite_value(c)),
            check("score", label, "determinism", "the same inputs give the same value, from"
                  " the same and from a fresh instance", lambda: self.check_score_determinism(c)),
            check("score", label, "label-permutation", "renaming the class ids (a permutation"
                  " of 0..C-1) leaves the value unchanged",
                  lambda: self.check_label_permutation(c)),
            check("score", label, "bad-input", "mismatched feature and label lengths, and NaN"
                  " features, fail with a one-line transferlab error",
                  lambda: self.check_bad_input(c)),
            check("score", label, "separable-above-random", "clearly separable features score"
                  " above random features of the same labels",
                  lambda: self.check_separable_above_random(c)),
        ]
        if self.score_traits(c).needs_source_probabilities:
            checks.append(check("score", label, "missing-probabilities", "without source"
                                " probabilities it fails with a one-line transferlab error",
                                lambda: self.check_missing_probabilities(c)))
        checks.append(check("score", label, "bad-params", "bad parameter values fail"
                            " validation and construction", lambda: self.check_bad_params(c)))
        return checks

    # -- helpers -----------------------------------------------------------------------------
    def _make(self, c: Component) -> TransferabilityScore:
        score = attempt(f"building score {c.label!r}",
                        lambda: self.registries.scores.create(c.setting.name, c.setting.params),
                        "the factory must build the score from its declared parameters")
        if not isinstance(score, TransferabilityScore):
            raise ConformanceError(f"the factory of {c.label!r} returned a"
                                   f" {type(score).__name__}",
                                   "return a transferlab.api.TransferabilityScore")
        return score

    def _value(self, c: Component, score: TransferabilityScore, features: np.ndarray,
               labels: np.ndarray, probs: np.ndarray | None, what: str) -> float:
        if not score.needs_source_probabilities:
            probs = None
        value = attempt(f"score({what})", lambda: score.score(features, labels, probs),
                        "compute a float from (features [N, D], labels [N], source"
                        " probabilities [N, C] or None); raise a transferlab error only for"
                        " input the score cannot use")
        if not isinstance(value, float) or isinstance(value, bool):
            raise ConformanceError(f"score {c.label!r} returned a {type(value).__name__}",
                                   "return a Python float (float(value)) from score()")
        if not math.isfinite(value):
            raise ConformanceError(f"score {c.label!r} returned {value} on {what}",
                                   "compute in a numerically stable way (clip logs away from"
                                   " 0, regularise inverses)")
        return value

    # -- the checks --------------------------------------------------------------------------
    def check_finite_value(self, c: Component) -> None:
        score = self._make(c)
        for separable in (True, False):
            features, labels, probs = tiny_scoring_data(separable)
            self._value(c, score, features, labels, probs,
                        "separable features" if separable else "random features")

    def check_score_determinism(self, c: Component) -> None:
        features, labels, probs = tiny_scoring_data(separable=False, seed=1)
        score = self._make(c)
        first = self._value(c, score, features, labels, probs, "random features")
        again = self._value(c, score, features.copy(), labels.copy(), probs.copy(),
                            "the same features again")
        fresh = self._value(c, self._make(c), features, labels, probs,
                            "the same features, from a fresh instance")
        if not first == again == fresh:
            raise ConformanceError(
                f"score {c.label!r} gave {first!r}, then {again!r}, and {fresh!r} from a fresh"
                " instance, on the same inputs",
                "make the value a function of the inputs alone (seed any randomness from"
                " fixed values; keep no state between calls)")

    def check_label_permutation(self, c: Component) -> None:
        features, labels, probs = tiny_scoring_data(separable=False, seed=2)
        # a fresh instance per value: state kept between calls is the determinism check's
        value = self._value(c, self._make(c), features, labels, probs, "random features")
        for permutation in ([1, 2, 0], [2, 0, 1], [1, 0, 2]):
            renamed = np.asarray(permutation)[labels]
            other = self._value(c, self._make(c), features, renamed, probs, "renamed labels")
            if not math.isclose(value, other, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12):
                raise ConformanceError(
                    f"score {c.label!r} changed from {value!r} to {other!r} when the class ids"
                    f" were renamed by the permutation {permutation}",
                    "treat labels as names of classes: no arithmetic on label ids, no order"
                    " that depends on them beyond grouping")

    def check_bad_input(self, c: Component) -> None:
        features, labels, probs = tiny_scoring_data()
        nan = features.copy()
        nan[3, 2] = np.nan
        cases = [("labels one shorter than the features", features, labels[:-1], probs),
                 ("NaN in the features", nan, labels, probs)]
        for what, feats, labs, p in cases:
            score = self._make(c)
            if not score.needs_source_probabilities:
                p = None
            self._expect_refused(c, what, lambda s=score, f=feats, y=labs, p=p: s.score(f, y, p))

    def check_separable_above_random(self, c: Component) -> None:
        good = self._value(c, self._make(c), *tiny_scoring_data(separable=True),
                           "separable features")
        bad = self._value(c, self._make(c), *tiny_scoring_data(separable=False),
                          "random features")
        if not good > bad:
            raise ConformanceError(
                f"score {c.label!r} rates features whose classes are {SEPARATION:g} standard"
                f" deviations apart ({good!r}) no higher than random features ({bad!r})",
                "return higher values for features that predict the labels better (negate a"
                " score where lower is better)")

    def check_missing_probabilities(self, c: Component) -> None:
        features, labels, _ = tiny_scoring_data()
        score = self._make(c)
        self._expect_refused(c, "no source probabilities",
                             lambda: score.score(features, labels, None))

    def _expect_refused(self, c: Component, what: str, call: Any) -> None:
        try:
            call()
        except TransferlabError as exc:
            if one_line(str(exc)) != str(exc).strip() or not str(exc).strip():
                raise ConformanceError(f"score {c.label!r} refused {what} with a message over"
                                       f" several lines: {str(exc)!r}",
                                       "raise one line naming the problem and the fix") from None
            return
        except Exception as exc:
            raise ConformanceError(
                f"score {c.label!r} given {what} raised {type(exc).__name__}: {exc}, not a"
                " transferlab error",
                "keep TransferabilityScore.score's input checks (implement compute, not score),"
                " or raise transferlab.errors.DataError naming the fix") from exc
        raise ConformanceError(f"score {c.label!r} accepted {what} and returned a value",
                               "check the inputs (TransferabilityScore.score does: implement"
                               " compute, not score)")
