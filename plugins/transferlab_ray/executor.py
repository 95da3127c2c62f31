"""Run a suite's cells as Ray tasks.

Each cell is one Ray task with its CPU and GPU needs (``cpus_per_cell``, ``gpus_per_cell``);
only as many are submitted as the cluster can start, so with cooperating workers a cell is
claimed when it is submitted, not when the suite starts. Results stream back to the driver
(the ``bench`` process), which alone writes the results file. A cell whose worker process or
node dies becomes an error result naming the cause, and the suite goes on; Ray does not
retry it (``max_retries=0``), since a cell that killed its worker would likely do it again.

Without ``address`` the executor starts a local Ray for the suite and stops it afterwards;
with one it joins that cluster and leaves it running. A cluster with token authentication
(``RAY_AUTH_MODE=token``) needs the same ``RAY_AUTH_TOKEN`` in the driver's environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from transferlab.harness.cell import Cell, CellResult

__all__ = ["RayExecutor", "run_on_worker"]


def run_on_worker(run_one: Callable[[Cell], CellResult], cell: Cell, threads: int
                  ) -> CellResult:
    """What a Ray task runs: cap torch's threads at the CPUs the task reserved, then the
    cell (``run_one`` is the picklable function ``bench`` builds)."""
    try:
        import torch

        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover - torch-less workers
        pass
    return run_one(cell)


class RayExecutor:
    """Cells as Ray tasks; see the module docstring."""

    def __init__(self, *, address: str | None = None, cpus_per_cell: float = 1.0,
                 gpus_per_cell: float = 0.0, max_in_flight: int | None = None) -> None:
        self.address = address
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.max_in_flight = max_in_flight

    def _connect(self) -> tuple[Any, bool]:
        """``(ray, started)``: Ray initialised, and whether this executor started it."""
        try:
            import ray
        except ImportError:
            from transferlab.errors import IncompatibleError

            raise IncompatibleError("the ray executor needs Ray: pip install"
                                    " 'transferlab[ray]'") from None
        if ray.is_initialized():
            return ray, False
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        return ray, self.address is None

    def _capacity(self, ray: Any) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus // self.cpus_per_cell))

    def run(self, cells: Iterable[Cell], run_one: Callable[[Cell], CellResult]
            ) -> Iterator[CellResult]:
        ray, started = self._connect()
        try:
            task = ray.remote(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell,
                              max_retries=0)(run_on_worker)
            threads = max(1, int(self.cpus_per_cell))
            source = iter(cells)
            pending: dict[Any, Cell] = {}

            def submit(count: int) -> None:
                for _ in range(count):
                    cell = next(source, None)
                    if cell is None:
                        return
                    pending[task.remote(run_one, cell, threads)] = cell

            submit(self._capacity(ray))
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    cell = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except (ray.exceptions.WorkerCrashedError,
                            ray.exceptions.NodeDiedError,
                            ray.exceptions.RayTaskError,
                            ray.exceptions.OutOfMemoryError) as exc:
                        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        yield CellResult(cell, "error", error=f"ray worker failed:"
                                         f" {type(exc).__name__}: {reason}")
                submit(len(done))
        finally:
            if started:
                ray.shutdown()
