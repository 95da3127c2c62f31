"""``transferlab cache info|clear``: the on-disk feature cache (see harness/features.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from transferlab.cli.options import json_option


def _cache_dir(path: Path | None) -> Path:
    from transferlab.errors import TransferlabError
    from transferlab.harness.features import CACHE_ENV, default_cache_dir

    folder = path or default_cache_dir()
    if folder is None:
        raise TransferlabError(f"the feature cache is disabled ({CACHE_ENV}=off); set"
                               f" {CACHE_ENV} to a folder or pass --cache-dir")
    return folder


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


cache_dir_option = click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Cache folder (default: TRANSFERLAB_CACHE or ~/.cache/transferlab/features).",
)


@click.group()
def cache() -> None:
    """Inspect or empty the on-disk cache of frozen backbone features."""


@cache.command()
@cache_dir_option
@json_option
def info(cache_dir: Path | None, as_json: bool) -> None:
    """Where the cache is, how big, and one line per stored (backbone, task, split)."""
    from dataclasses import asdict

    from transferlab.harness.features import DiskFeatureCache

    folder = _cache_dir(cache_dir)
    entries = DiskFeatureCache(folder).entries()
    total = sum(e.bytes for e in entries)
    if as_json:
        click.echo(json.dumps({"path": str(folder), "entries": [asdict(e) for e in entries],
                               "bytes": total}, indent=2))
        return
    click.echo(f"{folder}: {len(entries)} entries, {_human_bytes(total)}")
    for e in entries:
        shape = "x".join(map(str, e.shape))
        click.echo(f"  {e.key[:12]}  {e.backbone}  {e.task}/{e.split}  [{shape}]"
                   f"  {_human_bytes(e.bytes)}  {e.created}")


@cache.command()
@cache_dir_option
def clear(cache_dir: Path | None) -> None:
    """Delete every cached feature file (they are recomputed on next use)."""
    from transferlab.harness.features import DiskFeatureCache

    folder = _cache_dir(cache_dir)
    removed = DiskFeatureCache(folder).clear()
    click.echo(f"removed {removed} files from {folder}")


COMMANDS = (cache,)
