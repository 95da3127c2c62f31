"""The HTML report (``transferlab report --format html``): one self-contained page.

The page holds the leaderboards of :func:`transferlab.harness.report.leaderboard` (one table
per task, mean and 95% CI over seeds, as the Markdown report shows them), plots of the metric
against trainable parameters (log scale) and against fit time, a bar chart per task with 95%
CI error bars, the domain-adaptation cells (``source->target``), the continual streams
(summary table and one accuracy-matrix heat map per strategy) and the cells whose latest
result failed.

Self-contained: the plots are PNG ``data:`` URIs drawn by matplotlib (Agg; the ``report``
extra, imported only here), the style sheet is inline, there is no script, and a
Content-Security-Policy forbids scripts and every network request. Every string that comes
from results or plugins (task, backbone, method and parameter names, error text) is escaped
with :func:`html.escape`; the plots carry such strings only as pixels.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

from transferlab.harness.continual_report import FIGURES, ContinualRow, continual_board
from transferlab.harness.report import LeaderboardRow, leaderboard

__all__ = ["render_html"]

MAX_BARS = 40  # a task's bar chart shows its best rows only beyond this
DPI = 80
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1rem 1.5rem; color: #1f2328; line-height: 1.4; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem;
       margin-top: 2rem; } h3 { margin-top: 1.5rem; word-break: break-word; }
nav ul { columns: 2; font-size: .9rem; } .muted { color: #57606a; font-size: .9rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .85rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; vertical-align: top; }
th { background: #f6f8fa; text-align: left; } td.num { text-align: right;
       font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; } td { word-break: break-word; }
figure { margin: .5rem 0 1rem; } figure img { max-width: 100%; height: auto;
       border: 1px solid #eaeef2; } figcaption { color: #57606a; font-size: .85rem; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; } .plots figure { flex: 1 1 420px; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: .5rem;
       font-size: .8rem; }
"""
# No scripts, no requests: images only from data: URIs, styles only inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def _mpl_label(text: str, limit: int = 0) -> str:
    """A data string as matplotlib draws it verbatim: ``$`` escaped (no math text: a method
    named ``a$b$`` neither renders as math nor breaks the parser), a leading ``_`` (which
    hides a legend entry) behind a space, and cut to ``limit`` characters when positive."""
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8}


def _matplotlib() -> Any:
    """The ``matplotlib`` package (imported lazily: the ``report`` extra). Figures are made
    with :class:`matplotlib.figure.Figure`, never pyplot: no global state, no backend."""
    try:
        import matplotlib
        import matplotlib.figure
        import matplotlib.lines
    except ImportError as exc:  # pragma: no cover - the report extra is part of `all`
        from transferlab.errors import TransferlabError

        raise TransferlabError("the HTML report needs matplotlib: pip install"
                               " 'transferlab[report]'") from exc
    return matplotlib


