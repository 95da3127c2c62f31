"""Plot the loss curves of stored pretraining runs (``transferlab pretrain``, or the
``[[pretrain]]`` tables of a suite) from a results database, one panel per run, every
objective's own loss beside the weighted total.

    python benchmarks/pretrain_curves.py --db build/bench/pretrain.sqlite \\
        --out docs/pretrain_loss.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transferlab.harness.store import ResultsStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest: dict[str, dict] = {}
    for run in ResultsStore(args.db).pretraining_runs():
        latest[run["checkpoint"]] = run  # the newest record of each checkpoint
    runs = list(latest.values())
    if not runs:
        raise SystemExit(f"no pretraining runs in {args.db}")
    figure, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
    for axis, run in zip(axes[0], runs, strict=True):
        history = run["record"]["history"]
        steps = [h["step"] for h in history]
        names = [o["name"] for o in run["objectives"]]
        for name in names:
            axis.plot(steps, [h[name] for h in history], label=name, linewidth=1.2)
        if len(names) > 1:
            axis.plot(steps, [h["loss"] for h in history], label="weighted total",
                      color="black", linewidth=1.4)
        validation = run["validation_loss"]
        if validation is not None:
            axis.axhline(validation, color="grey", linestyle="--", linewidth=1,
                         label=f"validation {validation:.2f}")
        axis.set_title(f"{run['backbone']}: {' + '.join(names)}\n{run['data']}", fontsize=9)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("training loss")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    for run in runs:
        print(f"{run['backbone']} {'+'.join(o['name'] for o in run['objectives'])}"
              f" on {run['data']}: {run['steps']} steps, final loss {run['final_loss']:.4f},"
              f" validation loss {run['validation_loss']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
