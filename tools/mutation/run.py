"""Mutation testing of the core's logic with mutmut 3, one module (or all) at a time.

mutmut 3 imports the mutated code from ``mutants/``, ``mutants/src`` or ``mutants/source`` and
names mutants after the file path, so it cannot mutate this repository in place: our packages
live in ``core/`` and ``plugins/`` and are installed editable. This script therefore lays out
a *staging tree* with every package under ``src/``, the tests, docs and
benchmarks, and a pyproject holding the ``[tool.mutmut]`` settings, then runs mutmut there.
Files are copied only when their content changed, so mutmut's own cache of results per
function stays valid between runs and a re-run only re-tests what changed.

Each module gets its own staging tree, ``build/mutation/<module>/``, in which only that module is
mutated and only the test files that pin it down (see :data:`MODULES`) run.

Usage (``make mutation`` runs all modules; ``make mutation MODULE=params`` runs one)::

    python tools/mutation/run.py                 # every module in MODULES, then the table
    python tools/mutation/run.py params store    # only these modules
    python tools/mutation/run.py --report        # the table from stored results, no run

The score of a module is (killed + timeout) / (mutants - equivalent), where *equivalent*
mutants are listed in ``tools/mutation/equivalent.txt`` with a one-line reason each. Mutants
that no test reaches count as survivors.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "build" / "mutation"
EQUIVALENT_FILE = Path(__file__).with_name("equivalent.txt")
THRESHOLD = 0.80

# short name -> (file under src/ in the staging tree, the test files that pin it down). Each
# module is mutated in its own staging tree against its own tests: a mutant must be killed by
# the tests written for that module, and a surviving mutant costs one run of those files
# instead of the whole suite.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "registry": ("transferlab/registry.py", ("test_registry.py", "test_plugins.py")),
    "params": ("transferlab/params.py", ("test_params.py", "test_registry.py", "test_settings.py")),
    "plugins": ("transferlab/plugins.py", ("test_plugins.py", "test_hookspecs.py")),
    "cell": ("transferlab/harness/cell.py", ("test_harness.py", "test_domain_adaptation.py")),
    "suite": ("transferlab/harness/suite.py", ("test_harness.py", "test_domain_adaptation.py")),
    "store": ("transferlab/harness/store.py", ("test_harness.py", "test_rank.py",
                                               "test_relate.py", "test_store_tables.py")),
    "features": ("transferlab/harness/features.py", ("test_cache.py",)),
    "report": ("transferlab/harness/report.py", ("test_harness.py",)),
    "metrics": ("transferlab/harness/metrics.py", ("test_harness.py",)),
    "stopping": ("transferlab/training/stopping.py", ("test_training.py",)),
    "schedule": ("transferlab/training/schedule.py", ("test_training.py",)),
    "data": ("transferlab/training/data.py", ("test_training.py", "test_distill.py",
                                              "test_batch_source.py")),
    "config": ("transferlab/training/config.py", ("test_training.py",)),
    "mteb": ("transferlab_feature/mteb.py", ("test_feature_methods.py",)),
    # the public training API (issue 9)
    "method": ("transferlab/training/method.py", ("test_training_api.py", "test_lpft.py",
                                                  "test_gradient_method.py")),
    "loop": ("transferlab/training/loop.py", ("test_training.py", "test_loop.py")),
    "losses": ("transferlab/training/losses.py", ("test_training.py", "test_training_api.py",
                                                  "test_losses.py")),
    # relational transfer (issue 11): score validation and the task-relation map
    "ranking": ("transferlab/harness/ranking.py", ("test_rank.py",)),
    "relations": ("transferlab/harness/relations.py", ("test_relate.py",)),
    # pretraining (issue 12)
    "pretraining_data": ("transferlab/pretraining/data.py", ("test_pretrain.py",
                                                             "test_pretraining_data.py")),
    "pretraining_loop": ("transferlab/pretraining/loop.py", ("test_pretrain.py",)),
    "pretraining_command": ("transferlab/pretraining/command.py", ("test_pretrain.py",)),
    # multi-task and continual regimes (issue 13)
    "regime_metrics": ("transferlab/regimes/metrics.py", ("test_regimes.py",)),
    "regime_heads": ("transferlab/regimes/heads.py", ("test_regimes.py",)),
    "regime_spec": ("transferlab/regimes/spec.py", ("test_regimes.py",)),
    "regime_continual": ("transferlab/regimes/continual.py", ("test_regimes.py",)),
    "regime_multitask": ("transferlab/regimes/multitask.py", ("test_regimes.py",)),
    # scale-out and precision (issues 14 and 15)
    "intervals": ("transferlab/harness/intervals.py", ("test_intervals.py",)),
    "cell_queue": ("transferlab/harness/cell_queue.py", ("test_cell_queue.py",)),
    "executors": ("transferlab/harness/executors.py", ("test_cell_queue.py",
                                                       "test_executors.py")),
    "precision": ("transferlab/precision.py", ("test_precision.py",)),
}

KILLED = {1, 3}  # pytest failed / internal error while the mutant was active
TIMEOUT = {24, -24, 36, 152, 255}
SKIPPED = {34}
SURVIVED = {0, 33}  # no test failed / no test reaches the mutant

# Tests are run without the real datasets and pretrained weights (the ``slow`` marker): they
# take minutes per mutant and only ever reach the core through paths the fast tests cover.
PYTEST_ARGS = ["-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", "-m", "not slow"]


def mutmut_settings(module: str) -> str:
    """The ``[tool.mutmut]`` section for one module's staging tree."""
    path, test_files = MODULES[module]
    args = ", ".join(f'"{a}"' for a in PYTEST_ARGS)
    tests = ", ".join(f'"tests/{t}"' for t in test_files)
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f'only_mutate = ["src/{path}"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'also_copy = ["docs", "benchmarks", "README.md"]\n'
        f"pytest_add_cli_args = [{args}]\n"
        # torch is not fork-safe after it has started threads: fork workers from a server
        'process_isolation = "forkserver"\n'
        "use_git_change_detection = false\n"
    )


