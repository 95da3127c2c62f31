"""``transferlab check``: run the conformance kit (:mod:`transferlab.testing`) on a plugin."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from transferlab.cli.options import data_dir_option, json_option
from transferlab.testing import CHECK_KINDS


@click.command()
@click.argument("target", metavar="DIST_OR_MODULE")
@click.option("-k", "--kind", "kinds", multiple=True, type=click.Choice(CHECK_KINDS),
              help="Check only components of this kind (repeatable); the plugin's `loads`"
              " check always runs.")
@click.option("-n", "--name", "names", multiple=True, metavar="NAME",
              help="Check only this component (repeatable), with parameter values if wanted;"
              " a name a pattern serves, e.g. 'timm:resnet18@random[img_size=32]'.")
@click.option("-q", "--quiet", is_flag=True, help="Print failures and the summary only.")
@data_dir_option
@json_option
def check(target: str, kinds: tuple[str, ...], names: tuple[str, ...], quiet: bool,
          data_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Check that a plugin keeps the contracts, and print a report.

    DIST_OR_MODULE is an installed distribution (its `transferlab` entry points;
    `transferlab` checks the built-in plugins), an importable module (registered directly,
    no entry point needed; the current folder is searched too) or a .py file. Every backbone,
    task, method, objective and score it registers runs its contract's checks on tiny
    offline inputs. Exits with status 1 when a check fails.
    """
    from transferlab.testing import run_checks

    here = os.getcwd()
    added = here not in sys.path
    if added:  # as `python -m` would: find a module in this folder
        sys.path.append(here)
    try:
        report = run_checks(target, kinds=kinds or None, names=names or None,
                            data_dirs=data_dirs)
    finally:
        if added:
            sys.path.remove(here)
    if as_json:
        click.echo(report.to_json())
    elif quiet:
        for result in report.failed:
            click.echo(f"FAIL  {result.id}\n      {result.message}")
        click.echo(report.summary())
    else:
        click.echo(report.render())
    if not report.ok:
        sys.exit(1)


COMMANDS = (check,)
