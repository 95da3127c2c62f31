"""Start-up time of the command line against the interpreter's own: ``transferlab --help``,
``transferlab list methods`` and ``transferlab plugins`` beside ``python -c pass``, best of
``--repeats`` fresh processes each, measured in one run (target: ``--help`` under 0.3 s).

None of them may import torch, scikit-learn or scipy (``tests/test_cli.py`` checks that);
this measures what is left: Python, click, pluggy, the entry points and the plugins'
registration modules. The bytecode cache stays on, as for any user.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from quiet import OthersMeter

COMMANDS = (["--help"], ["list", "methods"], ["plugins"])


def best_seconds(command: list[str], repeats: int) -> float:
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    best = float("inf")
    for _ in range(repeats + 1):  # the first run may write bytecode
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("transferlab"))
    with OthersMeter() as meter:
        baseline = best_seconds([sys.executable, "-c", "pass"], args.repeats)
        print(f"python -c pass: {baseline:.3f} s")
        for argv in COMMANDS:
            seconds = best_seconds([cli, *argv], args.repeats)
            target = "  (target < 0.3 s)" if argv == ["--help"] else ""
            print(f"transferlab {' '.join(argv)}: {seconds:.3f} s = {seconds / baseline:.1f}x"
                  f" python -c pass{target}")
    print(meter.verdict())


if __name__ == "__main__":
    main()
