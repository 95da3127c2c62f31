"""`transferlab pretrain`: corpora split into contiguous blocks, objectives resolved and
combined, the resumable loop (exact resume after a stop, SIGINT or SIGKILL), the text and
image setups the objectives build, and the run recorded in the results database."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from transferlab.api import Budget
from transferlab.errors import (
    CheckpointError,
    DataError,
    IncompatibleError,
    ParamError,
    UnknownNameError,
)
from transferlab.pretraining import (
    Examples,
    PretrainingSetup,
    UnlabeledData,
    read_corpora,
    split_contiguous,
)
from transferlab.pretraining.command import PretrainRequest, resolve_terms, run_request
from transferlab.pretraining.loop import (
    Interrupted,
    PretrainConfig,
    Term,
    batch_rows,
    run_pretraining,
    total_steps,
)

WIKI = """ = Alpha =
 Alpha is the first letter . It opens the alphabet .
 It has a long history . Scholars study it .
 = = Usage = =
 Alpha is used in science . It names things .
 = Beta =
 Beta is the second letter . It follows alpha .
 Beta also names a test . Software has betas .
 = Gamma =
 Gamma is the third letter . It follows beta .
 Gamma rays are strong . They come from stars .
"""


# --- contiguous corpus splits -------------------------------------------------------------


def test_split_contiguous_cuts_at_line_breaks_and_keeps_every_character():
    """Bugs caught: a split that shuffles or drops lines (the concatenation would differ), a
    cut inside a line, and fractions applied in the wrong order (test bigger than train)."""
    text = "".join(f"line {i:03d}\n" for i in range(100))
    train, val, test = split_contiguous(text)
    assert train + val + test == text
    assert all(block.endswith("\n") for block in (train, val, test))
    assert (train.count("\n"), val.count("\n"), test.count("\n")) == (80, 10, 10)
    assert train.startswith("line 000") and test.endswith("line 099\n")
    assert split_contiguous("no newline at all", (0.5, 0.5)) == ("no newline at all", "")


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (1.2, -0.2), ()])
def test_split_contiguous_rejects_fractions_that_do_not_sum_to_one(fractions):
    """Bug caught: fractions summing to more than 1 silently truncating the last block."""
    with pytest.raises(ParamError, match="sum to 1"):
        split_contiguous("a\nb\n", fractions)


def test_read_corpora_splits_each_file_and_fingerprints_its_content(tmp_path):
    """Bugs caught: a second corpus overwriting the first's blocks, a fingerprint blind to
    the text (a stored run would name data it did not see), unclear errors on bad files."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("".join(f"a{i}\n" for i in range(50)))
    second.write_text("".join(f"b{i}\n" for i in range(50)))
    data = read_corpora([first, second])
    assert data.modality == "text" and data.source == "corpus:a.txt+b.txt"
    assert [block[:2] for block in data.split("train")] == ["a0", "b0"]
    assert len(data.split("validation")) == len(data.split("test")) == 2
    second.write_text("".join(f"c{i}\n" for i in range(50)))
    assert read_corpora([first, second]).fingerprint != data.fingerprint
    with pytest.raises(DataError, match="does not exist"):
        read_corpora([tmp_path / "missing.txt"])
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="not UTF-8"):
        read_corpora([tmp_path / "bin.txt"])
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        read_corpora([tmp_path / "empty.txt"])
    with pytest.raises(ParamError, match="no corpus"):
        read_corpora([])


# --- objectives ---------------------------------------------------------------------------


def test_resolve_terms_weights_and_refusals(registries):
    """Bugs caught: --weight ignored, a labeled objective (cross-entropy) accepted for
    pretraining, an objective given twice, a weight for an objective not in the run, and text
    and image objectives mixed into one model."""
    terms = resolve_terms(["mlm", "nsp"], {"nsp": 0.5}, registries)
    assert [(t.name, t.weight) for t in terms] == [("mlm", 1.0), ("nsp", 0.5)]
    with pytest.raises(IncompatibleError, match=r"'cross-entropy' cannot pretrain.*clm,"
                       r" contrastive, mlm, nsp, reconstruction"):
        resolve_terms(["cross-entropy"], {}, registries)
    with pytest.raises(ParamError, match="given twice"):
        resolve_terms(["mlm", "mlm"], {}, registries)
    with pytest.raises(UnknownNameError, match="--weight names nsp"):
        resolve_terms(["mlm"], {"nsp": 2}, registries)
    with pytest.raises(IncompatibleError, match="cannot pretrain together"):
        resolve_terms(["mlm", "contrastive"], {}, registries)
    contrastive = resolve_terms(["contrastive[temperature=0.2]"], {}, registries)[0]
    assert contrastive.objective.temperature == 0.2


