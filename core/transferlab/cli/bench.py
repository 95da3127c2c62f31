"""``transferlab bench`` (run a suite, resuming) and ``transferlab report`` (leaderboards)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from transferlab.cli.options import data_dir_option, db_option, device_option
from transferlab.harness.report import FORMATS

if TYPE_CHECKING:
    from transferlab.harness.cell import Cell, CellResult


def _run_with_host(
    cell: Cell, data_dirs: tuple[Path, ...], device: str | None, progress: bool,
    work_dir: Path | None = None, threads: int | None = None,
) -> CellResult:
    """Run one cell with this process's plugin host (picklable for process executors);
    ``threads`` caps torch's, BLAS's and OpenMP's threads (N workers share the cores, never
    oversubscribe them)."""
    from transferlab.harness.cell import run_cell
    from transferlab.plugins import get_host

    if threads is not None:
        from transferlab.threads import limit_threads

        limit_threads(threads)

    return run_cell(cell, get_host(data_dirs=data_dirs).registries, device=device,
                    progress=progress, feature_store=_shared_features(), work_dir=work_dir)


def _threads_per_worker(workers: int) -> int:
    """The torch threads each of ``workers`` parallel cells gets: the CPUs this process may
    use, split evenly (at least one)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // workers)


def work_dir_for(db: str) -> Path:
    """Where cells of results file ``db`` keep resumable state (a continual stream's
    checkpoints): ``STEM.work/`` beside it."""
    path = Path(db)
    return path.parent / f"{path.stem}.work"


@functools.cache
def _shared_features() -> object:
    from transferlab.harness.features import FeatureStore

    return FeatureStore()


def _echo_provenance(board: list, store: object, fmt: str) -> None:
    """Under a Markdown leaderboard, which pretraining run produced each NAME@PATH backbone."""
    from transferlab.harness.report import pretraining_provenance

    table = pretraining_provenance(board, store.pretraining_runs()) if fmt == "markdown" else ""
    if table:
        click.echo("\nPretrained backbones:\n\n" + table)


def _echo_continual(rows: list, fmt: str) -> None:
    """Under a Markdown leaderboard, each continual stream's figures and accuracy matrices."""
    from transferlab.harness.continual_report import continual_board, to_markdown

    board = continual_board(rows) if fmt == "markdown" else []
    if board:
        click.echo("\nContinual streams (percent; 95% CI over seeds):\n\n" + to_markdown(board))


@click.command()
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--executor", default="local", show_default=True,
              help="local, process, ray, or a plugin's (`transferlab list executors`).")
@click.option("-E", "--executor-param", "executor_params", multiple=True, metavar="KEY=VALUE",
              help="An executor parameter (`transferlab list executors`); repeatable.")
@click.option("--address", default=None, metavar="ADDR",
              help="With --executor ray: the Ray cluster to join (HOST:PORT); default: a local"
              " Ray for this suite.")
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Cells run in parallel (worker processes of the process executor); the CPU"
              " threads are split between them.")
@device_option
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="markdown")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("-q", "--quiet", is_flag=True,
              help="For logs: no progress bars, one line per finished cell (with the ETA).")
