"""The public API of continual strategies: :class:`ContinualStrategy`, registered through the
``register_strategies`` hook (``transferlab list strategies``).

A strategy decides, for each experience of a stream, what the model trains on
(:meth:`~ContinualStrategy.training_split`: the experience's data, plus a replay memory),
what the loss adds (:meth:`~ContinualStrategy.extend_objective`: a penalty anchoring earlier
experiences' weights, or distillation from the model as it was), and what it keeps once the
experience is learned (:meth:`~ContinualStrategy.after_experience`). The parameter method of
the cell (``finetune``, ``bitfit``, ...) decides which weights train and how fast, so any
strategy runs with any gradient-based method. What a strategy keeps between experiences goes
in its checkpoint through :meth:`~ContinualStrategy.state_tensors` and
:meth:`~ContinualStrategy.state_json`, so a stream interrupted mid-way resumes after its last
finished experience.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.api import Objective, RunContext, Split, Task
from transferlab.params import Param, resolve_params

if TYPE_CHECKING:
    import torch

    from transferlab.regimes.heads import LabelLayout
    from transferlab.training.method import GradientMethod
    from transferlab.training.model import TransferModel

__all__ = ["ContinualStrategy", "Experience", "StreamState", "TrainingTask", "concatenate"]


@dataclass
class Experience:
    """One experience of a stream: its index, task name, and training and test data with
    labels already on the global head columns (``layout.columns(index)``)."""

    index: int
    name: str
    train: Split
    test: Split


@dataclass
class StreamState:
    """What a strategy sees while the stream runs."""

    model: TransferModel
    method: GradientMethod
    layout: LabelLayout
    experiences: list[Experience]
    scenario: str  # "task-incremental" or "class-incremental"
    ctx: RunContext
    current: int = 0
    row_masks: Any = None  # [classes, classes] bool: the columns each label may see
    extra: dict[str, Any] = field(default_factory=dict)

    def seen(self, upto: int | None = None) -> list[int]:
        """Indices of the experiences trained so far, the current one included."""
        return list(range((self.current if upto is None else upto) + 1))


class ContinualStrategy:
    """Base of continual strategies: every hook has a default that is sequential
    fine-tuning (``naive``); subclasses set ``name``, ``summary`` and ``params`` and override
    what they change."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: True for a strategy that trains once on every experience together (``joint``): its
    #: accuracy matrix has one row and its budget is the stream's total.
    joint: ClassVar[bool] = False

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        self.hparams = resolve_params(self.params, params, owner=self.name or "strategy")

    def training_split(self, experience: Experience, state: StreamState) -> Split:
        """What the model trains on during ``experience`` (default: its training split)."""
        return experience.train

    def extend_objective(self, objective: Objective, experience: Experience,
                         state: StreamState) -> Objective:
        """The objective of ``experience`` (default: unchanged); called after
        :meth:`before_experience`, with the model as the previous experience left it."""
        return objective

    def before_experience(self, experience: Experience, state: StreamState) -> None:
        """Before training on ``experience`` (default: nothing)."""

    def after_experience(self, experience: Experience, state: StreamState) -> None:
        """After training on ``experience``, before it is evaluated (default: nothing)."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors kept between experiences, saved in each checkpoint (default: none)."""
        return {}

    def state_json(self) -> dict[str, Any]:
        """JSON-serialisable state kept between experiences (default: none)."""
        return {}

    def load_state(self, tensors: Mapping[str, torch.Tensor], data: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_tensors` and :meth:`state_json` saved."""


class TrainingTask(Task):
    """Training data as the task a parameter method trains on: one ``train`` split whose
    labels index ``label_names`` (every column of a regime's head)."""

    def __init__(self, name: str, train: Split, label_names: list[str], modality: str) -> None:
        super().__init__(name)
        self.modality = modality
        self._train = train
        self._labels = label_names

    @property
    def label_names(self) -> list[str]:
        return self._labels

    def split_names(self) -> list[str]:
        return ["train"]

    def _load_split(self, split: str) -> Split:
        return self._train


def concatenate(splits: Sequence[Split]) -> Split:
    """One split holding every example of ``splits``, in order."""
    import numpy as np

    inputs: list[Any] = []
    for split in splits:
        inputs.extend(split.inputs)
    labels = np.concatenate([s.labels for s in splits]) if splits else np.zeros(0, np.int64)
    return Split(inputs, labels)
