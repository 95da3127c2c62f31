"""The contracts between the core and plugins: Backbone, Task, TransferMethod, Predictor,
Objective, TransferabilityScore and RunContext.

They are small abstract classes rather than bare protocols so that shared behaviour (feature
extraction in batches, parameter counting, hyper-parameter validation) lives in one place.
torch is imported lazily: the raw baselines and the CLI never need it.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from transferlab.errors import DataError, IncompatibleError
from transferlab.params import Param, resolve_params

if TYPE_CHECKING:
    import numpy as np
    import torch

    from transferlab.registry import Registries

__all__ = [
    "FAMILIES", "LOWER_IS_BETTER", "MODALITIES", "TASK_KINDS", "Backbone", "Budget",
    "FeatureSource", "Objective", "ObjectiveExample", "Predictor", "PretrainingObjective",
    "RunContext", "Split", "Task", "TransferMethod", "TransferabilityScore", "extract_features",
]

MODALITIES = ("image", "text")
FAMILIES = ("feature", "parameter", "relational", "baseline")
# task types (Task.kind) and the metric the harness scores each by; lower is better for
# the metrics in LOWER_IS_BETTER
TASK_KINDS = ("classification", "language-modelling")
LOWER_IS_BETTER = frozenset({"perplexity", "loss"})


# --- tasks ---------------------------------------------------------------------------------


@dataclass
class Split:
    """Inputs (image paths/arrays or strings) with integer labels indexing ``label_names``."""

    inputs: Sequence[Any]
    labels: np.ndarray

    def __post_init__(self) -> None:
        import numpy as np

        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.inputs) != len(self.labels):
            raise DataError(
                f"split has {len(self.inputs)} inputs but {len(self.labels)} labels;"
                " every input needs exactly one label"
            )

    def __len__(self) -> int:
        return len(self.inputs)


class Task(abc.ABC):
    """A dataset with named splits, a modality, label names and a primary metric."""

    name: str
    modality: str
    kind: str = "classification"
    primary_metric: str = "accuracy"

    def __init__(self, name: str) -> None:
        self.name = name
        self._splits: dict[str, Split] = {}

    @property
    @abc.abstractmethod
    def label_names(self) -> list[str]:
        """Class names; labels in every split index this list."""

    @abc.abstractmethod
    def split_names(self) -> list[str]:
        """Available splits, a subset of ``train``, ``val``, ``test``."""

    @abc.abstractmethod
    def _load_split(self, split: str) -> Split:
        """Load one split from storage (called once, result cached and validated)."""

    def split(self, split: str) -> Split:
        """Return a split, loading and validating it on first use."""
        if split not in self._splits:
            if split not in self.split_names():
                raise DataError(
                    f"task {self.name!r} has no {split!r} split; it has"
                    f" {', '.join(self.split_names())}"
                )
            loaded = self._load_split(split)
            self._validate(split, loaded)
            self._splits[split] = loaded
        return self._splits[split]

    def _validate(self, split: str, data: Split) -> None:
        if len(data) == 0:
            raise DataError(f"task {self.name!r}: split {split!r} is empty; add examples to it")
        n = len(self.label_names)
        if data.labels.min() < 0 or data.labels.max() >= n:
            raise DataError(f"task {self.name!r}: split {split!r} has labels outside 0..{n - 1}")

    def fingerprint(self) -> str:
        """A stable identifier of the task's data, the feature cache's key for it.

        The default hashes every split's inputs and labels, so a task built in code with other
        data never reads stale cached features; tasks backed by files override it with
        something cheaper (file names, sizes and times)."""
        import hashlib

        import numpy as np

        digest = hashlib.sha256(self.name.encode())
        for split_name in self.split_names():
            data = self.split(split_name)
            digest.update(f"|{split_name}|{len(data)}|".encode())
            digest.update(np.ascontiguousarray(data.labels).tobytes())
            for item in data.inputs:
                digest.update(_input_bytes(item))
        return f"{self.name}:{digest.hexdigest()[:16]}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modality": self.modality,
            "kind": self.kind,
            "primary_metric": self.primary_metric,
        }


def _input_bytes(item: Any) -> bytes:
    """Bytes that identify one input (array contents, text, or a path's spelling)."""
    import numpy as np

    if isinstance(item, np.ndarray):
        header = f"{item.dtype.str}{item.shape}".encode()
        return header + np.ascontiguousarray(item).tobytes()
    if isinstance(item, bytes):
        return item
    return f"{type(item).__name__}:{item}\x00".encode()


# --- backbones -----------------------------------------------------------------------------


class Backbone(abc.ABC):
    """A pretrained mapping from inputs to ``[B, D]`` representations, with preprocessing."""

    name: str
    modality: str
    default_batch_size: int = 16
    # fp32, bf16 or fp16 (set by the registry from ``-B precision``, resolved when the cell
    # is validated; ``auto`` on a backbone built directly resolves at its first forward pass)
    precision: str = "fp32"

    @property
    @abc.abstractmethod
    def feature_dim(self) -> int:
        """Width D of the representation returned by :meth:`features`."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Hash of weights and preprocessing; equal fingerprints give equal features."""

    @property
    def module(self) -> torch.nn.Module | None:
        """The trainable torch module, or None for non-neural baselines."""
        return None

    # -- optional capabilities, with defaults; override what applies ------------------------
    @property
    def source_head(self) -> torch.nn.Module | None:
        """The pretrained model's own classifier over its source labels (timm's ImageNet
        head), inside :attr:`module` but off the feature path; None when there is none.
        Training methods freeze it and leave it out of parameter counts; relational methods
        (co-tuning, LEEP) read source-label probabilities from it."""
        return None

    def base_model(self) -> torch.nn.Module | None:
        """The transformer inside :attr:`module` that computes the features (text backbones
        return it without their LM heads); adapter methods (LoRA) target layers within it.
        None (the default): they search ``module`` for a Hugging Face model, else use it all."""
        return None

    def invalidate_fingerprint(self) -> None:  # noqa: B027 - optional hook
        """Forget a cached fingerprint; training methods call it after changing the weights,
        so features of the trained weights are never served from the cache of the old ones.
        Backbones that cache their fingerprint must override it."""

    @abc.abstractmethod
    def preprocess(self, inputs: Sequence[Any]) -> Any:
        """Turn raw inputs (image paths/arrays, strings) into a model-ready batch."""

    @abc.abstractmethod
    def features(self, batch: Any) -> Any:
        """Map a preprocessed batch to a ``[B, D]`` tensor (differentiable when trainable)."""

    def layer_groups(self) -> list[tuple[str, list[Any]]]:
        """(name, modules) from the input side to the head, for freezing and layer-wise LR."""
        return []

    def prepare(self, task: Task) -> None:  # noqa: B027 - optional hook
        """Fit data-dependent preprocessing (e.g. a TF-IDF vocabulary) on ``task``'s training
        split only; called by the harness before any feature is extracted."""

    def to(self, device: str) -> Backbone:
        if self.module is not None:
            self.module.to(device)
        return self

    def num_parameters(self) -> int:
        return 0 if self.module is None else sum(p.numel() for p in self.module.parameters())

    def save(self, path: str | Path) -> Path:
        """Write this backbone's weights (its :attr:`module`, as training left them; no task
        head) to one safetensors checkpoint that ``NAME@PATH`` restores, for families whose
        factory loads ``@PATH`` tags. ``transferlab relate`` saves fine-tuned backbones this
        way. Families whose preprocessing depends on the weights (timm's normalisation)
        override it to record that too."""
        from transferlab.checkpoint import save_checkpoint

        if self.module is None:
            raise IncompatibleError(f"backbone {self.name!r} has no weights to save;"
                                    " only backbones with a torch module can be checkpointed")
        return save_checkpoint(self.module, path, name=self.name.split("@", 1)[0])

    def encode(
        self, inputs: Sequence[Any], *, batch_size: int | None = None,
        progress: Callable[[int], None] | None = None, device: str = "cpu",
    ) -> np.ndarray:
        """Frozen features for ``inputs`` as a float32 ``[N, D]`` array, in batches."""
        import numpy as np

        batch_size = batch_size or self.default_batch_size
        chunks: list[np.ndarray] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            chunks.append(self._encode_batch(chunk, device))
            if progress is not None:
                progress(len(chunk))
        if not chunks:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def _encode_batch(self, chunk: Sequence[Any], device: str) -> np.ndarray:
        import torch

        from transferlab.precision import autocast, effective

        module = self.module
        if module is not None:
            module.eval()
        precision = "fp32" if module is None else effective(self, device)
        with torch.inference_mode():
            batch = self.preprocess(chunk)
            batch = _to_device(batch, device)
            with autocast(precision, device):
                out = self.features(batch)
        return out.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "feature_dim": self.feature_dim}