# --- the loop -----------------------------------------------------------------------------


class _Toy(nn.Module):
    """A model with dropout, so resuming must restore the global random state too."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Reconstruct:
    name = "toy"

    def setup(self, model: nn.Module) -> None:
        pass

    def __call__(self, outputs, batch):
        return ((outputs - batch["target"]) ** 2).mean()


def _toy_setup() -> PretrainingSetup:
    data = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
    model = _Toy()

    def batch(rows, generator):  # a random draw per batch, from the step's generator
        noise = torch.randn(len(rows), 4, generator=generator) * 0.1
        return {"inputs": data[list(rows)] + noise, "target": data[list(rows)]}

    return PretrainingSetup(model, Examples(len(data), batch),
                            lambda b: model(b["inputs"]), Examples(8, batch))


def _config(**overrides) -> PretrainConfig:
    values = {"budget": Budget(steps=12), "batch_size": 8, "lr": 1e-2,
              "checkpoint_every": 4, "log_every": 2, "seed": 3}
    return PretrainConfig(**{**values, **overrides})


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """Bugs caught: a loop that leaves dropout to whatever global random state the process
    had, resuming without the optimizer state (Adam moments restart), without the
    scheduler (the learning rate restarts its warm-up), without the global random state
    (other dropout masks), or from the wrong data position (batches replayed or skipped):
    each ends with other weights than a run that never stopped."""
    terms = [Term("toy", _Reconstruct())]
    whole = _toy_setup()
    done = run_pretraining(whole, terms, _config(), tmp_path / "whole")
    assert (done.steps, done.resumed_from, done.stop_reason) == (12, 0, "steps")
    assert [r["step"] for r in done.history] == [2, 4, 6, 8, 10, 12]
    assert done.validation_loss is not None and done.final_loss is not None

    stopped = _toy_setup()
    torch.manual_seed(999)  # another process: the loop must seed dropout from the run's seed
    calls = iter(range(100))
    with pytest.raises(Interrupted) as info:
        run_pretraining(stopped, terms, _config(), tmp_path / "cut",
                        should_stop=lambda: next(calls) == 4)  # after step 5
    assert info.value.step == 5
    assert json.loads((tmp_path / "cut" / "latest").read_text())["step"] == 5
    resumed = _toy_setup()  # a fresh process: new model, global random state moved on
    torch.manual_seed(12345)
    result = run_pretraining(resumed, terms, _config(), tmp_path / "cut")
    assert (result.resumed_from, result.steps) == (5, 12)
    for (name, a), b in zip(whole.module.state_dict().items(),
                            resumed.module.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result.units == done.units == 12 * 8


def test_checkpoints_keep_only_the_newest_and_a_damaged_one_is_named(tmp_path):
    """Bugs caught: old checkpoints piling up (disk fills on long runs), and a corrupt
    checkpoint unpickled or crashing with a traceback instead of naming the fix."""
    run_pretraining(_toy_setup(), [Term("toy", _Reconstruct())], _config(), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000012"]
    (tmp_path / "step-00000012" / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=f"damaged.*delete {tmp_path}"):
        run_pretraining(_toy_setup(), [Term("toy", _Reconstruct())], _config(), tmp_path)


def test_epochs_budget_and_batch_rows():
    """Bugs caught: the last partial batch counted as a step, epochs that reuse one
    permutation (every epoch the same order), and a budget without a schedule length."""
    config = _config(budget=Budget(epochs=2), batch_size=8)
    assert total_steps(20, config) == 4  # 2 full batches of 8 per epoch
    first = [batch_rows(s, 20, config) for s in range(2)]
    second = [batch_rows(s, 20, config) for s in range(2, 4)]
    assert all(len(rows) == 8 for rows in first + second)
    assert len({row for rows in first for row in rows}) == 16 and first != second
    assert total_steps(20, _config(budget=Budget(epochs=5, steps=3))) == 3
    with pytest.raises(DataError, match="fewer than one batch"):
        total_steps(5, config)
    with pytest.raises(ParamError, match="steps or epochs"):
        PretrainConfig(Budget(seconds=10))


def test_a_non_finite_loss_stops_with_the_fix(tmp_path):
    """Bug caught: NaN losses trained on silently (every weight becomes NaN)."""
    setup = _toy_setup()
    nan = Term("nan", type("Nan", (_Reconstruct,), {
        "__call__": lambda self, o, b: o.sum() * float("nan")})())
    with pytest.raises(DataError, match="became nan at step 0; lower the learning rate"):
        run_pretraining(setup, [nan], _config(), tmp_path)


# --- the setups the built-in objectives build ------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    path.write_text(WIKI * 6)
    return path


def _setup(registries, backbone: str, objectives: list[str], data: UnlabeledData, **params):
    terms = resolve_terms(objectives, {}, registries)
    model = registries.backbones.create(backbone, params)
    pairs = [(t.objective, t.weight) for t in terms]
    return model, terms, terms[0].objective.build_pretraining(model, data, pairs, 0)


def test_bert_mlm_nsp_batches_pairs_and_masks(registries, corpus):
    """Bugs caught: NSP pairs tokenised as one segment (no token_type_ids), labels not
    following the pair, MLM logits for every position (a [B, T, 30522] tensor) or for the
    wrong ones, and a loss that does not reach the next-sentence head."""
    _, terms, setup = _setup(registries, "bert:tiny", ["mlm", "nsp"], read_corpora([corpus]),
                             max_length=32)
    batch = setup.train.batch([0, 1, 2, 3], torch.Generator().manual_seed(0))
    inputs = batch["inputs"]
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["token_type_ids"].max() == 1 and inputs["input_ids"].shape[1] <= 32
    assert set(batch["next_sentence_label"].tolist()) <= {0, 1}
    selected = int((batch["labels"] != -100).sum())
    outputs = setup.forward(batch)
    assert outputs["mlm_logits"].shape == (selected, 30522)
    assert outputs["nsp_logits"].shape == (4, 2) and batch["labels"].shape == (selected,)
    loss = sum(t.objective(outputs, batch) for t in terms)
    loss.backward()
    head = setup.module["heads"]["nsp"][0].weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    assert setup.units(batch) == int(inputs["attention_mask"].sum())


def test_nsp_labels_match_the_pairs(registries, corpus):
    """Bug caught: next_sentence_label inverted (1 for a true next sentence), which trains a
    head that predicts the opposite of BERT's convention."""
    from transferlab_objectives import pretrain_text

    model = registries.backbones.create("bert:tiny", {"max_length": 32})
    pairs = pretrain_text._Pairs(model, [WIKI * 6], seed=0)
    encoded = pairs.encode(range(len(pairs)))
    expected = [0 if is_next else 1 for _, _, is_next in pairs.pairs]
    assert encoded["next_sentence_label"].tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_gpt_clm_blocks_are_full_windows(registries, corpus):
    """Bugs caught: clm targets other than the inputs, padding inside blocks, and blocks
    longer than max_length."""
    _, terms, setup = _setup(registries, "gpt:tiny", ["clm"], read_corpora([corpus]),
                             max_length=16)
    batch = setup.train.batch([0, 1], torch.Generator().manual_seed(0))
    ids = batch["inputs"]["input_ids"]
    assert ids.shape == (2, 16) and bool(batch["inputs"]["attention_mask"].all())
    assert torch.equal(batch["labels"], ids)
    outputs = setup.forward(batch)
    assert outputs["logits"].shape == (2, 16, 30522)
    assert float(terms[0].objective(outputs, batch)) > 5  # ~ln(30522) = 10.3 untrained


