"""Scale-out of ``transferlab bench`` on one machine, measured in one run:

1. an 8-cell suite of small cells (linear probes of four backbones on digits, two seeds),
   where loading models and starting up weigh: ``--workers 2`` against ``--workers 1``
   (target: at least 1.3x faster);
2. a compute-bound suite (four short fine-tuning cells): the same ratio, reported;
3. resuming each finished suite (every cell already stored) against running it (target:
   under 2% of the run's time).

Each run is a fresh ``transferlab bench`` process on a fresh results file with the disk
feature cache off, so nothing is reused between runs (Python's bytecode cache stays on, as for
any user). The CPU time other processes used
during the measurement is printed: figures taken while they used the CPU are not results.

    python benchmarks/scaleout.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quiet import OthersMeter

SMALL = """
name = "small"
tasks = ["digits"]
seeds = [0, 1]
backbones = [
    { name = "raw:pixels", params = { size = 8 } },
    { name = "timm:test_resnet@random", params = { img_size = 32 } },
    { name = "timm:test_efficientnet@random", params = { img_size = 32 } },
    { name = "timm:efficientnet_lite0", params = { img_size = 32 } },
]
methods = ["linear-probe"]
"""

COMPUTE = """
name = "compute"
tasks = ["digits"]
seeds = [0, 1, 2, 3]
backbones = [{ name = "timm:test_resnet@random", params = { img_size = 64 } }]
[[methods]]
name = "finetune"
params = { max_steps = 60, epochs = 50, batch_size = 64, lr = 1e-3, val_fraction = 0.0 }
"""


def bench(suite: Path, db: Path, *extra: str) -> float:
    """Wall seconds of one ``transferlab bench`` process."""
    command = [str(Path(sys.executable).with_name("transferlab")), "bench", str(suite),
               "--db", str(db), "--no-progress", *extra]
    env = {**os.environ, "TRANSFERLAB_CACHE": "off"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' imports read cached bytecode
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(name: str, text: str, folder: Path, repeats: int) -> None:
    """``--workers 2`` against the default (one worker, in this process) and against one
    process worker (which pays the same forkserver start-up as two)."""
    suite = folder / f"{name}.toml"
    suite.write_text(text)
    one, process, two, resume = [], [], [], []
    for repeat in range(repeats):
        db1 = folder / f"{name}-1-{repeat}.sqlite"
        one.append(bench(suite, db1))
        process.append(bench(suite, folder / f"{name}-p-{repeat}.sqlite", "--executor",
                             "process"))
        two.append(bench(suite, folder / f"{name}-2-{repeat}.sqlite", "--workers", "2"))
        resume.append(bench(suite, db1))
    best = min(one), min(process), min(two), min(resume)
    print(f"{name}: 1 worker {best[0]:.1f} s, 2 workers {best[2]:.1f} s: {best[0] / best[2]:.2f}x"
          f" (1 process worker {best[1]:.1f} s: {best[1] / best[2]:.2f}x); resuming the"
          f" finished suite {best[3]:.2f} s = {100 * best[3] / best[0]:.1f}% of running it"
          f" (best of {repeats})")
    if repeats > 1:  # single runs on a virtual machine vary: show every one
        runs = ", ".join(f"{a:.1f}/{b:.1f} s = {a / b:.2f}x" for a, b in zip(one, two,
                                                                            strict=True))
        print(f"  every run, 1 worker/2 workers: {runs}; resuming:"
              f" {', '.join(f'{r:.2f}' for r in resume)} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with OthersMeter() as meter, tempfile.TemporaryDirectory() as tmp:
        measure("small", SMALL, Path(tmp), args.repeats)
        measure("compute", COMPUTE, Path(tmp), args.repeats)
    print(meter.verdict())


if __name__ == "__main__":
    main()