def _sync_file(source: Path, target: Path) -> None:
    if target.exists() and filecmp.cmp(source, target, shallow=False):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _sync_tree(source: Path, target: Path) -> None:
    """Mirror ``source`` into ``target``: copy changed files, delete ones gone from source."""
    wanted: set[Path] = set()
    for path in source.rglob("*"):
        if "__pycache__" in path.parts or path.suffix in {".pyc", ".sqlite"}:
            continue
        rel = path.relative_to(source)
        if path.is_file():
            wanted.add(rel)
            _sync_file(path, target / rel)
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):
            rel = path.relative_to(target)
            if path.is_file() and rel not in wanted and "__pycache__" not in path.parts:
                path.unlink()


def stage(module: str) -> Path:
    """Lay out (or refresh) the staging tree of ``module``; return its folder."""
    tree = STAGE / module
    tree.mkdir(parents=True, exist_ok=True)
    _sync_tree(ROOT / "core" / "transferlab", tree / "src" / "transferlab")
    for plugin in sorted((ROOT / "plugins").iterdir()):
        if plugin.is_dir() and plugin.name.startswith("transferlab_"):
            _sync_tree(plugin, tree / "src" / plugin.name)
    for folder in ("tests", "docs", "benchmarks"):
        _sync_tree(ROOT / folder, tree / folder)
    _sync_file(ROOT / "README.md", tree / "README.md")
    pyproject = (ROOT / "pyproject.toml").read_text() + mutmut_settings(module)
    target = tree / "pyproject.toml"
    if not target.exists() or target.read_text() != pyproject:
        target.write_text(pyproject)
    return tree


