"""``transferlab rank``: rank backbones for a task with transferability scores, before any
training; store the values; validate them against measured results.

Each backbone's training-split features come through the harness's feature store (the disk
cache shared with ``transferlab run`` and ``bench``), so a second ranking of the same
backbones takes seconds. Scores that read source-label probabilities (LEEP, NCE) get them
from the backbone's ``source_head`` applied to those features; a backbone without one is
skipped for those scores, with a note.

Every value computed is stored in the results database (``--db``, table ``scores``; a re-rank
replaces it). ``--stored`` ranks from those stored values without loading anything, so a suite
can produce cells and scores separately, and ``--validate`` compares each score's ranking with
the measured results of the same backbones' cells in the database
(:mod:`transferlab.harness.ranking`), listing the ``transferlab run`` command of every cell it
lacks.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from transferlab.cli.options import data_dir_option, db_option, device_option, json_option
from transferlab.harness.ranking import BackboneId

if TYPE_CHECKING:
    import numpy as np

SPLIT = "train"
MEASURED_SPLIT = "test"  # where the harness measures a cell's metrics


@dataclass
class _Ranking:
    """What one ``rank`` run found: per score, (backbone, value) pairs; and what it skipped.
    ``ids`` maps each backbone's label to its identity (name and resolved parameters)."""

    task: str
    examples: int
    backbones: list[str]
    values: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    ids: dict[str, BackboneId] = field(default_factory=dict)
    stored: bool = False  # read from the database (--stored) rather than computed

    def ordered(self, score: str) -> list[tuple[int, str, float]]:
        """(rank, backbone, value), best first; ties keep the order backbones were given."""
        pairs = sorted(self.values[score], key=lambda p: -p[1])
        return [(i + 1, name, value) for i, (name, value) in enumerate(pairs)]

    def scored(self) -> dict[str, dict[BackboneId, float]]:
        """Per score, each scored backbone's value keyed by its identity."""
        return {score: {self.ids[b]: v for b, v in pairs} for score, pairs in self.values.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "split": SPLIT, "examples": self.examples,
            "source": "stored" if self.stored else "computed",
            "backbones": self.backbones,
            "backbone_params": {b: json.loads(self.ids[b][1]) for b in self.backbones},
            "feature_seconds": self.seconds,
            "scores": {score: [{"rank": r, "backbone": b, "score": v}
                               for r, b, v in self.ordered(score)] for score in self.values},
            "skipped": self.skipped,
        }


@dataclass
class _Inputs:
    """The command's names, checked against the registries before anything loads: label ->
    (registered name, resolved parameter values). Empty ``scores`` / ``backbones`` with
    ``--stored`` mean every stored one."""

    registries: Any
    task: str
    scores: dict[str, tuple[str, dict[str, Any]]]
    backbones: dict[str, tuple[str, dict[str, Any]]]


def default_backbones(registries: Any, modality: str) -> list[str]:
    """Every exact backbone name registered with offline weights (``offline=True``) that
    reads ``modality``; patterns (``timm:*``) and names needing the network are left out."""
    return [e.name for e in registries.backbones
            if not e.is_pattern and e.info.get("offline") is True
            and e.info.get("modality") == modality]


def _source_probabilities(backbone: Any, feats: np.ndarray, device: str) -> np.ndarray | None:
    """Softmax of the backbone's source head on its own features; None without a head."""
    head = backbone.source_head
    if head is None:
        return None
    import numpy as np
    import torch

    from transferlab.errors import IncompatibleError

    head.eval()
    chunks = []
    try:
        with torch.inference_mode():
            for start in range(0, len(feats), 1024):
                x = torch.as_tensor(np.asarray(feats[start : start + 1024]),
                                    dtype=torch.float32, device=device)
                chunks.append(torch.softmax(head(x).float(), dim=1).cpu().numpy())
    except (RuntimeError, ValueError) as exc:
        raise IncompatibleError(
            f"the source head of {backbone.name!r} does not accept its own features"
            f" ({type(exc).__name__}: {exc}); its source_head must map [N, feature_dim]"
            " features to source-class logits") from None
    return np.concatenate(chunks).astype(np.float64)


