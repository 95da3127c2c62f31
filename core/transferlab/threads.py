"""How many threads the native libraries under a cell use (BLAS, OpenMP, torch).

Two rules, both measured on the 2-core machine the project runs on
(``python benchmarks/blas_threads.py``):

- scikit-learn's lbfgs logistic regression makes thousands of small BLAS calls; on two
  threads each call's hand-off between threads, and the contention with the OpenMP threads
  torch leaves spinning after a forward pass, cost more than the work. Such fits run on one
  BLAS thread (:func:`single_blas_thread`): 1.4-6x faster, and their result no longer depends
  on how many cores the machine has or how many workers share it.
- N parallel workers on C cores get C // N threads each in every pool
  (:func:`limit_threads`), so they never oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["limit_threads", "single_blas_thread"]


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one thread in every BLAS library loaded (numpy's and scipy's
    OpenBLAS); the previous limits come back afterwards. For solvers made of many small
    BLAS calls (lbfgs); a large matrix product is faster on all cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


def limit_threads(threads: int) -> None:
    """Cap torch's intra-op threads and every BLAS and OpenMP pool of this process at
    ``threads`` for the rest of its life (a worker process that shares the cores)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
