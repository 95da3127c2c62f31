"""The data side of self-supervised pretraining: SimCLR's augmented views, BERT's token
masking, next-sentence pairs, and WikiText's articles. Every random choice is drawn from a
generator the caller passes (a ``torch.Generator`` or a ``random.Random``), never from a
global one, so the same seed gives the same views, masks and pairs wherever they are made.
The losses these feed are :mod:`transferlab_objectives.pretraining`.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from transferlab.errors import DataError, ParamError

__all__ = ["SimCLRAugment", "mask_tokens", "nsp_pairs", "split_wikitext_documents"]


# --- SimCLR's views ---------------------------------------------------------------------------


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator,
                                                 device=generator.device))


@dataclass(frozen=True)
class SimCLRAugment:
    """SimCLR's augmentation (Chen et al. 2020, appendix A; ``google-research/simclr``,
    ``data_util.py``): random resized crop (area ``scale``, aspect ``ratio``), horizontal flip,
    colour jitter with probability ``jitter_p`` (brightness, contrast and saturation factors in
    ``1 +- 0.8 s``, hue shift in ``+- 0.2 s``, in random order), grayscale with probability
    ``grayscale_p``. The defaults are the repo's CIFAR-10 setting: strength ``s = 0.5``, no blur.

    Called on float images ``[B, C, H, W]`` with values in [0, 1] (before normalisation), it
    returns one view of each image, resized to ``size`` (the input size when None); the
    parameters are drawn image by image from ``generator``. Saturation, hue and grayscale only
    apply to 3-channel images.
    """

    size: int | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.ndim != 4 or not images.is_floating_point():
            raise DataError(f"SimCLRAugment needs float images [B, C, H, W] in [0, 1], got"
                            f" {images.dtype} of shape {tuple(images.shape)}")
        return torch.stack([self._one(image, generator) for image in images])

    def views(self, images: torch.Tensor, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views of each image: SimCLR's positive pair."""
        return self(images, generator), self(images, generator)

    def _crop_box(self, height: int, width: int, generator: torch.Generator
                  ) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params, drawn from ``generator``: ten tries at
        a box of the sampled area and log-uniform aspect, else the central crop."""
        area = height * width
        log_low, log_high = torch.log(torch.tensor(self.ratio)).tolist()
        for _ in range(10):
            target = area * _uniform(generator, *self.scale)
            aspect = float(torch.exp(torch.tensor(_uniform(generator, log_low, log_high))))
            w, h = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
            if 0 < w <= width and 0 < h <= height:
                top = int(_uniform(generator) * (height - h + 1))
                left = int(_uniform(generator) * (width - w + 1))
                return top, left, h, w
        aspect = width / height
        if aspect < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif aspect > max(self.ratio):
            w, h = round(height * max(self.ratio)), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def _jitter(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        s = self.jitter_strength
        colour = image.shape[0] == 3
        for op in torch.randperm(4, generator=generator, device=generator.device).tolist():
            if op == 0:
                image = TF.adjust_brightness(image, _uniform(generator, max(0, 1 - .8 * s),
                                                             1 + .8 * s))
            elif op == 1:
                image = TF.adjust_contrast(image, _uniform(generator, max(0, 1 - .8 * s),
                                                           1 + .8 * s))
            elif op == 2:
                factor = _uniform(generator, max(0, 1 - .8 * s), 1 + .8 * s)
                image = TF.adjust_saturation(image, factor) if colour else image
            else:
                shift = _uniform(generator, -.2 * s, .2 * s)
                image = TF.adjust_hue(image, shift) if colour else image
            image = image.clamp(0.0, 1.0)
        return image

    def _one(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        height, width = image.shape[-2:]
        size = [self.size, self.size] if self.size else [height, width]
        top, left, h, w = self._crop_box(height, width, generator)
        image = TF.resized_crop(image, top, left, h, w, size, antialias=True)
        if _uniform(generator) < self.flip_p:
            image = TF.horizontal_flip(image)
        if _uniform(generator) < self.jitter_p:
            image = self._jitter(image, generator)
        if _uniform(generator) < self.grayscale_p and image.shape[0] == 3:
            image = TF.rgb_to_grayscale(image, num_output_channels=3)
        return image.clamp(0.0, 1.0)


# --- BERT's masking ---------------------------------------------------------------------------


def mask_tokens(input_ids: torch.Tensor, *, mask_token_id: int, vocab_size: int,
                special_ids: Iterable[int], generator: torch.Generator,
                probability: float = 0.15, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking (Devlin et al. 2019, section 3.1): each token is selected with
    ``probability``, never a special id (give the padding id among them) nor a position where
    ``attention_mask`` is 0; of the selected, 80% become ``mask_token_id``, 10% a token drawn
    uniformly from the whole vocabulary (as BERT and Hugging Face do) and 10% stay.

    Returns ``(masked_ids, labels)``: a new tensor, and the original ids at the selected
    positions with -100 elsewhere (what :func:`~.pretraining.mlm_loss` reads)."""
    if not 0.0 <= probability <= 1.0:
        raise ParamError(f"mask_tokens: probability must lie in [0, 1], got {probability}")
    if vocab_size < 1:
        raise ParamError(f"mask_tokens: vocab_size must be positive, got {vocab_size}")
    draw = {"generator": generator, "device": generator.device}
    shape = input_ids.shape
    special = torch.isin(input_ids, torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype,
                                                 device=input_ids.device))
    if attention_mask is not None:
        special |= torch.as_tensor(attention_mask, device=input_ids.device) == 0
    selected = (torch.rand(shape, **draw).to(input_ids.device) < probability) & ~special
    action = torch.rand(shape, **draw).to(input_ids.device)
    random_ids = torch.randint(vocab_size, shape, **draw).to(input_ids.device)
    masked = input_ids.clone()
    masked[selected & (action < 0.8)] = mask_token_id
    swap = selected & (action >= 0.8) & (action < 0.9)
    masked[swap] = random_ids[swap].to(input_ids.dtype)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    return masked, labels


