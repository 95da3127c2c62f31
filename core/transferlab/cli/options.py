"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DEFAULT_DB = "transferlab.sqlite"


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir", "data_dirs", multiple=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Folder whose subfolders (CSV or image-folder layout) become tasks; repeatable."
        " Also read from TRANSFERLAB_DATA.",
    )(func)


def db_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", default=DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
        envvar="TRANSFERLAB_DB", help="SQLite results file.",
    )(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def _check_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--device``: cpu, cuda, cuda:N or mps, and usable here (torch is imported only for a
    device other than cpu); a bad one fails at once with one line."""
    if value is None:
        return None
    from transferlab.harness.validation import check_device

    return check_device(value)


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", default=None, callback=_check_device,
                        help="cpu, cuda, cuda:N or mps (default: cuda when available).")(func)


def check_seeds(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of a ``--seed`` option (one value or several): each an integer from 0 to
    2**32 - 1, or the command fails at once with one line."""
    from transferlab.harness.validation import check_seed

    for seed in value if isinstance(value, tuple) else (value,):
        if seed is not None:
            check_seed(seed, "--seed", "--seed 0")
    return value
