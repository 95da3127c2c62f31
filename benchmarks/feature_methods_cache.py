"""Cost of running every feature method on one backbone and task, with and without the cache.

Three timings, each from a cold start (empty temporary cache folder):

1. ``one``: one method (``linear-probe``) alone, extracting its own features;
2. ``cached``: all methods, each cell with a *fresh* in-memory store pointed at one shared disk
   cache (what separate processes or a re-run see), so only the first cell extracts;
3. ``uncached``: all methods with no cache at all (every cell extracts train and test again).

It prints each method's seconds and accuracy, and the ratios ``cached / one`` (target <= 1.3
for five methods) and ``uncached / one``. Every cell goes through ``run_cell`` as the CLI does
(backbone construction included).

    .venv/bin/python benchmarks/feature_methods_cache.py                      # digits, Lite0
    .venv/bin/python benchmarks/feature_methods_cache.py -t flowers --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from transferlab.harness.cell import Cell, CellResult, run_cell
from transferlab.harness.features import FeatureStore
from transferlab.params import parse_assignments
from transferlab.plugins import PluginHost

METHODS = ("linear-probe", "knn", "ncm", "adapter", "coral")


def _run(cells: list[Cell], registries: object, store_for: object) -> tuple[float, list]:
    rows: list[tuple[str, float, CellResult]] = []
    start = time.perf_counter()
    for cell in cells:
        began = time.perf_counter()
        result = run_cell(cell, registries, progress=False, feature_store=store_for())
        if result.status != "ok":
            raise SystemExit(f"{cell.label()} failed: {result.error}")
        rows.append((cell.method, time.perf_counter() - began, result))
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--backbone", default="timm:efficientnet_lite0")
    parser.add_argument("-B", "--backbone-param", action="append", default=[],
                        help="backbone parameter key=value (default img_size=128 for timm)")
    parser.add_argument("-t", "--task", default="digits")
    parser.add_argument("--data-dir", action="append", default=[], type=Path)
    parser.add_argument("-m", "--methods", default=",".join(METHODS),
                        help="comma-separated; the first is the 'one method' baseline")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    host = PluginHost(data_dirs=args.data_dir)
    host.load_entry_points()
    registries = host.registries
    bparams = parse_assignments(args.backbone_param)
    methods = args.methods.split(",")
    cells = [Cell(args.backbone, args.task, m, {}, bparams) for m in methods]
    print(f"{args.backbone} {bparams or ''} on {args.task}: {', '.join(methods)}")

    with tempfile.TemporaryDirectory() as one_dir, tempfile.TemporaryDirectory() as cache_dir:
        one, _ = _run(cells[:1], registries, lambda: FeatureStore(one_dir))
        cached, cached_rows = _run(cells, registries, lambda: FeatureStore(cache_dir))
    uncached, uncached_rows = _run(cells, registries, lambda: FeatureStore(None, memory=False))

    print(f"\n{'method':<14} {'cached s':>9} {'uncached s':>11} {'accuracy':>9}")
    for (method, c_sec, result), (_, u_sec, _) in zip(cached_rows, uncached_rows, strict=True):
        print(f"{method:<14} {c_sec:>9.1f} {u_sec:>11.1f} {result.metrics['accuracy']:>9.4f}")
    print(f"\none method ({methods[0]}), cold: {one:.1f} s")
    print(f"{len(methods)} methods with the cache:    {cached:.1f} s = {cached / one:.2f}x one")
    print(f"{len(methods)} methods without a cache: {uncached:.1f} s = {uncached / one:.2f}x one")


if __name__ == "__main__":
    main()