@pytest.mark.parametrize(("backbone", "objectives", "message"), [
    ("gpt:tiny", ["mlm"], "masked-LM head"),
    ("bert:tiny", ["clm"], "needs a causal LM"),
    ("gpt:tiny", ["nsp"], "bidirectional encoder"),
])
def test_text_objectives_refuse_the_wrong_model(registries, corpus, backbone, objectives,
                                                message):
    """Bug caught: mlm trained through a causal model's head (or clm through BERT's), which
    runs but learns nothing meaningful."""
    with pytest.raises(IncompatibleError, match=message):
        _setup(registries, backbone, objectives, read_corpora([corpus]))


def test_contrastive_and_reconstruction_on_images(registries):
    """Bugs caught: both views made identical (NT-Xent then trivially 0), the second view's
    embeddings computed without gradient, and a decoder output of another size."""
    import numpy as np

    images = [np.full((20, 20, 3), 40 * i, dtype=np.uint8) for i in range(6)]
    data = UnlabeledData("image", {"train": images}, "test", "0")
    _, _, setup = _setup(registries, "timm:test_efficientnet@random",
                             ["contrastive", "reconstruction"], data, img_size=32)
    batch = setup.train.batch([0, 1, 2, 3], torch.Generator().manual_seed(0))
    assert batch["inputs"].shape == batch["inputs2"].shape == (4, 3, 32, 32)
    assert not torch.equal(batch["inputs"], batch["inputs2"])
    outputs = setup.forward(batch)
    assert outputs["embeddings"].shape == batch["view2"].shape == (4, 128)
    assert batch["view2"].requires_grad
    assert outputs["reconstruction"].shape == (4, 3, 32, 32)
    again = setup.train.batch([0, 1, 2, 3], torch.Generator().manual_seed(0))
    assert torch.equal(again["inputs2"], batch["inputs2"])  # views follow the generator


