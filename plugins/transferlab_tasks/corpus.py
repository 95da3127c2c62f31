"""``corpus:PATH`` (or ``corpus:NAME`` for ``corpora/NAME.txt`` in a data directory): a
language-modelling task over one UTF-8 text file, scored by perplexity.

The file is cut into train / validation / test as contiguous blocks (80 / 10 / 10% of its
characters, at line starts; :func:`transferlab.pretraining.split_contiguous`), never by shuffled
lines, which would leak test text into training. A split's inputs are its non-empty lines in
order, so methods can rebuild the contiguous text; every label is 0 (one pseudo-class, since
the task has no labels).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from transferlab.api import Split, Task
from transferlab.errors import DataError

SPLITS = {"train": 0, "val": 1, "test": 2}


class CorpusTask(Task):
    """A text corpus for causal language modelling."""

    modality = "text"
    kind = "language-modelling"
    primary_metric = "perplexity"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    @property
    def label_names(self) -> list[str]:
        return ["text"]

    def split_names(self) -> list[str]:
        return list(SPLITS)

    def _load_split(self, split: str) -> Split:
        import numpy as np

        from transferlab.pretraining.data import split_contiguous

        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"task {self.name!r}: corpus {self.path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"task {self.name!r}: {self.path} is not UTF-8 text"
                            f" ({exc.reason}); convert it with iconv -t utf-8") from None
        block = split_contiguous(text)[SPLITS[split]]
        lines = [line for line in block.splitlines() if line.strip()]
        return Split(lines, np.zeros(len(lines), dtype=np.int64))

    def fingerprint(self) -> str:
        stat = self.path.stat()
        return hashlib.sha256(f"{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
                              .encode()).hexdigest()[:16]


def resolve_corpus(name: str, data_dirs: list[Path]) -> Path:
    """The file ``corpus:NAME`` names: a path, or ``corpora/NAME[.txt]`` in a data dir."""
    source = name.split(":", 1)[1]
    path = Path(source).expanduser()
    if path.is_file():
        return path
    for data_dir in data_dirs:
        for candidate in (Path(data_dir) / "corpora" / source,
                          Path(data_dir) / "corpora" / f"{source}.txt"):
            if candidate.is_file():
                return candidate
    raise DataError(f"task {name!r}: no corpus file {source} (nor corpora/{source}.txt in"
                    " the data directories); pass a text file path or --data-dir")
