"""Scale-out of ``transferlab bench`` on one machine, measured in one run:

1. an 8-cell suite of small cells (linear probes of four backbones on digits, two seeds),
   where loading models and starting up weigh: ``--workers 2`` against ``--workers 1``
   (target: at least 1.3x faster);
2. a compute-bound suite (four short fine-tuning cells): the same ratio, reported;
3. resuming each finished suite (every cell already stored) against running it (target:
   under 2% of the run's time).

Each run is a fresh ``transferlab bench`` process on a fresh results file with the disk
feature cache off, so nothing is reused between runs. The CPU time other processes used
during the measurement is printed: figures taken while they used the CPU are not results.

    python benchmarks/scaleout.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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


class OthersMeter:
    """CPU seconds used by processes outside this one's process tree, sampled from
    ``/proc`` every ``interval`` seconds in a thread. A bench process's workers are forked
    from a server process that bench never waits for, so ``os.times()`` cannot count them
    as children: the tree is followed through ``/proc/PID/stat`` parent links instead."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.seen: dict[int, float] = {}
        self.others = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _table() -> dict[int, tuple[int, float]]:
        """pid -> (parent pid, CPU seconds so far) of every process /proc shows."""
        tick = os.sysconf("SC_CLK_TCK")
        table = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
        return table

    def _sample(self) -> None:
        table = self._table()
        mine = {os.getpid()}
        changed = True
        while changed:  # descendants: follow parent links until nothing new joins
            changed = False
            for pid, (parent, _) in table.items():
                if parent in mine and pid not in mine:
                    mine.add(pid)
                    changed = True
        for pid, (_, cpu) in table.items():
            before = self.seen.get(pid)
            self.seen[pid] = cpu
            if pid not in mine and before is not None:
                self.others += max(0.0, cpu - before)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> OthersMeter:
        self.start = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.perf_counter() - self.start


def bench(suite: Path, db: Path, *extra: str) -> float:
    """Wall seconds of one ``transferlab bench`` process."""
    command = [str(Path(sys.executable).with_name("transferlab")), "bench", str(suite),
               "--db", str(db), "--no-progress", *extra]
    env = {**os.environ, "TRANSFERLAB_CACHE": "off"}
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(name: str, text: str, folder: Path, repeats: int) -> None:
    suite = folder / f"{name}.toml"
    suite.write_text(text)
    one, two, resume = [], [], []
    for repeat in range(repeats):
        db1, db2 = folder / f"{name}-1-{repeat}.sqlite", folder / f"{name}-2-{repeat}.sqlite"
        one.append(bench(suite, db1))
        two.append(bench(suite, db2, "--workers", "2"))
        resume.append(bench(suite, db1))
    best = min(one), min(two), min(resume)
    print(f"{name}: 1 worker {best[0]:.1f} s, 2 workers {best[1]:.1f} s:"
          f" {best[0] / best[1]:.2f}x; resuming the finished suite {best[2]:.2f} s ="
          f" {100 * best[2] / best[0]:.1f}% of running it (best of {repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with OthersMeter() as meter, tempfile.TemporaryDirectory() as tmp:
        measure("small", SMALL, Path(tmp), args.repeats)
        measure("compute", COMPUTE, Path(tmp), args.repeats)
    print(f"other processes used {meter.others / meter.seconds:.2f} CPUs on average during"
          f" the run ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