@data_dir_option
@db_option
def bench(
    suite_file: Path, executor: str, executor_params: tuple[str, ...], address: str | None,
    workers: int, device: str | None, fmt: str, no_progress: bool, quiet: bool,
    data_dirs: tuple[Path, ...], db: str,
) -> None:
    """Run every cell of SUITE_FILE (TOML), skipping finished ones, then print the leaderboard.

    Any number of bench processes may run the same suite on the same --db at once: they split
    the cells between them (each claims a cell before running it), and a cell whose worker
    was killed is taken over."""
    from transferlab.harness.report import leaderboard
    from transferlab.harness.store import ResultsStore
    from transferlab.harness.suite import load_suite, run_suite, validate_suite
    from transferlab.plugins import get_host

    registries = get_host(data_dirs=data_dirs).registries
    suite = load_suite(suite_file)
    if workers > 1 and executor == "local":
        executor = "process"
    from transferlab.params import parse_assignments

    params = parse_assignments(executor_params)
    if workers > 1 or executor == "process":
        params.setdefault("workers", workers)
    if address is not None:
        params["address"] = address
    runner = registries.executors.create(executor, params)
    # `-E workers=N` parallelises as much as `--workers N`: split the threads for either
    parallel = getattr(runner, "workers", workers)
    threads = _threads_per_worker(parallel) if parallel > 1 else None
    no_progress = no_progress or quiet
    store = ResultsStore(db)
    if suite.pretraining:
        from transferlab.pretraining.command import run_request

        validate_suite(suite, registries, before_pretraining=True,  # a bad cell fails first
                       device=device)

        for request in suite.pretraining:  # resumes or re-saves; backbones need the files
            click.echo(f"pretraining {request.backbone} -> {request.out}", err=True)
            run_request(request, registries, device=device, progress=not no_progress, db=db)
    run_one = functools.partial(
        _run_with_host, data_dirs=data_dirs, device=device,
        progress=not no_progress and parallel == 1, work_dir=work_dir_for(db), threads=threads,
    )
    failures = skipped = ran = 0
    start = time.perf_counter()
    for result, cell in run_suite(suite, registries, store, runner, run_one,
                                  progress=not no_progress, device=device):
        if result is None:
            skipped += 1
            continue
        ran += 1
        if result.status != "ok":
            failures += 1
            click.echo(f"FAILED {cell.short_label(registries)} seed={cell.seed}: {result.error}",
                       err=True)
        if quiet:
            left = len(suite.cells) - skipped - ran
            eta = (time.perf_counter() - start) / ran * left
            click.echo(f"[{skipped + ran}/{len(suite.cells)}] {result.status}"
                       f" {cell.short_label(registries)} seed={cell.seed}"
                       f" ({result.fit_seconds:.1f}s fit);"
                       f" {failures} failed, ETA {eta:.0f}s", err=True)
    click.echo(f"suite {suite.name}: {len(suite.cells)} cells, {skipped} already finished,"
               f" {failures} failed; results in {db}", err=True)
    rows = store.rows(suite=suite.name)
    board = leaderboard(rows)
    click.echo(FORMATS[fmt](board))
    _echo_provenance(board, store, fmt)
    _echo_continual(rows, fmt)
    if failures:
        raise SystemExit(1)


@click.command()
@click.option("--suite", default=None, help="Only results of this suite.")
@click.option("--metric", default="accuracy", show_default=True)
@click.option("--format", "fmt", type=click.Choice(sorted([*FORMATS, "html"])),
              default="markdown", help="html: one self-contained page with plots (needs"
              " matplotlib, the report extra).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --format html: the file to write (default: standard output). The"
              " other formats always print.")
@db_option
def report(suite: str | None, metric: str, fmt: str, out: Path | None, db: str) -> None:
    """Print leaderboards (mean and 95% CI over seeds) from the results in --db.

    `--format html --out report.html` writes one self-contained page instead: the
    leaderboards, plots of the metric against trainable parameters and fit time, a bar chart
    per task, domain adaptation, continual streams (heat maps) and failed cells."""
    from transferlab.errors import TransferlabError
    from transferlab.harness.report import leaderboard
    from transferlab.harness.store import ResultsStore

    if out is not None and fmt != "html":
        raise click.UsageError("--out needs --format html (the other formats print; redirect"
                               " them with >)")
    if not Path(db).exists():
        raise TransferlabError(f"no results file {db}; run `transferlab run` or pass --db")
    store = ResultsStore(db)
    if fmt == "html":
        _write_html(store.rows(suite=suite, status=None), metric, suite, db, out)
        return
    rows = store.rows(suite=suite)
    board = leaderboard(rows, metric=metric)
    click.echo(FORMATS[fmt](board))
    _echo_provenance(board, store, fmt)
    _echo_continual(rows, fmt)


def _write_html(rows: list, metric: str, suite: str | None, db: str, out: Path | None
                ) -> None:
    """The HTML report of ``rows`` (failed ones included: the page lists them) into ``out``,
    or on standard output."""
    from transferlab.harness.html_report import render_html

    title = f"transferlab report: {Path(db).name}" + (f", suite {suite}" if suite else "")
    page = render_html(rows, metric=metric, title=title)
    if out is None:
        click.echo(page, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


COMMANDS = (bench, report)
