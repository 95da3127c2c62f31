"""How ``mlm``, ``nsp`` and ``clm`` train a text backbone (``transferlab pretrain``).

- With ``nsp``, an example is a sentence pair from :func:`~.pretraining_data.nsp_pairs`
  (articles from :func:`~.pretraining_data.split_wikitext_documents`, drawn once from the
  run's seed), tokenised as ``[CLS] A [SEP] B [SEP]``; ``mlm`` then masks those tokens, as in
  BERT. The next-sentence head is BERT's: a tanh layer on the ``[CLS]`` state, then 2 logits.
- Without ``nsp``, an example is a contiguous block of the split's tokens (documents joined
  by ``[SEP]``): ``max_length - 2`` tokens inside ``[CLS] ... [SEP]`` for ``mlm``,
  ``max_length`` tokens for ``clm``.
- Masks are drawn again at every step (dynamic masking, as RoBERTa does; BERT drew ten fixed
  masks per sequence), from the step's generator, so a resumed run draws the same ones.
- MLM logits are computed at the masked positions only: the vocabulary projection of every
  position would cost ``B x T x 30522`` floats for the ~15% that carry a loss.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from transferlab.errors import DataError, IncompatibleError
from transferlab.pretraining import Examples, PretrainingSetup, UnlabeledData
from transferlab_objectives.pretraining_data import (
    mask_tokens,
    nsp_pairs,
    split_wikitext_documents,
)

__all__ = ["build_text_pretraining"]


def _documents(texts: Sequence[str]) -> list[list[str]]:
    return [doc for text in texts for doc in split_wikitext_documents(str(text))]


def _check(backbone: Any, names: set[str]) -> None:
    if backbone.modality != "text":
        raise IncompatibleError(f"objectives {sorted(names)} pretrain text backbones, not"
                                f" {backbone.name!r} ({backbone.modality})")
    family = backbone.name.partition(":")[0]
    if "mlm" in names and "clm" in names:
        raise IncompatibleError("mlm and clm train different models (bidirectional and causal);"
                                " pretrain with one of them")
    if "mlm" in names and (family != "bert" or getattr(backbone, "lm", None) is None):
        raise IncompatibleError(f"mlm needs a masked-LM head, which {backbone.name!r} lacks;"
                                " use bert:tiny or bert:small")
    if "clm" in names and family != "gpt":
        raise IncompatibleError(f"clm needs a causal LM, not {backbone.name!r}; use gpt:tiny,"
                                " gpt:small or gpt:NAME")
    if "nsp" in names and family == "gpt":
        raise IncompatibleError("nsp reads the [CLS] state of a bidirectional encoder; use it"
                                " with bert:tiny, bert:small or hf:NAME")


class _Blocks:
    """Contiguous token blocks of a split (for ``mlm`` or ``clm`` without ``nsp``)."""

    def __init__(self, backbone: Any, texts: Sequence[str], special: bool) -> None:
        tokenizer = backbone.tokenizer
        self.length = backbone.max_length - (2 if special else 0)
        if self.length < 2:
            raise IncompatibleError(f"max_length {backbone.max_length} leaves no room for"
                                    " tokens; set -B max_length=128")
        ids: list[int] = []
        separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else (
            tokenizer.eos_token_id)
        for document in _documents(texts):
            for sentence in document:
                ids.extend(tokenizer(sentence, add_special_tokens=False,
                                     verbose=False)["input_ids"])
            ids.append(separator)
        self.blocks = torch.tensor(ids[: len(ids) // self.length * self.length]).reshape(
            -1, self.length)
        self.special = special
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id

    def __len__(self) -> int:
        return len(self.blocks)

    def encode(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        ids = self.blocks[list(rows)]
        if self.special:
            n = len(ids)
            ids = torch.cat([torch.full((n, 1), self.cls), ids, torch.full((n, 1), self.sep)],
                            dim=1)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class _Pairs:
    """Next-sentence pairs of a split, tokenised per batch as ``[CLS] A [SEP] B [SEP]``."""

    def __init__(self, backbone: Any, texts: Sequence[str], seed: int) -> None:
        self.pairs = nsp_pairs(_documents(texts), random.Random(seed))
        self.tokenizer, self.max_length = backbone.tokenizer, backbone.max_length

    def __len__(self) -> int:
        return len(self.pairs)

    def encode(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        chosen = [self.pairs[r] for r in rows]
        encoded = self.tokenizer([a for a, _, _ in chosen], [b for _, b, _ in chosen],
                                 truncation="longest_first", max_length=self.max_length,
                                 padding="longest", return_tensors="pt")
        inputs = {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in encoded}
        inputs["next_sentence_label"] = torch.tensor([0 if is_next else 1
                                                      for _, _, is_next in chosen])
        return inputs


def _examples(source: _Blocks | _Pairs, backbone: Any, names: set[str]) -> Examples:
    tokenizer = backbone.tokenizer

    def batch(rows: Sequence[int], generator: torch.Generator) -> dict[str, Any]:
        inputs = source.encode(rows)
        out: dict[str, Any] = {}
        if "next_sentence_label" in inputs:
            out["next_sentence_label"] = inputs.pop("next_sentence_label")
        if "mlm" in names:
            masked, labels = mask_tokens(
                inputs["input_ids"], mask_token_id=tokenizer.mask_token_id,
                vocab_size=len(tokenizer), special_ids=tokenizer.all_special_ids,
                generator=generator, attention_mask=inputs["attention_mask"])
            inputs["input_ids"], out["labels"] = masked, labels
        elif "clm" in names:
            out["labels"] = inputs["input_ids"]
        return {"inputs": inputs, **out}

    return Examples(len(source), batch)


def build_text_pretraining(backbone: Any, data: UnlabeledData, terms: Sequence[Any],
                           seed: int) -> PretrainingSetup:
    """The :class:`PretrainingSetup` of a text backbone for any of ``mlm``, ``nsp``,
    ``clm`` (``terms`` are (objective, weight) pairs)."""
    names = {objective.name for objective, _ in terms}
    _check(backbone, names)
    if not data.split("train"):
        raise DataError(f"{data.source} has no training text; pass a corpus with text in it")
    encoder = backbone.base_model()
    heads = nn.ModuleDict()
    if "nsp" in names:
        width = backbone.feature_dim
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            heads["nsp"] = nn.Sequential(nn.Linear(width, width), nn.Tanh(),
                                         nn.Linear(width, 2))
    module = nn.ModuleDict({"backbone": backbone.model, "heads": heads})

    def make(texts: Sequence[str], split_seed: int) -> Examples:
        if "nsp" in names:
            return _examples(_Pairs(backbone, texts, split_seed), backbone, names)
        return _examples(_Blocks(backbone, texts, special="mlm" in names), backbone, names)

    train = make(data.split("train"), seed)
    validation = None
    if data.split("validation"):
        try:
            validation = make(data.split("validation"), seed + 1)
        except DataError:  # too little validation text for one pair or block: none
            validation = None

    def forward(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        inputs = batch["inputs"]
        if "clm" in names:
            return {"logits": backbone.lm(**inputs).logits}
        hidden = encoder(**inputs).last_hidden_state
        outputs: dict[str, torch.Tensor] = {}
        if "mlm" in names:
            selected = batch["labels"] != -100
            outputs["mlm_logits"] = backbone.lm.cls(hidden[selected])
            batch["labels"] = batch["labels"][selected]
        if "nsp" in names:
            outputs["nsp_logits"] = heads["nsp"](hidden[:, 0])
        return outputs

    def tokens(batch: dict[str, Any]) -> int:
        return int(batch["inputs"]["attention_mask"].sum())

    return PretrainingSetup(module, train, forward, validation, unit="tokens", units=tokens)
