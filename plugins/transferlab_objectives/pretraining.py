"""Self-supervised pretraining objectives (``reconstruction``, ``contrastive``, ``mlm``,
``nsp``, ``clm``): pure tensor losses, then thin :class:`transferlab.api.Objective` classes
that read what they need from the outputs and the batch. The data side (augmented views, BERT
masking, NSP pairs, WikiText articles) is :mod:`transferlab_objectives.pretraining_data`.

Batch conventions (the names of Hugging Face's ``BertForPreTraining`` and causal LMs, so that
their outputs and collated batches plug in as they are):

- ``reconstruction``: outputs are the reconstruction ``g(f(x))``, ``batch["inputs"]`` the
  image batch ``x`` it is compared with (same shape).
- ``contrastive``: outputs are the embeddings ``z1`` ``[B, D]`` of the first view,
  ``batch["view2"]`` the embeddings ``z2`` of the second view of the same examples, row ``i``
  for example ``i``, computed by the same model *with* gradient (SimCLR trains through both).
- ``mlm``: outputs are logits ``[B, T, V]`` (or ``[N, V]``), ``batch["labels"]`` the ids
  :func:`~transferlab_objectives.pretraining_data.mask_tokens` returns (-100 = not selected).
- ``nsp``: outputs are logits ``[B, 2]``, ``batch["next_sentence_label"]`` is 0 when
  sentence B follows A and 1 when it is a random sentence (BERT's and Hugging Face's order).
- ``clm``: outputs are logits ``[B, T, V]``; the targets are ``batch["labels"]`` ``[B, T]``
  (unshifted; -100 ignored) or, without labels, ``batch["inputs"]["input_ids"]``; padding
  is ignored through ``attention_mask`` (in the batch or in ``batch["inputs"]``).

Multi-task pretraining (MT-DNN style) is the existing ``weighted-sum`` objective, e.g.
``weighted-sum[terms=mlm:1+nsp:1]``, with one restriction and one convention. Every term gets
the same ``outputs``, and the terms need different tensors (MLM logits ``[B, T, V]``, NSP logits
``[B, 2]``); so when ``outputs`` is a mapping each objective reads its own entry: ``mlm`` the
first of ``mlm_logits``, ``prediction_logits``, ``logits``; ``nsp`` ``nsp_logits`` or
``seq_relationship_logits``; ``clm`` ``logits``; ``contrastive`` ``embeddings``;
``reconstruction`` ``reconstruction``. A pretraining model returns such a mapping (a Hugging
Face ``BertForPreTrainingOutput`` already is one). The restriction: ``weighted-sum`` builds its
terms with default parameters, so ``contrastive``'s temperature cannot be set inside a sum;
``mlm`` and ``clm`` cannot be summed with each other either, as both read ``batch["labels"]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from transferlab.api import Backbone, ObjectiveExample, PretrainingObjective
from transferlab.errors import DataError, ParamError

__all__ = [
    "IGNORE_INDEX", "NT_XENT_TEMPERATURE", "CausalLM", "Contrastive", "ConvDecoder",
    "ImagePretraining", "MaskedLM", "NextSentence", "Reconstruction", "TextPretraining",
    "clm_loss", "mlm_loss", "nsp_loss", "nt_xent_loss", "reconstruction_loss",
]

IGNORE_INDEX = -100  # label of positions that carry no loss (PyTorch's and Hugging Face's)
# google-research/simclr README: CIFAR-10 pretraining uses --temperature=0.5 (0.1 on ImageNet)
NT_XENT_TEMPERATURE = 0.5


def _float(tensor: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 autocast outputs upcast; float64 stays float64)."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


# --- the tensor functions ---------------------------------------------------------------------


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The autoencoder loss ``||x - g(f(x))||^2`` averaged over every element: mean squared
    error of ``reconstruction`` against the (constant) ``target`` of the same shape."""
    reconstruction = _float(reconstruction)
    target = torch.as_tensor(target, device=reconstruction.device).detach()
    if target.shape != reconstruction.shape:
        raise DataError(f"reconstruction: the outputs have shape {tuple(reconstruction.shape)}"
                        f" but the inputs {tuple(target.shape)}; decode to the input's shape"
                        " (e.g. ConvDecoder(embed_dim, channels, size))")
    return F.mse_loss(reconstruction, target.to(reconstruction.dtype))


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor,
                 temperature: float = NT_XENT_TEMPERATURE) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020): for each of the 2B embeddings, a 2B-1-way
    softmax over cosine similarities / ``temperature`` (itself left out) whose target is the
    other view of the same example; the mean over all 2B rows."""
    z1, z2 = _float(z1), _float(z2).to(z1.device)
    if z1.shape != z2.shape or z1.ndim < 2:
        raise DataError(f"contrastive: the two views' embeddings have shapes {tuple(z1.shape)}"
                        f" and {tuple(z2.shape)}; give both as [B, D], row i for example i")
    n = len(z1)
    z = F.normalize(torch.cat([z1.reshape(n, -1), z2.reshape(n, -1)]), dim=1)
    similarity = (z @ z.T) / temperature
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_pairs, float("-inf"))
    index = torch.arange(n, device=z.device)
    return F.cross_entropy(similarity, torch.cat([index + n, index]))


def _token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, what: str
                         ) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not -100 (0 with a gradient when
    none is, where PyTorch would give NaN)."""
    logits = _float(logits)
    labels = torch.as_tensor(labels, device=logits.device)
    if labels.shape != logits.shape[:-1]:
        raise DataError(f"{what}: logits of shape {tuple(logits.shape)} need labels of shape"
                        f" {tuple(logits.shape[:-1])}, got {tuple(labels.shape)}; give one"
                        f" label per position ({IGNORE_INDEX} where there is none)")
    logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long()
    if not bool((labels != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BERT's masked-LM loss (Devlin et al., "BERT: Pre-training of Deep Bidirectional
    Transformers for Language Understanding", NAACL 2019): cross-entropy of ``logits``
    ``[..., V]`` at the selected positions only (``labels`` -100 elsewhere)."""
    return _token_cross_entropy(logits, labels, "mlm")


def nsp_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BERT's next-sentence-prediction loss: 2-way cross-entropy of ``logits`` ``[B, 2]``
    against ``labels`` ``[B]`` (0 = B follows A, 1 = B is a random sentence)."""
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise DataError(f"nsp needs logits of shape [B, 2], got {tuple(logits.shape)}; give"
                        " the next-sentence head's two logits")
    return _token_cross_entropy(logits, labels, "nsp")


def clm_loss(logits: torch.Tensor, labels: torch.Tensor,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Causal LM loss (Radford et al., "Improving Language Understanding by Generative
    Pre-Training", 2018): position ``t``'s logits predict token ``t + 1``, so logits
    ``[B, T, V]`` drop their last step and ``labels`` ``[B, T]`` their first; positions with
    label -100 or ``attention_mask`` 0 carry no loss."""
    if logits.ndim != 3:
        raise DataError(f"clm needs logits of shape [B, T, V], got {tuple(logits.shape)};"
                        " give the language-model head's per-position logits")
    labels = torch.as_tensor(labels, device=logits.device)
    if attention_mask is not None:
        mask = torch.as_tensor(attention_mask, device=logits.device)
        if mask.shape != labels.shape:
            raise DataError(f"clm: attention_mask of shape {tuple(mask.shape)} does not match"
                            f" labels of shape {tuple(labels.shape)}; give one per token")
        labels = labels.masked_fill(mask == 0, IGNORE_INDEX)
    return _token_cross_entropy(logits[:, :-1], labels[:, 1:], "clm")


# --- the image decoder ------------------------------------------------------------------------


class ConvDecoder(nn.Module):
    """A small DCGAN-style decoder ``g``: a pooled embedding ``[B, D]`` -> linear -> a 4x4 map
    -> stride-2 transposed convolutions (BatchNorm, ReLU) doubling it up to ``out_size`` ->
    a 3x3 convolution to ``out_channels``; sizes that are not 4 * 2^k are resized at the end.
    No output activation, so it can match normalised (not only [0, 1]) images."""

    def __init__(self, embed_dim: int, out_channels: int = 3,
                 out_size: int | tuple[int, int] = 32, width: int = 128) -> None:
        super().__init__()
        size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
        if min(embed_dim, out_channels, width, *size) < 1:
            raise ParamError(f"ConvDecoder: embed_dim, out_channels, out_size and width must be"
                             f" positive, got {embed_dim}, {out_channels}, {out_size}, {width}")
        self.out_size = size
        doublings = max(0, math.ceil(math.log2(max(size) / 4)))
        channels = [max(width >> i, 16) for i in range(doublings + 1)]
        self.project = nn.Linear(embed_dim, channels[0] * 16)
        blocks: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(channels):
            blocks += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.upsample = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels[-1], out_channels, 3, padding=1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.project(embedding)).reshape(len(embedding), -1, 4, 4)
        x = self.upsample(x)
        if tuple(x.shape[-2:]) != self.out_size:
            x = F.interpolate(x, size=self.out_size, mode="bilinear", align_corners=False)
        return self.head(x)


# --- the objectives ---------------------------------------------------------------------------


def _output(outputs: Any, keys: Sequence[str], name: str) -> Any:
    """``outputs`` itself, or its first entry named in ``keys`` when it is a mapping."""
    if not isinstance(outputs, Mapping):
        return outputs
    for key in keys:
        if key in outputs:
            return outputs[key]
    raise DataError(f"objective {name!r} got outputs with entries {sorted(outputs)} but reads"
                    f" one of {list(keys)}; name the model's output so")


def _field(batch: Mapping[str, Any], key: str, name: str, what: str) -> Any:
    if key not in batch:
        raise DataError(f"objective {name!r} needs {what} in batch[{key!r}]; the pretraining"
                        " data pipeline puts it there (see transferlab_objectives.pretraining)")
    return batch[key]


def _seeded(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """``module`` with every weight redrawn from ``generator`` (standard normal * 0.5)."""
    with torch.no_grad():
        for weight in module.parameters():
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
    return module


def _token_example(generator: torch.Generator, labels: torch.Tensor | None = None
                   ) -> ObjectiveExample:
    """A 7-token "language model" (an embedding to 7 logits) over ids ``[2, 4]``."""
    ids = torch.randint(7, (2, 4), generator=generator)
    batch = {"inputs": ids, "labels": ids if labels is None else labels}
    return ObjectiveExample(_seeded(nn.Embedding(7, 7), generator), batch)


class TextPretraining(PretrainingObjective):
    """The text objectives (``mlm``, ``nsp``, ``clm``), which pretrain together."""

    modality = "text"

    def build_pretraining(self, backbone: Backbone, data: Any,
                          terms: Sequence[tuple[PretrainingObjective, float]], seed: int
                          ) -> Any:
        from transferlab_objectives.pretrain_text import build_text_pretraining

        return build_text_pretraining(backbone, data, terms, seed)


class ImagePretraining(PretrainingObjective):
    """The image objectives (``contrastive``, ``reconstruction``), which pretrain together."""

    modality = "image"

    def build_pretraining(self, backbone: Backbone, data: Any,
                          terms: Sequence[tuple[PretrainingObjective, float]], seed: int
                          ) -> Any:
        from transferlab_objectives.pretrain_image import build_image_pretraining

        return build_image_pretraining(backbone, data, terms, seed)


class Reconstruction(ImagePretraining):
    """``reconstruction``: mean squared error of the outputs against ``batch["inputs"]``."""

    name = "reconstruction"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        target = _field(batch, "inputs", self.name, "the images to reconstruct")
        if not isinstance(target, torch.Tensor):
            raise DataError(f"objective 'reconstruction' needs a tensor batch['inputs'], got"
                            f" {type(target).__name__}; use it on image tasks")
        return reconstruction_loss(_output(outputs, ("reconstruction",), self.name), target)

    def example(self, generator: torch.Generator) -> ObjectiveExample:
        """A linear autoencoder of 6 features."""
        return ObjectiveExample(_seeded(nn.Linear(6, 6), generator),
                                {"inputs": torch.randn(5, 6, generator=generator)})


class Contrastive(ImagePretraining):
    """``contrastive``: NT-Xent between the outputs (view 1) and ``batch["view2"]``."""

    name = "contrastive"

    def __init__(self, temperature: float = NT_XENT_TEMPERATURE) -> None:
        self.temperature = temperature

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        view2 = _field(batch, "view2", self.name, "the second view's embeddings [B, D]")
        return nt_xent_loss(_output(outputs, ("embeddings",), self.name), view2,
                            self.temperature)

    def example(self, generator: torch.Generator) -> ObjectiveExample:
        """A linear encoder of two views of 5 examples; the second view's embeddings go in
        ``batch["view2"]`` with gradient, as in SimCLR."""
        def forward(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
            batch["view2"] = model(batch["inputs2"])
            return model(batch["inputs"])

        inputs = torch.randn(5, 6, generator=generator)
        batch = {"inputs": inputs, "inputs2": inputs + 0.1 * torch.randn(5, 6,
                                                                         generator=generator)}
        return ObjectiveExample(_seeded(nn.Linear(6, 4), generator), batch, forward)


class MaskedLM(TextPretraining):
    """``mlm``: cross-entropy at the masked positions of ``batch["labels"]``."""

    name = "mlm"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        logits = _output(outputs, ("mlm_logits", "prediction_logits", "logits"), self.name)
        return mlm_loss(logits, _field(batch, "labels", self.name, "mask_tokens' labels"))

    def example(self, generator: torch.Generator) -> ObjectiveExample:
        """Token logits with three positions selected for the loss."""
        labels = torch.full((2, 4), IGNORE_INDEX)
        labels[0, 1], labels[1, 0], labels[1, 3] = 3, 5, 0
        return _token_example(generator, labels)


class NextSentence(TextPretraining):
    """``nsp``: 2-way cross-entropy against ``batch["next_sentence_label"]``."""

    name = "nsp"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        logits = _output(outputs, ("nsp_logits", "seq_relationship_logits"), self.name)
        labels = _field(batch, "next_sentence_label", self.name,
                        "0 (B follows A) or 1 (B is random) per pair")
        return nsp_loss(logits, labels)

    def example(self, generator: torch.Generator) -> ObjectiveExample:
        """A linear next-sentence head over 5 pair embeddings."""
        return ObjectiveExample(_seeded(nn.Linear(6, 2), generator),
                                {"inputs": torch.randn(5, 6, generator=generator),
                                 "next_sentence_label": torch.tensor([0, 1, 0, 1, 1])})


class CausalLM(TextPretraining):
    """``clm``: next-token cross-entropy against ``batch["labels"]`` or the input ids."""

    name = "clm"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        inputs = batch.get("inputs")
        inputs = inputs if isinstance(inputs, Mapping) else {}
        if "labels" in batch:
            labels = batch["labels"]
        elif "input_ids" in inputs:
            labels = inputs["input_ids"]
        else:
            raise DataError("objective 'clm' needs token ids in batch['labels'] or"
                            " batch['inputs']['input_ids']; use it on tokenised text")
        mask = batch.get("attention_mask", inputs.get("attention_mask"))
        return clm_loss(_output(outputs, ("logits",), self.name), labels, mask)

    def example(self, generator: torch.Generator) -> ObjectiveExample:
        """Token logits whose targets are the input ids themselves."""
        return _token_example(generator)
