"""``transferlab pretrain``: train a backbone on unlabeled data with pretraining objectives,
resumably, and save it as a checkpoint every command reads as ``BACKBONE@PATH``."""

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
from transferlab.errors import ParamError
from transferlab.params import parse_assignments


def _weights(pairs: tuple[str, ...]) -> dict[str, float]:
    weights = {}
    for name, value in parse_assignments(pairs).items():
        try:
            weights[name] = float(value)
        except ValueError:
            raise ParamError(f"--weight {name}={value}: the weight must be a number, e.g."
                             f" --weight {name}=0.5") from None
    return weights


@click.command()
@click.option("-b", "--backbone", required=True,
              help="Backbone to train, e.g. bert:tiny, gpt:tiny, timm:resnet18@random.")
@click.option("--objective", "objectives", multiple=True, required=True, metavar="SETTING",
              help="Pretraining objective, e.g. mlm or 'contrastive[temperature=0.2]';"
              " repeatable (their weighted sum is trained).")
@click.option("--weight", "weights", multiple=True, metavar="NAME=W",
              help="Weight of one objective in the sum (default 1); repeatable.")
@click.option("--corpus", "corpora", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="UTF-8 text file; its first 80% (contiguous) trains, the next 10%"
              " validates. Repeatable.")
@click.option("-t", "--task", default=None,
              help="Pretrain on this task's training inputs instead (labels ignored).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimizer steps.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Passes over the data (with --steps, the smaller budget wins).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this much training time (counted across resumes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4,
              show_default=True, help="Peak learning rate (AdamW, warm-up then cosine).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100,
              show_default=True, help="Steps between checkpoints.")
@click.option("-B", "--backbone-param", "backbone_params", multiple=True, metavar="KEY=VALUE",
              help="Backbone parameter (e.g. max_length=64, img_size=32); repeatable.")
@click.option("--seed", default=0, show_default=True, type=int, callback=check_seeds)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The safetensors checkpoint to write; checkpoints of the run go in"
              " OUT.checkpoints/ and a re-run resumes from them.")
@device_option
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@data_dir_option
@db_option
@json_option
def pretrain(backbone: str, objectives: tuple[str, ...], weights: tuple[str, ...],
             corpora: tuple[Path, ...], task: str | None, steps: int | None,
             epochs: int | None, seconds: float | None, batch_size: int, lr: float,
             checkpoint_every: int, backbone_params: tuple[str, ...], seed: int, out: Path,
             device: str | None, no_progress: bool, data_dirs: tuple[Path, ...], db: str,
             as_json: bool) -> None:
    """Pretrain BACKBONE with the given objectives on a corpus or a task's inputs.

    Ctrl-C stops after the current step with a checkpoint; the same command resumes, and ends
    with the weights an uninterrupted run would have. The run is recorded in --db.
    """
    from transferlab.plugins import get_host
    from transferlab.pretraining.command import PretrainRequest, run_request
    from transferlab.pretraining.loop import Interrupted, stop_on_sigint

    request = PretrainRequest(
        backbone=backbone, objectives=objectives, out=str(out), weights=_weights(weights),
        corpora=tuple(str(c) for c in corpora), task=task,
        backbone_params=parse_assignments(backbone_params), steps=steps, epochs=epochs,
        seconds=seconds, batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
        seed=seed)
    registries = get_host(data_dirs=data_dirs).registries
    try:
        with stop_on_sigint() as should_stop:
            record = run_request(request, registries, device=device, progress=not no_progress,
                                 db=db, should_stop=should_stop)
    except Interrupted as stop:
        click.echo(f"interrupted after step {stop.step}; run the same command to resume",
                   err=True)
        raise SystemExit(130) from None
    if as_json:
        click.echo(json.dumps({k: v for k, v in record.items() if k != "environment"},
                              indent=2, default=str))
        return
    resumed = f" (resumed at step {record['resumed_from']})" if record["resumed_from"] else ""
    validation = (f"  validation loss {record['validation_loss']:.4f}"
                  if record["validation_loss"] is not None else "")
    final = record["final_loss"]
    click.echo(f"{backbone} pretrained with {', '.join(objectives)} on {record['data']}:"
               f" {record['steps']} steps{resumed}, final loss"
               f" {final if final is None else round(final, 4)}{validation}")
    click.echo(f"{record['units_per_s']:,.0f} {record['unit']}/s over"
               f" {record['train_seconds']:.1f} s of training; saved {out} (use -b"
               f" {record['backbone'].split('@')[0]}@{out}; run stored in {db})")


COMMANDS = (pretrain,)
