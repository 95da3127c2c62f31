"""``transferlab generate``: text from a causal language model (greedy or sampled)."""

from __future__ import annotations

from pathlib import Path

import click

from transferlab.cli.options import check_seeds, data_dir_option, device_option
from transferlab.errors import IncompatibleError
from transferlab.params import parse_assignments


@click.command()
@click.option("-b", "--backbone", required=True,
              help="A causal LM, e.g. gpt:tiny@model.safetensors or gpt:NAME.")
@click.option("--prompt", default="", show_default=True, help="Text to continue.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0: greedy (the most likely token each step); above 0: sampling.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sample from the k most likely tokens only (0: all).")
@click.option("--seed", default=0, show_default=True, type=int, callback=check_seeds)
@click.option("-B", "--backbone-param", "backbone_params", multiple=True, metavar="KEY=VALUE",
              help="Backbone parameter; repeatable.")
@device_option
@data_dir_option
def generate(backbone: str, prompt: str, max_tokens: int, temperature: float, top_k: int,
             seed: int, backbone_params: tuple[str, ...], device: str | None,
             data_dirs: tuple[Path, ...]) -> None:
    """Print PROMPT followed by BACKBONE's continuation of it."""
    from transferlab.harness.environment import default_device
    from transferlab.plugins import get_host

    registries = get_host(data_dirs=data_dirs).registries
    model = registries.backbones.create(backbone, parse_assignments(backbone_params))
    write = getattr(model, "generate", None)
    if write is None:
        raise IncompatibleError(f"backbone {backbone!r} cannot generate text; use a causal"
                                " language model such as gpt:tiny@PATH")
    text = write(prompt, max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                 seed=seed, device=device or default_device())
    click.echo(f"{prompt}{' ' if prompt and not prompt.endswith(' ') else ''}{text}")


COMMANDS = (generate,)
