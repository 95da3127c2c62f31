"""``raw:pixels`` (resized, flattened pixels) and ``raw:tfidf`` (TF-IDF fitted on train only)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone, Task
from transferlab.data import load_image
from transferlab.errors import DataError, IncompatibleError

if TYPE_CHECKING:
    import numpy as np


class RawBackbone(Backbone):
    """A feature map with no weights: ``encode`` returns ``preprocess`` directly."""

    default_batch_size = 256

    def features(self, batch: Any) -> Any:
        return batch

    def _encode_batch(self, chunk: Sequence[Any], device: str) -> Any:
        return self.preprocess(chunk)


class RawPixels(RawBackbone):
    """Images resized to ``size`` x ``size`` (bilinear), scaled to [0, 1] and flattened."""

    modality = "image"

    def __init__(self, name: str, *, size: int, grayscale: bool) -> None:
        self.name, self.size, self.grayscale = name, size, grayscale

    @property
    def feature_dim(self) -> int:
        return self.size * self.size * (1 if self.grayscale else 3)

    @property
    def fingerprint(self) -> str:
        return f"raw-pixels-v1-{self.size}-{int(self.grayscale)}"

    def preprocess(self, inputs: Sequence[Any]) -> np.ndarray:
        import numpy as np
        from PIL import Image

        rows = []
        for item in inputs:
            image = load_image(item).resize((self.size, self.size), Image.Resampling.BILINEAR)
            if self.grayscale:
                image = image.convert("L")
            rows.append(np.asarray(image, dtype=np.float32).reshape(-1) / 255.0)
        return np.stack(rows)


class RawTfidf(RawBackbone):
    """scikit-learn TF-IDF (word 1-2 grams, sublinear tf) fitted on the training split only.

    Features are sparse (scipy CSR); feature methods that accept sparse input use them as is.
    """

    modality = "text"

    def __init__(self, name: str, *, max_features: int, ngram_max: int, min_df: int) -> None:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.name = name
        self.vectorizer = TfidfVectorizer(
            max_features=max_features, ngram_range=(1, ngram_max), min_df=min_df,
            sublinear_tf=True, dtype=np.float32,
        )
        self._fitted_on: str | None = None
        self._config = f"{max_features}-{ngram_max}-{min_df}"

    def prepare(self, task: Task) -> None:
        if self._fitted_on != task.fingerprint():
            texts = task.split("train").inputs
            try:
                self.vectorizer.fit(texts)
            except ValueError:  # scikit-learn's words for "no vocabulary"
                raise self._no_vocabulary(task, len(texts)) from None
            self._fitted_on = task.fingerprint()

    def _no_vocabulary(self, task: Task, count: int) -> DataError:
        """The one-line error for training texts TF-IDF finds no word in."""
        min_df = self.vectorizer.min_df
        if isinstance(min_df, int) and min_df > 1:
            return DataError(f"{self.name}: no word occurs in {min_df} or more of the {count}"
                             f" training texts of task {task.name!r} (min_df={min_df}); lower"
                             " it with -B min_df=1")
        return DataError(f"{self.name}: the {count} training texts of task {task.name!r} hold"
                         " no word (TF-IDF reads words of two or more letters or digits); check"
                         " that the train split's text column holds the texts")

    @property
    def feature_dim(self) -> int:
        self._require_fit()
        return len(self.vectorizer.vocabulary_)

    @property
    def fingerprint(self) -> str:
        self._require_fit()
        digest = hashlib.sha256(f"{self._config}:{self._fitted_on}".encode()).hexdigest()[:16]
        return f"raw-tfidf-v1-{digest}"

    def _require_fit(self) -> None:
        if self._fitted_on is None:
            raise IncompatibleError("raw:tfidf must be prepared on a task's training split"
                                    " before use (the harness calls prepare(task))")

    def preprocess(self, inputs: Sequence[Any]) -> Any:
        self._require_fit()
        return self.vectorizer.transform(list(inputs))

    def encode(self, inputs: Sequence[Any], **kwargs: Any) -> Any:
        matrix = self.preprocess(inputs)
        if kwargs.get("progress") is not None:
            kwargs["progress"](len(inputs))
        return matrix
