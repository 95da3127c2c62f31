"""One pretraining run end to end, as ``transferlab pretrain`` does it: resolve the objectives,
the backbone and the data, build the objectives' setup, train (resuming when the run's
directory holds a checkpoint), save the backbone as a checkpoint ``NAME@PATH`` restores, and
record the run in the results database."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferlab.api import Budget, PretrainingObjective
from transferlab.errors import CheckpointError, IncompatibleError, ParamError, UnknownNameError
from transferlab.pretraining.data import UnlabeledData, from_task, read_corpora
from transferlab.settings import parse_setting

__all__ = ["PretrainRequest", "build_setup", "checkpoint_dir", "resolve_terms", "run_request"]


@dataclass(frozen=True)
class PretrainRequest:
    """Everything a run depends on; its JSON form is written into the run's directory and a
    resume with different values is refused (their checkpoints would not match)."""

    backbone: str
    objectives: tuple[str, ...]
    out: str
    weights: Mapping[str, float] = field(default_factory=dict)
    corpora: tuple[str, ...] = ()
    task: str | None = None
    backbone_params: Mapping[str, Any] = field(default_factory=dict)
    steps: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    batch_size: int = 32
    lr: float = 5e-4
    warmup: float = 0.05
    weight_decay: float = 0.01
    checkpoint_every: int = 100
    seed: int = 0

    def config(self) -> Any:
        """The loop's :class:`~transferlab.pretraining.loop.PretrainConfig` for this run."""
        from transferlab.pretraining.loop import PretrainConfig

        return PretrainConfig(
            Budget(epochs=self.epochs, steps=self.steps, seconds=self.seconds),
            batch_size=self.batch_size, lr=self.lr, warmup=self.warmup,
            weight_decay=self.weight_decay, checkpoint_every=self.checkpoint_every,
            seed=self.seed)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share (the time budget and output may change)."""
        data = asdict(self)
        for volatile in ("seconds", "out", "checkpoint_every"):
            data.pop(volatile)
        data["corpora"] = [str(Path(p).resolve()) for p in self.corpora]
        return json.loads(json.dumps(data, sort_keys=True, default=str))


def checkpoint_dir(out: str | Path) -> Path:
    """Where the run writing ``out`` keeps its checkpoints: ``OUT.checkpoints/``."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


def resolve_terms(objectives: Sequence[str], weights: Mapping[str, float], registries: Any
                  ) -> list[Any]:
    """The run's :class:`~transferlab.pretraining.loop.Term` list: each ``NAME[params]``
    built from the objective registry, weighted by ``weights[NAME]`` (default 1)."""
    from transferlab.pretraining.loop import Term

    if not objectives:
        raise ParamError("no objective given; pass --objective NAME (repeatable), e.g."
                         " --objective mlm --objective nsp")
    terms, names = [], []
    for text in objectives:
        setting = parse_setting(text, "objective")
        objective = registries.objectives.create(setting.name, setting.params)
        if not isinstance(objective, PretrainingObjective):
            usable = [n for n in registries.objectives.names()
                      if isinstance(_probe(registries, n), PretrainingObjective)]
            raise IncompatibleError(f"objective {setting.name!r} cannot pretrain (it needs"
                                    f" labels); pretraining objectives: {', '.join(usable)}")
        if setting.name in names:
            raise ParamError(f"objective {setting.name!r} is given twice; give it once and"
                             f" set its weight with --weight {setting.name}=W")
        names.append(setting.name)
        terms.append(Term(setting.name, objective, float(weights.get(setting.name, 1.0))))
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise UnknownNameError(f"--weight names {', '.join(unknown)}, which is not among the"
                               f" objectives ({', '.join(names)})")
    builders = {type(t.objective).build_pretraining for t in terms}
    if len(builders) > 1:
        raise IncompatibleError(f"objectives {', '.join(names)} cannot pretrain together (they"
                                " build different models); pretrain with text objectives or"
                                " image objectives, not both")
    return terms


def _probe(registries: Any, name: str) -> Any:
    try:
        return registries.objectives.create(name)
    except Exception:  # an objective that needs parameters to build is simply not listed
        return None