def _to_device(batch: Any, device: str) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


# --- predictors, methods, objectives -------------------------------------------------------


class Predictor(abc.ABC):
    """What a transfer method returns: predictions plus how much of it was trained.

    Subclasses must set ``trainable_params`` and ``total_params`` (weights that training
    changed, and all weights on the prediction path); the harness refuses a predictor that
    leaves them unset rather than reporting 0 / 0. ``extra`` holds method-specific facts
    (JSON-friendly) that the harness stores with the result.
    """

    trainable_params: int | None = None
    total_params: int | None = None

    @property
    def extra(self) -> dict[str, Any]:
        """Method-specific facts stored with the result (steps, stop reason, ...)."""
        return self.__dict__.setdefault("_extra", {})

    @extra.setter
    def extra(self, value: Mapping[str, Any]) -> None:
        self.__dict__["_extra"] = dict(value)

    def counts(self) -> tuple[int, int]:
        """(trainable, total) weights, or :class:`IncompatibleError` naming the fix."""
        if self.trainable_params is None or self.total_params is None:
            raise IncompatibleError(
                f"predictor {type(self).__name__} does not report trainable_params and"
                " total_params; set both in the predictor (weights trained, weights used)"
            )
        return int(self.trainable_params), int(self.total_params)

    @abc.abstractmethod
    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        """Integer class predictions for ``inputs``."""

    def predict_split(self, task: Task, split: str, ctx: RunContext) -> np.ndarray:
        """Predictions for a whole split; feature predictors override it to reuse the cache."""
        return self.predict(task.split(split).inputs, ctx)

    def predict_experiments(self, task: Task, split: str, ctx: RunContext
                            ) -> list[np.ndarray] | None:
        """Predictions of each repeated experiment, for protocols that fit several models and
        report their mean and spread (MTEB's 10 subsamples); None for a single model."""
        return None

    def language_model_metrics(self, task: Task, split: str, ctx: RunContext
                               ) -> dict[str, float]:
        """For a ``language-modelling`` task: ``perplexity`` (and whatever else the predictor
        measures, such as ``loss`` and ``tokens``) of the model on ``split``'s text. Only
        predictors of language models implement it."""
        raise IncompatibleError(f"{type(self).__name__} predicts labels and cannot score"
                                f" the language-modelling task {task.name!r}; use lm-finetune")


