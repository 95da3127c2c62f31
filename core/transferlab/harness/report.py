"""Leaderboards: per task, mean and 95% confidence interval over seeds, best first."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from transferlab.harness.intervals import t_critical

__all__ = ["FORMATS", "LeaderboardRow", "leaderboard", "to_csv", "to_json", "to_markdown"]


@dataclass
class LeaderboardRow:
    task: str
    backbone: str
    method: str
    params: str
    seeds: int
    metric: str
    mean: float
    ci95: float
    macro_f1: float
    fit_seconds: float
    trainable_params: int
    total_params: int


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    return {**{f"B.{k}": v for k, v in row["backbone_params"].items()}, **row["params"]}


def _varying_keys(rows: list[dict[str, Any]]) -> set[str]:
    """Settings whose values differ between rows of the same task (the rest is noise)."""
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        for key, value in _settings(row).items():
            values[(row["task"], key)].add(repr(value))
    return {f"{task}/{key}" for (task, key), seen in values.items() if len(seen) > 1}


def _params_label(row: dict[str, Any], varying: set[str]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(_settings(row).items())
             if f"{row['task']}/{k}" in varying]
    return ",".join(parts)


def leaderboard(rows: Iterable[dict[str, Any]], metric: str = "accuracy") -> list[LeaderboardRow]:
    """Aggregate successful results (latest per cell) into ranked rows per task.

    The ``params`` column shows only settings that differ between rows of a task (backbone
    settings prefixed ``B.``); every row keeps its full settings in the store.
    """
    from transferlab.harness.continual_report import expand_multitask

    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["status"] == "ok":
            for each in expand_multitask(row):
                latest[each["cell_key"]] = each
    varying = _varying_keys(list(latest.values()))
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in latest.values():
        label = _params_label(row, varying)
        task = row["task"] if not row.get("source_task") else f"{row['source_task']}->{row['task']}"
        method = row["method"]
        if str(row.get("regime") or "").startswith("continual"):
            method = f"{method} ({row['regime']})"
        groups[(task, row["backbone"], method, label)].append(row)
    has_metric = {key[0] for key, members in groups.items()
                  if any(metric in m["metrics"] for m in members)}
    board = []
    for (task, backbone, method, params), members in groups.items():
        metric_of_task = metric
        if task not in has_metric and all("perplexity" in m["metrics"] for m in members):
            metric_of_task = "perplexity"  # a language-modelling task's own metric
        values = [m["metrics"][metric_of_task] for m in members
                  if metric_of_task in m["metrics"]]
        if not values:
            continue
        n = len(values)
        mean = sum(values) / n
        if n > 1:
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
            ci = t_critical(n - 1) * sd / math.sqrt(n)
        else:
            ci = float("nan")
        board.append(
            LeaderboardRow(
                task, backbone, method, params, n, metric_of_task, mean, ci,
                sum(m["metrics"].get("macro_f1", float("nan")) for m in members) / n,
                sum(m["fit_seconds"] or 0.0 for m in members) / n,
                int(members[0]["trainable_params"] or 0), int(members[0]["total_params"] or 0),
            )
        )
    from transferlab.api import LOWER_IS_BETTER  # numpy: not for `--help`, which imports this

    board.sort(key=lambda r: (r.task, r.mean if r.metric in LOWER_IS_BETTER else -r.mean))
    return board


def _human_count(n: int) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def to_markdown(board: list[LeaderboardRow]) -> str:
    """One Markdown table per task."""
    out: list[str] = []
    for task in sorted({r.task for r in board}):
        rows = [r for r in board if r.task == task]
        metric = rows[0].metric
        out += [
            f"### {task}",
            "",
            f"| rank | backbone | method | params | {metric} (95% CI) | macro-F1 | seeds"
            " | fit s | trainable / total |",
            "|---:|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for rank, r in enumerate(rows, 1):
            ci = "" if math.isnan(r.ci95) else f" ± {r.ci95:.4f}"
            out.append(
                f"| {rank} | {r.backbone} | {r.method} | {r.params or '-'} | {r.mean:.4f}{ci}"
                f" | {r.macro_f1:.4f} | {r.seeds} | {r.fit_seconds:.1f}"
                f" | {_human_count(r.trainable_params)} / {_human_count(r.total_params)} |"
            )
        out.append("")
    return "\n".join(out)


def to_csv(board: list[LeaderboardRow]) -> str:
    buffer = io.StringIO()
    fields = list(LeaderboardRow.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in board:
        writer.writerow(asdict(row))
    return buffer.getvalue()


def to_json(board: list[LeaderboardRow]) -> str:
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
             for k, v in asdict(r).items()} for r in board]
    return json.dumps(rows, indent=2)


FORMATS = {"markdown": to_markdown, "csv": to_csv, "json": to_json}


def pretraining_provenance(board: list[LeaderboardRow], runs: Iterable[dict[str, Any]]
                           ) -> str:
    """A Markdown table saying which stored pretraining run wrote each ``NAME@PATH`` backbone
    of ``board`` (the latest run per checkpoint); empty when none did."""
    from pathlib import Path

    by_path: dict[str, dict[str, Any]] = {}
    for run in runs:
        by_path[run["checkpoint"]] = run
    lines = []
    for backbone in sorted({row.backbone for row in board}):
        _, at, tag = backbone.partition("@")
        if not at or tag == "random":
            continue
        run = by_path.get(tag) or by_path.get(str(Path(tag).resolve()))
        if run is None:
            continue
        objectives = " + ".join(f"{o['weight']:g} {o['setting']}" for o in run["objectives"])
        loss = "" if run["final_loss"] is None else f"{run['final_loss']:.4f}"
        lines.append(f"| {backbone} | {run['backbone']} | {objectives} | {run['data']} |"
                     f" {run['steps']} | {loss} |")
    if not lines:
        return ""
    return "\n".join(["| backbone | pretrained from | objectives | data | steps | final loss |",
                      "|---|---|---|---|---:|---:|", *lines])