def _inputs(task_name: str, backbone_specs: Sequence[str], score_specs: Sequence[str],
            data_dirs: Sequence[Path], *, stored: bool) -> _Inputs:
    """Check every name and parameter value (nothing is loaded). Two spellings of one
    backbone (``raw:pixels`` and ``raw:pixels[size=32]``) are refused: they would be ranked,
    stored and validated twice under two labels."""
    from transferlab.errors import ParamError, TransferlabError
    from transferlab.harness.ranking import backbone_id
    from transferlab.plugins import get_host
    from transferlab.settings import parse_setting
    from transferlab.views import validate_task

    registries = get_host(data_dirs=data_dirs).registries
    task = validate_task(task_name, registries)
    if not stored and not len(registries.scores):
        raise TransferlabError("no transferability scores are registered; install or enable"
                               " a plugin that registers them (built-in: transferlab_relational)")
    settings = [parse_setting(s, "score") for s in score_specs]
    if not settings and not stored:
        settings = [parse_setting(e.name) for e in registries.scores if not e.is_pattern]
    scores: dict[str, tuple[str, dict[str, Any]]] = {}
    for setting in settings:
        params = registries.scores.get(setting.name).validate(setting.name, setting.params)
        label = _label(registries.scores, setting.name, params)
        if label in scores:
            raise ParamError(f"--score {setting.canonical()!r} names the score {label!r}"
                             " again (the same parameter values); name it once")
        scores[label] = (setting.name, params)
    backbones: dict[str, tuple[str, dict[str, Any]]] = {}
    seen: dict[BackboneId, str] = {}
    for spec in backbone_specs:
        b = parse_setting(spec, "backbone")
        params = registries.backbones.get(b.name).validate(b.name, b.params)
        bid = backbone_id(b.name, params)
        if bid in seen:
            raise ParamError(f"-b {spec!r} and -b {seen[bid]!r} are one backbone (the same"
                             " name and parameter values); name it once")
        seen[bid] = spec
        backbones[_label(registries.backbones, b.name, params)] = (b.name, params)
    return _Inputs(registries, task, scores, backbones)


def _label(registry: Any, name: str, params: Mapping[str, Any]) -> str:
    """How a backbone or score is shown and keyed in the output: its name with the parameter
    values that differ from the defaults, in the canonical spelling (``logme[tol=0.0001]``),
    whether computed or read back with ``--stored``."""
    from transferlab.harness.ranking import non_default
    from transferlab.settings import Setting

    return Setting(name, non_default(registry, name, params)).canonical()


def _rank(inputs: _Inputs, device: str | None, progress: bool, store: Any = None) -> _Ranking:
    """Compute every score for every backbone; each value goes to ``store`` (when given) as
    soon as it is computed, so an interrupted ranking keeps what it finished."""
    from transferlab.api import RunContext
    from transferlab.errors import IncompatibleError, TransferlabError
    from transferlab.harness.environment import default_device, environment
    from transferlab.harness.features import FeatureStore
    from transferlab.harness.ranking import backbone_id
    from transferlab.harness.store import ScoreRecord
    from transferlab.settings import parse_setting
    from transferlab.views import create_task

    registries = inputs.registries
    task = create_task(inputs.task, registries)
    backbones = dict(inputs.backbones)
    if not backbones:
        for name in default_backbones(registries, task.modality):
            params = registries.backbones.get(name).validate(name, {})
            backbones[_label(registries.backbones, name, params)] = (name, params)
        if not backbones:
            raise TransferlabError(f"no registered backbone with offline weights reads"
                                   f" {task.modality}; name backbones with -b")
    for label, (name, _) in backbones.items():
        declared = registries.backbones.get(name).info.get("modality")
        if declared is not None and declared != task.modality:  # before any extraction
            raise IncompatibleError(_modality_message(label, declared, task))
    scores = {label: registries.scores.get(name).create(name, params)
              for label, (name, params) in inputs.scores.items()}

    labels = task.split(SPLIT).labels
    device = device or default_device()
    ctx = RunContext(device=device, progress=progress, feature_store=FeatureStore(),
                     registries=registries)
    ranking = _Ranking(inputs.task, len(labels), list(backbones),
                       {name: [] for name in scores},
                       ids={label: backbone_id(n, p) for label, (n, p) in backbones.items()})
    env = environment(device) if store is not None else {}
    task_entry = registries.tasks.get(parse_setting(inputs.task).name)
    for label, (name, params) in backbones.items():
        backbone = registries.backbones.create(name, params).to(device)
        if backbone.modality != task.modality:
            raise IncompatibleError(_modality_message(label, backbone.modality, task))
        backbone.prepare(task)
        start = time.perf_counter()
        feats = ctx.features(backbone, task, SPLIT)
        ranking.seconds[label] = round(time.perf_counter() - start, 3)
        if hasattr(feats, "tocsr"):
            ranking.skipped += [{"backbone": label, "score": score, "reason": "its features"
                                 " are sparse (raw:tfidf); scores need dense features"}
                                for score in scores]
            continue
        probs = None
        if any(s.needs_source_probabilities for s in scores.values()):
            probs = _source_probabilities(backbone, feats, device)
        fingerprints = {"backbone_fingerprint": backbone.fingerprint,
                        "task_fingerprint": task.fingerprint()} if store is not None else {}
        for score_label, score in scores.items():
            if score.needs_source_probabilities and probs is None:
                ranking.skipped.append({"backbone": label, "score": score_label, "reason":
                                        "it has no source head (source-label probabilities)"})
                continue
            start = time.perf_counter()
            value = score.score(feats, labels, probs)
            seconds = time.perf_counter() - start
            ranking.values[score_label].append((label, value))
            if store is not None:
                score_name, score_params = inputs.scores[score_label]
                plugins = {"backbone": registries.backbones.get(name).provenance(),
                           "task": task_entry.provenance(),
                           "score": registries.scores.get(score_name).provenance()}
                store.add_score(ScoreRecord(
                    inputs.task, name, params, score_name, score_params, SPLIT, len(labels),
                    value, round(seconds, 6), {**env, "plugins": plugins}, fingerprints))
    if not any(ranking.values.values()):
        notes = "; ".join(_note(s) for s in ranking.skipped[:3])
        raise TransferlabError(f"no score could be computed for any backbone on"
                               f" {inputs.task!r} ({notes}); add a backbone with a source"
                               " head or choose --score logme")
    return ranking


