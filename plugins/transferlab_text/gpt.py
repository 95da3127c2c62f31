"""``gpt:<name or path>`` (transformers ``AutoModelForCausalLM``) and the tiny from-scratch
``gpt:tiny`` / ``gpt:small`` (GPT-2 architecture, MiniLM WordPiece vocabulary).

Features are the masked mean of the last hidden state (the base model's output, after the
final norm), computed without the vocabulary projection. The whole causal LM, head included,
is the trainable module and stays reachable as ``lm`` for causal-LM objectives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transferlab_text.base import TextBackbone, check_max_length

if TYPE_CHECKING:
    import torch
    from torch import nn


class GptBackbone(TextBackbone):
    """A causal language model read as an encoder by mean pooling its token states."""

    lm: nn.Module

    def __init__(self, name: str, *, max_length: int, batch_size: int, init_seed: int) -> None:
        super().__init__(name, max_length=max_length, batch_size=batch_size, init_seed=init_seed)
        if self.parsed.source in _tiny_names():
            self._build_tiny()
        else:
            self._load_pretrained()
        check_max_length(self.name, self.lm.config, max_length)
        if self.tokenizer.pad_token is None:  # GPT-2 style tokenizers have none
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.model.eval()

    def _load_pretrained(self) -> None:
        from transformers import AutoModelForCausalLM

        self.lm = self.load_auto(AutoModelForCausalLM)

    def _build_tiny(self) -> None:
        from transformers import GPT2LMHeadModel

        from transferlab_text.tiny import TINY, gpt_config

        config = TINY[self.parsed.source]
        self.lm = self.build_tiny(lambda tokenizer: GPT2LMHeadModel(gpt_config(config, tokenizer)))

    # -- contract -----------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        config = self.lm.config
        return int(getattr(config, "hidden_size", None) or config.n_embd)

    def preprocess(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask only: GPT-2 would embed token_type_ids as tokens."""
        batch = super().preprocess(inputs)
        batch.pop("token_type_ids", None)
        return batch

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from transferlab_text.pooling import masked_mean

        hidden = self.lm.base_model(**batch).last_hidden_state
        return masked_mean(hidden, batch["attention_mask"])

    def base_model(self) -> nn.Module:
        return self.lm.base_model

    def head_modules(self) -> list[nn.Module]:
        head = self.lm.get_output_embeddings()
        return [head] if head is not None else []


def _tiny_names() -> set[str]:
    from transferlab_text.tiny import TINY

    return set(TINY)
