"""Registers the built-in objectives (torch is imported when one is created, not here)."""

from __future__ import annotations

from typing import Any

from transferlab.errors import ParamError
from transferlab.hookspecs import hookimpl
from transferlab.params import Param
from transferlab.registry import RegisterCallback


def _cross_entropy(name: str, label_smoothing: float) -> Any:
    from transferlab_objectives.losses import CrossEntropy

    return CrossEntropy(label_smoothing)


def _l2(name: str, weight: float) -> Any:
    from transferlab_objectives.losses import L2Penalty

    return L2Penalty(weight)


def parse_terms(terms: str) -> list[tuple[str, float]]:
    """``"cross-entropy:1+l2:0.5"`` -> ``[("cross-entropy", 1.0), ("l2", 0.5)]``.

    ``+`` separates terms (``,`` separates the parameters of a setting); a term without a
    weight counts once."""
    parsed = []
    for item in filter(None, (t.strip() for t in terms.split("+"))):
        name, _, weight = item.rpartition(":")
        try:
            parsed.append((name.strip(), float(weight)) if name else (item, 1.0))
        except ValueError:
            raise ParamError(f"weighted-sum: term {item!r} is not NAME:WEIGHT"
                             " (e.g. terms=cross-entropy:1+l2:1)") from None
    if not parsed:
        raise ParamError("weighted-sum needs terms, e.g. terms=cross-entropy:1+l2:1")
    return parsed


def _weighted_sum(name: str, terms: str) -> Any:
    from transferlab.training.objectives import build_objective
    from transferlab_objectives.losses import WeightedSum

    parsed = parse_terms(terms)
    if any(term == name for term, _ in parsed):
        raise ParamError(f"{name}: a weighted sum cannot contain itself")
    return WeightedSum([(weight, build_objective(term)) for term, weight in parsed])


def _reconstruction(name: str) -> Any:
    from transferlab_objectives.pretraining import Reconstruction

    return Reconstruction()


def _contrastive(name: str, temperature: float) -> Any:
    from transferlab_objectives.pretraining import Contrastive

    return Contrastive(temperature)


def _mlm(name: str) -> Any:
    from transferlab_objectives.pretraining import MaskedLM

    return MaskedLM()


def _nsp(name: str) -> Any:
    from transferlab_objectives.pretraining import NextSentence

    return NextSentence()


def _clm(name: str) -> Any:
    from transferlab_objectives.pretraining import CausalLM

    return CausalLM()


@hookimpl
def register_objectives(register: RegisterCallback) -> None:
    register("cross-entropy", _cross_entropy, summary="softmax cross-entropy (the default)",
             params=[Param("label_smoothing", float, 0.0, "target smoothing", min=0.0,
                           max=0.999)])
    register("l2", _l2, summary="weight * sum of squared trainable weights (L2 penalty; l2sp"
             " binds it to pretrained references)",
             params=[Param("weight", float, 1e-4, "multiplier", min=0.0)])
    register("weighted-sum", _weighted_sum, summary="sum of registered objectives with weights",
             params=[Param("terms", str, "cross-entropy:1", "NAME:WEIGHT+... of registered"
                           " objectives (default parameters)")])
    # self-supervised pretraining (batch conventions: transferlab_objectives.pretraining)
    register("reconstruction", _reconstruction, summary="autoencoder mean squared error of the"
             " outputs (decoded images) against batch['inputs']")
    register("contrastive", _contrastive, summary="SimCLR's NT-Xent between the outputs"
             " (view 1 embeddings) and batch['view2'] embeddings (Chen 2020)",
             params=[Param("temperature", float, 0.5, "softmax temperature of the cosine"
                           " similarities (SimCLR's CIFAR-10 setting)", gt=0.0)])
    register("mlm", _mlm, summary="masked-LM cross-entropy at the masked positions of"
             " batch['labels'] (-100 elsewhere; BERT, Devlin 2019)")
    register("nsp", _nsp, summary="next-sentence 2-way cross-entropy against"
             " batch['next_sentence_label'] (0 = next, 1 = random; BERT)")
    register("clm", _clm, summary="causal-LM next-token cross-entropy against batch['labels']"
             " or the input ids, padding ignored")
