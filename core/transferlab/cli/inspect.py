"""``transferlab plugins`` and ``transferlab list``: what is installed and registered."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from transferlab.cli.options import data_dir_option, json_option
from transferlab.plugins import get_host
from transferlab.registry import KINDS


@click.command()
@json_option
def plugins(as_json: bool) -> None:
    """Installed plugins: name, version, hooks, what each registered, load errors."""
    host = get_host()
    host.registries  # noqa: B018 - calling the hooks fills `registered` and `errors`
    infos = [asdict(info) for info in sorted(host.plugins.values(), key=lambda i: i.name)]
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        version = info["version"] or "?"
        status = "ERROR" if info["errors"] else "ok"
        click.echo(f"{info['name']} ({info['distribution'] or '?'} {version}) [{status}]")
        click.echo(f"  module: {info['module']}")
        click.echo(f"  hooks: {', '.join(info['hooks']) or '(none)'}")
        for kind, names in info["registered"].items():
            if names:
                click.echo(f"  {kind}: {', '.join(names)}")
        for error in info["errors"]:
            click.echo(f"  error: {error}")
        for conflict in info["conflicts"]:
            click.echo(f"  conflict: {conflict}")


@click.command(name="list")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("pattern", required=False)
@data_dir_option
@json_option
def list_(kind: str, pattern: str | None, data_dirs: tuple[Path, ...], as_json: bool) -> None:
    """List registered backbones, tasks, methods, objectives, executors or scores.

    PATTERN is an fnmatch wildcard, e.g. 'timm:*' or '*probe*'.
    """
    registry = get_host(data_dirs=data_dirs).registries.of(kind)
    entries = [e for e in registry if e.name in set(registry.names(pattern))]
    if as_json:
        click.echo(json.dumps([e.describe() for e in entries], indent=2, default=str))
        return
    if not entries:
        click.echo(f"no {kind} match {pattern!r}" if pattern else f"no {kind} registered")
        return
    width = max(len(e.name) for e in entries)
    for entry in entries:
        details = "  ".join(
            f"{k}={v}" for k, v in entry.describe().items()
            if k not in {"name", "plugin", "summary", "params"} and not isinstance(v, list | dict)
        )
        click.echo(f"{entry.name:<{width}}  {entry.summary}")
        meta = f"plugin={entry.plugin}" + (f"  {details}" if details else "")
        click.echo(f"{'':<{width}}  {meta}")
        for param in entry.params:
            limits = param.constraint_text()
            limits = f"  [{limits}]" if limits else ""
            click.echo(f"{'':<{width}}    {param.name}={param.default!r}  {param.help}{limits}")


COMMANDS = (plugins, list_)
