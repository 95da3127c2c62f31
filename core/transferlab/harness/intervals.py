"""Student-t confidence intervals over seeds, without importing scipy.

Every ``bench`` and ``report`` prints intervals; importing ``scipy.special`` for one quantile
cost 0.46 s, half of what resuming a finished suite took. For the integer degrees of freedom
seeds give, the t distribution's CDF has a closed form (Abramowitz and Stegun, *Handbook of
Mathematical Functions*, 26.7.3 and 26.7.4), so the quantile is found by bisection on it to
machine precision; ``tests/test_intervals.py`` checks it against ``scipy.special.stdtrit``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_ci95", "t_critical"]


def _two_sided_mass(theta: float, dof: int) -> float:
    """P(|T| <= t) for ``dof`` degrees of freedom, where t = sqrt(dof) * tan(theta)."""
    sin, cos = math.sin(theta), math.cos(theta)
    cos2 = cos * cos
    if dof % 2:  # odd: (2/pi) (theta + sin (cos + 2/3 cos^3 + 2*4/(3*5) cos^5 + ...))
        term, total = cos, 0.0
        for k in range(1, dof - 1, 2):
            total += term
            term *= cos2 * (k + 1) / (k + 2)
        return 2 / math.pi * (theta + sin * total)
    term, total = 1.0, 0.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, dof, 2):
        total += term
        term *= cos2 * k / (k + 1)
    return sin * total


def t_critical(dof: int, confidence: float = 0.95) -> float:
    """The t with P(|T| <= t) = ``confidence`` for Student's t with ``dof`` (a positive
    integer) degrees of freedom: the half-width of a ``confidence`` interval in standard
    errors (12.706 for 1 degree of freedom, 2.776 for 4)."""
    if not isinstance(dof, int) or isinstance(dof, bool) or dof < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {dof!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    low, high = 0.0, math.pi / 2
    for _ in range(200):  # the mass grows with theta; halve until the interval stops shrinking
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if _two_sided_mass(mid, dof) < confidence:
            low = mid
        else:
            high = mid
    return math.sqrt(dof) * math.tan((low + high) / 2)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (NaN for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_critical(n - 1) * sd / math.sqrt(n)
