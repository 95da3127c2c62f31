"""Suites: TOML files naming backbones x tasks x methods x seeds, expanded into cells.

```toml
name = "demo"
tasks = ["digits"]
seeds = [0, 1, 2]
backbones = ["raw:pixels", { name = "timm:efficientnet_lite0", params = { img_size = 64 } }]
methods = [{ name = "linear-probe", params = { C = 1.0 } }]
```

A task entry may be a domain-adaptation pair: ``{ name = "usps", source = "mnist_subset" }``
trains on the labeled source and the unlabeled target, scored on the target's test split.

A task entry may also name several tasks fine-tuned together in a regime (one cell per
regime; ``split`` cuts one task into class-subset experiences)::

    tasks = [
      { tasks = ["sst2", "trec", "emotion"], regime = "multi-task" },
      { split = "mnist_subset", experiences = 5,
        regimes = ["continual[strategy=naive]", "continual[strategy=ewc]"] },
    ]

A suite may pretrain its own backbones first: each ``[[pretrain]]`` table is one
``transferlab pretrain`` run (keys as its options: ``name``, ``backbone``, ``objectives``,
``weights``, ``corpus`` or ``task``, ``steps``/``epochs``/``seconds``, ``batch_size``, ``lr``,
``backbone_params``, ``seed``, ``out``), and a backbone written ``bert:tiny@{NAME}`` is the
checkpoint run ``NAME`` writes. ``transferlab bench`` runs (or resumes) the pretraining before
the cells.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from transferlab.errors import DataError, TransferlabError
from transferlab.harness.cell import Cell, CellResult, reads_features, validate_cell
from transferlab.harness.cell_queue import CellQueue
from transferlab.harness.validation import SEED_RANGE, check_seed
from transferlab.registry import Registries

__all__ = ["Executor", "ResultSink", "RunOne", "Suite", "load_suite", "parse_suite", "run_suite",
           "validate_suite"]


@dataclass
class Suite:
    name: str
    cells: list[Cell] = field(default_factory=list)
    pretraining: list[Any] = field(default_factory=list)  # PretrainRequest, run first


PRETRAIN_KEYS = {"name", "backbone", "objectives", "weights", "corpus", "task", "steps",
                 "epochs", "seconds", "batch_size", "lr", "warmup", "weight_decay",
                 "checkpoint_every", "backbone_params", "seed", "out"}


def _pretraining(data: Mapping[str, Any], suite: str) -> tuple[list[Any], dict[str, str]]:
    """The suite's ``[[pretrain]]`` runs and the checkpoint path each ``{NAME}`` stands for."""
    from transferlab.pretraining.command import PretrainRequest

    entries = data.get("pretrain", [])
    if not isinstance(entries, list):
        raise _wrong_type(suite, "pretrain", "an array of tables", entries,
                          "write each run as a [[pretrain]] table")
    requests, outputs = [], {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise DataError(f"suite {suite!r}: each [[pretrain]] table needs a name, got"
                            f" {entry!r}")
        where = f"suite {suite!r}, [[pretrain]] {entry['name']!r}"
        unknown = sorted(set(entry) - PRETRAIN_KEYS)
        missing = sorted({"backbone", "objectives", "out"} - set(entry))
        if unknown or missing:
            raise DataError(f"{where}: unknown keys {unknown} or missing keys {missing};"
                            f" use {', '.join(sorted(PRETRAIN_KEYS))}")
        if "seed" in entry:
            check_seed(entry["seed"], f"{where}: seed", "seed = 0")
        values = {k: v for k, v in entry.items() if k not in ("name", "corpus")}
        corpus = entry.get("corpus", [])
        values["corpora"] = tuple([corpus] if isinstance(corpus, str) else corpus)
        values["objectives"] = tuple(entry["objectives"])
        values["out"] = str(entry["out"])
        try:
            requests.append(PretrainRequest(**values))
        except TypeError as exc:
            raise DataError(f"{where}: {exc}") from None
        outputs[entry["name"]] = values["out"]
    return requests, outputs


def _substitute(name: str, outputs: Mapping[str, str], suite: str) -> str:
    """``bert:tiny@{NAME}`` -> ``bert:tiny@OUT`` of pretraining run NAME."""
    base, at, tag = name.partition("@")
    if not (at and tag.startswith("{") and tag.endswith("}")):
        return name
    if tag[1:-1] not in outputs:
        raise DataError(f"suite {suite!r}: backbone {name!r} names pretraining run"
                        f" {tag[1:-1]!r}, which no [[pretrain]] table defines")
    return f"{base}@{outputs[tag[1:-1]]}"


def _toml_type(value: Any) -> str:
    """What ``value`` is in TOML's words, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"  # dates and times


def _wrong_type(suite: str, key: str, expected: str, value: Any, fix: str) -> DataError:
    """The one-line error for a suite key whose value has the wrong type."""
    return DataError(f"suite {suite!r}: {key} must be {expected}, got {value!r}"
                     f" ({_toml_type(value)}); {fix}")


def _named(item: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        unknown = set(item) - {"name", "params"}
        if unknown:
            raise DataError(f"{where}: unknown key(s) {sorted(unknown)}; use name and params")
        params = item.get("params", {})
        if not isinstance(params, Mapping):
            raise DataError(
                f"{where}: params of {item['name']!r} must be a table, got {params!r}"
                f" ({_toml_type(params)}); write params = {{ key = value, ... }}")
        return item["name"], dict(params)
    raise DataError(f"{where}: expected a name or {{ name = ..., params = {{...}} }}, got {item!r}")


def _task(item: Any) -> tuple[str, str | None]:
    """A task name, or ``{ name = TARGET, source = SOURCE }`` for domain adaptation."""
    if isinstance(item, str):
        return item, None
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        unknown = set(item) - {"name", "source"}
        source = item.get("source")
        if unknown or (source is not None and not isinstance(source, str)):
            raise DataError(f"tasks: expected {{ name = TARGET, source = SOURCE }}, got {item!r}")
        return item["name"], source
    raise DataError(f"tasks: expected a task name or {{ name = ..., source = ... }}, got {item!r}")


REGIME_KEYS = {"tasks", "split", "experiences", "regime", "regimes"}


def _is_regime_entry(item: Any) -> bool:
    return isinstance(item, Mapping) and bool({"tasks", "split", "regime", "regimes"} & set(item))


def _regime_entry(item: Mapping[str, Any], suite: str) -> list[tuple[str, tuple[str, ...]]]:
    """``{ tasks = [...] | split = TASK, experiences = N, regime(s) = ... }`` ->
    ``[(regime, tasks), ...]``: one per regime, the same tasks for each."""
    where = f"suite {suite!r}, tasks entry {dict(item)!r}"
    unknown = sorted(set(item) - REGIME_KEYS)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; use {', '.join(sorted(REGIME_KEYS))}")
    regimes = item.get("regimes", item.get("regime"))
    if isinstance(regimes, str):
        regimes = [regimes]
    if not isinstance(regimes, list) or not regimes or not all(
            isinstance(r, str) for r in regimes):
        raise DataError(f"{where}: needs regime = \"multi-task\" or regimes = [...] (strings)")
    if ("tasks" in item) == ("split" in item):
        raise DataError(f"{where}: give either tasks = [TASK, ...] or split = TASK with"
                        " experiences = N")
    if "tasks" in item:
        tasks = item["tasks"]
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise _wrong_type(suite, "tasks", "a list of task names", tasks,
                              'write tasks = ["sst2", "trec"]')
    else:
        experiences = item.get("experiences")
        if not isinstance(experiences, int) or isinstance(experiences, bool):
            raise DataError(f"{where}: split needs experiences = N (an integer)")
        tasks = _split(str(item["split"]), experiences)
    return [(regime, tuple(tasks)) for regime in regimes]


def _split(task: str, experiences: int) -> list[str]:
    """``task`` split into class-subset views, one per experience."""
    from transferlab.plugins import get_registries
    from transferlab.regimes.spec import split_by_classes
    from transferlab.views import create_task

    labels = create_task(task, get_registries()).label_names
    return split_by_classes(task, experiences, labels)


def parse_suite(data: Mapping[str, Any], default_name: str = "suite") -> Suite:
    """Expand a suite mapping into the full cross product of cells.

    A key whose value has the wrong type fails with one :class:`DataError` line naming the
    key, the type it must have and how to write it."""
    examples = {"tasks": "digits", "backbones": "raw:pixels", "methods": "linear-probe"}
    for key in ("backbones", "tasks", "methods"):
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            if isinstance(value, Mapping):  # one entry written without its list
                fix = f"put it in brackets: {key} = [{{ name = ..., ... }}]"
            elif isinstance(value, str):
                fix = f"put it in brackets: {key} = [{json.dumps(value)}]"
            else:
                fix = f"write a list of entries: {key} = [{json.dumps(examples[key])}, ...]"
            raise _wrong_type(default_name, key, "a list", value, fix)
        if not value:
            raise DataError(f"suite {default_name!r} needs a non-empty {key!r} list")
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise _wrong_type(default_name, "name", "a string", name,
                          f'quote it: name = "{name}"')
    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        fix = f"write seeds = [{seeds}] for seed {seeds}"
        if 2 <= seeds <= 10:
            fix += f", or seeds = {list(range(seeds))} for {seeds} seeds"
        raise _wrong_type(default_name, "seeds", "a list of integers", seeds, fix)
    if not isinstance(seeds, list):
        raise _wrong_type(default_name, "seeds", "a list of integers", seeds,
                          "write seeds = [0, 1, 2]")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool)]
    if bad:
        raise DataError(f"suite {default_name!r}: seeds must be integers, got {seeds!r}"
                        f" ({bad[0]!r} is {_toml_type(bad[0])}); write seeds = [0, 1, 2]")
    out_of_range = [s for s in seeds if s < 0 or s >= 2**32]
    if out_of_range:
        raise DataError(f"suite {default_name!r}: each seed must be {SEED_RANGE}, got"
                        f" {seeds!r} ({out_of_range[0]} is out of range); write seeds ="
                        " [0, 1, 2]")
    pretraining, outputs = _pretraining(data, name)
    backbones = [(_substitute(b, outputs, name), bp)
                 for b, bp in (_named(b, "backbones") for b in data["backbones"])]
    methods = [_named(m, "methods") for m in data["methods"]]
    tasks = [_task(t) for t in data["tasks"] if not _is_regime_entry(t)]
    regimes = [r for t in data["tasks"] if _is_regime_entry(t) for r in _regime_entry(t, name)]
    cells = [
        Cell(b, t, m, mp, bp, s, source)
        for t, source in tasks
        for b, bp in backbones
        for m, mp in methods
        for s in seeds
    ]
    from transferlab.harness.cell import regime_label

    cells += [
        Cell(b, regime_label(regime, group), m, mp, bp, s, None, regime, group)
        for regime, group in regimes
        for b, bp in backbones
        for m, mp in methods
        for s in seeds
    ]
    rules = _exclusions(data.get("exclude", []), name)
    cells = [c for c in cells if not any(_excluded(c, rule) for rule in rules)]
    return Suite(name, cells, pretraining)


EXCLUDE_KEYS = ("backbone", "method", "task")


def _exclusions(entries: Any, suite: str) -> list[dict[str, str]]:
    """The suite's ``exclude`` rules: tables of backbone / method / task names."""
    if not isinstance(entries, list):
        raise _wrong_type(suite, "exclude", "an array of tables", entries,
                          'write exclude = [{ backbone = "raw:pixels", method = "finetune" }]')
    rules = []
    for entry in entries:
        if (not isinstance(entry, Mapping) or not entry or set(entry) - set(EXCLUDE_KEYS)
                or not all(isinstance(v, str) for v in entry.values())):
            raise DataError(f"suite {suite!r}: exclude entry {entry!r} must be a table of"
                            f" {', '.join(EXCLUDE_KEYS)} names, e.g. {{ backbone ="
                            ' "raw:pixels", method = "finetune" }')
        rules.append(dict(entry))
    return rules


def _excluded(cell: Cell, rule: Mapping[str, str]) -> bool:
    """Whether ``cell`` matches every name ``rule`` gives (its task as written)."""
    values = {"backbone": cell.backbone, "method": cell.method, "task": cell.task}
    return all(values[key] == name for key, name in rule.items())


def load_suite(path: str | Path) -> Suite:
    """Read a suite TOML file; a malformed file fails with its path and the parse error."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"suite file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"suite file {path} is not valid TOML: {exc}") from None
    return parse_suite(data, default_name=path.stem)


RunOne = Callable[[Cell], CellResult]


class Executor(Protocol):
    """What ``register_executors`` factories return: runs cells, yields their results (in
    any order) as they finish; a crashing cell becomes an error result, never an exception.

    ``cells`` is an iterable that may claim each cell as it is drawn (cooperating workers):
    an executor should draw a cell only when it can start it. It may be a
    :class:`~transferlab.harness.cell_queue.CellQueue`, whose ``draw(rank)`` lets an executor
    choose which cell a worker takes next (``process`` keeps each backbone's cells on the
    worker that holds its features)."""

    def run(self, cells: Iterable[Cell], run_one: RunOne) -> Iterator[CellResult]: ...


class ResultSink(Protocol):
    """Where a suite stores results and learns which cells are finished (the SQLite
    :class:`~transferlab.harness.store.ResultsStore`, or anything with these two methods)."""

    def finished(self, cell: Cell) -> bool: ...

    def add(self, result: CellResult, suite: str | None = None) -> int: ...


def validate_suite(suite: Suite, registries: Registries, *,
                   before_pretraining: bool = False, device: str | None = None) -> list[Cell]:
    """Every cell of ``suite`` validated (:func:`~transferlab.harness.cell.validate_cell`), or
    the first bad cell's error, naming the suite and the cell, before any cell runs.

    ``before_pretraining``: a backbone ``NAME@OUT`` whose checkpoint one of the suite's
    ``[[pretrain]]`` runs is yet to write is checked as ``NAME`` (the file comes with the run),
    so a bad cell fails before the pretraining too."""
    pending = {str(r.out) for r in suite.pretraining
               if before_pretraining and not Path(r.out).is_file()}
    cells = []
    for cell in suite.cells:
        base, _, tag = cell.backbone.partition("@")
        checked = replace(cell, backbone=base) if tag and tag in pending else cell
        try:
            valid = validate_cell(checked, registries, device=device)
        except TransferlabError as exc:
            raise _in_cell(exc, f"suite {suite.name!r}, cell {cell.label()} seed={cell.seed}"
                           ) from None
        cells.append(replace(valid, backbone=cell.backbone))
    return cells


def _in_cell(exc: TransferlabError, where: str) -> TransferlabError:
    """``exc`` (its class kept where it can be) with ``where`` before its message."""
    message = f"{where}: {exc}"
    try:
        return type(exc)(message)
    except Exception:  # a plugin's error class with another signature
        return TransferlabError(message)


def run_suite(
    suite: Suite, registries: Registries, store: ResultSink, executor: Executor, run_one: RunOne,
    *, progress: bool = True, device: str | None = None,
) -> Iterator[tuple[CellResult | None, Cell]]:
    """Validate every cell up front, then run the unfinished ones, storing each result.

    Yields ``(result, cell)``; ``result`` is None for cells skipped because they were
    already finished (resume) or were run by another worker meanwhile. With a store that can
    claim cells (the SQLite :class:`~transferlab.harness.store.ResultsStore`), several
    processes on one file split the cells between them
    (:class:`~transferlab.harness.claims.CellClaims`): the executor draws cells lazily and
    each is claimed as it is drawn.
    """
    cells = validate_suite(suite, registries, device=device)
    todo = []
    for cell in cells:
        if store.finished(cell):
            yield None, cell
        else:
            todo.append(cell)
    if not todo:  # a finished suite resumes without loading the progress bar's modules
        return
    from tqdm.auto import tqdm

    # the executor asks for every remaining cell at each draw: look each name up once
    reads: dict[tuple[str, bool], bool] = {}
    sizes: dict[str, float] = {}

    def features_cell(cell: Cell) -> bool:
        key = (cell.method, cell.regime is None)
        if key not in reads:
            reads[key] = reads_features(cell, registries)
        return reads[key]

    def backbone_size(cell: Cell) -> float:
        if cell.backbone not in sizes:
            count = registries.backbones.get(cell.backbone).info.get("params_count")
            sizes[cell.backbone] = float(count) if isinstance(count, int | float) else 0.0
        return sizes[cell.backbone]

    failures = 0
    with tqdm(total=len(todo), desc=f"suite {suite.name}", unit="cell",
              disable=None if progress else True) as bar:
        if not hasattr(store, "claim"):
            for result in executor.run(CellQueue(todo, features_cell, backbone_size), run_one):
                store.add(result, suite=suite.name)
                bar.update(1)
                yield result, result.cell
            return
        from transferlab.harness.claims import CellClaims

        skipped: list[Cell] = []
        claims = CellClaims(store, todo, on_skip=skipped.append, reads_features=features_cell,
                            size=backbone_size)
        with claims.heartbeat():
            for result in executor.run(claims, run_one):
                store.add(result, suite=suite.name)
                claims.release(result.cell)
                failures += result.status != "ok"
                bar.update(1)
                if failures:
                    bar.set_postfix(failed=failures)
                yield result, result.cell
                while skipped:  # finished by another worker while this one ran
                    bar.update(1)
                    yield None, skipped.pop()
        for cell in skipped:
            bar.update(1)
            yield None, cell
