"""The HTML report (``transferlab report --format html``): its content against the Markdown
report, escaping of every data string, self-containment, the CLI, and the page in a real
headless Chromium (skipped where no browser can be had)."""

from __future__ import annotations

import base64
import importlib.util
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest

from transferlab.cli import cli
from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.continual_report import continual_board
from transferlab.harness.continual_report import to_markdown as continual_markdown
from transferlab.harness.html_report import MAX_BARS, render_html
from transferlab.harness.report import leaderboard, to_markdown
from transferlab.harness.store import ResultsStore

pytest.importorskip("matplotlib", reason="the HTML report draws with matplotlib (report extra)")

DOCS = Path(__file__).resolve().parents[1] / "docs"
EVIL = "<script>alert(1)</script>"
EVIL_IMG = "<img src=x onerror=alert(2)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_report_screenshot",
                                                  DOCS / "gen_report_screenshot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


DEMO = _load_demo()


class _Page(HTMLParser):
    """The parts of a page the tests look at: table rows (cell text, unescaped), every
    ``src``/``href`` value, the tags used, and the text of headings."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        for part in (self._cell, self._heading):
            if part is not None:
                part.append(data)


def _markdown_rows(markdown: str) -> list[list[str]]:
    """The cells of every data row of Markdown tables (no header or rule rows)."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [r for r in rows if r[0] not in ("rank", "strategy", "after \\ on")]


@pytest.fixture(scope="module")
def demo_rows(tmp_path_factory):
    return DEMO.demo_store(tmp_path_factory.mktemp("demo") / "demo.sqlite").rows(status=None)


@pytest.fixture(scope="module")
def demo_page(demo_rows) -> str:
    return render_html(demo_rows, title="demo")


def _evil_rows(tmp_path: Path) -> list[dict]:
    """Results whose every data string is markup: task, source task, backbone, method,
    parameter names and values, continual strategy and experiences, error text."""
    store = ResultsStore(tmp_path / "evil.sqlite")
    for seed in (0, 1):
        for method, value in ((EVIL, EVIL_IMG), (f"m{EVIL_IMG}", "v")):
            cell = Cell(f"b{EVIL}", EVIL, method, {EVIL: value}, {"x": f"{value}"}, seed)
            store.add(CellResult(cell, "ok", {"accuracy": 0.5 + 0.1 * seed}, 1.0, 0.1, 10,
                                 100))
        da = Cell("b", f"t{EVIL}", "m", {}, {}, seed, source_task=f"s{EVIL_IMG}")
        store.add(CellResult(da, "ok", {"accuracy": 0.6}, 1.0, 0.1, 10, 100))
        stream = (f"e0{EVIL}", f"e1{EVIL_IMG}")
        continual = Cell("b", " -> ".join(stream), "m", {}, {}, seed, regime="continual",
                         tasks=stream)
        extra = {"regime": "continual", "scenario": f"sc{EVIL}", "strategy": f"st{EVIL}",
                 "experiences": list(stream), "accuracy_matrix": [[1.0, 0.5], [0.8, 0.9]]}
        store.add(CellResult(continual, "ok", {"accuracy": 0.85, "average_accuracy": 0.85,
                                               "forgetting": 0.2, "bwt": -0.2}, 1.0, 0.1, 10,
                             100, extra=extra))
    failed = Cell("b", "t", "m", {}, {}, 0)
    store.add(CellResult(failed, "error", error=f"Traceback\n  {EVIL}\nValueError: {EVIL_IMG}"))
    return store.rows(status=None)


# --- content ---------------------------------------------------------------------------------


def test_the_page_has_every_section_of_the_demo_results(demo_page):
    """Bug caught: a section silently missing from the page (the domain-adaptation pair
    ranked among the plain tasks or dropped, no heat map for a continual strategy, the
    single-row matrix of ``joint`` crashing the heat map, failed cells not listed)."""
    page = _Page(demo_page)
    for heading in ("Overview", "Leaderboards", "cifar10_subset", "digits",
                    "Domain adaptation", "mnist_subset->usps", "Continual streams",
                    "Failed cells"):
        assert heading in page.headings, heading
    assert page.headings.index("mnist_subset->usps") > page.headings.index("Domain adaptation")
    assert page.headings.index("digits") < page.headings.index("Domain adaptation")
    images = [link for link in page.links if link.startswith("data:image/png")]
    assert len(images) == 2 + 3 + 3  # two scatter plots, a bar chart per task, three maps
    assert demo_page.count('alt="accuracy matrix of ') == 3
    assert "accuracy against trainable parameters" in demo_page
    assert "accuracy against fit time" in demo_page
    assert "ValueError: bottleneck must be positive" in demo_page
    assert "E0 = mnist_subset[classes=0+1]" in demo_page


