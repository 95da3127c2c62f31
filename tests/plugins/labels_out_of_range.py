"""Deliberately broken: a task whose labels reach past its label names.

``off-by-one`` names two classes but labels its examples 0, 1 and 2 (the classic off-by-one
of 1-based labels shifted wrongly); the conformance kit's ``task[off-by-one]::labels`` check
must fail naming the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transferlab import hookimpl
from transferlab.api import Split, Task


class OffByOne(Task):
    modality = "text"

    @property
    def label_names(self) -> list[str]:
        return ["negative", "positive"]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        labels = np.array([0, 1, 2, 1, 2, 0])  # the bug: 2 is not a class
        return Split([f"review {i} of {split}" for i in range(len(labels))], labels)

    def fingerprint(self) -> str:
        return "off-by-one-v1"


@hookimpl
def register_tasks(register: Any) -> None:
    register("off-by-one", lambda name: OffByOne(name), modality="text",
             summary="two classes, labels 0..2 (broken)")