def retest_survivors(tree: Path) -> int:
    """Forget the stored verdict of every surviving, untested or timed-out mutant, so this
    run tests it again. mutmut keeps a verdict until the mutated *function* changes, but a
    survivor is usually killed by changing the *tests*, which mutmut does not track; and a
    timeout can come from a loaded machine rather than the mutant (measured: ranking's
    ``sort_keys=None`` timed out under load 4 and survived on a quieter machine), so it is
    only trusted from the latest run. Returns how many."""
    count = 0
    for meta in (tree / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        stale = [name for name, code in codes.items() if code in SURVIVED or code in TIMEOUT]
        for name in stale:
            codes[name] = None
        if stale:
            meta.write_text(json.dumps(data, indent=4))
            count += len(stale)
    return count


def run_mutmut(module: str, max_children: int | None) -> int:
    """Run mutmut over the mutants of ``module`` in its staging tree."""
    tree = stage(module)
    retested = retest_survivors(tree)
    if retested:
        print(f"{module}: testing {retested} earlier survivors again against the current tests")
        # mutmut maps each function to the tests that reach it once (mutmut-stats.json) and
        # never learns of tests written later: a survivor would never meet the test written
        # to kill it. Forgetting the map makes mutmut trace the current tests again.
        (tree / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    env = dict(os.environ)
    # the real datasets stay out of reach: slow tests are deselected, data tests skip
    env["TRANSFERLAB_SHARED_DATA"] = str(STAGE / "no-shared-data")
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [sys.executable, "-m", "mutmut", "run"]
    if max_children:
        command += ["--max-children", str(max_children)]
    return subprocess.call(command, cwd=tree, env=env)


def load_equivalent() -> dict[str, str]:
    """Mutant name -> reason, from ``equivalent.txt`` (``name  # reason`` per line)."""
    result: dict[str, str] = {}
    if not EQUIVALENT_FILE.exists():
        return result
    for line in EQUIVALENT_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{EQUIVALENT_FILE}: {name.strip()} has no reason; add '# why'")
        result[name.strip()] = reason.strip()
    return result


@dataclass
class ModuleScore:
    module: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.counts["total"] - self.counts["equivalent"] - self.counts["skipped"]

    @property
    def score(self) -> float | None:
        if self.counts["not checked"]:
            return None
        done = self.counts["killed"] + self.counts["timeout"]
        return done / self.scored if self.scored else None


def score(module: str, equivalent: dict[str, str]) -> ModuleScore:
    """Read mutmut's stored results for ``module`` from the staging tree."""
    result = ModuleScore(module)
    meta = STAGE / module / "mutants" / "src" / (MODULES[module][0] + ".meta")
    if not meta.exists():
        result.counts["not checked"] = 1
        return result
    exit_codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    for name, code in sorted(exit_codes.items()):
        result.counts["total"] += 1
        if name in equivalent:
            result.counts["equivalent"] += 1
        elif code is None:
            result.counts["not checked"] += 1
        elif code in KILLED:
            result.counts["killed"] += 1
        elif code in TIMEOUT:
            result.counts["timeout"] += 1
        elif code in SKIPPED:
            result.counts["skipped"] += 1
        else:
            result.counts["survived"] += 1
            result.survivors.append(name)
    return result


def report(modules: list[str], show_survivors: bool = True) -> bool:
    """Print the score table (markdown) and the survivors; True when all modules pass."""
    equivalent = load_equivalent()
    scores = [score(m, equivalent) for m in modules]
    print("| module | mutants | killed | timeout | equivalent | survived | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for s in scores:
        c = s.counts
        value = s.score
        checked = c["killed"] + c["timeout"] + c["survived"]
        if value is not None:
            shown = f"{value:.1%}"
        elif checked:  # an interrupted run: the share so far, clearly marked
            shown = f"partial: {(c['killed'] + c['timeout']) / checked:.1%} of {checked} checked"
        else:
            shown = "not run"
        ok = ok and value is not None and value >= THRESHOLD
        print(f"| {MODULES[s.module][0]} | {c['total']} | {c['killed']} | {c['timeout']} |"
              f" {c['equivalent']} | {c['survived']} | {shown} |")
    if show_survivors:
        for s in scores:
            if s.survivors:
                tree = (STAGE / s.module).relative_to(ROOT)
                print(f"\nsurvivors in {MODULES[s.module][0]} (inspect: cd {tree}"
                      " && python -m mutmut show NAME):")
                for name in s.survivors:
                    print(f"  {name}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"short names: {', '.join(MODULES)}")
    parser.add_argument("--report", action="store_true", help="print stored scores, run nothing")
    parser.add_argument("--max-children", type=int, default=None, help="parallel mutant runs")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; choose from {', '.join(MODULES)}")
    modules = args.modules or list(MODULES)
    if not args.report:
        for module in modules:
            print(f"== mutation testing {MODULES[module][0]}", flush=True)
            code = run_mutmut(module, args.max_children)
            if code not in (0, 1):  # mutmut exits 1 when some mutants survived
                print(f"mutmut exited with {code} on {module}", file=sys.stderr)
    ok = report(modules)
    print(f"\nthreshold {THRESHOLD:.0%} per module: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
