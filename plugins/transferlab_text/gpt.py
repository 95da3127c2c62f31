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

    def generate(self, prompt: str, *, max_tokens: int = 50, temperature: float = 0.0,
                 top_k: int = 0, seed: int = 0, device: str = "cpu") -> str:
        """Continue ``prompt`` by ``max_tokens`` tokens: greedy at ``temperature`` 0, else
        sampled from the softmax at that temperature (from the ``top_k`` most likely tokens
        when ``top_k`` > 0), seeded by ``seed``. Returns the continuation only, decoded."""
        import torch

        tokenizer = self.tokenizer
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        if ids.shape[1] == 0:  # nothing to condition on: start from the BOS token
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else (
                self.lm.config.bos_token_id)
            ids = torch.tensor([[start]])
        room = int(getattr(self.lm.config, "n_positions", 0) or
                   getattr(self.lm.config, "max_position_embeddings", 0) or 0)
        if room and ids.shape[1] + max_tokens > room:
            ids = ids[:, -(room - max_tokens):] if room > max_tokens else ids[:, -1:]
        sample = temperature > 0
        options: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_tokens,
                                   "pad_token_id": tokenizer.pad_token_id}
        if sample:
            options.update(temperature=temperature, top_k=top_k or None)
        else:
            options.update(temperature=None, top_k=None, top_p=None)
        self.lm.to(device).eval()
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            out = self.lm.generate(ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                   **options)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def head_modules(self) -> list[nn.Module]:
        head = self.lm.get_output_embeddings()
        return [head] if head is not None else []


def _tiny_names() -> set[str]:
    from transferlab_text.tiny import TINY

    return set(TINY)
