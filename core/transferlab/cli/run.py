"""``transferlab run``: one cell (backbone x task x method x seed), stored and printed.

``--regime`` with several ``-t`` fine-tunes the tasks together (multi-task) or one after
another (continual, printing the accuracy matrix). ``--source-task S`` makes it a
domain-adaptation cell: the method trains on S's labeled
training split plus the unlabeled training inputs of ``-t`` and is scored on ``-t``'s test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from transferlab.cli.options import (
    check_seeds,
    data_dir_option,
    db_option,
    device_option,
    json_option,
)
from transferlab.params import parse_assignments


@click.command()
@click.option("-b", "--backbone", required=True, help="Backbone, e.g. timm:efficientnet_lite0.")
@click.option("-t", "--task", "tasks", required=True, multiple=True,
              help="Task name, e.g. digits or csv:DIR; repeat it with --regime.")
@click.option("-m", "--method", required=True, help="Transfer method, e.g. linear-probe.")
@click.option("--source-task", default=None, metavar="TASK",
              help="Domain adaptation: labeled source task (same labels as -t, which is then"
              " the unlabeled target scored on its test split), e.g. mnist_subset.")
@click.option("-r", "--regime", default=None, metavar="SETTING",
              help="Fine-tune the -t tasks together: multi-task[...] or continual[strategy=..."
              ",scenario=...] (`transferlab list strategies`); default: one task.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Method hyper-parameter; repeatable.")
@click.option("-B", "--backbone-param", "backbone_params", multiple=True, metavar="KEY=VALUE",
              help="Backbone parameter (e.g. img_size=96); repeatable.")
@click.option("--seed", default=0, show_default=True, type=int, callback=check_seeds)
@device_option
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@data_dir_option
@db_option
@json_option
def run(
    backbone: str, tasks: tuple[str, ...], method: str, source_task: str | None,
    regime: str | None, params: tuple[str, ...],
    backbone_params: tuple[str, ...], seed: int, device: str | None, no_progress: bool,
    data_dirs: tuple[Path, ...], db: str, as_json: bool,
) -> None:
    """Fit METHOD on BACKBONE for TASK, score the test split, store the result in --db."""
    from transferlab.cli.bench import work_dir_for
    from transferlab.harness.cell import Cell, run_cell, validate_cell
    from transferlab.harness.store import ResultsStore
    from transferlab.plugins import get_host

    registries = get_host(data_dirs=data_dirs).registries
    if regime is None and len(tasks) > 1:
        raise click.UsageError("several -t tasks need --regime (multi-task or continual[...])")
    cell = Cell(backbone, tasks[0], method, parse_assignments(params),
                parse_assignments(backbone_params), seed, source_task, regime,
                tasks if regime is not None else ())
    cell = validate_cell(cell, registries)  # bad names or values fail before any work
    store = ResultsStore(db)
    result = run_cell(cell, registries, device=device, progress=not no_progress,
                      work_dir=work_dir_for(db))
    store.add(result)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif result.status == "ok":
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in result.metrics.items())
        click.echo(f"{cell.label()} seed={seed}: {metrics}")
        if "accuracy_matrix" in result.extra:
            from transferlab.harness.continual_report import matrix_table

            click.echo(matrix_table(result.extra["experiences"],
                                    [result.extra["accuracy_matrix"]]))
        click.echo(
            f"fit {result.fit_seconds:.1f}s  predict {result.predict_seconds:.1f}s  trainable"
            f" {result.trainable_params:,} / {result.total_params:,} params"
            f"  peak {result.peak_memory_mb:.0f} MiB  (stored in {db})"
        )
    if result.status != "ok":
        raise click.ClickException(f"{cell.short_label(registries)} seed={seed} failed:"
                                   f" {result.error}")
