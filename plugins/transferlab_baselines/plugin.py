"""Registers the raw baselines."""

from __future__ import annotations

from typing import Any

from transferlab.hookspecs import hookimpl
from transferlab.params import Param
from transferlab.registry import RegisterCallback


def _pixels(name: str, **params: Any) -> Any:
    from transferlab_baselines.raw import RawPixels

    return RawPixels(name, **params)


def _tfidf(name: str, **params: Any) -> Any:
    from transferlab_baselines.raw import RawTfidf

    return RawTfidf(name, **params)


@hookimpl
def register_backbones(register: RegisterCallback) -> None:
    register(
        "raw:pixels", _pixels, modality="image", params_count=0, weights="none",
        has_weights=False, offline=True,
        summary="baseline: resized, flattened pixels (no pretraining)",
        params=[Param("size", int, 32, "side length after resizing", min=1, max=512),
                Param("grayscale", bool, False, "convert to one channel first")],
    )
    register(
        "raw:tfidf", _tfidf, modality="text", params_count=0, weights="none",
        has_weights=False, offline=True,
        summary="baseline: TF-IDF of word n-grams fitted on the training split",
        params=[Param("max_features", int, 50_000, "vocabulary size cap", min=1),
                Param("ngram_max", int, 2, "largest word n-gram", min=1, max=5),
                Param("min_df", int, 1, "minimum document frequency", min=1)],
    )
