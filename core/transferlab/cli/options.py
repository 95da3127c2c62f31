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


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", default=None,
                        help="cpu or cuda (default: cuda when available).")(func)
