"""``hf:<name or path>`` (any transformers ``AutoModel`` encoder, BERT family) and the tiny
from-scratch ``bert:tiny`` / ``bert:small``, with mean or CLS pooling.

``bert:tiny`` is a ``BertForMaskedLM``: features come from its encoder (``.bert``) and the
masked-LM head stays reachable as ``lm`` for pretraining objectives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab_text.base import TextBackbone, check_max_length

if TYPE_CHECKING:
    import torch
    from torch import nn


class EncoderBackbone(TextBackbone):
    """A transformers encoder plus pooling of its last hidden state."""

    encoder: nn.Module
    lm: nn.Module | None = None

    def __init__(
        self, name: str, *, max_length: int, batch_size: int, init_seed: int, pooling: str
    ) -> None:
        super().__init__(name, max_length=max_length, batch_size=batch_size, init_seed=init_seed)
        self.pooling = pooling
        if self.parsed.family == "bert":
            self._build_tiny()
        else:
            self._load_pretrained()
        check_max_length(self.name, self.encoder.config, max_length)
        self.model.eval()

    def _load_pretrained(self) -> None:
        from transformers import AutoModel

        self.encoder = self.load_auto(AutoModel)

    def _build_tiny(self) -> None:
        from transformers import BertForMaskedLM

        from transferlab_text.tiny import TINY, bert_config

        config = TINY[self.parsed.source]
        self.lm = self.build_tiny(lambda tokenizer: BertForMaskedLM(bert_config(config, tokenizer)))
        self.encoder = self.lm.bert

    # -- contract -----------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from transferlab_text.pooling import pool

        hidden = self.encoder(**batch).last_hidden_state
        return pool(hidden, batch["attention_mask"], self.pooling)

    def base_model(self) -> nn.Module:
        return self.encoder

    def head_modules(self) -> list[nn.Module]:
        if self.lm is None:
            return []
        head = self.lm.get_output_embeddings()
        return [getattr(self.lm, "cls", head)]

    def config(self) -> dict[str, Any]:
        return {**super().config(), "pooling": self.pooling}