def _stored_ranking(inputs: _Inputs, store: Any, db: str) -> _Ranking:
    """The ranking from the values stored for the task (``--stored``): nothing is loaded.
    ``-b`` and ``--score`` select among them; without them every stored one counts."""
    from transferlab.errors import TransferlabError
    from transferlab.harness.ranking import backbone_id

    registries = inputs.registries
    wanted_backbones = {backbone_id(n, p): label for label, (n, p) in inputs.backbones.items()}
    wanted_scores = {(n, json.dumps(p, sort_keys=True, default=str)): label
                     for label, (n, p) in inputs.scores.items()}
    rows = store.scores(task=inputs.task, split=SPLIT)
    ranking = _Ranking(inputs.task, 0, list(inputs.backbones),
                       {label: [] for label in inputs.scores}, stored=True,
                       ids={label: bid for bid, label in wanted_backbones.items()})
    have: set[tuple[str, str]] = set()
    for row in rows:
        bid = backbone_id(row["backbone"], row["backbone_params"], registries)
        score_params = _resolved(registries.scores, row["score"], row["score_params"])
        score_key = (row["score"], json.dumps(score_params, sort_keys=True, default=str))
        if (wanted_backbones and bid not in wanted_backbones) or (
                wanted_scores and score_key not in wanted_scores):
            continue
        label = wanted_backbones.get(bid) or _label(registries.backbones, row["backbone"],
                                                    json.loads(bid[1]))
        if label not in ranking.ids:
            ranking.backbones.append(label)
            ranking.ids[label] = bid
        score_label = wanted_scores.get(score_key) or _label(registries.scores, row["score"],
                                                             score_params)
        ranking.values.setdefault(score_label, []).append((label, float(row["value"])))
        ranking.examples = max(ranking.examples, int(row["examples"]))
        have.add((label, score_label))
    if not have:
        chosen = " for the chosen backbones and scores" if wanted_backbones or wanted_scores \
            else ""
        command = shlex.join(["transferlab", "rank", "-t", inputs.task,
                              *(a for b in inputs.backbones for a in ("-b", b)),
                              *(a for s in inputs.scores for a in ("--score", s)), "--db", db])
        raise TransferlabError(f"no scores of task {inputs.task!r} are stored in {db}{chosen};"
                               f" compute them first: {command}")
    ranking.skipped += [{"backbone": b, "score": s, "reason": "no value is stored for it;"
                         " rank it without --stored"}
                        for s in ranking.values for b in ranking.backbones
                        if (b, s) not in have]
    return ranking


