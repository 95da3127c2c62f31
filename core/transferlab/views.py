"""Task views: a registered task seen through a seeded subsample or a class subset.

Written with the setting syntax after any task name (``-t``, suites, the Python API)::

    digits[fraction=0.25]              a quarter of the training split, stratified, seed 0
    cifar10_subset[k_per_class=10,seed=2]
    mnist_subset[classes=0+1]          two classes, relabelled 0..1, in every split

Subsampling touches only the training split (validation and test stay whole, so scores stay
comparable); a class subset filters every split. Stratified subsamples keep at least one
example of every class. A view has its own fingerprint (the base task's plus the view's
canonical parameters), so its features never mix with the base task's in the cache. Low-data
studies, seeded demos and continual-learning splits all build on this one module.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from transferlab.api import Split, Task
from transferlab.errors import DataError, ParamError
from transferlab.params import Param, resolve_params
from transferlab.settings import Setting, parse_setting

if TYPE_CHECKING:
    import numpy as np

__all__ = ["VIEW_PARAMS", "TaskView", "create_task", "validate_task"]

VIEW_PARAMS: tuple[Param, ...] = (
    Param("fraction", float, None, "keep this share of every class of the training split",
          min=0.0, max=1.0, nullable=True),
    Param("k_per_class", int, None, "keep this many training examples per class", min=1,
          nullable=True),
    Param("classes", str, None, "keep only these classes (label indices or names, joined by"
          " +), relabelled 0..k-1 in every split", nullable=True),
    Param("seed", int, 0, "seed of the training subsample (not the cell seed)", min=0),
    Param("cell_seed", bool, False, "draw the training subsample with the cell's seed instead"
          " of `seed`, so a cell's seeds vary its data (outside a cell, `seed` is used)"),
)


def _view_params(setting: Setting) -> dict[str, Any]:
    owner = f"task view {setting.canonical()}"
    values = resolve_params(VIEW_PARAMS, setting.params, owner=owner)
    if values["fraction"] is not None and values["k_per_class"] is not None:
        raise ParamError(f"{owner}: give fraction or k_per_class, not both")
    if values["fraction"] is not None and values["fraction"] <= 0.0:
        raise ParamError(f"{owner}: parameter fraction must be > 0")
    return values


def validate_task(name: str, registries: Any) -> str:
    """Check a task name (with an optional view) without loading data; return its canonical
    spelling, which is what cell keys hash."""
    setting = parse_setting(name, "task")
    registries.tasks.get(setting.name).validate(setting.name)
    if setting.params:
        _view_params(setting)
    return setting.canonical()


def create_task(name: str, registries: Any, *, cell_seed: int | None = None) -> Task:
    """Build the task ``name`` names: a registered task, or a view of one; a view with
    ``cell_seed=true`` draws its subsample with ``cell_seed`` (the seed of the cell it is
    built for) when one is given."""
    setting = parse_setting(name, "task")
    base = registries.tasks.create(setting.name)
    if not setting.params:
        return base
    values = _view_params(setting)
    if values.pop("cell_seed") and cell_seed is not None:
        values["seed"] = cell_seed
        view = TaskView(base, **values)
        view.view["cell_seed"] = True  # the fingerprint tells the seeds' subsamples apart
        return view
    return TaskView(base, **values)


class TaskView(Task):
    """``base`` with its training split subsampled and/or its classes restricted."""

    def __init__(self, base: Task, *, fraction: float | None = None,
                 k_per_class: int | None = None, classes: str | None = None,
                 seed: int = 0) -> None:
        self.view: dict[str, Any] = {
            k: v for k, v in (("fraction", fraction), ("k_per_class", k_per_class),
                              ("classes", classes)) if v is not None}
        if self.view and (fraction is not None or k_per_class is not None):
            self.view["seed"] = seed
        super().__init__(Setting(base.name, self.view).canonical())
        self.base = base
        self.modality = base.modality
        self.kind = base.kind
        self.primary_metric = base.primary_metric
        self.fraction, self.k_per_class, self.seed = fraction, k_per_class, seed
        self._kept = None if classes is None else _resolve_classes(classes, base)

    @property
    def label_names(self) -> list[str]:
        names = self.base.label_names
        return names if self._kept is None else [names[i] for i in self._kept]

    def split_names(self) -> list[str]:
        return self.base.split_names()

    def _load_split(self, split: str) -> Split:
        import numpy as np

        data = self.base.split(split)
        index = np.arange(len(data))
        labels = data.labels
        if self._kept is not None:
            index = index[np.isin(labels, self._kept)]
            if index.size == 0:
                raise DataError(f"task {self.name!r}: split {split!r} has no example of the"
                                " chosen classes; choose classes that occur in it")
        if split == "train" and (self.fraction is not None or self.k_per_class is not None):
            index = self._subsample(index, labels)
        inputs = _take(data.inputs, index)
        kept_labels = labels[index]
        if self._kept is not None:
            relabel = {old: new for new, old in enumerate(self._kept)}
            kept_labels = np.array([relabel[int(y)] for y in kept_labels], dtype=np.int64)
        return Split(inputs, kept_labels)

    def _subsample(self, index: np.ndarray, labels: np.ndarray) -> np.ndarray:
        import numpy as np

        rng = np.random.default_rng([self.seed, 0x7669])  # "vi": streams apart from cells
        chosen: list[np.ndarray] = []
        for label in np.unique(labels[index]):
            members = index[labels[index] == label]
            if self.k_per_class is not None:
                count = min(self.k_per_class, members.size)
            else:
                count = max(1, round(float(self.fraction) * members.size))
            chosen.append(rng.choice(members, size=count, replace=False))
        return np.sort(np.concatenate(chosen))

    def fingerprint(self) -> str:
        blob = f"{self.base.fingerprint()}|view|{Setting('', self.view).canonical()}"
        return f"{self.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _resolve_classes(spec: str, base: Task) -> list[int]:
    names = list(base.label_names)
    kept: list[int] = []
    for item in filter(None, (part.strip() for part in spec.split("+"))):
        if item in names:
            index = names.index(item)
        elif item.lstrip("-").isdigit():
            index = int(item)
            if not 0 <= index < len(names):
                raise ParamError(f"task view of {base.name!r}: class {index} is outside"
                                 f" 0..{len(names) - 1}")
        else:
            raise ParamError(f"task view of {base.name!r}: {item!r} is neither a label index"
                             f" nor a label name (labels: {', '.join(names[:10])})")
        if index in kept:
            raise ParamError(f"task view of {base.name!r}: class {item!r} is listed twice")
        kept.append(index)
    if len(kept) < 1:
        raise ParamError(f"task view of {base.name!r}: classes is empty; e.g. classes=0+1")
    return kept


def _take(inputs: Any, index: np.ndarray) -> Any:
    import numpy as np

    if isinstance(inputs, np.ndarray):
        return inputs[index]
    return [inputs[int(i)] for i in index]

