"""scikit-learn's bundled 8x8 handwritten digits as a 10-class image task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from transferlab.api import Split, Task

if TYPE_CHECKING:
    import numpy as np

TEST_FRACTION = 0.25
SPLIT_SEED = 0


class DigitsTask(Task):
    """1,797 real 8x8 digit images (0-16 grey levels scaled to 0-255), fixed stratified split.

    The split (75% train / 25% test, seed 0) never changes, so results stay comparable.
    """

    modality = "image"

    def __init__(self, name: str = "digits") -> None:

        super().__init__(name)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def label_names(self) -> list[str]:
        return [str(d) for d in range(10)]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        import numpy as np

        if self._arrays is None:
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split

            digits = load_digits()
            images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
            x_train, x_test, y_train, y_test = train_test_split(
                images, digits.target, test_size=TEST_FRACTION, stratify=digits.target,
                random_state=SPLIT_SEED,
            )
            self._arrays = {"train": (x_train, y_train), "test": (x_test, y_test)}
        images, labels = self._arrays[split]
        return Split(list(images), labels)

    def fingerprint(self) -> str:
        return f"sklearn-digits-v1-test{TEST_FRACTION}-seed{SPLIT_SEED}"