# --- the command ----------------------------------------------------------------------------


def test_run_request_saves_a_loadable_backbone_and_records_the_run(registries, corpus,
                                                                   tmp_path):
    """Bugs caught: the saved checkpoint not loading as bert:tiny@PATH (or loading the
    untrained weights), the run missing from the database, a re-run of a finished run stored
    twice, and a resume with other settings mixing two runs' checkpoints."""
    from transferlab.harness.store import ResultsStore

    out, db = tmp_path / "bert.safetensors", tmp_path / "runs.sqlite"
    request = PretrainRequest("bert:tiny", ("mlm", "nsp"), str(out), weights={"nsp": 0.5},
                              corpora=(str(corpus),), backbone_params={"max_length": 32},
                              steps=3, batch_size=4, checkpoint_every=2)
    record = run_request(request, registries, progress=False, db=db)
    assert record["steps"] == 3 and record["unit"] == "tokens"
    trained = registries.backbones.create(f"bert:tiny@{out}", {"max_length": 32})
    fresh = registries.backbones.create("bert:tiny", {"max_length": 32})
    assert trained.fingerprint == record["backbone_fingerprint"] != fresh.fingerprint
    runs = ResultsStore(db).pretraining_runs(checkpoint=out)
    assert len(runs) == 1 and runs[0]["objectives"][1] == {
        "name": "nsp", "setting": "nsp", "weight": 0.5}
    assert runs[0]["data"] == "corpus:wiki.txt" and runs[0]["budget"]["steps"] == 3
    again = run_request(request, registries, progress=False, db=db)
    assert again["resumed_from"] == 3 and len(ResultsStore(db).pretraining_runs()) == 1
    other = PretrainRequest(**{**request.__dict__, "lr": 1e-3})
    with pytest.raises(CheckpointError, match=r"other settings \(changed: lr\)"):
        run_request(other, registries, progress=False)
    with pytest.raises(IncompatibleError, match=r"is text data but.*contrastive"):
        run_request(PretrainRequest("bert:tiny", ("contrastive",), str(tmp_path / "x"),
                                    corpora=(str(corpus),), steps=1), registries,
                    progress=False)


# --- interruption of the real command ------------------------------------------------------


def _command(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from transferlab.cli import main; main()", "pretrain",
            "-b", "gpt:tiny",
            "--objective", "clm", "--corpus", str(corpus), "--steps", "30", "--batch-size",
            "2", "-B", "max_length=16", "--checkpoint-every", "3", "--out", str(out),
            "--no-progress", "--db", str(out.with_suffix(".sqlite"))]