def test_leaderboards_and_continual_tables_match_the_markdown_report(demo_rows, demo_page):
    """Bug caught: the HTML tables aggregating, ranking or rounding differently from the
    Markdown report (another CI, a lost row, ``nan`` for a single seed, percent vs
    fraction in the continual summary)."""
    board = leaderboard(demo_rows)
    streams = {r.task for r in board if "(continual" in r.method}
    plain = to_markdown([r for r in board if r.task not in streams])
    html_rows = [row for row in _Page(demo_page).rows if row and row[0] != "rank"]
    leaderboard_rows = [row for row in html_rows if len(row) == 9]
    assert leaderboard_rows == _markdown_rows(plain)
    assert any(" ± " in row[4] for row in leaderboard_rows)
    summary = _markdown_rows(continual_markdown(continual_board(demo_rows), matrices=False))
    assert [row for row in html_rows if len(row) == 8 and row[0] != "strategy"] == summary


def test_a_single_seed_shows_its_mean_without_an_interval(tmp_path):
    """Bug caught: ``nan`` printed as the CI of a one-seed row, or the row dropped."""
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(CellResult(Cell("b", "t", "m"), "ok", {"accuracy": 0.5}, 1.0, 0.1, 0, 10))
    page = render_html(store.rows())
    assert next(r for r in _Page(page).rows if r and r[0] == "1")[4] == "0.5000"
    assert "nan" not in page.lower()


def test_labels_with_dollars_and_underscores_are_drawn_not_parsed(tmp_path):
    """Bug caught: a method named with ``$`` going through matplotlib's math text (a
    ``ValueError`` for ``$\\notacommand$`` that kills the whole report), and a name starting
    with ``_`` silently left out of the plot legend."""
    store = ResultsStore(tmp_path / "r.sqlite")
    for seed, method in enumerate(["$\\notacommand$", "_private", "a$b", "cost: $5 \\$"]):
        store.add(CellResult(Cell("b", "_t", method, seed=seed), "ok", {"accuracy": 0.5},
                             1.0, 0.1, 0, 10))
    page = render_html(store.rows())
    assert "$\\notacommand$" in page and page.count("data:image/png") == 3


def test_a_crowded_task_plots_its_best_rows_only(tmp_path):
    """Bug caught: a task with hundreds of rows producing an unreadable, huge bar chart."""
    store = ResultsStore(tmp_path / "r.sqlite")
    for i in range(MAX_BARS + 5):
        store.add(CellResult(Cell("b", "t", f"m{i}"), "ok", {"accuracy": i / 100}, 1.0))
    page = render_html(store.rows())
    assert f"(best {MAX_BARS} of {MAX_BARS + 5} rows)" in page
    assert len([r for r in _Page(page).rows if r and r[0].isdigit()]) == MAX_BARS + 5


def test_no_results_still_give_a_valid_page(tmp_path):
    """Bug caught: an empty results file (or one with only failures) crashing the plots."""
    assert "No successful results" in render_html([])
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(CellResult(Cell("b", "t", "m"), "error", error="RuntimeError: out of memory"))
    page = render_html(store.rows(status=None))
    assert "No successful results" in page and "RuntimeError: out of memory" in page
    assert "data:image" not in page


# --- escaping and self-containment --------------------------------------------------------


def test_every_data_string_is_escaped(tmp_path):
    """Bug caught: a task, backbone, method, parameter, source task, continual strategy or
    experience name, or an error message, written into the page as markup (a stored XSS:
    opening a colleague's report runs their script)."""
    page = render_html(_evil_rows(tmp_path), title=f"title {EVIL}")
    assert "<script" not in page.lower()
    assert "onerror" not in re.sub(r"&lt;img src=x onerror=alert\(2\)&gt;", "", page)
    parsed = _Page(page)
    assert set(parsed.tags) <= {"html", "head", "meta", "link", "title", "style", "body",
                                "h1", "h2", "h3", "p", "strong", "nav", "ul", "li", "a",
                                "section", "table", "thead", "tbody", "tr", "th", "td",
                                "figure", "img", "figcaption", "details", "summary", "pre", "div"}
    assert page.count(ESCAPED) > 10
    text = " ".join([cell for row in parsed.rows for cell in row] + parsed.headings)
    for fragment in (f"b{EVIL}", f"m{EVIL_IMG}", f"{EVIL}={EVIL_IMG}", f"B.x={EVIL_IMG}",
                     f"s{EVIL_IMG}->t{EVIL}", f"st{EVIL}", f"sc{EVIL}", f"ValueError: {EVIL_IMG}"):
        assert fragment in text, fragment  # shown literally, as text


