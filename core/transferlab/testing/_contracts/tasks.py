"""Checks of the task contract."""

from __future__ import annotations

import numpy as np

from transferlab.api import (
    MODALITIES,
    Split,
    Task,
)
from transferlab.testing._checks import Check, ConformanceError
from transferlab.testing._contracts.base import Component, SuiteBase, attempt

__all__ = ["SPLIT_NAMES", "TaskChecks"]

SPLIT_NAMES = ("train", "val", "test")


class TaskChecks(SuiteBase):
    """``task[NAME]::...``: splits, labels, inputs, fingerprint."""

    def _task_checks(self, c: Component) -> list[Check]:
        label = c.label
        return [
            self._check("task", label, "splits", "train and test (and optionally val) load,"
                        " non-empty; at least two label names", lambda: self.check_splits(c)),
            self._check("task", label, "labels", "labels are ints in 0..n_classes-1, and every"
                        " label of val/test occurs in train", lambda: self.check_labels(c)),
            self._check("task", label, "inputs", "inputs and labels have the same length;"
                        " inputs are strings (text) or readable images (image)",
                        lambda: self.check_inputs(c)),
            self._check("task", label, "fingerprint-stable", "two instances have one"
                        " non-empty fingerprint", lambda: self.check_task_fingerprint(c)),
        ]

    def task(self, c: Component) -> Task:
        from transferlab.views import create_task

        task = attempt(f"building task {c.label!r}",
                       lambda: create_task(c.label, self.registries),
                       "the factory must build the task from its name; load data lazily")
        if not isinstance(task, Task):
            raise ConformanceError(f"the factory of {c.label!r} returned a"
                                   f" {type(task).__name__}",
                                   "return an instance of a transferlab.api.Task subclass")
        return task

    def task_data(self, c: Component) -> tuple[Task, dict[str, Split]]:
        """The task and each split as its ``_load_split`` returns it (before the core's own
        validation), loaded once per check run."""
        cached = self._task_data.get(c.label)
        if isinstance(cached, ConformanceError):
            raise ConformanceError(cached.problem, cached.fix)
        if cached is not None:
            return cached
        try:
            task = self.task(c)
            names = attempt("split_names()", task.split_names, "return a list of split names")
            if not isinstance(names, list | tuple) or not {"train", "test"} <= set(names) or (
                    set(names) - set(SPLIT_NAMES)):
                raise ConformanceError(
                    f"task {c.label!r} has splits {names!r}",
                    "split_names() must list 'train' and 'test', and optionally 'val'")
            splits: dict[str, Split] = {}
            for split in names:
                data = attempt(f"loading split {split!r}",
                               lambda split=split: task._load_split(split),
                               "_load_split(split) must return a transferlab.api.Split")
                if not isinstance(data, Split):
                    raise ConformanceError(f"_load_split({split!r}) returned a"
                                           f" {type(data).__name__}", "return a Split")
                splits[split] = data
        except ConformanceError as exc:
            self._task_data[c.label] = exc
            raise
        self._task_data[c.label] = (task, splits)
        return task, splits

    def check_splits(self, c: Component) -> None:
        task, splits = self.task_data(c)
        if task.modality not in MODALITIES:
            raise ConformanceError(f"task {c.label!r} declares modality {task.modality!r}",
                                   f"set `modality` to one of {', '.join(MODALITIES)}")
        names = attempt("label_names", lambda: task.label_names,
                        "label_names must list the class names")
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ConformanceError(f"label_names is {names!r}", "return a list of str")
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConformanceError(f"task {c.label!r} has label names {list(names)[:5]!r}",
                                   "name at least two classes, each once")
        for split, data in splits.items():
            if len(data) == 0:
                raise ConformanceError(f"split {split!r} of {c.label!r} is empty",
                                       "give every split examples, or leave it out of"
                                       " split_names()")

    def check_labels(self, c: Component) -> None:
        task, splits = self.task_data(c)
        n = len(task.label_names)
        seen: dict[str, set[int]] = {}
        for split, data in splits.items():
            labels = np.asarray(data.labels)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ConformanceError(f"split {split!r} of {c.label!r} has {labels.dtype}"
                                       f" labels of shape {labels.shape}",
                                       "give one int label per input")
            bad = labels[(labels < 0) | (labels >= n)]
            if bad.size:
                raise ConformanceError(
                    f"split {split!r} of {c.label!r} has {bad.size} labels outside 0..{n - 1}"
                    f" (e.g. {int(bad[0])}); labels index label_names, which has {n} names",
                    f"map labels to 0..{n - 1} in _load_split, or add the missing classes to"
                    " label_names")
            seen[split] = {int(v) for v in np.unique(labels)}
        unseen = sorted(set().union(*(seen.get(s, set()) for s in ("val", "test")))
                        - seen.get("train", set()))
        if unseen:
            names = [task.label_names[i] for i in unseen[:5]]
            raise ConformanceError(f"labels {names} of {c.label!r} occur in val/test but"
                                   " never in train", "put examples of every class in train")

    def check_inputs(self, c: Component) -> None:
        task, splits = self.task_data(c)
        from transferlab.data import load_image

        for split, data in splits.items():
            if len(data.inputs) != len(data.labels):
                raise ConformanceError(
                    f"split {split!r} of {c.label!r} has {len(data.inputs)} inputs but"
                    f" {len(data.labels)} labels", "give every input exactly one label")
            if task.modality == "text":
                wrong = next((x for x in data.inputs if not isinstance(x, str)), None)
                if wrong is not None:
                    raise ConformanceError(f"text task {c.label!r} has a"
                                           f" {type(wrong).__name__} input in {split!r}",
                                           "text inputs are str")
            elif task.modality == "image":
                for item in list(data.inputs[:3]):
                    attempt(f"reading an image of {split!r}", lambda item=item: load_image(item),
                            "image inputs are paths, HxW[xC] uint8 arrays or PIL images")

    def check_task_fingerprint(self, c: Component) -> None:
        first, second = self.task(c), self.task(c)
        fix = "derive the fingerprint from the data (or its files), nothing else"
        a = attempt("fingerprint()", first.fingerprint, fix)
        if not isinstance(a, str) or not a:
            raise ConformanceError(f"fingerprint() is {a!r}", "return a non-empty str")
        if a != second.fingerprint():
            raise ConformanceError(f"two instances of {c.label!r} have different"
                                   " fingerprints", fix)