def _interrupt(command: list[str], run_dir: Path, sig: int) -> int:
    """Start the command, wait for its first checkpoint, send ``sig``; the step it had."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 300
    while not (run_dir / "latest").is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    process.send_signal(sig)
    _, err = process.communicate(timeout=300)
    if sig == signal.SIGINT:
        assert process.returncode == 130, err
        assert "run the same command to resume" in err
    else:
        assert process.returncode == -signal.SIGKILL
    return json.loads((run_dir / "latest").read_text())["step"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_pretrain_resumes_after_a_signal_to_the_same_weights(corpus, tmp_path, sig):
    """Bugs caught: Ctrl-C losing the work since the last checkpoint or leaving a
    half-written one, a kill corrupting the pointer to the newest checkpoint, and a resumed
    command ending with other weights than one that ran through."""
    from safetensors.torch import load_file

    whole = tmp_path / "whole.safetensors"
    done = subprocess.run(_command(corpus, whole), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    cut = tmp_path / "cut.safetensors"
    step = _interrupt(_command(corpus, cut), Path(f"{cut}.checkpoints"), sig)
    assert 0 < step < 30
    resumed = subprocess.run(_command(corpus, cut), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {step}" in resumed.stdout
    a, b = load_file(str(whole)), load_file(str(cut))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_reports_bad_weights_and_missing_data(runner, corpus):
    """Bugs caught: a non-numeric --weight crashing with a traceback, and a run with
    neither --corpus nor -t starting anyway."""
    from transferlab.cli import cli

    result = runner.invoke(cli, ["pretrain", "-b", "bert:tiny", "--objective", "mlm",
                                 "--weight", "mlm=heavy", "--corpus", str(corpus),
                                 "--steps", "1", "--out", "x.safetensors"])
    assert result.exit_code != 0 and "must be a number" in result.output
    result = runner.invoke(cli, ["pretrain", "-b", "bert:tiny", "--objective", "mlm",
                                 "--steps", "1", "--out", "x.safetensors"])
    assert result.exit_code != 0 and "--corpus FILE (repeatable) or as -t TASK" in result.output



# --- language-modelling tasks, lm-finetune and generate -------------------------------------


def test_corpus_task_is_contiguous_and_refuses_classification_methods(registries, corpus,
                                                                      tmp_path):
    """Bugs caught: a corpus task whose splits overlap or reorder lines (test text leaking
    into training), a classification method accepted on it (it would score a constant
    pseudo-label), and a corpus name not found in the data directory's corpora/."""
    from transferlab.plugins import PluginHost
    from transferlab.views import create_task

    task = create_task(f"corpus:{corpus}", registries)
    assert (task.kind, task.primary_metric) == ("language-modelling", "perplexity")
    lines = [line for line in corpus.read_text().splitlines() if line.strip()]
    splits = [list(task.split(name).inputs) for name in ("train", "val", "test")]
    assert [line for split in splits for line in split] == lines and all(splits)
    method = registries.methods.create("linear-probe")
    backbone = registries.backbones.create("gpt:tiny", {"max_length": 16})
    with pytest.raises(IncompatibleError, match="does not support language-modelling tasks"):
        method.check(backbone, task)
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "mini.txt").write_text(corpus.read_text())
    host = PluginHost(data_dirs=[tmp_path])
    host.load_entry_points()
    assert create_task("corpus:mini", host.registries).path.name == "mini.txt"
    with pytest.raises(DataError, match="no corpus file nothing"):
        create_task("corpus:nothing", host.registries)


def test_lm_finetune_lowers_test_perplexity_and_ranks_lower_first(registries, corpus,
                                                                  tmp_path):
    """Bugs caught: perplexity computed as exp of a sum (or of the wrong tokens), a random
    model not near the vocabulary size, fine-tuning that does not reach the scored model,
    and a leaderboard that ranks the highest perplexity first."""
    from transferlab.harness.cell import Cell, run_cell
    from transferlab.harness.report import leaderboard
    from transferlab.harness.store import ResultsStore

    store = ResultsStore(tmp_path / "lm.sqlite")
    results = {}
    for steps in (0, 30):
        cell = Cell("gpt:tiny", f"corpus:{corpus}", "lm-finetune",
                    {"max_steps": steps, "batch_size": 4, "lr": 3e-3}, {"max_length": 16}, 0)
        result = run_cell(cell, registries, progress=False)
        assert result.status == "ok", result.error
        store.add(result)
        results[steps] = result
    untrained = results[0].metrics
    assert 30522 * 0.5 < untrained["perplexity"] < 30522 * 2  # uniform over the vocabulary
    assert untrained["perplexity"] == pytest.approx(math.exp(untrained["loss"]))
    assert results[30].metrics["perplexity"] < untrained["perplexity"] / 5
    assert (results[0].trainable_params, results[30].trainable_params) == (
        0, results[30].total_params)
    board = leaderboard(store.rows())
    assert [row.metric for row in board] == ["perplexity", "perplexity"]
    assert board[0].mean == results[30].metrics["perplexity"]


