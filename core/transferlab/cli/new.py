"""``transferlab new``: write a pip-installable plugin package with a working example."""

from __future__ import annotations

from pathlib import Path

import click

from transferlab.scaffold import SCAFFOLD_KINDS


@click.command()
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(SCAFFOLD_KINDS),
              help="Which sort of component the example is.")
@click.option("--dir", "directory", default=".", show_default=True,
              type=click.Path(path_type=Path),
              help="Folder to create the package in (made if missing).")
def new(name: str, kind: str, directory: Path) -> None:
    """Create the plugin package transferlab-NAME registering a working KIND called NAME.

    It holds a pyproject.toml with the `transferlab` entry point, one module with the
    example, tests that run the conformance kit, and a README. NAME is lowercase letters,
    digits and hyphens (e.g. my-method); nothing existing is ever overwritten.
    """
    from transferlab.scaffold import create_plugin, plugin_names

    names = plugin_names(name, kind)
    target = create_plugin(name, kind, directory)
    click.echo(f"created {target}/ (distribution {names.distribution}, module"
               f" {names.module}.py, {kind} {name!r})")
    click.echo("next:")
    click.echo(f"  pip install -e {target}")
    click.echo(f"  transferlab check {names.distribution}")
    click.echo(f"  cd {target} && pytest")
