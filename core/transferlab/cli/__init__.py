"""The ``transferlab`` command line: a click group whose commands live one group per module.

Importing this module imports neither torch nor any plugin; plugins load when ``main`` runs
(each in isolation, so a broken plugin never breaks ``--help``).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from transferlab import __version__
from transferlab.errors import TransferlabError


class TransferlabGroup(click.Group):
    """A click group that turns :class:`TransferlabError` into one clean error line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TransferlabError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=TransferlabGroup)
@click.version_option(__version__, prog_name="transferlab")
def cli() -> None:
    """Benchmark transfer-learning strategies: backbones x tasks x methods x seeds."""


def _add_builtin_commands() -> None:
    from transferlab.cli import (
        bench,
        cache,
        check,
        compare,
        generate,
        inspect,
        new,
        pretrain,
        rank,
        relate,
        run,
        show,
    )

    for command in (*inspect.COMMANDS, run.run, *bench.COMMANDS, *compare.COMMANDS,
                    *show.COMMANDS, *cache.COMMANDS, *check.COMMANDS, *rank.COMMANDS,
                    *relate.COMMANDS, *pretrain.COMMANDS, *generate.COMMANDS, new.new):
        cli.add_command(command)


_add_builtin_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: load plugin commands, then dispatch."""
    try:
        from transferlab.plugins import get_host

        get_host().add_commands(cli)
    except TransferlabError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli.main(args=argv, prog_name="transferlab")