def _png(fig: Any) -> str:
    """``fig`` as a ``data:image/png;base64,...`` URI (Agg, :data:`DPI` dots per inch)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_html(uri: str, alt: str, caption: str) -> str:
    """An ``<img>`` of a plot with its (escaped) alternative text and caption."""
    return (f'<figure><img src="{uri}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _ci_text(mean: float, ci: float, digits: int = 4, scale: float = 1.0) -> str:
    """``mean ± ci`` as the Markdown report writes it (no ``±`` part for a single seed)."""
    text = f"{mean * scale:.{digits}f}"
    return text if math.isnan(ci) else f"{text} ± {ci * scale:.{digits}f}"


def _count(n: int) -> str:
    """A parameter count in the Markdown report's short form (``1.23M``, ``4.56k``)."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _row_label(row: LeaderboardRow) -> str:
    """One leaderboard row's name in plots: ``backbone · method [params]``."""
    return f"{row.backbone} · {row.method}" + (f" [{row.params}]" if row.params else "")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]],
           numeric: Sequence[bool]) -> str:
    """An HTML table; every header and cell is escaped here (callers pass raw strings)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for cells in rows:
        body.append("<tr>" + "".join(
            f'<td class="num">{_e(c)}</td>' if num else f"<td>{_e(c)}</td>"
            for c, num in zip(cells, numeric, strict=True)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _leaderboard_table(rows: Sequence[LeaderboardRow]) -> str:
    """One task's leaderboard with the Markdown report's columns and number formats (a
    missing macro-F1 shows ``-``, not ``nan``)."""
    metric = rows[0].metric
    headers = ["rank", "backbone", "method", "params", f"{metric} (95% CI)", "macro-F1",
               "seeds", "fit s", "trainable / total"]
    cells = [[str(rank), r.backbone, r.method, r.params or "-", _ci_text(r.mean, r.ci95),
              "-" if math.isnan(r.macro_f1) else f"{r.macro_f1:.4f}", str(r.seeds),
              f"{r.fit_seconds:.1f}",
              f"{_count(r.trainable_params)} / {_count(r.total_params)}"]
             for rank, r in enumerate(rows, 1)]
    return _table(headers, cells, [True, False, False, False, True, True, True, True, True])


def _bars(task: str, rows: Sequence[LeaderboardRow]) -> str:
    """A horizontal bar per leaderboard row of one task, 95% CI as error bars (best on top;
    only the best :data:`MAX_BARS` rows)."""
    mpl = _matplotlib()
    shown = list(rows[:MAX_BARS])
    with mpl.rc_context(RC):
        fig = mpl.figure.Figure(figsize=(7.5, 0.8 + 0.28 * len(shown)))
        ax = fig.subplots()
        positions = list(range(len(shown)))[::-1]
        errors = [0.0 if math.isnan(r.ci95) else r.ci95 for r in shown]
        ax.barh(positions, [r.mean for r in shown], xerr=errors, color="#4c78a8",
                ecolor="#333333", capsize=3, height=0.6)
        ax.set_yticks(positions, [_mpl_label(_row_label(r), 70) for r in shown])
        ax.set_xlabel(f"{shown[0].metric} (mean, 95% CI over seeds)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(_mpl_label(task), loc="left")
        uri = _png(fig)
    caption = f"{task}: {shown[0].metric} per row, error bars = 95% CI over seeds"
    if len(rows) > len(shown):
        caption += f" (best {len(shown)} of {len(rows)} rows)"
    return _figure_html(uri, f"bar chart of {task}", caption)


def _scatter(board: Sequence[LeaderboardRow], metric: str, x: str) -> str:
    """``metric`` against trainable parameters (``x="params"``) or fit seconds
    (``x="time"``), both on a log axis, one colour per task and one marker per method;
    values of 0 are drawn at the axis' floor (1 parameter, 0.01 s)."""
    mpl = _matplotlib()
    rows = [r for r in board if r.metric == metric]
    tasks = sorted({r.task for r in rows})
    methods = sorted({r.method for r in rows})
    markers = "osD^v<>pPX*h"
    floor = 1.0 if x == "params" else 0.01
    with mpl.rc_context(RC):
        fig = mpl.figure.Figure(figsize=(6.4, 4.2))
        ax = fig.subplots()
        cmap = mpl.colormaps["tab10"]
        for ti, task in enumerate(tasks):
            for mi, method in enumerate(methods):
                members = [r for r in rows if r.task == task and r.method == method]
                if not members:
                    continue
                xs = [max(floor, float(r.trainable_params if x == "params" else r.fit_seconds))
                      for r in members]
                ys = [r.mean for r in members]
                errs = [0.0 if math.isnan(r.ci95) else r.ci95 for r in members]
                ax.errorbar(xs, ys, yerr=errs, fmt=markers[mi % len(markers)],
                            color=cmap(ti % 10), ecolor=cmap(ti % 10), alpha=0.85,
                            markersize=6, capsize=2, linestyle="none")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log)" if x == "params" else "fit seconds (log)")
        ax.set_ylabel(f"{metric} (mean, 95% CI)")
        ax.grid(alpha=0.3, which="both")
        handles = [mpl.lines.Line2D([], [], color=cmap(i % 10), marker="o", linestyle="none",
                              label=_mpl_label(t, 40)) for i, t in enumerate(tasks[:20])]
        handles += [mpl.lines.Line2D([], [], color="#555555", marker=markers[i % len(markers)],
                               linestyle="none", label=_mpl_label(m, 40))
                    for i, m in enumerate(methods[:20])]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      frameon=False)
        if not rows:
            ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
        uri = _png(fig)
    what = "trainable parameters" if x == "params" else "fit time"
    caption = (f"{metric} against {what} (log scale); colour = task, marker = method;"
               f" error bars = 95% CI over seeds"
               + ("; 0 trainable parameters drawn at 1" if x == "params" else ""))
    return _figure_html(uri, f"{metric} against {what}", caption)