class TransferMethod(abc.ABC):
    """A strategy that turns a backbone into a predictor for a task.

    Subclasses set ``name``, ``family``, ``params`` (declared hyper-parameters) and
    ``modalities``, and implement :meth:`fit`. Parameters are validated on construction, so a
    bad value fails before any work starts.

    ``saves_predictor`` declares that the predictors :meth:`fit` returns have ``save(path)``
    and a classmethod ``load(path, backbone)`` that restores identical predictions around a
    freshly built backbone (the training API's :class:`~transferlab.training.ModelPredictor`
    does); the conformance kit (:mod:`transferlab.testing`) then checks the round trip.
    ``needs_source_head`` declares that the method reads the backbone's
    :attr:`Backbone.source_head` (co-tuning): :meth:`check` refuses a backbone without one,
    and the kit fits the method on a tiny backbone that has one.
    """

    name: ClassVar[str]
    family: ClassVar[str] = "feature"
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    modalities: ClassVar[tuple[str, ...]] = MODALITIES
    task_kinds: ClassVar[tuple[str, ...]] = ("classification",)
    needs_module: ClassVar[bool] = False
    needs_source_head: ClassVar[bool] = False
    adapts_domains: ClassVar[bool] = False
    saves_predictor: ClassVar[bool] = False

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        self.hparams = resolve_params(self.params, params, owner=self.name)

    def check(self, backbone: Backbone, task: Task) -> None:
        """Raise :class:`IncompatibleError` if this method cannot run on the pair."""
        if backbone.modality != task.modality:
            article = "an" if task.modality[:1] in tuple("aeiou") else "a"
            raise IncompatibleError(
                f"backbone {backbone.name!r} reads {backbone.modality} but task {task.name!r}"
                f" is {task.modality}; pick {article} {task.modality} backbone"
            )
        if task.modality not in self.modalities:
            raise IncompatibleError(f"method {self.name!r} does not support {task.modality} tasks")
        if task.kind not in self.task_kinds:
            raise IncompatibleError(f"method {self.name!r} does not support {task.kind} tasks"
                                    f" such as {task.name!r}; it handles"
                                    f" {', '.join(self.task_kinds)}")
        if self.needs_module and backbone.module is None:
            raise IncompatibleError(
                f"method {self.name!r} trains weights but {backbone.name!r} has none;"
                " use a feature method such as linear-probe"
            )
        if self.needs_source_head and backbone.source_head is None:
            raise IncompatibleError(
                f"method {self.name!r} reuses the backbone's source classifier but"
                f" {backbone.name!r} has none (source_head); use a backbone that keeps its"
                " pretrained head, such as timm:efficientnet_lite0, or finetune"
            )

    @abc.abstractmethod
    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        """Train on ``task``'s training data and return a predictor."""

    def fit_adapted(
        self, backbone: Backbone, source: Task, target: Task, ctx: RunContext
    ) -> Predictor:
        """Domain adaptation: labeled ``source`` training data plus ``target`` training inputs
        whose labels are hidden (-1); the predictor is scored on the target test split.

        Methods that do not adapt keep this default, training on the source only (the
        "source-only" baseline); adapting methods override it and set ``adapts_domains``.
        """
        return self.fit(backbone, source, ctx)


