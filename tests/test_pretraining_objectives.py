"""The pretraining objectives (``reconstruction``, ``contrastive``, ``mlm``, ``nsp``, ``clm``)
pinned to values computed by hand or by an independent numpy formula, float64 gradient checks,
and the data side: SimCLR views and BERT masks reproducible under a seed, the masking
statistics, NSP pairs that respect document boundaries, and WikiText's article boundaries."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from conftest import SHARED_DATA
from transferlab.errors import DataError, ParamError

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from transferlab_objectives.pretraining import (  # noqa: E402
    CausalLM,
    Contrastive,
    ConvDecoder,
    MaskedLM,
    NextSentence,
    Reconstruction,
    clm_loss,
    mlm_loss,
    nsp_loss,
    nt_xent_loss,
    reconstruction_loss,
)
from transferlab_objectives.pretraining_data import (  # noqa: E402
    SimCLRAugment,
    mask_tokens,
    nsp_pairs,
    split_wikitext_documents,
)

NAMES = ["reconstruction", "contrastive", "mlm", "nsp", "clm"]


@pytest.fixture(scope="module")
def registries():
    from transferlab.plugins import PluginHost

    host = PluginHost(only=["objectives"], strict=True)
    host.load_entry_points()
    return host.registries


def _randn(*shape: int, seed: int = 0, grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)


# --- reconstruction ---------------------------------------------------------------------------


def test_reconstruction_is_the_mean_squared_error_over_elements():
    """Bugs caught: a sum instead of a mean, a norm without the square, a mean over rows only,
    shapes silently broadcast."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert reconstruction_loss(torch.zeros(2, 2), x).item() == 7.5  # (1 + 4 + 9 + 16) / 4
    assert reconstruction_loss(torch.ones(2, 2), x).item() == 3.5  # (0 + 1 + 4 + 9) / 4
    with pytest.raises(DataError, match=r"outputs have shape \(2, 1\) but the inputs \(2, 2\)"):
        reconstruction_loss(torch.zeros(2, 1), x)


def test_reconstruction_passes_a_float64_gradient_check_and_leaves_the_target_alone():
    """Catches a loss that drops to float32, and gradient flowing into the input images."""
    target = _randn(2, 3, 4, 4, seed=1, grad=True)
    recon = _randn(2, 3, 4, 4, seed=2, grad=True)
    assert reconstruction_loss(recon, target).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda r: reconstruction_loss(r, target), (recon,))
    reconstruction_loss(recon, target).backward()
    assert target.grad is None


@pytest.mark.parametrize(("size", "channels"), [(32, 3), (64, 3), (28, 1), ((16, 24), 3)])
def test_conv_decoder_maps_an_embedding_to_an_image_of_the_requested_size(size, channels):
    """Catches a decoder whose output size is off for sizes that are not 4 * 2^k, a wrong
    channel count, or a graph that does not reach the embedding."""
    decoder = ConvDecoder(8, channels, size, width=32)
    embedding = torch.randn(2, 8, requires_grad=True)
    image = decoder(embedding)
    hw = (size, size) if isinstance(size, int) else size
    assert image.shape == (2, channels, *hw)
    image.square().mean().backward()
    assert embedding.grad is not None and bool(embedding.grad.abs().sum() > 0)
    with pytest.raises(ParamError, match="must be positive"):
        ConvDecoder(0, 3, 32)


def test_reconstruction_objective_reads_the_inputs_and_a_named_output():
    """Catches an objective that compares with the labels, ignores a mapping output's
    `reconstruction` entry, or fails with a KeyError on text batches."""
    images = torch.rand(2, 3, 8, 8)
    recon = torch.zeros(2, 3, 8, 8)
    expected = float((images**2).mean())
    objective = Reconstruction()
    assert objective(recon, {"inputs": images, "labels": None}).item() == pytest.approx(expected)
    assert objective({"reconstruction": recon}, {"inputs": images}).item() == pytest.approx(
        expected)
    with pytest.raises(DataError, match="needs a tensor batch\\['inputs'\\], got dict"):
        objective(recon, {"inputs": {"input_ids": None}})


# --- contrastive ------------------------------------------------------------------------------