# --- next-sentence pairs ----------------------------------------------------------------------


def nsp_pairs(documents: list[list[str]], rng: random.Random
              ) -> list[tuple[str, str, bool]]:
    """BERT's next-sentence pairs: for each sentence that has a successor in its document,
    ``(sentence, next sentence, True)`` with probability 1/2, else ``(sentence, a random
    sentence of a random *other* document, False)``. A true pair never crosses a document
    boundary and a false one never stays inside one; one-sentence documents only serve as
    random sentences. Needs at least two non-empty documents."""
    pool = [d for d, document in enumerate(documents) if document]
    if len(pool) < 2:
        raise DataError(f"nsp_pairs needs at least two non-empty documents, got {len(pool)};"
                        " split the corpus into articles (split_wikitext_documents)")
    pairs = []
    for d, document in enumerate(documents):
        position = bisect.bisect_left(pool, d)  # where d is (or would be) in the pool
        for first, second in itertools.pairwise(document):
            if rng.random() < 0.5:
                pairs.append((first, second, True))
                continue
            k = rng.randrange(len(pool) - 1)
            other = pool[k + 1] if k >= position else pool[k]
            pairs.append((first, rng.choice(documents[other]), False))
    return pairs


# --- WikiText articles ------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<= [.!?]) +")  # WikiText spaces its tokens: "... end . Next"


def _is_title(line: str) -> bool:
    """`` = Title = `` (an article) but not `` = = Section = = `` nor a `` = legend`` line."""
    text = line.strip()
    return (len(text) > 4 and text.startswith("= ") and text.endswith(" =")
            and not text.startswith("= =") and not text.endswith("= ="))


def split_wikitext_documents(text: str) -> list[list[str]]:
    """WikiText raw text as articles, each a list of *sentences*: an article starts at each
    top-level `` = Title = `` line (section lines `` = = Section = = `` are headings inside
    it and are dropped); paragraphs are split after `` . ``, `` ? `` and `` ! ``. Text before
    the first title forms an article of its own; articles without sentences are left out."""
    documents: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if _is_title(line):
            documents.append([])
        elif stripped and not (stripped.startswith("= =") and stripped.endswith("= =")):
            documents[-1].extend(s for s in _SENTENCE_END.split(stripped) if s)
    return [document for document in documents if document]
