"""What pretraining bought: a backbone against a baseline backbone (random init, or other
weights), cell by cell, from a results database.

Cells are paired when they share the task, the method with its parameters and the seed; a
task view's own ``seed=N`` (which labeled subsample) is treated as a seed too, so
``cifar10_subset[k_per_class=50,seed=1]`` pairs with the same view of the baseline and the
three subsamples pool into one row ``cifar10_subset[k_per_class=50]``. Prints per task and
method: each side's mean with its 95% t-interval over the pairs, and the mean paired
difference (backbone - baseline) with its interval and the per-pair values.

    python benchmarks/pretrain_gains.py --db build/bench/pretrain.sqlite \\
        --backbone 'bert:tiny@build/bench/pretrain/bert-wiki.safetensors' --baseline bert:tiny
    python benchmarks/pretrain_gains.py --db ... --metric perplexity --backbone ... --baseline ...
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import statistics
from collections import defaultdict

from scipy.stats import t as student_t

VIEW_SEED = re.compile(r"(?<=[\[,])seed=(\d+),?|,seed=(\d+)(?=\])")


def split_view_seed(task: str) -> tuple[str, int]:
    """``name[k=50,seed=2]`` -> (``name[k=50]``, 2); (task, 0) without a view seed."""
    match = VIEW_SEED.search(task)
    if match is None:
        return task, 0
    seed = int(match.group(1) or match.group(2))
    base = (task[:match.start()] + task[match.end():]).replace("[]", "").replace("[,", "[")
    return base.replace(",]", "]"), seed


def interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    half = student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(
        len(values))
    return mean, half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--metric", default="accuracy")
    args = parser.parse_args()
    values: dict[tuple[str, str, str, str], dict[tuple[int, int], float]] = defaultdict(dict)
    with sqlite3.connect(args.db) as conn:
        rows = conn.execute("SELECT task, backbone, method, params, seed, metrics FROM results"
                            " WHERE status = 'ok' ORDER BY id")
        for task, backbone, method, params, seed, metrics in rows:
            if backbone not in (args.backbone, args.baseline):
                continue
            value = json.loads(metrics).get(args.metric)
            if value is None:
                continue
            base, view_seed = split_view_seed(task)
            values[(base, method, params, backbone)][(seed, view_seed)] = float(value)
    by_method: dict[str, list[dict]] = defaultdict(list)
    for _, method, params, _ in values:
        by_method[method].append(json.loads(params))
    varying = {m: {k for k in ps[0] if len({json.dumps(p.get(k)) for p in ps}) > 1}
               for m, ps in by_method.items()}
    print(f"| task | method | params | pairs | {args.backbone} | {args.baseline} |"
          f" difference (95% CI) | per pair |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for (task, method, params, backbone), ours in sorted(values.items()):
        if backbone != args.backbone:
            continue
        theirs = values.get((task, method, params, args.baseline), {})
        keys = sorted(set(ours) & set(theirs))
        if not keys:
            continue
        a = interval([ours[k] for k in keys])
        b = interval([theirs[k] for k in keys])
        diffs = [ours[k] - theirs[k] for k in keys]
        d = interval(diffs)
        shown = ",".join(f"{k}={v}" for k, v in sorted(json.loads(params).items())
                         if k in varying[method]) or "-"
        print(f"| {task} | {method} | {shown} | {len(keys)} |"
              f" {a[0]:.4f} ± {a[1]:.4f} | {b[0]:.4f} ± {b[1]:.4f} |"
              f" {d[0]:+.4f} ± {d[1]:.4f} | {', '.join(f'{x:+.4f}' for x in diffs)} |")


if __name__ == "__main__":
    main()
