"""``transferlab relate``: the task-relation map of a backbone (which tasks help which).

The work is in :mod:`transferlab.harness.relations`; this module parses options, prints the
gain tables (or JSON) and writes the heat map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from transferlab.cli.options import (
    check_seeds,
    data_dir_option,
    db_option,
    device_option,
    json_option,
)
from transferlab.params import parse_assignments


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _table(found: Any, label: str) -> list[str]:
    """One aligned gain table: rows fine-tuned on, columns transferred to, then the original
    backbone's accuracy per target."""
    tasks = found.tasks
    corner = "fine-tuned on \\ transferred to"
    first = max(len(corner), *(len(t) for t in tasks), len("original backbone"))
    width = max(8, *(len(t) for t in tasks))
    lines = [f"{label}: {found.metric} gain over {found.backbone}"
             f" (mean over {len(found.seeds)} seed{'s' * (len(found.seeds) > 1)})",
             f"  {corner:<{first}}  " + "  ".join(f"{t:>{width}}" for t in tasks)]
    for task, row in zip(tasks, found.matrix(label), strict=True):
        cells = ["-" if s == task else _signed(v) for s, v in zip(tasks, row, strict=True)]
        lines.append(f"  {task:<{first}}  " + "  ".join(f"{c:>{width}}" for c in cells))
    base = found.baselines[label]
    lines.append(f"  {'original backbone':<{first}}  " + "  ".join(
        f"{'n/a' if base[t] is None else f'{base[t]:.3f}':>{width}}" for t in tasks))
    return lines


def _verdicts(found: Any) -> list[str]:
    """Which transfers help, hurt, or cannot be told from noise."""
    lines = []
    # with one seed there is no interval: the verdict is the gain's sign
    basis = "gain" if len(found.seeds) == 1 else "interval"
    titles = (("helps", f"helps ({basis} above 0)"), ("hurts", f"hurts ({basis} below 0)"),
              ("unclear", "unclear (interval covers 0)"), ("no change", "no change"),
              ("missing", "missing (no result to compare)"))
    for verdict, title in titles:
        pairs = found.by_verdict(verdict)
        if not pairs:
            continue
        lines.append(f"{title}:")
        for label, gain in pairs:
            spread = f" +/- {gain.ci95:.3f}" if gain.ci95 is not None else ""
            amount = "" if gain.gain is None else f"  {_signed(gain.gain)}{spread}"
            lines.append(f"  {gain.source} -> {gain.target} ({label}){amount}")
    if len(found.seeds) == 1:
        lines.append("note: with one seed a gain's sign is all there is; pass several --seed"
                     " values to separate gains from noise (95% intervals)")
    return lines


@click.command()
@click.option("-t", "--task", "tasks", multiple=True, required=True, metavar="TASK",
              help="A task to relate (at least two), views allowed, e.g. cifar10_subset or"
              " 'digits[fraction=0.5]'; repeatable.")
@click.option("-b", "--backbone", required=True,
              help="Backbone to fine-tune and transfer, e.g. timm:efficientnet_lite0 or"
              " 'timm:efficientnet_lite0[img_size=64]'; its family must load @PATH"
              " checkpoints.")
@click.option("-B", "--backbone-param", "backbone_params", multiple=True, metavar="KEY=VALUE",
              help="Backbone parameter (e.g. img_size=64); repeatable.")
@click.option("-m", "--method", default="finetune", show_default=True,
              help="Method that fine-tunes the backbone on each task; it must train the"
              " backbone's own weights (finetune, lp-ft, bitfit, l2sp, llrd, freeze).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Parameter value of the fine-tuning method (e.g. epochs=3); repeatable.")
@click.option("--transfer-method", "transfer_methods", multiple=True, metavar="SETTING",
              help="How each backbone is transferred to each task, as a setting with its"
              " parameter values; repeatable. Default: linear-probe and"
              " 'finetune[max_steps=50]'.")
@click.option("--seed", "seeds", multiple=True, type=int, metavar="N", callback=check_seeds,
              help="Cell seed (fine-tuning and transfer); repeatable, gains are averaged over"
              " seeds with a 95% interval. Default: 0.")
@click.option("--out", default="relate", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the fine-tuned checkpoints (OUT/<backbone>/<task>-s<seed>-<key>"
              ".safetensors); existing ones are reused. Their paths are in the transfer cells'"
              " keys: resume from the same folder with the same --out.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Write the heat maps to FILE (.png or .svg).")
@device_option
@click.option("--no-progress", is_flag=True, help="Hide progress bars and notes.")
@data_dir_option
@db_option
@json_option
def relate(
    tasks: tuple[str, ...], backbone: str, backbone_params: tuple[str, ...], method: str,
    params: tuple[str, ...], transfer_methods: tuple[str, ...], seeds: tuple[int, ...],
    out: Path, plot: Path | None, device: str | None, no_progress: bool,
    data_dirs: tuple[Path, ...], db: str, as_json: bool,
) -> None:
    """Map which tasks help which: fine-tune BACKBONE on each TASK, transfer each fine-tuned
    backbone to every other task, and report the gain over transferring BACKBONE itself.

    gain[source][target] = accuracy(BACKBONE fine-tuned on source, transferred to target) -
    accuracy(BACKBONE transferred to target), one matrix per transfer method, mean over seeds.
    Every fit is an ordinary cell stored in --db (suite 'relate'); checkpoints in --out and
    finished cells are reused, so an interrupted map resumes where it stopped. The map is
    stored in --db too (table 'relations').
    """
    from transferlab.harness.relations import (
        check_plot_path,
        plan_relations,
        plot_relation_map,
        run_relations,
    )
    from transferlab.harness.store import ResultsStore
    from transferlab.plugins import get_host

    registries = get_host(data_dirs=data_dirs).registries
    if plot is not None:
        check_plot_path(plot)
    plan = plan_relations(
        backbone, tasks, registries, method=method, params=parse_assignments(params),
        backbone_params=parse_assignments(backbone_params),
        transfer_methods=transfer_methods or None, seeds=seeds or (0,), out=out)
    store = ResultsStore(db)
    quiet = no_progress

    def note(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    found, failures = run_relations(plan, registries, store, device=device,
                                    progress=not no_progress, note=note)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
    else:
        fine = "  ".join(f"{t} {'n/a' if v is None else f'{v:.3f}'}"
                         for t, v in found.fine_tuned.items())
        click.echo(f"{plan.method} on each task ({found.metric}): {fine}")
        for label in found.gains:
            click.echo("")
            click.echo("\n".join(_table(found, label)))
        click.echo("")
        click.echo("\n".join(_verdicts(found)))
    if plot is not None:
        written = plot_relation_map(found, plot)
        click.echo(f"heat map written to {written}", err=True)
    for line in failures:
        click.echo(f"FAILED {line}", err=True)
    if failures:
        raise SystemExit(1)


COMMANDS = (relate,)
