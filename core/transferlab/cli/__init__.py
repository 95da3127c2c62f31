"""The ``transferlab`` command line: a click group whose commands live one group per module.

Importing this module imports neither torch nor any plugin; plugins load when ``main`` runs
(each in isolation, so a broken plugin never breaks ``--help``).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

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


def exit_without_teardown(code: int | str | None) -> NoReturn:
    """Exit as ``sys.exit(code)`` would, minus the interpreter's teardown.

    With torch and timm imported, freeing every module's objects one by one took 1.4-2.5 s
    on the project's 2-core machine, after the work was done and stored (``python -c "import
    torch"`` alone spends 1.4 s exiting). What a normal exit guarantees still happens:
    threads that are not daemons are joined, atexit handlers run (multiprocessing's clean-up,
    ``weakref.finalize`` callbacks such as temporary folders), and both streams are flushed.
    """
    import atexit
    import contextlib
    import os
    import threading

    if code is not None and not isinstance(code, int):  # sys.exit("message"): status 1
        print(code, file=sys.stderr)
        code = 1
    main_thread = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main_thread and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to deliver
            stream.flush()
    os._exit(code or 0)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: load plugin commands, then dispatch; the process ends
    without the interpreter's teardown (:func:`exit_without_teardown`)."""
    try:
        from transferlab.plugins import get_host

        get_host().add_commands(cli)
    except TransferlabError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    try:
        cli.main(args=argv, prog_name="transferlab")
    except SystemExit as exc:  # click ends every command this way
        exit_without_teardown(exc.code)
    exit_without_teardown(0)