class Objective(abc.ABC):
    """A loss over a model's outputs and a batch; objectives compose as weighted sums.

    The batch is a mapping with at least ``inputs`` (the preprocessed batch) and ``labels``
    (a long tensor); outputs are what the model returned (logits for classification).
    """

    name: str

    @abc.abstractmethod
    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor: ...

    def setup(self, model: torch.nn.Module) -> None:  # noqa: B027 - optional hook
        """Called once by the training loop before the first step, with the model on its
        device: how a weight penalty finds the weights it penalises. Default: nothing."""

    def example(self, generator: torch.Generator) -> ObjectiveExample | None:
        """A tiny model and batch this objective applies to, drawn from ``generator``, for the
        conformance kit's checks. None (the default): a 3-class classification batch, with
        ``inputs`` ``[5, 6]``, ``labels`` and a ``teacher`` tensor ``[5, 3]``. Objectives that
        read other outputs (embeddings, token logits, reconstructions) return their own."""
        return None


class PretrainingObjective(Objective):
    """An objective that can also train a backbone on unlabeled data (``transferlab
    pretrain``): it knows which heads it adds to the backbone, how to make its batches from
    raw inputs, and how to run the model on them.

    ``transferlab pretrain`` calls :meth:`build_pretraining` on the first objective with every
    objective and its weight; objectives trained together must share one implementation of
    it (the built-in text objectives ``mlm``, ``nsp`` and ``clm`` do; so do ``contrastive`` and
    ``reconstruction``), which then returns one
    :class:`~transferlab.pretraining.PretrainingSetup` for all of them.
    """

    modality: ClassVar[str]

    @abc.abstractmethod
    def build_pretraining(self, backbone: Backbone, data: Any,
                          terms: Sequence[tuple[PretrainingObjective, float]], seed: int
                          ) -> Any:
        """The :class:`~transferlab.pretraining.PretrainingSetup` that trains ``backbone``
        with ``terms`` (objective, weight) on ``data``
        (:class:`~transferlab.pretraining.UnlabeledData`); ``seed`` fixes anything drawn
        once (initial head weights, sentence pairs). Raises :class:`IncompatibleError` for a
        backbone or an objective it cannot train with."""


