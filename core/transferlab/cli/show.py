"""``transferlab show``: one stored result, whole.

Every column of the row is printed: the cell, status, metrics, costs, the error, the
environment (package versions, which plugin distribution served each part, the git revision,
the data fingerprints) and the extra fields, a continual cell's accuracy matrix as a table.
``--json`` prints the row exactly as :meth:`transferlab.harness.store.ResultsStore.rows`
returns it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from transferlab.cli.options import db_option, json_option

MIN_PREFIX = 6  # characters of a cell key (24 in all) a prefix must have
MAX_LISTED = 5  # keys named in the error for an ambiguous prefix


@click.command()
@click.argument("key", required=False)
@click.option("--id", "row_id", type=click.IntRange(min=1), default=None, metavar="ID",
              help="The result row with this id (the same as KEY `#ID`).")
@click.option("--all", "all_rows", is_flag=True,
              help="Print every row of the cell (failed runs included), oldest first, not"
              " only the latest.")
@json_option
@db_option
def show(key: str | None, row_id: int | None, all_rows: bool, as_json: bool, db: str) -> None:
    """Print one stored result whole: cell, status, metrics, costs, error and environment.

    KEY is a cell key, or a unique prefix of one (6 characters or more), as `run --json`
    prints it; or `#ID`, a result row id (quote it in the shell: '#12'). A cell run several
    times (a failed run, then a successful one) has several rows: the latest is shown, with
    how many there are; --all prints them all. The environment holds the plugin distribution
    and version of the backbone, task and method, the git revision of the checkout and the
    fingerprints of the data. --json prints the stored row (a list of rows with --all).
    """
    from transferlab.errors import ParamError, TransferlabError
    from transferlab.harness.store import ResultsStore

    row_id = _row_id(key, row_id)
    if not Path(db).exists():
        raise TransferlabError(f"no results file {db}; run `transferlab run` or pass --db")
    store = ResultsStore(db)
    if row_id is not None:
        row = store.row(row_id)
        if row is None:
            last = store.last_id()
            ids = f"ids run from 1 to {last}" if last else "it has no results"
            raise TransferlabError(f"no result #{row_id} in {db} ({ids}); pass another id"
                                   " or --db")
        cell_rows = store.find(row["cell_key"])
    else:
        assert key is not None
        prefix = key.strip().lower()
        if len(prefix) < MIN_PREFIX:
            raise ParamError(f"cell key prefix {key!r} is too short: give {MIN_PREFIX}"
                             " characters or more, or a row id as '#ID'")
        cell_rows = store.find(prefix)
        keys = list(dict.fromkeys(r["cell_key"] for r in cell_rows))
        if not keys:
            raise TransferlabError(f"no result with a cell key starting with {prefix!r} in"
                                   f" {db}; check the key (`transferlab run --json` prints"
                                   " it) or pass a row id as '#ID', or another --db")
        if len(keys) > 1:
            named = ", ".join(keys[:MAX_LISTED]) + (
                f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")
            raise ParamError(f"cell key prefix {prefix!r} matches {len(keys)} cells ({named});"
                             " give more characters of the key")
        row = cell_rows[-1]
    chosen = cell_rows if all_rows else [row]
    if as_json:
        click.echo(json.dumps(chosen if all_rows else row, indent=2, sort_keys=True))
        return
    ids = [r["id"] for r in cell_rows]
    texts = [render(r, position=ids.index(r["id"]) + 1, count=len(ids), listed=all_rows)
             for r in chosen]
    click.echo("\n\n".join(texts))


def _row_id(key: str | None, row_id: int | None) -> int | None:
    from transferlab.errors import ParamError

    if key is not None and row_id is not None:
        raise ParamError("give a cell KEY or --id, not both")
    if key is None and row_id is None:
        raise ParamError("give the result to show: a cell key prefix (6 characters or more)"
                         " or a row id as '#ID' or --id ID")
    if key is not None and key.startswith("#"):
        if not key[1:].isdigit() or int(key[1:]) < 1:
            raise ParamError(f"{key!r} is not a row id: write '#' and a positive number,"
                             " like '#12'")
        return int(key[1:])
    return row_id


# --- rendering ---------------------------------------------------------------------------

_SHOWN = {"id", "cell_key", "suite", "backbone", "task", "method", "params",
          "backbone_params", "seed", "status", "metrics", "fit_seconds", "predict_seconds",
          "trainable_params", "total_params", "peak_memory_mb", "error", "environment",
          "extra", "finished_at", "source_task", "regime", "tasks"}


def render(row: dict[str, Any], *, position: int = 1, count: int = 1,
           listed: bool = False) -> str:
    """One stored result row as Markdown-ish text; ``position`` of ``count`` rows of its cell
    (``listed``: every row is being printed)."""
    out = [f"# Result #{row['id']}: {_label(row)}", ""]
    if count > 1:
        latest = ", the latest" if position == count else ""
        hint = "" if listed else "; --all prints every row"
        runs = f"row {position} of {count} of this cell{latest}{hint}"
    else:
        runs = "the only row of this cell"
    out += [f"- cell key: {row['cell_key']}", f"- {runs}",
            f"- status: {row['status']}",
            f"- finished at: {row['finished_at']}",
            f"- suite: {row.get('suite') or '(none)'}",
            "", "## Cell", "",
            f"- backbone: {row['backbone']}",
            f"- backbone params: {_inline(row['backbone_params'])}"]
    if row.get("source_task"):
        out.append(f"- source task: {row['source_task']}")
    out.append(f"- task: {row['task']}")
    if row.get("regime"):
        out += [f"- regime: {row['regime']}", f"- tasks: {', '.join(row.get('tasks') or [])}"]
    out += [f"- method: {row['method']}", f"- params: {_inline(row['params'])}",
            f"- seed: {row['seed']}", "", "## Metrics", ""]
    if row["metrics"]:
        out += ["| metric | value |", "|---|---:|"]
        out += [f"| {name} | {_number(value)} |" for name, value in row["metrics"].items()]
    else:
        out.append("(none)")
    out += ["", "## Costs", "",
            f"- fit: {_number(row['fit_seconds'])} s",
            f"- predict: {_number(row['predict_seconds'])} s",
            f"- weights: {_count(row['trainable_params'])} trainable of"
            f" {_count(row['total_params'])}",
            f"- peak memory: {_number(row['peak_memory_mb'])} MiB"]
    if row.get("error"):
        out += ["", "## Error", "", "```text", str(row["error"]), "```"]
    out += ["", *_environment(row["environment"])]
    out += ["", *_extra(row["extra"])]
    others = {k: v for k, v in row.items() if k not in _SHOWN}
    if others:
        out += ["", "## Other columns", "", *_fields(others)]
    return "\n".join(out).rstrip()


def _label(row: dict[str, Any]) -> str:
    task = row["task"]
    if row.get("source_task"):
        task = f"{row['source_task']}->{task}"
    if row.get("regime"):
        task = f"{row['regime']}({task})"
    return f"{row['backbone']} x {task} x {row['method']}"


def _environment(env: dict[str, Any]) -> list[str]:
    out = ["## Environment", ""]
    for name in ("python", "platform", "device"):
        if name in env:
            out.append(f"- {name}: {env[name]}")
    git = env.get("git")
    if isinstance(git, dict):
        dirty = " (dirty: uncommitted changes to tracked files)" if git.get("dirty") else ""
        out.append(f"- git revision: {git.get('commit')}{dirty}")
    else:
        out.append("- git revision: (not recorded: not run from a git checkout)")
    plugins = env.get("plugins")
    if plugins:
        out += ["", "### Plugins", "", "| part | name | plugin | distribution | version |",
                "|---|---|---|---|---|"]
        for role, found in plugins.items():
            out.append(f"| {role} | {found.get('name')} | {found.get('plugin')} |"
                       f" {found.get('distribution') or '-'} | {found.get('version') or '-'} |")
    fingerprints = env.get("fingerprints")
    if fingerprints:
        out += ["", "### Data fingerprints", "", "| part | fingerprint |", "|---|---|"]
        out += [f"| {role} | {value} |" for role, value in fingerprints.items()]
    packages = env.get("packages")
    if packages:
        out += ["", "### Packages", "", "| package | version |", "|---|---|"]
        out += [f"| {name} | {version} |" for name, version in packages.items()]
    others = {k: v for k, v in env.items()
              if k not in {"python", "platform", "device", "git", "plugins", "fingerprints",
                           "packages"} or (k == "git" and not isinstance(v, dict))}
    if others:
        out += ["", "### Other environment fields", "", *_fields(others)]
    return out


def _extra(extra: dict[str, Any]) -> list[str]:
    out = ["## Extra", ""]
    if not extra:
        return [*out, "(none)"]
    rest = dict(extra)
    matrix, experiences = rest.get("accuracy_matrix"), rest.get("experiences")
    if matrix and experiences:
        from transferlab.harness.continual_report import matrix_table

        rest.pop("accuracy_matrix")
        out += ["### Accuracy matrix (percent)", "", matrix_table(experiences, [matrix]), ""]
    return out + _fields(rest)


def _fields(values: dict[str, Any]) -> list[str]:
    """``- key: value`` lines; a flat mapping as a nested list, anything deeper as JSON."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict) and value and all(_scalar(v) for v in value.values()):
            out.append(f"- {key}:")
            out += [f"  - {k}: {_plain(v)}" for k, v in value.items()]
            continue
        text = _plain(value)
        if "\n" in text or len(text) > 80:
            text = json.dumps(value, indent=2, sort_keys=True, default=str)
            out += [f"- {key}:", "", "  ```json", *(f"  {line}" for line in
                                                     text.splitlines()), "  ```", ""]
        else:
            out.append(f"- {key}: {text}")
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _number(value)
    return json.dumps(value, sort_keys=True, default=str)


def _inline(params: dict[str, Any]) -> str:
    if not params:
        return "(none)"
    return ", ".join(f"{k}={_plain(v)}" for k, v in sorted(params.items()))


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value + 0.0:.6g}"  # + 0.0: -0.0 reads 0
    return str(value)


def _count(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


COMMANDS = (show,)
