"""Transferability scores: predict from frozen features (and the backbone's source-label
probabilities) how well a backbone will transfer to a task, before any training.

Each score is a :class:`transferlab.api.TransferabilityScore`; higher predicts better
transfer. The array functions (:func:`logme`, :func:`leep`, :func:`nce`, :func:`h_score`,
:func:`shrinkage_h_score`) take already-checked inputs; the classes check them first.

- **LogME** (You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning", ICML 2021; the fixed-point iteration of You et al., "Ranking and Tuning
  Pre-trained Models: A New Paradigm for Exploiting Model Hubs", JMLR 2022, arXiv 2110.10545):
  the mean over classes of the log marginal evidence, per example, of a Bayesian linear
  regression from the features to the class's one-hot column, with the prior precision alpha
  and noise precision beta set by evidence maximisation. It follows the authors' release
  (github.com/thuml/LogME, ``LogME.py``, ``LogME._fit_fixed_point``) step by step: the
  stabiliser 1e-5 in the alpha and beta updates, stop when ``|t' - t| / t <= 1e-3`` for
  ``t = alpha / beta`` or after 11 iterations, and the evidence of the last alpha and beta
  with the residual and weight norm of the iteration before. Like the release, when the
  features have rank k < D the log-determinant sums the k non-zero singular values only (the
  paper's ``log|A|`` would add ``(D - k) log alpha``); with N > D, singular values up to 1e-10
  count as zero, as the release's rank rule does. One departure: the mean is over the classes
  present in the labels (the release also averages a degenerate term for each absent class
  below the largest label).
- **LEEP** (Nguyen, Hassner, Seeger, Archambeau, "LEEP: A New Measure to Evaluate
  Transferability of Learned Representations", ICML 2020): the mean log-likelihood of the
  expected empirical predictor ``p(y | x) = sum_z P(y | z) theta(x)_z`` built from the source
  probabilities ``theta`` and the empirical conditional ``P(y | z)``.
- **NCE** (Tran, Nguyen, Hassner, "Transferability and Hardness of Supervised Classification
  Tasks", ICCV 2019): negative conditional entropy ``-H(Y | Z)`` of the target labels given
  the source labels ``Z = argmax theta(x)``, in nats.
- **H-score** (Bao, Li, Huang, Li, Zhong, Zhang, Wang, "An Information-Theoretic Approach to
  Transferability in Task Transfer Learning", ICIP 2019): ``tr(cov(f)^+ cov(E[f | y]))``,
  computed as TLlib's ``h_score`` (``tllib/ranking/hscore.py``): unbiased covariances and the
  pseudo-inverse with ``rcond=1e-15``.
- **Shrinkage H-score** (Ibrahim, Ponomareva, Mazumder, "Newer is Not Always Better:
  Rethinking Transferability Metrics, Their Peculiarities, Stability and Performance", ECML
  PKDD 2022): ``tr(cov_a(f)^+ (1 - a) cov(E[f | y]))`` with the Ledoit-Wolf shrunk covariance
  ``cov_a`` and its shrinkage ``a`` (scikit-learn's ``LedoitWolf``) of the centred features,
  as TLlib's ``regularized_h_score``. It stays meaningful when D approaches or exceeds N,
  where the plain H-score's inverse covariance is noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transferlab.api import TransferabilityScore
from transferlab.params import Param

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SCORES", "HScore", "Leep", "LogME", "Nce", "ShrinkageHScore", "h_score", "leep", "logme",
    "nce", "shrinkage_h_score",
]

LOGME_EPSILON = 1e-5  # the release's stabiliser in the alpha and beta updates
LOGME_RANK_CUTOFF = 1e-10  # singular values at or below it count as zero (when N > D)


# --- the array functions ---------------------------------------------------------------------


def _singular(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and singular values of ``features``, truncated to its rank when
    N > D as the release does (its ``truncated_svd``)."""
    import numpy as np

    n, d = features.shape
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    if n > d:
        keep = s > LOGME_RANK_CUTOFF
        u, s = u[:, keep], s[keep]
    return u, s


def _logme_evidence(u: np.ndarray, sigma: np.ndarray, y: np.ndarray, d: int, tol: float,
                    max_iter: int) -> float:
    """Maximum log evidence per example of the regression of ``y`` on the features whose
    SVD gave ``u`` and the squared singular values ``sigma``."""
    import numpy as np

    n = len(y)
    x2 = (u.T @ y) ** 2  # y in the singular basis
    outside = float(y @ y - x2.sum())  # the part of y outside the features' span
    alpha = beta = 1.0
    m2 = res2 = 0.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())  # effective number of parameters
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())  # |m|^2 of the posterior mean
        res2 = float((x2 / (1.0 + sigma / t) ** 2).sum()) + outside  # |F m - y|^2
        alpha = gamma / (m2 + LOGME_EPSILON)
        beta = (n - gamma) / (res2 + LOGME_EPSILON)
        if abs(alpha / beta - t) / t <= tol:
            break
    evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
                - 0.5 * float(np.log(alpha + beta * sigma).sum())
                - beta / 2.0 * res2 - alpha / 2.0 * m2 - n / 2.0 * np.log(2.0 * np.pi))
    return float(evidence) / n