def _call_model(model: Any, batch: Mapping[str, Any]) -> Any:
    return model(batch["inputs"])


@dataclass
class ObjectiveExample:
    """What :meth:`Objective.example` returns: ``model`` (a torch module), the ``batch`` the
    objective is called with, and ``forward(model, batch) -> outputs``, which may also add
    tensors computed with the model to the batch (a second view's embeddings, with gradient).
    """

    model: Any
    batch: dict[str, Any]
    forward: Callable[[Any, dict[str, Any]], Any] = _call_model


# --- transferability scores -----------------------------------------------------------------


class TransferabilityScore(abc.ABC):
    """A score that predicts, before any training, how well frozen features will transfer
    to a task's labels: higher means predicted to transfer better.

    Subclasses set ``name``, ``summary``, ``params`` (declared parameters, validated on
    construction) and ``needs_source_probabilities`` (True when the score reads the
    backbone's own source-label probabilities, as LEEP and NCE do), and implement
    :meth:`compute`. Callers use :meth:`score`, which checks the inputs once for every score
    (finite features, one label per row, at least two classes, source probabilities present
    when needed) and fails with one line naming the fix.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    needs_source_probabilities: ClassVar[bool] = False

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        self.hparams = resolve_params(self.params, params, owner=self.name)

    def score(
        self, features: Any, labels: Any, source_probabilities: Any = None
    ) -> float:
        """The score of ``features`` (``[N, D]``) for integer ``labels`` (``[N]``);
        ``source_probabilities`` (``[N, C_source]``, rows summing to 1) when the score needs
        them. Raises :class:`DataError` or :class:`IncompatibleError` on bad input."""
        import numpy as np

        feats, labs, probs = _check_score_inputs(
            self.name, features, labels, source_probabilities, self.needs_source_probabilities)
        value = float(self.compute(feats, labs, probs))
        if not np.isfinite(value):
            raise DataError(f"score {self.name!r} came out {value} on these features; check"
                            " for constant or duplicated features (or report the bug)")
        return value

    @abc.abstractmethod
    def compute(
        self, features: np.ndarray, labels: np.ndarray, source_probabilities: np.ndarray | None
    ) -> float:
        """The score on checked inputs: float64 ``features`` ``[N, D]``, int64 ``labels``
        ``[N]`` with at least two classes, and float64 ``source_probabilities``
        ``[N, C_source]`` (None unless :attr:`needs_source_probabilities`)."""


def _check_score_inputs(
    name: str, features: Any, labels: Any, probs: Any, needs_probs: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated float64 features, int64 labels and (when needed) float64 probabilities."""
    import numpy as np

    if hasattr(features, "tocsr"):
        raise DataError(f"score {name!r} needs dense features, got a sparse matrix; pass"
                        " features.toarray() (or reduce its width first)")
    feats = np.asarray(features, dtype=np.float64)
    labs = np.asarray(labels)
    if feats.ndim != 2:
        raise DataError(f"score {name!r} needs features of shape [N, D], got shape"
                        f" {feats.shape}; reshape them to one row per example")
    if labs.ndim != 1 or len(labs) != len(feats):
        raise DataError(f"score {name!r}: {len(feats)} feature rows but labels of shape"
                        f" {labs.shape}; pass exactly one integer label per feature row")
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).sum())
        raise DataError(f"score {name!r}: the features hold {bad} NaN/inf values; remove"
                        " those rows or fix the backbone that produced them")
    if not np.issubdtype(labs.dtype, np.integer) or (len(labs) and labs.min() < 0):
        raise DataError(f"score {name!r} needs non-negative integer class labels, got"
                        f" {labs.dtype}; encode the classes as 0..C-1")
    if len(np.unique(labs)) < 2:
        raise DataError(f"score {name!r} needs at least two classes, the labels hold"
                        f" {len(np.unique(labs))}; score on a split with several classes")
    labs = labs.astype(np.int64)
    if not needs_probs:
        return feats, labs, None
    if probs is None:
        raise IncompatibleError(f"score {name!r} needs the backbone's source-label"
                                " probabilities; pass source_probabilities (a backbone with a"
                                " source_head provides them) or use a score such as logme")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(labs):
        raise DataError(f"score {name!r}: source probabilities of shape {p.shape} for"
                        f" {len(labs)} labels; pass one row of class probabilities per example")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0,
                                                                    atol=1e-4):
        raise DataError(f"score {name!r}: source probabilities must be finite, non-negative"
                        " and sum to 1 per row; apply a softmax to the logits first")
    return feats, labs, p


