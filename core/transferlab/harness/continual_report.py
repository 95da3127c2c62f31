"""Reports of regime cells: continual streams (accuracy matrix, average accuracy, forgetting,
BWT, forward transfer, mean and 95% CI over seeds) and the per-task rows a multi-task cell
adds to the leaderboard."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transferlab.harness.intervals import mean_ci95

__all__ = ["ContinualRow", "continual_board", "expand_multitask", "matrix_table",
           "to_markdown"]

FIGURES = ("average_accuracy", "forgetting", "bwt", "forward_transfer")


def expand_multitask(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A multi-task result as one row per task (its own metrics, method ``M (multi-task)``),
    so the leaderboard of each task compares it with single-task fine-tuning; any other row
    is returned unchanged."""
    if not str(row.get("regime") or "").startswith("multi-task"):
        return [row]
    out = []
    for task in row.get("tasks") or []:
        prefix = f"{task}/"
        metrics = {k[len(prefix):]: v for k, v in row["metrics"].items() if k.startswith(prefix)}
        regime = row["regime"]
        out.append({**row, "task": task, "metrics": metrics,
                    "method": f"{row['method']} ({regime})",
                    "cell_key": f"{row['cell_key']}/{task}"})
    return out


@dataclass
class ContinualRow:
    """One (backbone, stream, scenario, strategy, method) over its seeds."""

    backbone: str
    stream: str
    scenario: str
    strategy: str
    method: str
    seeds: int
    figures: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (mean, ci)
    matrix: list[list[float]] = field(default_factory=list)  # mean over seeds
    experiences: list[str] = field(default_factory=list)
    memory: int | None = None


def continual_board(rows: Iterable[dict[str, Any]]) -> list[ContinualRow]:
    """Continual results (latest per cell) grouped over seeds, best average accuracy first
    within each (stream, scenario)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["status"] == "ok" and str(row.get("regime") or "").startswith("continual"):
            latest[row["cell_key"]] = row
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in latest.values():
        extra = row["extra"]
        params = ",".join(f"{k}={v}" for k, v in sorted(row["params"].items()))
        groups[(row["backbone"], row["task"], extra["scenario"], extra["strategy"],
                row["method"], params)].append(row)
    if not groups:  # the common case: a suite without continual cells needs no numpy
        return []
    import numpy as np

    board = []
    for (backbone, stream, scenario, strategy, method, _), members in groups.items():
        figures = {}
        for name in FIGURES:
            if name == "forward_transfer" and scenario == "class-incremental":
                continue  # 0 accuracy before training by construction (results stored before
                # run_stream stopped computing it there still carry a number)
            values = [m["metrics"][name] for m in members if name in m["metrics"]]
            if values:
                figures[name] = mean_ci95(values)
        shapes = {np.shape(m["extra"]["accuracy_matrix"]) for m in members}
        matrix = (np.mean([m["extra"]["accuracy_matrix"] for m in members], axis=0).tolist()
                  if len(shapes) == 1 else [])
        board.append(ContinualRow(backbone, stream, scenario, strategy, method, len(members),
                                  figures, matrix, members[0]["extra"]["experiences"],
                                  members[0]["extra"].get("memory")))
    board.sort(key=lambda r: (r.stream, r.scenario, -r.figures["average_accuracy"][0]))
    return board


def _figure(value: tuple[float, float] | None, scale: float = 100.0) -> str:
    if value is None:
        return "-"
    mean, ci = value
    return f"{mean * scale:.1f}" + ("" if math.isnan(ci) else f" ± {ci * scale:.1f}")


def matrix_table(experiences: Sequence[str], matrices: Sequence[Sequence[Sequence[float]]]
                 ) -> str:
    """The mean of ``matrices`` as a Markdown table in percent: row ``i`` = after training on
    experience ``i`` (one ``joint`` row for a single-row matrix), column ``j`` = experience."""
    import numpy as np

    mean = np.mean(np.asarray(matrices, dtype=float), axis=0)
    header = "| after \\ on | " + " | ".join(f"E{j}" for j in range(len(experiences))) + " |"
    lines = [header, "|---|" + "---:|" * len(experiences)]
    for i, row in enumerate(mean):
        label = f"E{i}" if len(mean) == len(experiences) else "all (joint)"
        lines.append(f"| {label} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |")
    legend = ", ".join(f"E{j} = {name}" for j, name in enumerate(experiences))
    return "\n".join([*lines, "", legend])


def to_markdown(board: Sequence[ContinualRow], *, matrices: bool = True) -> str:
    """A summary table per (stream, scenario), then each strategy's mean accuracy matrix."""
    out: list[str] = []
    for key in sorted({(r.stream, r.scenario) for r in board}):
        rows = [r for r in board if (r.stream, r.scenario) == key]
        out += [f"### {key[1]}: {key[0]}", "",
                "| strategy | method | backbone | seeds | average accuracy | forgetting | BWT"
                " | forward transfer |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            out.append(f"| {r.strategy} | {r.method} | {r.backbone} | {r.seeds} | "
                       + " | ".join(_figure(r.figures.get(n)) for n in FIGURES) + " |")
        out.append("")
        if matrices:
            for r in rows:
                if r.matrix:
                    out += [f"Accuracy matrix (%), {r.strategy}, mean of {r.seeds} seeds:", "",
                            matrix_table(r.experiences, [r.matrix]), ""]
    return "\n".join(out)
