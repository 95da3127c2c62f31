"""What every text backbone shares: length-sorted batching, fingerprints, layer groups,
``@random`` / ``@PATH`` weights and checkpoint saving.

Subclasses build ``self.model`` (the module to train) and ``self.tokenizer``, then implement
:meth:`features` on the tokenized batch :meth:`preprocess` returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone
from transferlab.errors import DataError, ParamError
from transferlab_text.names import ParsedName, parse_name

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn


class TextBackbone(Backbone):
    """A tokenizer plus a transformer; ``features`` returns pooled ``[B, D]`` states."""

    modality = "text"
    default_batch_size = 64
    model: nn.Module
    tokenizer: Any

    def __init__(self, name: str, *, max_length: int, batch_size: int, init_seed: int) -> None:
        self.name = name
        self.parsed: ParsedName = parse_name(name)
        self.max_length = max_length
        self.default_batch_size = batch_size
        self.init_seed = init_seed
        self.weights = ""
        self._fingerprint: str | None = None

    # -- to implement -------------------------------------------------------------------
    def base_model(self) -> nn.Module:
        """The transformer whose blocks make the layer groups."""
        raise NotImplementedError

    def head_modules(self) -> list[nn.Module]:
        """Modules after the transformer (pooling, LM head) for the ``head`` group."""
        return []

    def config(self) -> dict[str, Any]:
        """Preprocessing and pooling settings: part of the fingerprint and checkpoints."""
        return {"max_length": self.max_length}

    # -- contract -----------------------------------------------------------------------
    @property
    def module(self) -> nn.Module:
        return self.model

    def preprocess(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Tokenize strings (padded to the longest, truncated to ``max_length``)."""
        texts = as_texts(inputs, self.name)
        encoded = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask",
                                                          "token_type_ids")}

    def layer_groups(self) -> list[tuple[str, list[nn.Module]]]:
        """``embeddings``, ``layer.0`` ... ``layer.N-1``, ``head`` (bottom to top)."""
        from transferlab_text.layers import layer_groups

        return layer_groups(self.base_model(), self.head_modules())

    def encode(
        self, inputs: Sequence[Any], *, batch_size: int | None = None,
        progress: Callable[[int], None] | None = None, device: str = "cpu",
    ) -> np.ndarray:
        """Frozen features in input order, computed in batches of similar length (as
        sentence-transformers does) so little time goes into padding."""
        import numpy as np

        texts = as_texts(inputs, self.name)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batch_size = batch_size or self.default_batch_size
        out = np.zeros((len(texts), self.feature_dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            out[index] = self._encode_batch([texts[i] for i in index], device)
            if progress is not None:
                progress(len(index))
        return out

    @property
    def fingerprint(self) -> str:
        """sha256 of weights, tokenizer vocabulary and :meth:`config` (computed once;
        call :meth:`invalidate_fingerprint` after changing the weights)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(f"{type(self).__name__}:{self.parsed.family}".encode())
            for key, tensor in self.model.state_dict().items():
                digest.update(key.encode())
                digest.update(str(tensor.dtype).encode())
                digest.update(_tensor_bytes(tensor))
            digest.update(tokenizer_signature(self.tokenizer).encode())
            digest.update(json.dumps(self.config(), sort_keys=True).encode())
            self._fingerprint = digest.hexdigest()[:32]
        return self._fingerprint

    def invalidate_fingerprint(self) -> None:
        """Forget the cached fingerprint (weights were trained or replaced)."""
        self._fingerprint = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": self.weights, "params": self.num_parameters(),
                **self.config()}

    # -- weights --------------------------------------------------------------------------
    def apply_tag(self, reinit: Callable[[], None]) -> None:
        """Apply the name's ``@random`` (``reinit``, seeded by ``init_seed``) or ``@PATH``."""
        import torch

        tag = self.parsed.tag
        if tag is None:
            return
        if tag == "random":
            with torch.random.fork_rng():
                torch.manual_seed(self.init_seed)
                reinit()
            self.weights = f"random(init_seed={self.init_seed})"
            return
        from transferlab.checkpoint import load_checkpoint

        self.weights = load_checkpoint(tag, self.model, expected_name=self.parsed.base)

    def load_auto(self, auto_class: Any) -> nn.Module:
        """Load tokenizer and model (``auto_class``, e.g. ``AutoModel``) from a local
        directory, the Hugging Face cache or the hub, then apply the name's ``@tag``."""
        from transformers import AutoTokenizer

        from transferlab_text.hub import resolve
        from transferlab_text.loading import load_or_explain

        found = resolve(self.name, self.parsed.source)
        kwargs = {"local_files_only": found.local_files_only}
        self.tokenizer = load_or_explain(AutoTokenizer, found.location, self.name, **kwargs)
        model = load_or_explain(auto_class, found.location, self.name, **kwargs)
        self.model = model
        self.weights = found.origin

        def reinit() -> None:
            model.load_state_dict(auto_class.from_config(model.config).state_dict())

        self.apply_tag(reinit)
        return model

    def build_tiny(self, build: Callable[[Any], nn.Module]) -> nn.Module:
        """A from-scratch model ``build(tokenizer)`` on the MiniLM WordPiece vocabulary,
        initialised from ``init_seed``; an ``@PATH`` tag then loads a checkpoint into it."""
        import torch

        from transferlab_text.tiny import wordpiece_tokenizer

        self.tokenizer = wordpiece_tokenizer()
        with torch.random.fork_rng():
            torch.manual_seed(self.init_seed)
            self.model = build(self.tokenizer)
        self.weights = f"random(init_seed={self.init_seed})"
        if self.parsed.tag not in (None, "random"):
            self.apply_tag(lambda: None)
        return self.model

    def save(self, path: str | Path) -> Path:
        """Write this backbone's weights as a checkpoint that ``NAME@PATH`` restores."""
        from transferlab.checkpoint import save_checkpoint

        return save_checkpoint(self.model, path, name=self.parsed.base, config=self.config())


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


def tokenizer_signature(tokenizer: Any) -> str:
    """A short hash of a tokenizer's class, vocabulary and casing (what changes its ids)."""
    vocab = tokenizer.get_vocab()
    payload = json.dumps(
        [type(tokenizer).__name__, sorted(vocab.items()),
         getattr(tokenizer, "do_lower_case", None), tokenizer.padding_side],
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def as_texts(inputs: Sequence[Any], name: str) -> list[str]:
    texts = list(inputs)
    for item in texts:
        if not isinstance(item, str):
            raise DataError(f"{name} reads strings but got {type(item).__name__};"
                            " use a text task with this backbone")
    return texts


def check_max_length(name: str, config: Any, max_length: int) -> None:
    """Refuse a ``max_length`` beyond the model's position embeddings."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions",
                                                                        None)
    if limit is not None and max_length > limit:
        raise ParamError(f"{name}: parameter max_length={max_length} exceeds the model's"
                         f" {limit} positions; use -B max_length={limit} or less")