# --- run context ---------------------------------------------------------------------------


@dataclass
class Budget:
    """How much training a cell may spend; the first limit reached stops it."""

    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None


class FeatureSource(Protocol):
    """Where :meth:`RunContext.features` gets frozen features; the harness injects its
    on-disk :class:`~transferlab.harness.features.FeatureStore`."""

    def get(self, backbone: Backbone, task: Task, split: str, ctx: RunContext) -> Any: ...


def extract_features(backbone: Backbone, task: Task, split: str, ctx: RunContext) -> Any:
    """Encode one split with a progress bar; NaN or infinite values are a
    :class:`DataError` naming the backbone and the split (every feature source uses this)."""
    import numpy as np

    data = task.split(split)
    with ctx.progress_bar(len(data), f"features {task.name}/{split}") as update:
        feats = backbone.encode(data.inputs, progress=update, device=ctx.device)
    values = feats.data if hasattr(feats, "tocsr") else feats  # scipy sparse or dense
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise DataError(
            f"backbone {backbone.name!r} produced {bad} NaN/inf feature values"
            f" on {task.name}/{split}; check the inputs and the weights"
        )
    return feats


class _InMemoryFeatures:
    """The fallback feature source: extract once per (backbone, task, split), in memory."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], Any] = {}

    def get(self, backbone: Backbone, task: Task, split: str, ctx: RunContext) -> Any:
        key = (backbone.fingerprint, task.fingerprint(), split)
        if key not in self._cache:
            self._cache[key] = extract_features(backbone, task, split, ctx)
        return self._cache[key]


@dataclass
class RunContext:
    """Seed, device, budget, feature access, progress, logging and the registries of the
    run for one cell (methods build objectives and teachers from ``registries``)."""

    seed: int = 0
    device: str = "cpu"
    budget: Budget = field(default_factory=Budget)
    progress: bool = True
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("transferlab"))
    feature_store: FeatureSource | None = None
    registries: Registries | None = None

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A numpy generator derived from the cell seed (same seed, same stream)."""
        import numpy as np

        return np.random.default_rng([self.seed, salt])

    def seed_everything(self) -> None:
        """Seed python, numpy and torch (when installed) from the cell seed."""
        import random

        import numpy as np

        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        try:
            import torch
        except ImportError:  # pragma: no cover - torch-less installs
            return
        torch.manual_seed(self.seed)

    def features(self, backbone: Backbone, task: Task, split: str) -> Any:
        """Frozen features of one split: a float32 ``[N, D]`` array, or a scipy sparse
        matrix for sparse backbones (``raw:tfidf``), shared through the feature source."""
        if self.feature_store is None:
            self.feature_store = _InMemoryFeatures()
        return self.feature_store.get(backbone, task, split, self)

    @contextlib.contextmanager
    def progress_bar(self, total: int, desc: str) -> Iterator[Callable[[int], None]]:
        """A tqdm bar (hidden when progress is off); yields its ``update`` callable."""
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, disable=None if self.progress else True,
                  leave=False) as bar:  # None: hidden when not a terminal
            yield bar.update