def test_generate_greedy_is_deterministic_and_sampling_follows_the_seed(runner, corpus,
                                                                       tmp_path):
    """Bugs caught: greedy decoding that samples, a seed that does not fix sampling, the
    prompt dropped from the output, and an encoder accepted for generation."""
    from transferlab.cli import cli

    def generate(*extra: str) -> str:
        result = runner.invoke(cli, ["generate", "-b", "gpt:tiny", "--prompt", "alpha is",
                                     "--max-tokens", "6", *extra])
        assert result.exit_code == 0, result.output
        return result.output.strip()

    greedy = generate()
    assert greedy.startswith("alpha is ") and greedy == generate("--seed", "5")
    sampled = [generate("--temperature", "1.5", "--seed", str(s)) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]
    result = runner.invoke(cli, ["generate", "-b", "bert:tiny", "--prompt", "x"])
    assert result.exit_code != 0 and "cannot generate text" in result.output


def test_suite_pretrain_tables_become_requests_and_backbone_paths():
    """Bugs caught: a `{NAME}` backbone left unsubstituted (the cell would look for a file
    named `{NAME}`), a reference to an undefined run accepted, a single corpus string split
    into characters, and a misspelt key ignored."""
    from transferlab.harness.suite import parse_suite

    data = {"name": "pt", "tasks": ["sst2"], "methods": ["finetune"], "seeds": [0, 1],
            "backbones": ["bert:tiny@{wiki}", "bert:tiny"],
            "pretrain": [{"name": "wiki", "backbone": "bert:tiny", "objectives": ["mlm", "nsp"],
                          "corpus": "wiki.txt", "steps": 10, "out": "out/wiki.safetensors",
                          "weights": {"nsp": 0.5}}]}
    suite = parse_suite(data)
    assert [c.backbone for c in suite.cells] == ["bert:tiny@out/wiki.safetensors"] * 2 + [
        "bert:tiny"] * 2
    (request,) = suite.pretraining
    assert (request.corpora, request.objectives, request.steps) == (("wiki.txt",),
                                                                    ("mlm", "nsp"), 10)
    assert request.weights == {"nsp": 0.5}
    with pytest.raises(DataError, match="names pretraining run 'other'"):
        parse_suite({**data, "backbones": ["bert:tiny@{other}"]})
    bad = {**data["pretrain"][0], "step": 10}
    with pytest.raises(DataError, match=r"unknown keys \['step'\]"):
        parse_suite({**data, "pretrain": [bad]})


def test_report_names_the_pretraining_behind_a_checkpoint_backbone(tmp_path):
    """Bug caught: a leaderboard row for `bert:tiny@PATH` with no way to tell which objectives,
    data and budget produced PATH (or the provenance of another checkpoint shown)."""
    from transferlab.harness.report import LeaderboardRow, pretraining_provenance

    def row(backbone: str) -> LeaderboardRow:
        return LeaderboardRow("sst2", backbone, "finetune", "", 3, "accuracy", 0.7, 0.01,
                              0.7, 1.0, 10, 10)

    ckpt = tmp_path / "bert.safetensors"
    runs = [{"checkpoint": str(ckpt.resolve()), "backbone": "bert:tiny", "data": "corpus:w.txt",
             "objectives": [{"setting": "mlm", "weight": 1.0}, {"setting": "nsp",
                                                                 "weight": 0.5}],
             "steps": 1200, "final_loss": 6.54321},
            {"checkpoint": "/elsewhere.safetensors", "backbone": "gpt:tiny", "data": "x",
             "objectives": [], "steps": 1, "final_loss": None}]
    table = pretraining_provenance([row(f"bert:tiny@{ckpt}"), row("bert:tiny"),
                                    row("bert:tiny@random")], runs)
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[2] == (f"| bert:tiny@{ckpt} | bert:tiny | 1 mlm + 0.5 nsp | corpus:w.txt |"
                        " 1200 | 6.5432 |")
    assert pretraining_provenance([row("bert:tiny")], runs) == ""