def test_the_page_is_self_contained(demo_page):
    """Bug caught: a plot saved beside the page, a CDN style sheet or script, or anything
    else that needs a second file or the network (the page is mailed and archived)."""
    page = _Page(demo_page)
    assert "script" not in page.tags and "<script" not in demo_page
    for link in page.links:
        assert link.startswith(("data:", "#")), link
    for link in page.links:
        if link.startswith("data:image/png;base64,"):
            assert base64.b64decode(link.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Content-Security-Policy" in demo_page and "default-src 'none'" in demo_page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", demo_page)


# --- the command -----------------------------------------------------------------------------


def test_report_writes_html_to_out_or_stdout(runner, tmp_path):
    """Bug caught: ``--format html`` ignoring ``--out``, dropping the failed cells (the CLI
    must read all rows, not only successful ones), or ``--out`` silently accepted with a
    text format (the user waits for a file that never comes)."""
    db = tmp_path / "r.sqlite"
    DEMO.demo_store(db)
    out = tmp_path / "sub" / "report.html"
    result = runner.invoke(cli, ["report", "--db", str(db), "--format", "html", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Failed cells" in page
    assert "<title>transferlab report: r.sqlite</title>" in page
    printed = runner.invoke(cli, ["report", "--db", str(db), "--format", "html",
                                  "--suite", "demo"])
    assert printed.exit_code == 0 and printed.output.startswith("<!DOCTYPE html>")
    assert "suite demo" in printed.output
    bad = runner.invoke(cli, ["report", "--db", str(db), "--out", str(tmp_path / "x.md")])
    assert bad.exit_code == 2 and "--out needs --format html" in bad.output
    assert "### digits" in runner.invoke(cli, ["report", "--db", str(db)]).output


def test_the_docs_link_a_small_screenshot():
    """Bug caught: the docs pointing at a screenshot that is missing, not a PNG, or too
    heavy for the repository (regenerate it with docs/gen_report_screenshot.py)."""
    shot = DOCS / "report_screenshot.png"
    assert "report_screenshot.png" in (DOCS / "suites.md").read_text()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size < 300_000


# --- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    found = DEMO.browser_paths()
    if isinstance(found, str):
        pytest.skip(found)
    from selenium.common.exceptions import WebDriverException

    try:
        driver = DEMO.chromium(*found)
    except WebDriverException as exc:
        pytest.skip(f"headless chromium did not start: {exc.msg}")
    yield driver
    driver.quit()


def _load(driver, page: str, path: Path) -> None:
    """Write ``page`` to ``path`` and load it (the console log then holds this load only)."""
    path.write_text(page, encoding="utf-8")
    driver.get_log("browser")  # drop earlier entries
    driver.get(path.as_uri())


def test_the_page_loads_in_chromium_with_visible_plots(browser, demo_page, tmp_path):
    """Bug caught: a page a browser cannot show properly: a console error (a blocked
    request, a broken data URI), an image that does not decode or is hidden, or a page
    that renders blank (checked by a screenshot)."""
    from selenium.webdriver.common.by import By

    _load(browser, demo_page, tmp_path / "report.html")
    log = browser.get_log("browser")
    assert [entry for entry in log if entry["level"] in ("SEVERE", "WARNING")] == []
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 8
    for image in images:
        assert browser.execute_script("return arguments[0].complete", image)
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
        assert image.is_displayed() and image.size["width"] > 100
    assert browser.find_element(By.CSS_SELECTOR, "#domain-adaptation h3").text == \
        "mnist_subset->usps"
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_script_names_run_no_script_in_chromium(browser, tmp_path):
    """Bug caught: markup in result names executing in the reader's browser (an ``alert``
    from ``<script>`` or from an ``<img onerror>``), or being swallowed instead of shown
    as text. The page's Content-Security-Policy would block an injected script, so the
    test also counts the page's scripts and images and reads the console, where a blocked
    script shows as an error."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    page = render_html(_evil_rows(tmp_path), title=f"title {EVIL}")
    assert EVIL not in page and EVIL_IMG not in page  # the string level, too
    _load(browser, page, tmp_path / "evil.html")
    with pytest.raises(NoAlertPresentException):  # the driver leaves an alert open
        browser.switch_to.alert.text  # noqa: B018
    log = browser.get_log("browser")
    assert browser.execute_script("return document.scripts.length") == 0
    assert len(browser.find_elements(By.TAG_NAME, "img")) == 2 + 2 + 1  # only the plots
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"title {EVIL}" in body and f"b{EVIL}" in body and f"m{EVIL_IMG}" in body
    assert [entry for entry in log if entry["level"] == "SEVERE"] == []
