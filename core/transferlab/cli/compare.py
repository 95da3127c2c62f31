"""``transferlab compare``: are two methods (or backbones) really different?

The statistics are in :mod:`transferlab.harness.significance`; this module parses options,
prints Markdown or JSON and writes the critical-difference diagram.
"""

from __future__ import annotations

from pathlib import Path

import click

from transferlab.cli.options import db_option


@click.command()
@click.option("-m", "--method", "methods", multiple=True, metavar="METHOD",
              help="A method to compare (as the leaderboard names it); give two or more."
              " The first is compared with each other one.")
@click.option("-b", "--backbone", "backbones", multiple=True, metavar="BACKBONE",
              help="A backbone to compare, instead of methods; give two or more.")
@click.option("-t", "--task", "tasks", multiple=True, metavar="TASK",
              help="Only this task (as the leaderboard names it); repeatable. Default: every"
              " task with results.")
@click.option("--suite", default=None, help="Only results of this suite.")
@click.option("--metric", default="accuracy", show_default=True,
              help="Metric to compare (lower is better for perplexity and loss).")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="markdown",
              show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Write the critical-difference diagram to FILE (.png or"
              " .svg); needs results on two tasks or more.")
@db_option
def compare(methods: tuple[str, ...], backbones: tuple[str, ...], tasks: tuple[str, ...],
            suite: str | None, metric: str, fmt: str, plot: Path | None, db: str) -> None:
    """Test whether methods (-m) or backbones (-b) differ, from the results in --db.

    Give two sides or more: -m A -m B compares methods, -b X -b Y backbones; the first side is
    compared with each other one.

    A pair is both sides' results on the same task, seed and other settings (the backbone
    when methods are compared, the method when backbones are); each side needs one parameter
    setting per task. Per task and over all pairs: the mean difference B - A, a paired t-test
    and a Wilcoxon signed-rank test (from 6 pairs; fewer can never reach p < 0.05). On two
    tasks or more: average ranks, the Friedman test (3 sides or more) and the Nemenyi critical
    difference (Demšar 2006), meaningful from about 5 tasks.
    """
    from transferlab.errors import ParamError, TransferlabError

    if methods and backbones:
        raise ParamError("give methods (-m) or backbones (-b) to compare, not both; the other"
                         " dimension is what pairs are matched on")
    dimension, sides = ("backbone", backbones) if backbones else ("method", methods)
    if len(sides) < 2:
        raise ParamError(f"compare needs two sides or more, got {len(sides)}: pass"
                         " -m A -m B (methods) or -b X -b Y (backbones)")
    if not Path(db).exists():
        raise TransferlabError(f"no results file {db}; run `transferlab run` or pass --db")
    from transferlab.harness import significance
    from transferlab.harness.store import ResultsStore

    if plot is not None:
        significance.check_plot_path(plot)
    rows = ResultsStore(db).rows(suite=suite)
    if not rows:
        where = f" of suite {suite}" if suite else ""
        raise TransferlabError(f"no successful results{where} in {db}; run `transferlab"
                               " bench` or pass another --db or --suite")
    report = significance.compare(rows, dimension, sides, metric=metric, tasks=tasks)
    if plot is not None and report.ranks is None:
        raise ParamError("--plot draws ranks across tasks, and no two tasks have results of"
                         " every side; leave out --plot or add tasks")
    text = (significance.to_json if fmt == "json" else significance.to_markdown)(report)
    click.echo(text, nl=fmt == "json")
    if plot is not None and report.ranks is not None:
        written = significance.plot_cd_diagram(report.ranks, plot)
        click.echo(f"critical-difference diagram written to {written}", err=True)


COMMANDS = (compare,)
