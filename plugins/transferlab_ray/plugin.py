"""Registers the ``ray`` executor (ray itself is imported when a suite runs, not here)."""

from __future__ import annotations

from typing import Any

from transferlab.hookspecs import hookimpl
from transferlab.params import Param
from transferlab.registry import RegisterCallback


def _ray(name: str, address: str | None, cpus_per_cell: float, gpus_per_cell: float,
         max_in_flight: int | None) -> Any:
    from transferlab_ray.executor import RayExecutor

    return RayExecutor(address=address, cpus_per_cell=cpus_per_cell,
                       gpus_per_cell=gpus_per_cell, max_in_flight=max_in_flight)


@hookimpl
def register_executors(register: RegisterCallback) -> None:
    register("ray", _ray, summary="cells as Ray tasks, on a local Ray or a cluster (--address)",
             params=[
                 Param("address", str, None, "the Ray cluster to join (HOST:PORT or auto);"
                       " none starts a local Ray for the suite", nullable=True),
                 Param("cpus_per_cell", float, 1.0, "CPUs each cell reserves (and the torch"
                       " threads it uses)", min=0.01),
                 Param("gpus_per_cell", float, 0.0, "GPUs each cell reserves (0 on CPU"
                       " clusters; fractions share a GPU)", min=0.0),
                 Param("max_in_flight", int, None, "cells submitted at once (none: as many"
                       " as the cluster has CPUs for)", min=1, nullable=True),
             ])
