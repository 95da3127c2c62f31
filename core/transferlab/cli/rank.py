"""``transferlab rank``: rank backbones for a task with transferability scores, before any
training.

Each backbone's training-split features come through the harness's feature store (the disk
cache shared with ``transferlab run`` and ``bench``), so a second ranking of the same
backbones takes seconds. Scores that read source-label probabilities (LEEP, NCE) get them
from the backbone's ``source_head`` applied to those features; a backbone without one is
skipped for those scores, with a note.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from transferlab.cli.options import data_dir_option, json_option

SPLIT = "train"


@dataclass
class _Ranking:
    """What one ``rank`` run found: per score, (backbone, value) pairs; and what it skipped."""

    task: str
    examples: int
    backbones: list[str]
    values: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def ordered(self, score: str) -> list[tuple[int, str, float]]:
        """(rank, backbone, value), best first; ties keep the order backbones were given."""
        pairs = sorted(self.values[score], key=lambda p: -p[1])
        return [(i + 1, name, value) for i, (name, value) in enumerate(pairs)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "split": SPLIT, "examples": self.examples,
            "backbones": self.backbones, "feature_seconds": self.seconds,
            "scores": {score: [{"rank": r, "backbone": b, "score": v}
                               for r, b, v in self.ordered(score)] for score in self.values},
            "skipped": self.skipped,
        }


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


def _rank(task_name: str, backbone_specs: tuple[str, ...], score_specs: tuple[str, ...],
          device: str | None, progress: bool, data_dirs: tuple[Path, ...]) -> _Ranking:
    from transferlab.api import RunContext
    from transferlab.errors import IncompatibleError, TransferlabError
    from transferlab.harness.environment import default_device
    from transferlab.harness.features import FeatureStore
    from transferlab.plugins import get_host
    from transferlab.settings import parse_setting
    from transferlab.views import create_task, validate_task

    registries = get_host(data_dirs=data_dirs).registries
    # every name and parameter is checked before any feature is extracted
    task_name = validate_task(task_name, registries)
    if not len(registries.scores):
        raise TransferlabError("no transferability scores are registered; install or enable"
                               " a plugin that registers them (built-in: transferlab_relational)")
    score_settings = [parse_setting(s, "score") for s in score_specs] or [
        parse_setting(e.name) for e in registries.scores if not e.is_pattern]
    scores = {s.canonical(): registries.scores.get(s.name).create(s.name, s.params)
              for s in score_settings}
    task = create_task(task_name, registries)
    if backbone_specs:
        backbones = [parse_setting(b, "backbone") for b in backbone_specs]
    else:
        backbones = [parse_setting(n) for n in default_backbones(registries, task.modality)]
        if not backbones:
            raise TransferlabError(f"no registered backbone with offline weights reads"
                                   f" {task.modality}; name backbones with -b")
    params = {}
    for b in backbones:
        entry = registries.backbones.get(b.name)
        params[b.canonical()] = entry.validate(b.name, b.params)
        declared = entry.info.get("modality")
        if declared is not None and declared != task.modality:  # before any extraction
            raise IncompatibleError(_modality_message(b.canonical(), declared, task))

    labels = task.split(SPLIT).labels
    device = device or default_device()
    ctx = RunContext(device=device, progress=progress, feature_store=FeatureStore(),
                     registries=registries)
    ranking = _Ranking(task_name, len(labels), [b.canonical() for b in backbones],
                       {name: [] for name in scores})
    for setting in backbones:
        label = setting.canonical()
        backbone = registries.backbones.create(setting.name, params[label]).to(device)
        if backbone.modality != task.modality:
            raise IncompatibleError(_modality_message(label, backbone.modality, task))
        backbone.prepare(task)
        start = time.perf_counter()
        feats = ctx.features(backbone, task, SPLIT)
        ranking.seconds[label] = round(time.perf_counter() - start, 3)
        if hasattr(feats, "tocsr"):
            ranking.skipped += [{"backbone": label, "score": name, "reason": "its features"
                                 " are sparse (raw:tfidf); scores need dense features"}
                                for name in scores]
            continue
        probs = None
        if any(s.needs_source_probabilities for s in scores.values()):
            probs = _source_probabilities(backbone, feats, device)
        for name, score in scores.items():
            if score.needs_source_probabilities and probs is None:
                ranking.skipped.append({"backbone": label, "score": name, "reason": "it has"
                                        " no source head (source-label probabilities)"})
                continue
            ranking.values[name].append((label, score.score(feats, labels, probs)))
    if not any(ranking.values.values()):
        raise TransferlabError(f"no score could be computed for any backbone on {task_name!r}"
                               f" ({'; '.join(_note(s) for s in ranking.skipped[:3])});"
                               " add a backbone with a source head or choose --score logme")
    return ranking


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
              " offline weights that reads the task's modality.")
@click.option("--score", "scores", multiple=True, metavar="NAME",
              help="Transferability score, e.g. logme or 'logme[tol=1e-4]'; repeatable."
              " Default: every registered score (`transferlab list scores`).")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@data_dir_option
@json_option
def rank(task: str, backbones: tuple[str, ...], scores: tuple[str, ...], device: str | None,
         no_progress: bool, data_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Rank backbones for TASK by transferability scores of their training-split features.

    Higher scores predict better transfer; nothing is trained. Features come from the
    feature cache when present, so re-ranking is fast. Scores that need source-label
    probabilities (leep, nce) are skipped, with a note, for backbones without a source head.
    """
    ranking = _rank(task, backbones, scores, device, not no_progress, data_dirs)
    if as_json:
        click.echo(json.dumps(ranking.to_dict(), indent=2))
        return
    click.echo(f"task {ranking.task}: {ranking.examples} {SPLIT} examples,"
               f" {len(ranking.backbones)} backbones (higher score = predicted to transfer"
               " better)")
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
    for skip in ranking.skipped:
        click.echo(f"note: {_note(skip)}", err=True)


COMMANDS = (rank,)
