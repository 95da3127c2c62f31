"""Regenerate docs/report_screenshot.png: the HTML report of a small demo results file,
rendered by headless Chromium.

    python docs/gen_report_screenshot.py     # needs selenium, chromium and chromedriver

The demo results (:func:`demo_store`) and the browser (:func:`chromium`) are shared with
``tests/test_html_report.py``; the numbers are made up (seeded), not measured.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from transferlab.harness.cell import Cell, CellResult
from transferlab.harness.store import ResultsStore

DOC = Path(__file__).with_name("report_screenshot.png")
SEEDS = (0, 1, 2)
# (backbone, method, params, trainable, total, fit seconds, accuracy on each task)
METHODS = [
    ("timm:efficientnet_lite0", "linear-probe", {}, 12_810, 3_384_474, 2.0,
     {"digits": 0.95, "cifar10_subset": 0.84}),
    ("timm:efficientnet_lite0", "knn", {"k": 10}, 0, 3_371_664, 0.4,
     {"digits": 0.93, "cifar10_subset": 0.78}),
    ("timm:efficientnet_lite0", "lora", {"rank": 8}, 151_562, 3_536_036, 95.0,
     {"digits": 0.97, "cifar10_subset": 0.88}),
    ("timm:efficientnet_lite0", "finetune", {}, 3_384_474, 3_384_474, 140.0,
     {"digits": 0.98, "cifar10_subset": 0.90}),
    ("raw:pixels", "linear-probe", {}, 650, 650, 0.3,
     {"digits": 0.96, "cifar10_subset": 0.31}),
]
STREAM = ("mnist_subset[classes=0+1]", "mnist_subset[classes=2+3]",
          "mnist_subset[classes=4+5]")


def _noisy(rng: random.Random, value: float, spread: float = 0.01) -> float:
    return min(1.0, max(0.0, value + rng.gauss(0, spread)))


def _ok(cell: Cell, metrics: dict[str, float], trainable: int, total: int, fit: float,
        extra: dict[str, Any] | None = None) -> CellResult:
    return CellResult(cell, "ok", metrics, fit, fit / 20, trainable, total, 100.0, None,
                      {"device": "cpu"}, "2024-01-01T00:00:00+00:00", extra or {})


def _continual(rng: random.Random, strategy: str, seed: int) -> CellResult:
    """A continual result shaped like ``transferlab.regimes.cell`` stores it."""
    n = len(STREAM)
    keep = {"naive": 0.55, "replay": 0.9, "joint": 1.0}[strategy]
    if strategy == "joint":
        matrix = [[_noisy(rng, 0.96) for _ in range(n)]]
    else:
        matrix = [[_noisy(rng, 0.99) if j == i else
                   _noisy(rng, 0.99 * keep ** (i - j)) if j < i else _noisy(rng, 0.5, 0.05)
                   for j in range(n)] for i in range(n)]
    final = matrix[-1]
    metrics = {"average_accuracy": sum(final) / n}
    if strategy != "joint":
        forgetting = sum(max(row[j] for row in matrix[:-1]) - final[j]
                         for j in range(n - 1)) / (n - 1)
        metrics |= {"forgetting": forgetting, "bwt": -forgetting,
                    "forward_transfer": sum(matrix[j - 1][j] - 0.5 for j in range(1, n))
                    / (n - 1)}
    regime = "continual" if strategy == "naive" else f"continual[strategy={strategy}]"
    cell = Cell("timm:efficientnet_lite0", " -> ".join(STREAM), "finetune", {"epochs": 1},
                {"img_size": 64}, seed, regime=regime, tasks=STREAM)
    extra = {"regime": "continual", "scenario": "task-incremental", "strategy": strategy,
             "experiences": list(STREAM), "accuracy_matrix": matrix,
             "reference": [0.5] * n, "steps": [100] * n}
    if strategy == "replay":
        extra["memory"] = 200
    return _ok(cell, {"accuracy": metrics["average_accuracy"], **metrics}, 3_384_474,
               3_384_474, 40.0, extra)


def demo_store(path: Path | str) -> ResultsStore:
    """A results file at ``path`` with made-up but plausible results: two tasks x five
    methods x three seeds, a domain-adaptation pair (``mnist_subset->usps``), a continual
    stream (naive, replay, joint) and one failed cell."""
    rng = random.Random(0)
    store = ResultsStore(path)
    for seed in SEEDS:
        for backbone, method, params, trainable, total, fit, accuracy in METHODS:
            backbone_params = {"img_size": 64} if backbone.startswith("timm") else {}
            for task, value in accuracy.items():
                acc = _noisy(rng, value)
                cell = Cell(backbone, task, method, params, backbone_params, seed)
                store.add(_ok(cell, {"accuracy": acc, "macro_f1": acc - 0.01}, trainable,
                              total, fit * rng.uniform(0.9, 1.1)), suite="demo")
        for method, value in (("linear-probe", 0.62), ("coral", 0.71)):
            cell = Cell("timm:efficientnet_lite0", "usps", method, {}, {"img_size": 64}, seed,
                        source_task="mnist_subset")
            acc = _noisy(rng, value, 0.02)
            store.add(_ok(cell, {"accuracy": acc, "macro_f1": acc - 0.02}, 12_810,
                          3_384_474, 3.0), suite="demo")
        for strategy in ("naive", "replay", "joint"):
            store.add(_continual(rng, strategy, seed), suite="demo")
    failed = Cell("timm:efficientnet_lite0", "digits", "adapter", {"bottleneck": 0}, {}, 0)
    store.add(CellResult(failed, "error", error="Traceback (most recent call last):\n  ...\n"
                         "ValueError: bottleneck must be positive"), suite="demo")
    return store


def browser_paths() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` found on PATH, or why not (a reason to skip)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; it is in the dev extra)"
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                   "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        return ("no chromium/chromedriver on PATH (Debian: apt-get install chromium"
                " chromium-driver; `make test` or `make browser` does it as root)")
    return browser, driver


def chromium(browser: str, driver: str, width: int = 1100, height: int = 1400) -> Any:
    """A headless Chromium WebDriver that keeps the browser console log (``get_log``) and
    leaves a page's ``alert`` open (``switch_to.alert`` finds it); the given binaries are used
    as they are (Selenium Manager, which downloads, never runs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={width},{height}",
                     "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an alert stays open for the test to find (the default dismisses it during get())
    options.set_capability("unhandledPromptBehavior", "ignore")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def shrink_png(png: bytes, colours: int = 128) -> bytes:
    """``png`` with a palette of ``colours`` (about a fifth of the size of a screenshot)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colours)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> int:
    from click.testing import CliRunner

    from transferlab.cli import cli

    found = browser_paths()
    if isinstance(found, str):
        print(found, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        db, page = Path(tmp) / "demo.sqlite", Path(tmp) / "report.html"
        demo_store(db)
        result = CliRunner().invoke(cli, ["report", "--db", str(db), "--format", "html",
                                          "--out", str(page)])
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
            return 1
        driver = chromium(*found, width=1100, height=1500)
        try:
            driver.get(page.as_uri())
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    DOC.write_bytes(shrink_png(png))
    print(f"wrote {DOC} ({DOC.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
