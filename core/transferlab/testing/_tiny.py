"""The conformance kit's tiny, offline inputs: a task and a trainable backbone per modality.

Both are made from a seed in milliseconds and need nothing but numpy, Pillow and torch, so a
plugin's checks run on a laptop without data or weights:

- :class:`TinyTask`: three classes, 8 training and 4 test examples per class. Images are 8x8
  grey arrays with a bright band whose position is the class (like scikit-learn's digits, much
  smaller); texts are six-word sentences whose topic words are the class. ``shift=True`` gives
  a second domain with the same labels (brighter images, other filler words), for
  domain-adaptation checks.
- :class:`TinyBackbone`: a two-layer torch MLP over 64 input values (8x8 grey pixels, or a
  hashed bag of words) with an 8-wide output. It has weights, layer groups, a fingerprint that
  hashes the weights and ``invalidate_fingerprint``, so it serves feature methods (whose
  untouched weights are checked) and parameter methods (which train it) alike. With
  ``source_classes=K`` it also has a source head (``Linear(8, K)`` off the feature path, like
  timm's ImageNet classifier), for methods that declare ``needs_source_head``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from transferlab.api import MODALITIES, Backbone, Split, Task
from transferlab.errors import DataError, IncompatibleError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["TinyBackbone", "TinyTask"]

PER_CLASS = {"train": 8, "test": 4}
INPUT_WIDTH = 64  # 8x8 pixels, or 64 hash buckets of words
TOPICS = (("sun", "warm", "beach", "summer"), ("snow", "cold", "ice", "winter"),
          ("rain", "wet", "cloud", "storm"))
FILLERS = (("the", "a", "day", "today", "very", "it"),
           ("news", "report", "weather", "says", "again", "now"))


def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise IncompatibleError(f"the conformance kit has tiny inputs for {', '.join(MODALITIES)}"
                                f" only, not {modality!r}")
    return modality


class TinyTask(Task):
    """Three classes (``band-left``/``-middle``/``-right`` or ``summer``/``winter``/``rain``),
    8 training and 4 test examples each, generated from a fixed seed."""

    def __init__(self, modality: str = "image", *, shift: bool = False,
                 name: str | None = None) -> None:
        self.modality = _check_modality(modality)
        self.shift = shift
        super().__init__(name or f"tiny-{modality}{'-shifted' if shift else ''}")

    @property
    def label_names(self) -> list[str]:
        if self.modality == "text":
            return ["summer", "winter", "rain"]
        return ["band-left", "band-middle", "band-right"]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        rng = np.random.default_rng([list(PER_CLASS).index(split), int(self.shift)])
        labels = np.repeat(np.arange(3), PER_CLASS[split])
        make = self._text if self.modality == "text" else self._image
        return Split([make(int(label), rng) for label in labels], labels)

    def _image(self, label: int, rng: np.random.Generator) -> np.ndarray:
        image = rng.integers(0, 60, size=(8, 8))
        image[:, 3 * label : 3 * label + 2] += 160
        if self.shift:
            image += 35
        return np.clip(image, 0, 255).astype(np.uint8)

    def _text(self, label: int, rng: np.random.Generator) -> str:
        words = [*rng.choice(TOPICS[label], 3), *rng.choice(FILLERS[int(self.shift)], 3)]
        return " ".join(rng.permutation(words))


class TinyBackbone(Backbone):
    """``Linear(64, 16) -> ReLU -> Linear(16, 8)`` over 8x8 grey pixels (image) or 64 hashed
    word buckets (text); weights from ``init_seed``, so two instances are identical.

    ``source_classes=K`` (default 0: none) adds a source head, ``Linear(8, K)`` over the
    features, inside :attr:`module` but off the feature path, as a pretrained classifier is.
    """

    default_batch_size = 16

    def __init__(self, modality: str = "image", *, name: str | None = None,
                 init_seed: int = 0, source_classes: int = 0) -> None:
        import torch
        from torch import nn

        self.modality = _check_modality(modality)
        self.name = name or f"tiny-{modality}"
        self.source_classes = source_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self._body = nn.Sequential(nn.Linear(INPUT_WIDTH, 16), nn.ReLU(), nn.Linear(16, 8))
            self._source = nn.Linear(8, source_classes) if source_classes > 0 else None
        # without a source head the module is the body itself (its weights keep their names)
        self.model: nn.Module = (self._body if self._source is None else
                                 nn.ModuleDict({"body": self._body, "source": self._source}))
        self.model.eval()
        self._fingerprint: str | None = None

    @property
    def module(self) -> nn.Module:
        return self.model

    @property
    def source_head(self) -> nn.Module | None:
        """The ``Linear(8, source_classes)`` source classifier, or None without one."""
        return self._source

    @property
    def feature_dim(self) -> int:
        return 8

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256(f"tiny-backbone-v1:{self.modality}".encode())
            for key, tensor in self.model.state_dict().items():
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:32]
        return self._fingerprint

    def invalidate_fingerprint(self) -> None:
        self._fingerprint = None

    def preprocess(self, inputs: Sequence[Any]) -> torch.Tensor:
        import torch

        rows = [self._text_row(x) if self.modality == "text" else self._image_row(x)
                for x in inputs]
        return torch.from_numpy(np.stack(rows).astype(np.float32))

    def _image_row(self, item: Any) -> np.ndarray:
        from PIL import Image

        from transferlab.data import load_image

        image = load_image(item).convert("L").resize((8, 8), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.float32).reshape(-1) / 255.0

    def _text_row(self, item: Any) -> np.ndarray:
        if not isinstance(item, str):
            raise DataError(f"{self.name} reads strings but got {type(item).__name__}")
        row = np.zeros(INPUT_WIDTH, dtype=np.float32)
        for word in item.lower().split():
            row[zlib.crc32(word.encode()) % INPUT_WIDTH] += 1.0
        return np.log1p(row)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self._body(batch)

    def layer_groups(self) -> list[tuple[str, list[nn.Module]]]:
        return [("layer.0", [self._body[0]]), ("layer.1", [self._body[2]])]