def _heatmap(row: ContinualRow) -> str:
    """One continual strategy's mean accuracy matrix (percent) as a heat map: row ``i`` =
    after training on experience ``i`` (a single ``joint`` row), column ``j`` = experience."""
    import numpy as np

    mpl = _matplotlib()
    matrix = np.asarray(row.matrix, dtype=float) * 100
    n_rows, n_cols = matrix.shape
    with mpl.rc_context(RC):
        fig = mpl.figure.Figure(figsize=(1.2 + 0.55 * n_cols, 0.9 + 0.45 * n_rows))
        ax = fig.subplots()
        image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(n_cols), [f"E{j}" for j in range(n_cols)])
        labels = ([f"after E{i}" for i in range(n_rows)] if n_rows == n_cols
                  else ["all (joint)"] * n_rows)
        ax.set_yticks(range(n_rows), labels)
        ax.set_xlabel("accuracy on experience")
        if n_cols <= 12:
            for i in range(n_rows):
                for j in range(n_cols):
                    ax.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] < 60 else "black")
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, label="%")
        uri = _png(fig)
    legend = ", ".join(f"E{j} = {name}" for j, name in enumerate(row.experiences))
    caption = (f"{row.strategy} ({row.method}, {row.backbone}): accuracy matrix in percent,"
               f" mean of {row.seeds} seed(s). {legend}")
    return _figure_html(uri, f"accuracy matrix of {row.strategy}", caption)


def _continual_section(board: Sequence[ContinualRow]) -> list[str]:
    """Per (stream, scenario): the summary table (percent, 95% CI) and the heat maps."""
    out = ['<section id="continual"><h2>Continual streams</h2>',
           '<p class="muted">Percent; mean and 95% CI over seeds. Average accuracy after the'
           " last experience, forgetting, backward transfer (BWT) and forward transfer.</p>"]
    for index, key in enumerate(sorted({(r.stream, r.scenario) for r in board})):
        rows = [r for r in board if (r.stream, r.scenario) == key]
        out.append(f'<h3 id="stream-{index}">{_e(key[1])}: {_e(key[0])}</h3>')
        cells = [[r.strategy, r.method, r.backbone, str(r.seeds)]
                 + [_ci_text(*r.figures[n], digits=1, scale=100) if n in r.figures else "-"
                    for n in FIGURES] for r in rows]
        out.append(_table(["strategy", "method", "backbone", "seeds", "average accuracy",
                           "forgetting", "BWT", "forward transfer"], cells,
                          [False] * 3 + [True] * 5))
        maps = [_heatmap(r) for r in rows if r.matrix]
        if maps:
            out.append('<div class="plots">' + "".join(maps) + "</div>")
    out.append("</section>")
    return out


def _failures(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells whose latest stored result is not ``ok`` (oldest first)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["cell_key"]] = row
    return [r for r in latest.values() if r["status"] != "ok"]