def _resolved(registry: Any, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    from transferlab.errors import TransferlabError

    try:
        return registry.get(name).validate(name, params)
    except TransferlabError:
        return dict(params)


# --- validation ------------------------------------------------------------------------------


def _value(value: Any) -> str:
    """A parameter value as ``-p`` / ``-B`` take it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "+".join(_value(v) for v in value)
    return str(value)


def run_command(backbone: str, backbone_params: Mapping[str, Any], task: str, method: str,
                params: Mapping[str, Any], seed: int, db: str,
                data_dirs: Sequence[Path] = ()) -> str:
    """The ``transferlab run`` command line that measures one cell, quoted for a shell."""
    args = ["transferlab", "run", "-b", backbone]
    for key, value in sorted(backbone_params.items()):
        args += ["-B", f"{key}={_value(value)}"]
    args += ["-t", task, "-m", method]
    for key, value in sorted(params.items()):
        args += ["-p", f"{key}={_value(value)}"]
    if seed != 0:
        args += ["--seed", str(seed)]
    for folder in data_dirs:
        args += ["--data-dir", str(folder)]
    return shlex.join([*args, "--db", db])


def _validate(ranking: _Ranking, inputs: _Inputs, store: Any, against: Sequence[str],
              metric: str, db: str, data_dirs: Sequence[Path]) -> dict[str, Any]:
    """Kendall's tau and weighted tau of every score against every ground truth, and the
    commands that measure the missing cells (see :mod:`transferlab.harness.ranking`)."""
    from transferlab.errors import TransferlabError
    from transferlab.harness.ranking import (
        DEFAULT_GROUND_TRUTHS,
        ground_truths,
        non_default,
        validate_scores,
    )
    from transferlab.settings import parse_setting

    registries = inputs.registries
    # an unknown --against name fails, naming the choices; a default that is not registered
    # (its plugin disabled) is left out, since its cells could not be measured
    settings = [parse_setting(a, "--against") for a in against] or [
        parse_setting(name) for name in DEFAULT_GROUND_TRUTHS if name in registries.methods]
    for setting in settings:
        registries.methods.get(setting.name)
    if not settings:
        raise TransferlabError(f"none of the default ground truths"
                               f" ({', '.join(DEFAULT_GROUND_TRUTHS)}) is registered; name a"
                               " method with --against")
    rows = store.rows(task=ranking.task)
    recorded = {m for row in rows for m in row["metrics"]}
    if rows and metric not in recorded:
        raise TransferlabError(f"no cell of task {ranking.task!r} in {db} records the metric"
                               f" {metric!r}; choose one of {', '.join(sorted(recorded))}"
                               " with --metric")
    truths = ground_truths(rows, settings, metric, registries)
    correlations = validate_scores(ranking.scored(), truths)
    missing = []
    for truth in truths:
        method_params = non_default(registries.methods, truth.method, truth.params)
        for label in ranking.backbones:
            bid = ranking.ids[label]
            if bid in truth.measured:
                continue
            name, params = bid[0], json.loads(bid[1])
            backbone_params = non_default(registries.backbones, name, params)
            missing.append({"backbone": label, "ground_truth": truth.label, "commands": [
                run_command(name, backbone_params, ranking.task, truth.method, method_params,
                            seed, db, data_dirs) for seed in truth.all_seeds]})
    by_id = {bid: label for label, bid in ranking.ids.items()}
    return {
        "metric": metric, "split": MEASURED_SPLIT, "db": db,
        "ground_truths": [{
            "label": t.label, "method": t.method, "params": t.params,
            "measured": {by_id[b]: v for b, v in t.measured.items() if b in by_id},
            "seeds": {by_id[b]: s for b, s in t.seeds.items() if b in by_id},
        } for t in truths],
        "correlations": [c.to_dict() for c in correlations],
        "missing": missing,
    }


def _tau(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _echo_validation(validation: Mapping[str, Any]) -> None:
    click.echo(f"\nvalidation against the measured {validation['metric']} ({MEASURED_SPLIT}"
               f" split, mean over seeds) of the cells in {validation['db']}")
    rows = validation["correlations"]
    score_width = max(len("score"), *(len(r["score"]) for r in rows))
    truth_width = max(len("ground truth"), *(len(r["ground_truth"]) for r in rows))
    click.echo(f"  {'score':<{score_width}}  {'ground truth':<{truth_width}}  {'backbones':>9}"
               f"  {'kendall tau':>11}  {'weighted tau':>12}")
    for r in rows:
        compared = f"{r['backbones']} of {r['scored']}"
        click.echo(f"  {r['score']:<{score_width}}  {r['ground_truth']:<{truth_width}}"
                   f"  {compared:>9}  {_tau(r['kendall_tau']):>11}"
                   f"  {_tau(r['weighted_tau']):>12}")
    if validation["missing"]:
        click.echo(f"\nmissing cells: {len(validation['missing'])} (backbone, ground truth)"
                   " pairs have no measured result; these commands measure them:")
        for item in validation["missing"]:
            for command in item["commands"]:
                click.echo(f"  {command}")


# --- the command -----------------------------------------------------------------------------


def _modality_message(label: str, modality: str, task: Any) -> str:
    return (f"backbone {label!r} reads {modality} but task {task.name!r} is {task.modality};"
            f" pick a backbone that reads {task.modality}")


def _note(skip: dict[str, str]) -> str:
    return f"{skip['score']} skipped for {skip['backbone']}: {skip['reason']}"


@click.command()
@click.option("-t", "--task", required=True,
              help="Task name, e.g. digits or 'digits[fraction=0.5]'.")
@click.option("-b", "--backbone", "backbones", multiple=True, metavar="BACKBONE",
              help="Backbone to rank, with parameter values if wanted, e.g."
              " 'raw:pixels[size=8]'; repeatable. Default: every registered backbone with"
              " offline weights that reads the task's modality (with --stored: every"
              " backbone with stored scores).")
@click.option("--score", "scores", multiple=True, metavar="NAME",
              help="Transferability score, e.g. logme or 'logme[tol=1e-4]'; repeatable."
              " Default: every registered score (`transferlab list scores`; with --stored:"
              " every stored score).")
@click.option("--stored", is_flag=True,
              help="Rank by the values an earlier rank stored in --db instead of computing"
              " them; nothing is loaded.")
@click.option("--validate", is_flag=True,
              help="Compare each score's ranking with the measured results of the same"
              " backbones' cells in --db (Kendall's tau, weighted tau) and print the commands"
              " that measure the missing cells.")
@click.option("--against", "against", multiple=True, metavar="METHOD",
              help="Ground truth for --validate: a method, with parameter values if wanted,"
              " e.g. 'finetune[max_steps=60]'; repeatable. Default: linear-probe and"
              " finetune.")
@click.option("--metric", default="accuracy", show_default=True,
              help="Measured metric --validate compares with.")
@device_option
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@data_dir_option
@db_option
@json_option
@click.pass_context
def rank(ctx: click.Context, task: str, backbones: tuple[str, ...], scores: tuple[str, ...],
         stored: bool, validate: bool, against: tuple[str, ...], metric: str,
         device: str | None, no_progress: bool, data_dirs: tuple[Path, ...], db: str,
         as_json: bool) -> None:
    """Rank backbones for TASK by transferability scores of their training-split features.

    Higher scores predict better transfer; nothing is trained. Features come from the
    feature cache when present, so re-ranking is fast. Scores that need source-label
    probabilities (leep, nce) are skipped, with a note, for backbones without a source head.
    Every value is stored in --db (a re-rank replaces it).
    """
    from click.core import ParameterSource

    from transferlab.errors import TransferlabError
    from transferlab.harness.store import ResultsStore

    if not validate and (against or ctx.get_parameter_source("metric")
                         is ParameterSource.COMMANDLINE):
        raise click.UsageError("--against and --metric choose what --validate compares with;"
                               " add --validate")
    inputs = _inputs(task, backbones, scores, data_dirs, stored=stored)
    if stored and not Path(db).is_file():
        raise TransferlabError(f"--stored reads {db}, which does not exist; rank without"
                               " --stored first, or pass the database with --db")
    store = ResultsStore(db)
    if stored:
        ranking = _stored_ranking(inputs, store, db)
    else:
        ranking = _rank(inputs, device, not no_progress, store)
    validation = _validate(ranking, inputs, store, against, metric, db, data_dirs) \
        if validate else None
    if as_json:
        data = ranking.to_dict()
        if validation is not None:
            data["validation"] = validation
        click.echo(json.dumps(data, indent=2))
        return
    source = f"read from {db}" if ranking.stored else f"stored in {db}"
    click.echo(f"task {ranking.task}: {ranking.examples} {SPLIT} examples,"
               f" {len(ranking.backbones)} backbones (higher score = predicted to transfer"
               f" better; values {source})")
    width = max(len("backbone"), *(len(b) for b in ranking.backbones))
    for score in ranking.values:
        rows = ranking.ordered(score)
        click.echo(f"\n{score}")
        if not rows:
            click.echo("  (no backbone could be scored)")
            continue
        click.echo(f"  {'rank':>4}  {'backbone':<{width}}  {'score':>12}")
        for position, name, value in rows:
            click.echo(f"  {position:>4}  {name:<{width}}  {value:>12.6g}")
    if validation is not None:
        _echo_validation(validation)
    for skip in ranking.skipped:
        click.echo(f"note: {_note(skip)}", err=True)


COMMANDS = (rank,)
