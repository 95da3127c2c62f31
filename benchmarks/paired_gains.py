"""Paired gains of methods over a baseline method, from a results database.

Cells of the same task, backbone and seed share the initialisation and the data order, so the
per-seed difference ``accuracy(method) - accuracy(baseline)`` removes the seed-to-seed spread
that the separate intervals of ``transferlab report`` include. Prints, per task and method, the
mean paired difference in points with its 95% t-interval and the per-seed differences, as a
markdown table. Only seeds both sides have count; the latest successful cell of a seed wins.

    python benchmarks/paired_gains.py --db distill.sqlite --baseline finetune
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics

from scipy.stats import t as student_t


def accuracies(db: str, metric: str) -> dict[tuple[str, str, str, int], float]:
    """(task, backbone, method, seed) -> the metric of the latest successful cell."""
    found = {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task, backbone, method, seed, metrics FROM results"
                            " WHERE status = 'ok' ORDER BY id")
        for task, backbone, method, seed, metrics in rows:
            value = json.loads(metrics).get(metric)
            if isinstance(value, int | float) and math.isfinite(value):
                found[task, backbone, method, int(seed)] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--baseline", required=True, help="method name, e.g. finetune")
    parser.add_argument("--metric", default="accuracy")
    args = parser.parse_args()

    found = accuracies(args.db, args.metric)
    print(f"| task | method | gain over {args.baseline} (points, 95% CI) | per seed | seeds |")
    print("|---|---|---:|---|---:|")
    groups = sorted({(task, backbone, method) for task, backbone, method, _ in found
                     if method != args.baseline})
    for task, backbone, method in groups:
        diffs = [100 * (value - found[task, backbone, args.baseline, seed])
                 for (tk, bb, mt, seed), value in sorted(found.items())
                 if (tk, bb, mt) == (task, backbone, method)
                 and (task, backbone, args.baseline, seed) in found]
        if not diffs:
            continue
        mean = statistics.mean(diffs)
        if len(diffs) > 1:
            half = student_t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(
                len(diffs))
            spread = f"{mean:+.1f} ± {half:.1f}"
        else:
            spread = f"{mean:+.1f}"
        seeds = ", ".join(f"{d:+.1f}" for d in diffs)
        print(f"| {task} | {method} | {spread} | {seeds} | {len(diffs)} |")


if __name__ == "__main__":
    main()