def _failure_section(failed: Sequence[dict[str, Any]]) -> list[str]:
    """A table of failed cells: each error's last line (the exception) shown, the whole
    text (a traceback) folded under it."""
    out = ['<section id="failures"><h2>Failed cells</h2>',
           f'<p class="muted">{len(failed)} cell(s) whose latest result is not ok.</p>',
           "<table><thead><tr><th>backbone</th><th>task</th><th>method</th><th>params</th>"
           "<th>seed</th><th>status</th><th>error</th></tr></thead><tbody>"]
    for row in failed:
        task = row["task"] if not row.get("source_task") else \
            f"{row['source_task']}->{row['task']}"
        if row.get("regime"):
            task = f"{row['regime']}({task})"
        params = ",".join(f"{k}={v}" for k, v in sorted((row.get("params") or {}).items()))
        error = str(row.get("error") or "")
        last = error.strip().splitlines()[-1] if error.strip() else "-"
        detail = (f"<details><summary>{_e(last)}</summary><pre>{_e(error)}</pre></details>"
                  if "\n" in error.strip() else _e(last))
        out.append(f"<tr><td>{_e(row['backbone'])}</td><td>{_e(task)}</td>"
                   f"<td>{_e(row['method'])}</td><td>{_e(params or '-')}</td>"
                   f'<td class="num">{_e(row["seed"])}</td><td>{_e(row["status"])}</td>'
                   f"<td>{detail}</td></tr>")
    out.append("</tbody></table></section>")
    return out


def _task_sections(board: Sequence[LeaderboardRow], tasks: Sequence[str], prefix: str
                   ) -> list[str]:
    """For each task: a heading, its leaderboard table and its bar chart."""
    out = []
    for index, task in enumerate(tasks):
        rows = [r for r in board if r.task == task]
        out += [f'<h3 id="{prefix}-{index}">{_e(task)}</h3>', _leaderboard_table(rows),
                _bars(task, rows)]
    return out


def render_html(rows: Iterable[dict[str, Any]], *, metric: str = "accuracy",
                title: str = "transferlab report") -> str:
    """The report of result ``rows`` (as :meth:`ResultsStore.rows
    <transferlab.harness.store.ResultsStore.rows>` returns them; failed rows are listed,
    not ranked) as one self-contained HTML page.

    Domain-adaptation cells (``source->target``) and continual streams get their own
    sections instead of the plain leaderboards; ``metric`` is ranked and plotted (a
    language-modelling task keeps its perplexity, as in :func:`leaderboard`)."""
    rows = list(rows)
    board = leaderboard(rows, metric=metric)
    continual = continual_board(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    adaptation = {f"{r['source_task']}->{r['task']}" for r in ok if r.get("source_task")}
    streams = {r["task"] for r in ok if str(r.get("regime") or "").startswith("continual")
               and not r.get("source_task")}
    all_tasks = sorted({r.task for r in board})
    plain = [t for t in all_tasks if t not in adaptation and t not in streams]
    adapted = [t for t in all_tasks if t in adaptation]
    failed = _failures(rows)

    toc = [f'<li><a href="#task-{i}">{_e(t)}</a></li>' for i, t in enumerate(plain)]
    toc += [f'<li><a href="#da-{i}">{_e(t)}</a></li>' for i, t in enumerate(adapted)]
    if continual:
        toc.append('<li><a href="#continual">continual streams</a></li>')
    if failed:
        toc.append('<li><a href="#failures">failed cells</a></li>')
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="muted">{len(ok)} successful result(s), {len(board)} leaderboard'
            f" row(s) over {len(all_tasks)} task(s); mean and 95% confidence interval over"
            f" seeds (Student t); {_e(metric)} is ranked.</p>"]
    if toc:
        body.append(f"<nav><ul>{''.join(toc)}</ul></nav>")
    if not board and not continual:
        body.append("<p><strong>No successful results.</strong></p>")
    if board:
        body += ['<section id="overview"><h2>Overview</h2>', _scatter(board, metric, "params"),
                 _scatter(board, metric, "time"), "</section>"]
    if plain:
        body += ['<section id="leaderboards"><h2>Leaderboards</h2>',
                 *_task_sections(board, plain, "task"), "</section>"]
    if adapted:
        body += ['<section id="domain-adaptation"><h2>Domain adaptation</h2>',
                 '<p class="muted">Trained on the labeled source and the unlabeled target,'
                 " scored on the target's test split.</p>",
                 *_task_sections(board, adapted, "da"), "</section>"]
    if continual:
        body += _continual_section(continual)
    if failed:
        body += _failure_section(failed)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        *body, "</body>", "</html>", ""])
