"""Logistic-regression fits (scikit-learn, lbfgs) on one BLAS thread against the default
(one per core), after a torch forward pass as inside a cell, measured in one run.

This is the measurement behind :func:`transferlab.threads.single_blas_thread`: the probes of
``linear-probe``, ``linear-probe[protocol=mteb]``, ``lp-ft`` and ``distill`` fit on one BLAS
thread. Shapes are those of the harness's tasks (digits with raw pixels and with a
1280-dimensional Lite0 feature, banking77 with MiniLM's 384 dimensions, a 5-class task with
1280 dimensions); the features are random, which changes the iterations, not the per-call cost.

    python benchmarks/blas_threads.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from quiet import OthersMeter
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

SHAPES = [  # (examples, dimensions, classes)
    (1347, 64, 10),
    (1347, 1280, 10),
    (8000, 384, 77),
    (5000, 1280, 5),
]


def fit_seconds(features: np.ndarray, labels: np.ndarray, threads: int, repeats: int) -> float:
    """Best of ``repeats`` fit times with ``threads`` BLAS threads."""
    best = float("inf")
    for _ in range(repeats):
        with threadpool_limits(threads, user_api="blas"):
            start = time.perf_counter()
            LogisticRegression(max_iter=300, random_state=0).fit(features, labels)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    torch.nn.Conv2d(3, 16, 3)(torch.randn(16, 3, 64, 64))  # torch's OpenMP pool is up
    rng = np.random.default_rng(0)
    print(f"| examples x dims, classes | {cores} BLAS threads (s) | 1 BLAS thread (s) | speed-up |")
    print("|---|---:|---:|---:|")
    with OthersMeter() as meter:
        for n, d, k in SHAPES:
            features = rng.normal(size=(n, d)).astype(np.float32)
            labels = rng.integers(0, k, n)
            many = fit_seconds(features, labels, cores, args.repeats)
            one = fit_seconds(features, labels, 1, args.repeats)
            print(f"| {n} x {d}, {k} | {many:.3f} | {one:.3f} | {many / one:.2f}x |")
    print(meter.verdict())


if __name__ == "__main__":
    main()