def _nt_xent_numpy(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """NT-Xent written out as in the SimCLR paper's Algorithm 1, with loops."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, total = len(z1), 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[positive] / tau) / denominator)
    return total / (2 * n)


def test_nt_xent_matches_the_hand_value_and_the_papers_formula():
    """Bugs caught: self-similarity left in the softmax, the positive taken from the same view,
    dot products instead of cosine similarities, the temperature applied wrongly, a mean over
    B instead of 2B rows."""
    eye = torch.eye(2)
    # every row: positive similarity 1, the two negatives 0 -> -log(e / (e + 2)) at tau = 1
    assert nt_xent_loss(eye, eye, temperature=1.0).item() == pytest.approx(
        math.log(math.e + 2) - 1)
    assert nt_xent_loss(3 * eye, 0.5 * eye, temperature=1.0).item() == pytest.approx(
        math.log(math.e + 2) - 1)  # cosine: the scale of either view does not matter
    z1, z2 = _randn(4, 3, seed=3), _randn(4, 3, seed=4)
    for tau in (0.5, 0.1):
        assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(
            _nt_xent_numpy(z1.numpy(), z2.numpy(), tau), rel=1e-10)


def test_nt_xent_passes_a_float64_gradient_check_through_both_views():
    """Catches a view detached (SimCLR trains through both) or a NaN from the masked
    diagonal."""
    z1, z2 = _randn(3, 4, seed=5, grad=True), _randn(3, 4, seed=6, grad=True)
    assert nt_xent_loss(z1, z2).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_loss(a, b, 0.5), (z1, z2))


def test_contrastive_objective_reads_view2_and_refuses_mismatched_views(registries):
    """Catches the second view read from the outputs or the labels, a temperature parameter
    that is not passed on, and mismatched views silently broadcast."""
    from transferlab.training.objectives import build_objective

    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    objective = build_objective("contrastive[temperature=0.2]", registries)
    assert isinstance(objective, Contrastive) and objective.temperature == 0.2
    assert objective(z1, {"view2": z2}).item() == pytest.approx(
        nt_xent_loss(z1, z2, 0.2).item())
    assert objective({"embeddings": z1}, {"view2": z2}).item() == pytest.approx(
        nt_xent_loss(z1, z2, 0.2).item())
    assert build_objective("contrastive", registries).temperature == 0.5
    with pytest.raises(DataError, match=r"needs the second view's embeddings .* batch\['view2'\]"):
        objective(z1, {"inputs": None})
    with pytest.raises(DataError, match=r"shapes \(4, 3\) and \(3, 3\)"):
        objective(z1, {"view2": z2[:3]})
    with pytest.raises(ParamError):
        build_objective("contrastive[temperature=0]", registries)


def test_simclr_views_are_reproducible_under_a_seed_and_use_no_global_rng():
    """Bugs caught: an augmentation drawing from torch's global generator (the same seed would
    give other views after any other draw), two views that are identical, values out of
    [0, 1], a size parameter ignored."""
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    augment = SimCLRAugment()
    state = torch.get_rng_state()
    a1, a2 = augment.views(images, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(5)  # a global draw in between changes nothing
    b1, b2 = augment.views(images, torch.Generator().manual_seed(7))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)
    c1, _ = augment.views(images, torch.Generator().manual_seed(8))
    assert not torch.equal(a1, c1)
    assert a1.shape == images.shape and float(a1.min()) >= 0 and float(a1.max()) <= 1
    assert SimCLRAugment(size=8)(images, torch.Generator()).shape == (4, 3, 8, 8)
    gray = SimCLRAugment()(torch.rand(2, 1, 16, 16), torch.Generator().manual_seed(1))
    assert gray.shape == (2, 1, 16, 16)
    with pytest.raises(DataError, match=r"float images \[B, C, H, W\]"):
        augment(torch.zeros(3, 16, 16), torch.Generator())


def test_simclr_stages_do_what_they_declare():
    """Catches a crop that is off by a pixel at full scale, a flip that is not horizontal, a
    grayscale that leaves the channels different."""
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    keep = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    g = torch.Generator()
    assert torch.allclose(SimCLRAugment(**keep)(images, g), images, atol=1e-6)
    flipped = SimCLRAugment(**{**keep, "flip_p": 1.0})(images, g)
    assert torch.allclose(flipped, images.flip(-1), atol=1e-6)
    gray = SimCLRAugment(**{**keep, "grayscale_p": 1.0})(images, g)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    jittered = SimCLRAugment(**{**keep, "jitter_p": 1.0})(images, g)
    assert not torch.allclose(jittered, images)


# --- mlm --------------------------------------------------------------------------------------


def test_mlm_loss_is_cross_entropy_at_the_selected_positions_only():
    """Bugs caught: unselected positions (-100) counted, a mean over all positions instead of
    the selected ones, and NaN when a batch has nothing selected."""
    logits = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]]])
    labels = torch.tensor([[-100, 1, 0]])
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 2
    assert mlm_loss(logits, labels).item() == pytest.approx(expected)
    assert mlm_loss(logits[0], labels[0]).item() == pytest.approx(expected)  # [N, V] as well
    leaf = logits.clone().requires_grad_(True)
    none = mlm_loss(leaf, torch.full((1, 3), -100))
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(DataError, match=r"need labels of shape \(1, 3\), got \(1, 2\)"):
        mlm_loss(logits, labels[:, :2])


def test_mlm_loss_passes_a_float64_gradient_check():
    """Catches a hand-written backward shortcut or a silent drop to float32."""
    logits = _randn(2, 4, 5, seed=7, grad=True)
    labels = torch.tensor([[1, -100, 4, 0], [-100, -100, 2, 3]])
    assert mlm_loss(logits, labels).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda x: mlm_loss(x, labels), (logits,))


SPECIALS = {0, 1, 2, 3}  # [PAD], [CLS], [SEP], [MASK]
MASK, VOCAB = 3, 1000


def _token_batch(rows: int = 400, length: int = 512) -> torch.Tensor:
    ids = torch.randint(4, VOCAB, (rows, length), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -41] = 1, 2  # [CLS] ... [SEP], then 40 pads
    ids[:, -40:] = 0
    return ids


def test_bert_masking_selects_15_percent_and_splits_80_10_10():
    """Bugs caught: special tokens or padding selected, a selection rate other than 15%, an
    80/10/10 split drawn wrongly (e.g. 10% random taken from the masked 80%), labels not the
    original ids, unselected tokens changed."""
    ids = _token_batch()
    masked, labels = mask_tokens(ids, mask_token_id=MASK, vocab_size=VOCAB,
                                 special_ids=SPECIALS, generator=torch.Generator().manual_seed(1))
    special = torch.isin(ids, torch.tensor(sorted(SPECIALS)))
    selected = labels != -100
    assert not bool((selected & special).any())
    assert torch.equal(masked[~selected], ids[~selected])
    assert torch.equal(labels[selected], ids[selected])

    def near(fraction: float, p: float, n: int) -> bool:  # within 5 standard deviations
        return abs(fraction - p) < 5 * math.sqrt(p * (1 - p) / n)

    eligible = int((~special).sum())
    n = int(selected.sum())
    assert near(n / eligible, 0.15, eligible)
    to_mask = float((masked[selected] == MASK).sum()) / n
    kept = float((masked[selected] == ids[selected]).sum()) / n
    random_token = 1 - to_mask - kept
    # a random token is [MASK] or the original with probability 1 / VOCAB each
    assert near(to_mask, 0.8 + 0.1 / VOCAB, n)
    assert near(kept, 0.1 + 0.1 / VOCAB, n)
    assert near(random_token, 0.1 * (1 - 2 / VOCAB), n)


def test_bert_masking_is_reproducible_and_honours_the_attention_mask():
    """Catches masks drawn from the global generator, an input tensor modified in place, and
    padding (attention_mask 0) selected when its id is not listed as special."""
    ids = _token_batch(8, 64)
    before = ids.clone()
    kwargs = dict(mask_token_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS)
    a = mask_tokens(ids, generator=torch.Generator().manual_seed(3), **kwargs)
    torch.rand(10)
    b = mask_tokens(ids, generator=torch.Generator().manual_seed(3), **kwargs)
    c = mask_tokens(ids, generator=torch.Generator().manual_seed(4), **kwargs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert torch.equal(ids, before)
    plain = torch.randint(4, VOCAB, (8, 64), generator=torch.Generator().manual_seed(5))
    plain[:, 0] = 1
    attention = torch.ones_like(plain)
    attention[:, 32:] = 0
    _, labels = mask_tokens(plain, generator=torch.Generator(), probability=1.0,
                            attention_mask=attention, mask_token_id=MASK, vocab_size=VOCAB,
                            special_ids={1, 2})
    assert bool((labels[:, 32:] == -100).all())
    assert bool((labels[:, 1:32] != -100).all())  # probability 1: every other token
    assert bool((labels[:, 0] == -100).all())  # [CLS] is special
    with pytest.raises(ParamError, match=r"probability must lie in \[0, 1\]"):
        mask_tokens(ids, generator=torch.Generator(), probability=1.5, **kwargs)


# --- nsp --------------------------------------------------------------------------------------


def test_nsp_loss_is_two_way_cross_entropy():
    """Bugs caught: the label order reversed, a sigmoid on one logit, logits that are not 2-way
    accepted."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert nsp_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected)
    swapped = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(1))) / 2
    assert nsp_loss(logits, torch.tensor([1, 0])).item() == pytest.approx(swapped)
    with pytest.raises(DataError, match=r"logits of shape \[B, 2\], got \(2, 3\)"):
        nsp_loss(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_nsp_loss_passes_a_float64_gradient_check():
    """Catches a hand-written backward shortcut or a silent drop to float32."""
    logits = _randn(4, 2, seed=8, grad=True)
    labels = torch.tensor([0, 1, 1, 0])
    assert torch.autograd.gradcheck(lambda x: nsp_loss(x, labels), (logits,))


WIKITEXT = (
    " = Alpha = \n \n Alpha is a letter . It comes first . \n"
    " = = History = = \n It was used by Greeks ! Really ? Yes . \n"
    " = Qualified for the next round \n"
    " = Beta = \n Beta is second . \n = = = Sub = = = \n Beta ends here . \n"
    " = Gamma = \n \n"
    " = Delta = \n Delta only . \n"
)


def test_wikitext_splits_into_articles_at_top_level_titles_only():
    """Bugs caught: section lines (`= = S = =`) or legend lines (`= text`) taken as article
    boundaries, headings kept as sentences, sentences not split at ` . ` / ` ! ` / ` ? `,
    empty articles kept."""
    assert split_wikitext_documents(WIKITEXT) == [
        ["Alpha is a letter .", "It comes first .", "It was used by Greeks !", "Really ?",
         "Yes .", "= Qualified for the next round"],
        ["Beta is second .", "Beta ends here ."],
        ["Delta only ."],
    ]
    assert split_wikitext_documents(" Before any title . \n = T = \n After . \n") == [
        ["Before any title ."], ["After ."]]


def test_wikitext_2_test_split_has_its_62_articles():
    """On the real file: catches a title pattern that misses WikiText's spacing."""
    path = SHARED_DATA / "corpora" / "wikitext2_test.txt"
    if not path.exists():
        pytest.skip(f"{path} not found (set TRANSFERLAB_SHARED_DATA)")
    documents = split_wikitext_documents(path.read_text(encoding="utf-8"))
    assert len(documents) == 62
    assert documents[0][0] == "Robert Boulter is an English film , television and theatre actor ."


def test_nsp_pairs_are_half_true_and_never_cross_document_boundaries():
    """Bugs caught: a true pair spanning two articles, a random sentence from the same article,
    a rate other than 1/2, empty documents chosen, non-reproducible pairs."""
    sizes = [30, 1, 0, 25, 40, 2, 50]
    documents = [[f"d{d}s{i}" for i in range(n)] for d, n in enumerate(sizes)]
    pairs = nsp_pairs(documents, random.Random(0))
    assert len(pairs) == sum(max(n - 1, 0) for n in sizes)
    for first, second, is_next in pairs:
        (da, ia), (db, ib) = (tuple(map(int, s[1:].split("s"))) for s in (first, second))
        if is_next:
            assert (db, ib) == (da, ia + 1)
        else:
            assert db != da and sizes[db] > 0
    true_rate = sum(p[2] for p in pairs) / len(pairs)
    assert abs(true_rate - 0.5) < 5 * math.sqrt(0.25 / len(pairs))
    assert {p[1].split("s")[0] for p in pairs if not p[2]} >= {"d1", "d5"}  # short docs serve
    assert nsp_pairs(documents, random.Random(0)) == pairs
    assert nsp_pairs(documents, random.Random(1)) != pairs
    with pytest.raises(DataError, match="at least two non-empty documents, got 1"):
        nsp_pairs([["a", "b"], []], random.Random(0))


# --- clm --------------------------------------------------------------------------------------


def test_clm_loss_predicts_the_next_token_and_ignores_padding():
    """Bugs caught: no shift (position t scored on token t), a shift the wrong way, the last
    position's logits used, padding counted through the attention mask or -100."""
    logits = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    labels = torch.tensor([[0, 1, 0]])
    # position 0 predicts token 1 (label 1), position 1 predicts token 2 (label 0)
    first, second = math.log(1 + math.e), math.log(1 + math.exp(2))
    assert clm_loss(logits, labels).item() == pytest.approx((first + second) / 2)
    assert clm_loss(logits, labels, torch.tensor([[1, 1, 0]])).item() == pytest.approx(first)
    assert clm_loss(logits, torch.tensor([[0, 1, -100]])).item() == pytest.approx(first)
    with pytest.raises(DataError, match=r"\[B, T, V\], got \(3, 2\)"):
        clm_loss(logits[0], labels[0])


def test_clm_loss_passes_a_float64_gradient_check():
    """Catches a hand-written backward shortcut or a silent drop to float32."""
    logits = _randn(2, 4, 3, seed=9, grad=True)
    labels = torch.tensor([[0, 1, 2, 1], [2, 2, 0, -100]])
    assert clm_loss(logits, labels).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda x: clm_loss(x, labels), (logits,))


