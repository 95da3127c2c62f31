"""Student-t intervals without scipy (``transferlab.harness.intervals``), checked against
scipy's quantile, which the tests may import."""

from __future__ import annotations

import math

import pytest
from scipy.special import stdtrit

from fakes import fresh_interpreter
from transferlab.harness.intervals import mean_ci95, t_critical


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99, 0.999])
def test_t_critical_matches_scipy_for_every_small_and_some_large_dof(confidence):
    """Bugs caught: a wrong series term (odd or even degrees of freedom), a one-sided
    quantile where a two-sided one is meant, a bisection that stops early."""
    for dof in [*range(1, 120), 250, 1000, 5000]:
        expected = float(stdtrit(dof, (1 + confidence) / 2))
        assert t_critical(dof, confidence) == pytest.approx(expected, rel=1e-10), dof


def test_t_critical_known_values():
    assert t_critical(1) == pytest.approx(12.7062047, rel=1e-8)
    assert t_critical(4) == pytest.approx(2.7764451, rel=1e-8)
    assert t_critical(2, 0.99) == pytest.approx(9.9248432, rel=1e-8)


@pytest.mark.parametrize("dof", [0, -1, 2.5, True])
def test_t_critical_refuses_bad_degrees_of_freedom(dof):
    with pytest.raises(ValueError, match="degrees of freedom must be a positive integer"):
        t_critical(dof)


@pytest.mark.parametrize("confidence", [0, 1, 1.5])
def test_t_critical_refuses_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        t_critical(3, confidence)


def test_mean_ci95_by_hand():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729749464 * 1.0 / math.sqrt(3), rel=1e-10)
    single_mean, single_half = mean_ci95([0.7])
    assert single_mean == 0.7 and math.isnan(single_half)
    # two values (one degree of freedom, t = 12.706): sd = sqrt(2), so sd / sqrt(n) = 1
    assert mean_ci95([1.0, 3.0]) == (2.0, pytest.approx(12.7062047362, rel=1e-9))
    # sd 4: the half-width scales with the spread
    assert mean_ci95([1.0, 5.0, 9.0]) == (5.0, pytest.approx(4.302652729749464 * 4.0
                                                             / math.sqrt(3), rel=1e-10))


def test_intervals_import_no_scipy():
    """Bug caught: the leaderboard importing scipy again (0.46 s on every bench and report)."""
    assert fresh_interpreter("import sys; from transferlab.harness.report import leaderboard;"
                             " leaderboard([]); print('scipy' in sys.modules)") == "False"
