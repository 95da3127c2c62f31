"""How busy the machine was while a benchmark ran: the CPU time of every process outside the
benchmark's own process tree, read from ``/proc`` (the load average counts the benchmark's own
threads, so it cannot tell). Speed figures taken while others used a noticeable share of the
CPUs are not results; :meth:`OthersMeter.verdict` says so in one line."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

__all__ = ["QUIET_SHARE", "OthersMeter"]

QUIET_SHARE = 0.05  # others may use at most 5% of the machine's CPUs for figures to count


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

    @property
    def share(self) -> float:
        """Others' CPU use as a fraction of the machine's CPUs over the measurement."""
        return self.others / max(self.seconds, 1e-9) / (os.cpu_count() or 1)

    @property
    def quiet(self) -> bool:
        return self.share <= QUIET_SHARE

    def verdict(self) -> str:
        """One line: how many CPUs others used, and whether the figures count."""
        line = (f"other processes used {self.others / max(self.seconds, 1e-9):.2f} CPUs on"
                f" average during the run ({os.cpu_count()} CPUs, {100 * self.share:.1f}%)")
        if not self.quiet:
            line += (f": more than {100 * QUIET_SHARE:.0f}%, so these speed figures are not"
                     " results; re-run on a quiet machine")
        return line