def test_clm_objective_reads_labels_or_the_input_ids_with_their_mask():
    """Catches an objective that cannot train on a plain tokenised batch (no labels), or that
    ignores the attention mask inside batch['inputs']."""
    logits = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    inputs = {"input_ids": torch.tensor([[0, 1, 0]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    objective = CausalLM()
    assert objective(logits, {"inputs": inputs}).item() == pytest.approx(math.log(1 + math.e))
    both = objective({"logits": logits}, {"inputs": None, "labels": inputs["input_ids"]})
    assert both.item() == pytest.approx((math.log(1 + math.e) + math.log(1 + math.exp(2))) / 2)
    with pytest.raises(DataError, match=r"batch\['inputs'\]\['input_ids'\]"):
        objective(logits, {"inputs": torch.zeros(1, 3)})


# --- registration and multi-task --------------------------------------------------------------


def test_the_pretraining_objectives_are_registered_and_name_their_batch_keys(registries):
    """Catches a missing registration and errors that do not say which batch entry is
    missing (a KeyError deep in the loss)."""
    from transferlab.training.objectives import build_objective

    classes = [Reconstruction, Contrastive, MaskedLM, NextSentence, CausalLM]
    missing = ["inputs", "view2", "labels", "next_sentence_label", "labels"]
    for name, cls, key in zip(NAMES, classes, missing, strict=True):
        objective = build_objective(name, registries)
        assert isinstance(objective, cls) and objective.name == name
        if name != "clm":
            with pytest.raises(DataError, match=rf"batch\['{key}'\]"):
                objective(torch.zeros(2, 2), {})


def test_weighted_sum_combines_mlm_and_nsp_on_named_outputs(registries):
    """Multi-task pretraining (MT-DNN style): catches terms that cannot tell their logits
    apart in one output mapping, weights not applied, and Hugging Face's output names
    (prediction_logits, seq_relationship_logits) not understood."""
    from transferlab.training.objectives import build_objective

    objective = build_objective("weighted-sum[terms=mlm:1+nsp:0.5]", registries)
    mlm_logits, nsp_logits = torch.randn(2, 5, 7), torch.randn(2, 2)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 3] = 4, 6
    batch = {"inputs": None, "labels": labels, "next_sentence_label": torch.tensor([0, 1])}
    expected = mlm_loss(mlm_logits, labels) + 0.5 * nsp_loss(nsp_logits, batch[
        "next_sentence_label"])
    ours = objective({"mlm_logits": mlm_logits, "nsp_logits": nsp_logits}, batch)
    hf = objective({"prediction_logits": mlm_logits, "seq_relationship_logits": nsp_logits},
                   batch)
    assert ours.item() == pytest.approx(expected.item()) and hf.item() == ours.item()
    with pytest.raises(DataError, match=r"reads one of \['nsp_logits', 'seq_relationship"):
        objective({"mlm_logits": mlm_logits}, batch)