def logme(features: np.ndarray, labels: np.ndarray, *, tol: float = 1e-3,
          max_iter: int = 11) -> float:
    """LogME of ``features`` ``[N, D]`` for integer ``labels``: the mean over the classes of
    the maximised log evidence per example (You et al. 2021; the authors' fixed-point
    release, see the module docstring)."""
    import numpy as np

    f = np.asarray(features, dtype=np.float64)
    u, s = _singular(f)
    sigma = s**2
    classes = np.unique(labels)
    return float(np.mean([
        _logme_evidence(u, sigma, (labels == c).astype(np.float64), f.shape[1], tol, max_iter)
        for c in classes
    ]))


def _one_hot(labels: np.ndarray) -> np.ndarray:
    import numpy as np

    out = np.zeros((len(labels), int(labels.max()) + 1))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al. 2020): mean log-probability of the true label under the expected
    empirical predictor built from the source probabilities ``theta`` ``[N, C_source]``."""
    import numpy as np

    theta = np.asarray(source_probabilities, dtype=np.float64)
    joint = _one_hot(labels).T @ theta / len(labels)  # P(y, z), [C_target, C_source]
    p_z = joint.sum(axis=0, keepdims=True)
    # a source class no example puts mass on never weighs in (theta_z = 0 for every x)
    conditional = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)  # P(y | z)
    predictor = theta @ conditional.T  # [N, C_target]
    return float(np.mean(np.log(predictor[np.arange(len(labels)), labels])))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al. 2019): ``-H(Y | Z)`` in nats for source labels ``Z`` (integers)."""
    import numpy as np

    z = np.asarray(source_labels, dtype=np.int64)
    joint = np.zeros((int(labels.max()) + 1, int(z.max()) + 1))
    np.add.at(joint, (labels, z), 1.0)
    joint /= len(labels)
    p_z = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0  # 0 log 0 = 0
    ratio = (joint / np.where(p_z > 0, p_z, 1.0))[nonzero]
    return float(np.sum(joint[nonzero] * np.log(ratio)))


def _class_means(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row replaced by the mean of its class: ``E[f | y]`` per example."""
    import numpy as np

    g = np.zeros_like(features)
    for c in np.unique(labels):
        rows = labels == c
        g[rows] = features[rows].mean(axis=0)
    return g


def _cov(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.atleast_2d(np.cov(x, rowvar=False))


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al. 2019): ``tr(cov(f)^+ cov(E[f | y]))``."""
    import numpy as np

    f = np.asarray(features, dtype=np.float64)
    cov_g = _cov(_class_means(f, labels))
    return float(np.trace(np.linalg.pinv(_cov(f), rcond=1e-15) @ cov_g))


def shrinkage_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """Shrinkage H-score (Ibrahim et al. 2022): ``tr(cov_a(f)^+ (1 - a) cov(E[f | y]))``
    with the Ledoit-Wolf estimate ``cov_a`` and shrinkage ``a``."""
    import numpy as np
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0, keepdims=True)
    estimate = LedoitWolf(assume_centered=False).fit(f)
    shrinkage = float(estimate.shrinkage_)
    cov_g = _cov(_class_means(f, labels))
    inverse = np.linalg.pinv(estimate.covariance_, rcond=1e-15)
    return float(np.trace(inverse @ ((1.0 - shrinkage) * cov_g)))


# --- the registered scores -------------------------------------------------------------------


class LogME(TransferabilityScore):
    name = "logme"
    summary = ("LogME (You et al. 2021): log marginal evidence of a Bayesian linear model on"
               " the features, per example")
    params = (
        Param("tol", float, 1e-3, "stop when alpha/beta changes by at most this fraction"
              " (the authors' release: 1e-3)", gt=0.0, lt=1.0),
        Param("max_iter", int, 11, "most fixed-point iterations (the release: 11)", min=1,
              max=1000),
    )

    def compute(self, features: np.ndarray, labels: np.ndarray,
                source_probabilities: np.ndarray | None) -> float:
        return logme(features, labels, tol=self.hparams["tol"],
                     max_iter=self.hparams["max_iter"])


class Leep(TransferabilityScore):
    name = "leep"
    summary = ("LEEP (Nguyen et al. 2020): log-likelihood of the expected empirical predictor"
               " on the source head's probabilities")
    needs_source_probabilities = True

    def compute(self, features: np.ndarray, labels: np.ndarray,
                source_probabilities: np.ndarray | None) -> float:
        assert source_probabilities is not None  # checked by score()
        return leep(source_probabilities, labels)


class Nce(TransferabilityScore):
    name = "nce"
    summary = ("NCE (Tran et al. 2019): -H(target label | source label), source label ="
               " argmax of the source head")
    needs_source_probabilities = True

    def compute(self, features: np.ndarray, labels: np.ndarray,
                source_probabilities: np.ndarray | None) -> float:
        import numpy as np

        assert source_probabilities is not None  # checked by score()
        return nce(np.argmax(source_probabilities, axis=1), labels)


class HScore(TransferabilityScore):
    name = "hscore"
    summary = "H-score (Bao et al. 2019): tr(cov(f)^+ cov(E[f|y]))"

    def compute(self, features: np.ndarray, labels: np.ndarray,
                source_probabilities: np.ndarray | None) -> float:
        return h_score(features, labels)


class ShrinkageHScore(TransferabilityScore):
    name = "shrinkage-hscore"
    summary = ("H-score with a Ledoit-Wolf shrunk feature covariance (Ibrahim et al. 2022);"
               " stable when D is close to N")

    def compute(self, features: np.ndarray, labels: np.ndarray,
                source_probabilities: np.ndarray | None) -> float:
        return shrinkage_h_score(features, labels)


SCORES: tuple[type[TransferabilityScore], ...] = (LogME, Leep, Nce, HScore, ShrinkageHScore)
