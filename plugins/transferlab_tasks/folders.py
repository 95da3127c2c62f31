"""Tasks read from folders: ``csv:DIR`` (text) and ``imagefolder:DIR`` (images).

Layouts (as in ``shared/data``): ``DIR/{train,test}[,val].csv`` with header ``text,label``;
``DIR/{train,test}[/val]/<class>/*.{jpg,png}``. Label names come from the training split; a
label that appears only in val/test is an error, because no method could ever predict it.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from transferlab.api import Split, Task
from transferlab.data import IMAGE_SUFFIXES
from transferlab.errors import DataError

SPLITS = ("train", "val", "test")


def detect_layout(folder: Path) -> str | None:
    """``"csv"``, ``"imagefolder"`` or None for a folder in neither layout."""
    if (folder / "train.csv").is_file() and (folder / "test.csv").is_file():
        return "csv"
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return "imagefolder"
    return None


class FolderTask(Task):
    """Shared logic: split discovery, label-name consistency, content fingerprint."""

    def __init__(self, name: str, root: Path) -> None:
        super().__init__(name)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"task {name!r}: data folder {self.root} does not exist")
        missing = [s for s in ("train", "test") if not self._split_path(s).exists()]
        if missing:
            raise DataError(
                f"task {name!r}: {self.root} has no {missing[0]} split; expected"
                f" {self._layout_hint()}"
            )
        self._labels: list[str] | None = None

    def _split_path(self, split: str) -> Path:
        raise NotImplementedError

    def _layout_hint(self) -> str:
        raise NotImplementedError

    def _read(self, split: str) -> tuple[list[object], list[str]]:
        raise NotImplementedError

    def split_names(self) -> list[str]:
        return [s for s in SPLITS if self._split_path(s).exists()]

    @property
    def label_names(self) -> list[str]:
        if self._labels is None:
            _, labels = self._read("train")
            self._labels = sorted(set(labels))
        return self._labels

    def _load_split(self, split: str) -> Split:
        import numpy as np

        inputs, labels = self._read(split)
        index = {name: i for i, name in enumerate(self.label_names)}
        unseen = sorted(set(labels) - set(index))
        if unseen:
            raise DataError(
                f"task {self.name!r}: {split} split has label(s) {unseen[:5]} that never occur"
                " in train; add training examples for them or drop those rows"
            )
        return Split(inputs, np.array([index[label] for label in labels], dtype=np.int64))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for split in self.split_names():
            path = self._split_path(split)
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            for file in files:
                if file.is_file():
                    stat = file.stat()
                    rel = file.relative_to(self.root).as_posix()
                    digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return f"{self.name}:{digest.hexdigest()[:16]}"


class CsvTextTask(FolderTask):
    """Text classification from ``train.csv`` / ``test.csv`` (/ ``val.csv``)."""

    modality = "text"

    def _split_path(self, split: str) -> Path:
        return self.root / f"{split}.csv"

    def _layout_hint(self) -> str:
        return "DIR/train.csv and DIR/test.csv with header text,label"

    def _read(self, split: str) -> tuple[list[object], list[str]]:
        path = self._split_path(split)
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames or []
                if "text" not in header or "label" not in header:
                    raise DataError(
                        f"{path}: header is {','.join(header) or '(empty)'}; expected columns"
                        " text,label"
                    )
                texts, labels = [], []
                for line, row in enumerate(reader, start=2):
                    text, label = row.get("text"), row.get("label")
                    if text is None or label is None or label.strip() == "":
                        raise DataError(f"{path}:{line}: row has no text or no label; fix or"
                                        " remove it")
                    texts.append(text)
                    labels.append(label.strip())
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not UTF-8 ({exc}); re-save it as UTF-8") from None
        except csv.Error as exc:
            raise DataError(f"{path} is not valid CSV: {exc}") from None
        if not texts:
            raise DataError(f"{path} has a header but no rows")
        return texts, labels  # type: ignore[return-value]


class ImageFolderTask(FolderTask):
    """Image classification from ``DIR/<split>/<class>/*.{jpg,png}``."""

    modality = "image"

    def _split_path(self, split: str) -> Path:
        return self.root / split

    def _layout_hint(self) -> str:
        return "DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg"

    def _read(self, split: str) -> tuple[list[object], list[str]]:
        folder = self._split_path(split)
        classes = sorted(p for p in folder.iterdir() if p.is_dir())
        if not classes:
            raise DataError(f"{folder} has no class subfolders; expected {self._layout_hint()}")
        paths: list[object] = []
        labels: list[str] = []
        empty = []
        for class_dir in classes:
            files = sorted(
                f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
            )
            paths += [str(f) for f in files]
            labels += [class_dir.name] * len(files)
            if not files:
                empty.append(class_dir)
        if not paths:
            raise DataError(f"{folder} has class folders but no .jpg/.png images")
        if split == "train" and empty and len(classes) - len(empty) < 2:
            raise DataError(
                f"task {self.name!r}: class folder {empty[0]} of the train split holds no"
                f" image ({', '.join(IMAGE_SUFFIXES)}), so training has one class and a"
                " classifier needs at least two; add images to it"
            )
        return paths, labels
