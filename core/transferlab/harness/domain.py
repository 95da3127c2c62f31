"""Domain-adaptation cells: a labeled source task, an unlabeled target task, same labels.

The harness never hands a method the target's labels: :class:`UnlabeledTarget` is a view of the
target task whose splits keep their inputs but carry ``-1`` labels, so a method cannot train on
target labels by accident. Its fingerprint is the target's, so target features are shared with
ordinary cells on that task through the feature store.
"""

from __future__ import annotations

from transferlab.api import Split, Task
from transferlab.errors import IncompatibleError

HIDDEN_LABEL = -1


def check_same_labels(source: Task, target: Task) -> None:
    """Raise :class:`IncompatibleError` unless both tasks name the same classes in order."""
    if source.modality != target.modality:
        raise IncompatibleError(
            f"source task {source.name!r} is {source.modality} but target {target.name!r} is"
            f" {target.modality}; pick tasks of the same modality"
        )
    if list(source.label_names) != list(target.label_names):
        only_source = sorted(set(source.label_names) - set(target.label_names))[:5]
        only_target = sorted(set(target.label_names) - set(source.label_names))[:5]
        raise IncompatibleError(
            f"source task {source.name!r} and target {target.name!r} have different labels"
            f" (only in source: {only_source}, only in target: {only_target}); domain"
            " adaptation needs the same label names"
        )


class UnlabeledTarget(Task):
    """The target task as a method sees it: every split's labels replaced by ``-1``."""

    def __init__(self, target: Task) -> None:
        super().__init__(target.name)
        self.target = target
        self.modality = target.modality
        self.kind = target.kind
        self.primary_metric = target.primary_metric

    @property
    def label_names(self) -> list[str]:
        return self.target.label_names

    def split_names(self) -> list[str]:
        return self.target.split_names()

    def _load_split(self, split: str) -> Split:
        import numpy as np

        inputs = self.target.split(split).inputs
        return Split(inputs, np.full(len(inputs), HIDDEN_LABEL, dtype=np.int64))

    def _validate(self, split: str, data: Split) -> None:
        """Labels are hidden on purpose; the target validated its own splits."""

    def fingerprint(self) -> str:
        return self.target.fingerprint()