def load_data(request: PretrainRequest, registries: Any) -> UnlabeledData:
    if bool(request.corpora) == bool(request.task):
        raise ParamError("give the unlabeled data as --corpus FILE (repeatable) or as -t TASK,"
                         " one of the two")
    if request.corpora:
        return read_corpora(request.corpora)
    from transferlab.views import create_task

    return from_task(create_task(request.task, registries))


def _check_resume(run_dir: Path, request: PretrainRequest) -> None:
    spec = run_dir / "request.json"
    identity = request.identity()
    if spec.is_file():
        try:
            stored = json.loads(spec.read_text())
        except ValueError:
            raise CheckpointError(f"{spec} is damaged; delete {run_dir} to start over") from None
        if stored != identity:
            changed = sorted(k for k in set(stored) | set(identity)
                             if stored.get(k) != identity.get(k))
            raise CheckpointError(
                f"{run_dir} holds a run with other settings (changed: {', '.join(changed)});"
                f" pass another --out, or delete {run_dir} to start over")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        spec.write_text(json.dumps(identity, indent=1, sort_keys=True))


def build_setup(request: PretrainRequest, registries: Any) -> tuple[list[Any], UnlabeledData,
                                                                    Any, Any]:
    """The run's terms, data, backbone and the objectives' ``PretrainingSetup``; a data
    modality the objectives do not train on is an :class:`IncompatibleError`."""
    terms = resolve_terms(request.objectives, request.weights, registries)
    data = load_data(request, registries)
    modality = type(terms[0].objective).modality
    if data.modality != modality:
        raise IncompatibleError(f"{data.source} is {data.modality} data but objectives"
                                f" {', '.join(t.name for t in terms)} pretrain on {modality}")
    backbone = registries.backbones.create(request.backbone, dict(request.backbone_params))
    setup = terms[0].objective.build_pretraining(
        backbone, data, [(t.objective, t.weight) for t in terms], request.seed)
    return terms, data, backbone, setup


def run_request(request: PretrainRequest, registries: Any, *, device: str | None = None,
                progress: bool = True, db: str | Path | None = None,
                should_stop: Any = None) -> dict[str, Any]:
    """Run (or resume) ``request``; return the stored record. Raises
    :class:`~transferlab.pretraining.loop.Interrupted` after checkpointing when
    ``should_stop()`` turns true."""
    from tqdm.auto import tqdm

    from transferlab.harness.environment import default_device, environment
    from transferlab.pretraining.loop import run_pretraining

    config = request.config()
    terms, data, backbone, setup = build_setup(request, registries)
    run_dir = checkpoint_dir(request.out)
    _check_resume(run_dir, request)
    device = device or default_device()
    with tqdm(total=None, desc=f"pretrain {request.backbone}", unit="step",
              disable=None if progress else True) as bar:

        def report(done: int, total: int, record: Mapping[str, float]) -> None:
            if bar.total != total:
                bar.total, bar.n = total, done - 1
            bar.update(done - bar.n)
            if record:
                bar.set_postfix({"loss": f"{record['loss']:.4f}",
                                 f"{setup.unit}/s": f"{record['units_per_s']:.0f}"},
                                refresh=False)

        result = run_pretraining(setup, terms, config, run_dir, device=device,
                                 progress=report, should_stop=should_stop)
    path = backbone.save(request.out)
    backbone.invalidate_fingerprint()
    record = {
        "backbone": request.backbone, "backbone_params": dict(request.backbone_params),
        "objectives": [{"name": t.name, "setting": s, "weight": t.weight}
                       for t, s in zip(terms, request.objectives, strict=True)],
        "data": data.source, "data_fingerprint": data.fingerprint,
        "budget": {"steps": request.steps, "epochs": request.epochs,
                   "seconds": request.seconds},
        "config": request.identity(), "checkpoint": str(Path(path).resolve()),
        "backbone_fingerprint": backbone.fingerprint, **result.summary(),
        "unit": setup.unit, "history": result.history, "environment": environment(device),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if db is not None:
        from transferlab.harness.store import ResultsStore

        store = ResultsStore(db)
        finished_before = result.resumed_from == result.steps and any(
            run["steps"] == result.steps and run["data_fingerprint"] == data.fingerprint
            for run in store.pretraining_runs(checkpoint=record["checkpoint"]))
        if not finished_before:  # a re-run of a finished run adds no second row
            store.add_pretraining(record)
    return record
