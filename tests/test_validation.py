"""Validation before work (issue 14): every input that names or numbers something wrong fails
with one line naming the problem and the fix, before anything is loaded or trained.

Each test pins one case: a device torch cannot use, a seed out of range, what registered
metadata already tells (modality, weights, a checkpoint file), data problems found on loading
(named as data, not as scikit-learn's error) and the cell a failure is reported under.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import transferlab.plugins
from transferlab.cli import cli
from transferlab.errors import CheckpointError, DataError, IncompatibleError, ParamError
from transferlab.harness.cell import Cell, run_cell, validate_cell
from transferlab.harness.executors import LocalExecutor
from transferlab.harness.store import ResultsStore
from transferlab.harness.suite import parse_suite, run_suite, validate_suite
from transferlab.hookspecs import hookimpl
from transferlab.testing import PluginSandbox, TinyBackbone
from transferlab.views import create_task

SEED_MESSAGE = ("--seed -5 is out of range: a seed must be an integer from 0 to 4294967295"
                " (2**32 - 1); use e.g. --seed 0")
NO_CUDA = ("device 'cuda' is not available: torch finds no CUDA GPU on this machine; use cpu"
           " (or leave the device unset: cuda when available, else cpu)")
FINETUNE_RAW = ("method 'finetune' trains weights but 'raw:pixels' has none; use a feature"
                " method such as linear-probe")
TFIDF_DIGITS = ("backbone 'raw:tfidf' reads text but task 'digits' is image; pick an image"
                " backbone")


class CountingPlugin:
    """``tiny-image`` (modality declared) and ``tiny-undeclared`` (no modality, no weights
    flag: a plugin that declared nothing) backbones that count how often they are built."""

    built: list[str] = []

    @hookimpl
    def register_backbones(self, register):
        def factory(name):
            CountingPlugin.built.append(name)
            return TinyBackbone("image", name=name)

        def text_factory(name):
            CountingPlugin.built.append(name)
            return TinyBackbone("text", name=name)

        register("tiny-image", factory, modality="image", summary="tiny MLP, counted")
        register("tiny-undeclared", text_factory, summary="tiny text MLP, nothing declared")


@pytest.fixture
def counted():
    """Built-in plugins plus the counting backbones; the count starts empty."""
    CountingPlugin.built = []
    return PluginSandbox(CountingPlugin(), builtins=True).registries


@pytest.fixture
def no_plugins(monkeypatch):
    """Fails the test if a command loads the plugins (its options must fail first)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded the plugins before checking its options")

    monkeypatch.setattr(transferlab.plugins, "get_host", refuse)


@pytest.fixture
def no_gpu(monkeypatch):
    """A torch built with CUDA on a machine without a GPU, wherever the tests run."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0].removeprefix("Error: ")


# --- 1. devices -----------------------------------------------------------------------------


def test_device_torch_cannot_use_fails_at_once_in_the_cli(runner, tmp_path, no_gpu, no_plugins):
    """Bug caught: `run --device cuda` on a machine without CUDA loaded the backbone and then
    failed with torch's driver message; it now fails before the plugins load, in one line."""
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["run", "-b", "raw:pixels", "-t", "digits", "-m",
                                 "linear-probe", "--device", "cuda", "--db", str(db)])
    assert _one_error_line(result) == NO_CUDA
    assert not db.exists()
    result = runner.invoke(cli, ["bench", "no-such-suite.toml", "--device", "gpu"])
    assert _one_error_line(result) == ("device 'gpu' is not one of cpu, cuda, cuda:N or mps;"
                                       " pass one of those, e.g. cpu")


def test_device_index_and_mps_are_checked_too(monkeypatch):
    """Bug caught: `cuda:3` on a one-GPU machine and `mps` off Apple silicon passed the
    options and failed inside torch once the model was on its way to the device."""
    torch = pytest.importorskip("torch")
    from transferlab.harness.validation import check_device

    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda") == "cuda" and check_device("cuda:0") == "cuda:0"
    with pytest.raises(IncompatibleError) as excinfo:
        check_device("cuda:3")
    assert str(excinfo.value) == ("device 'cuda:3' is not available: torch finds 1 CUDA GPU"
                                  " (cuda:0); use one of those or cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(IncompatibleError, match=r"^device 'mps' is not available: .*; use cpu$"):
        check_device("mps")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    with pytest.raises(IncompatibleError, match="was built without CUDA; use cpu"):
        check_device("cuda")


def test_device_cpu_is_checked_without_importing_torch():
    """Bug caught (guarded): checking `--device` imported torch even for cpu, adding seconds
    to every command; only a device other than cpu needs torch to be checked."""
    code = ("import sys; from transferlab.harness.validation import check_device;"
            " check_device('cpu'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_run_cell_fails_the_cell_on_a_device_before_building_anything(counted, no_gpu):
    """Bug caught: `run_cell(..., device="cuda")` from Python built the backbone and task
    before torch refused the device; the cell now fails with the command line's message and
    nothing is built (other torch devices, such as meta, stay allowed from Python)."""
    result = run_cell(Cell("tiny-image", "digits", "linear-probe"), counted, device="cuda",
                      progress=False)
    assert (result.status, result.error) == ("error", NO_CUDA)
    assert CountingPlugin.built == [] and result.fit_seconds == 0.0
    result = run_cell(Cell("tiny-image", "digits", "linear-probe"), counted, device="gpu",
                      progress=False)
    assert result.error == ("device 'gpu' is not one of cpu, cuda, cuda:N or mps; pass one of"
                            " those, e.g. cpu")
    assert CountingPlugin.built == []


# --- 2. seeds -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["run", "-b", "raw:pixels", "-t", "digits", "-m", "linear-probe"],
    ["relate", "-b", "raw:pixels", "-t", "digits", "-t", "digits[fraction=0.5]", "--seed", "1"],
    ["pretrain", "-b", "bert:tiny", "--objective", "mlm", "--out", "x.safetensors"],
    ["generate", "-b", "gpt:tiny"],
])
def test_negative_seed_fails_in_every_command_before_work(runner, no_plugins, command):
    """Bug caught: `--seed -5` started the work and scikit-learn's error leaked out of a
    method much later (or torch's, for pretrain); every command now refuses it at once."""
    result = runner.invoke(cli, [*command, "--seed", "-5"])
    assert _one_error_line(result) == SEED_MESSAGE


def test_validate_cell_refuses_seeds_out_of_range_for_python_callers(registries):
    """Bug caught: `run_cell(Cell(..., seed=-5))` reached numpy's seeding; validate_cell now
    refuses seeds outside 0..2**32-1 (and non-integers), and accepts both ends."""
    for seed in (-5, 2**32):
        with pytest.raises(ParamError) as excinfo:
            validate_cell(Cell("raw:pixels", "digits", "linear-probe", seed=seed), registries)
        assert str(excinfo.value) == (f"seed {seed} is out of range: a seed must be an integer"
                                      " from 0 to 4294967295 (2**32 - 1); use e.g. seed=0")
    with pytest.raises(ParamError, match=r"^seed must be an integer .*, got 1\.5; use e\.g\."):
        validate_cell(Cell("raw:pixels", "digits", "linear-probe", seed=1.5), registries)
    for seed in (0, 2**32 - 1):
        assert validate_cell(Cell("raw:pixels", "digits", "linear-probe", seed=seed),
                             registries).seed == seed
    result = run_cell(Cell("raw:pixels", "digits", "linear-probe", seed=-5), registries,
                      device="cpu", progress=False)
    assert result.status == "error" and result.error.startswith("seed -5 is out of range")


def test_suite_seed_out_of_range_names_the_suite_and_the_fix(runner, tmp_path):
    """Bug caught: `seeds = [0, -5]` in a suite ran seed 0 and failed seed -5 with
    scikit-learn's error; the suite file is now refused naming the suite, the seed and the fix
    (a [[pretrain]] run's seed too)."""
    path = tmp_path / "neg.toml"
    path.write_text('tasks = ["digits"]\nbackbones = ["raw:pixels"]\nmethods = ["ncm"]\n'
                    "seeds = [0, -5]\n")
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["bench", str(path), "--db", str(db), "--no-progress"])
    assert _one_error_line(result) == (
        "suite 'neg': each seed must be an integer from 0 to 4294967295 (2**32 - 1), got"
        " [0, -5] (-5 is out of range); write seeds = [0, 1, 2]")
    assert not db.exists()
    with pytest.raises(ParamError) as excinfo:
        parse_suite({"tasks": ["t"], "backbones": ["b"], "methods": ["m"],
                     "pretrain": [{"name": "p", "backbone": "bert:tiny", "objectives": ["mlm"],
                                   "out": "p.safetensors", "seed": -1}]}, "s")
    assert str(excinfo.value) == (
        "suite 's', [[pretrain]] 'p': seed -1 is out of range: a seed must be an integer from 0"
        " to 4294967295 (2**32 - 1); use e.g. seed = 0")


# --- 3. what the registrations already tell ---------------------------------------------------


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if anything registered is built (validation must not build)."""
    from transferlab.registry import Entry

    def refuse(self, name, params=None):
        raise AssertionError(f"validation built {name}")

    monkeypatch.setattr(Entry, "create", refuse)


@pytest.mark.parametrize(("cell", "error", "message"), [
    (Cell("raw:tfidf", "digits", "linear-probe"), IncompatibleError, TFIDF_DIGITS),
    (Cell("raw:pixels", "digits", "finetune"), IncompatibleError, FINETUNE_RAW),
    (Cell("raw:pixels", "digits", "lora"), IncompatibleError,
     "method 'lora' trains weights but 'raw:pixels' has none; use a feature method such as"
     " linear-probe"),
    (Cell("timm:test_resnet@/no/such/file.safetensors", "digits", "linear-probe"),
     CheckpointError, "checkpoint /no/such/file.safetensors does not exist; pass an existing"
     " safetensors file as timm:test_resnet@PATH (or @random for random weights)"),
    (Cell("raw:tfidf", "digits", "coral", source_task="digits[fraction=0.5]"),
     IncompatibleError, "backbone 'raw:tfidf' reads text but task 'digits[fraction=0.5]' is"
     " image; pick an image backbone"),
    (Cell("raw:pixels", "digits & digits[fraction=0.5]", "finetune", regime="multi-task",
          tasks=("digits", "digits[fraction=0.5]")), IncompatibleError, FINETUNE_RAW),
])
def test_registered_metadata_refuses_the_cell_at_validation(registries, nothing_built, cell,
                                                            error, message):
    """Bug caught: an image backbone on a text task, a weight-training method on a backbone
    with no weights and a missing checkpoint file were found only once the backbone (and the
    task) had been built; the registrations tell them, so validate_cell refuses them."""
    with pytest.raises(error) as excinfo:
        validate_cell(cell, registries)
    assert str(excinfo.value) == message


def test_validation_skips_what_a_plugin_did_not_declare(counted, tmp_path):
    """Bug caught (guarded): refusing a cell on metadata a plugin never declared would refuse
    valid cells; a backbone registered without modality or weights flag passes validation
    (building the cell still catches a mismatch), and @random or an existing checkpoint file
    is not a missing one."""
    cell = validate_cell(Cell("tiny-undeclared", "digits", "linear-probe"), counted)
    assert CountingPlugin.built == []
    result = run_cell(cell, counted, device="cpu", progress=False)
    assert result.error == ("backbone 'tiny-undeclared' reads text but task 'digits' is image;"
                            " pick an image backbone")  # the build-time check
    assert validate_cell(Cell("tiny-image", "digits", "finetune"), counted).method == "finetune"
    validate_cell(Cell("timm:test_resnet@random", "digits", "finetune"), counted)
    existing = tmp_path / "weights.safetensors"
    existing.write_bytes(b"only its existence is checked before loading")
    validate_cell(Cell(f"timm:test_resnet@{existing}", "digits", "linear-probe"), counted)
    validate_cell(Cell(f"tiny-image@{existing}", "digits", "linear-probe"), counted)
    with pytest.raises(CheckpointError, match=r"^checkpoint /gone\.safetensors does not exist;"
                       r" pass an existing safetensors file as tiny-image@PATH$"):
        validate_cell(Cell("tiny-image@/gone.safetensors", "digits", "linear-probe"), counted)


def test_suite_with_one_bad_cell_refuses_to_start_naming_it(tmp_path, registries):
    """Bug caught: a suite mixing raw:pixels with finetune ran its good cells and failed the
    bad one after the backbone loaded; it now refuses to start, naming the suite and the
    cell, and nothing is stored."""
    suite = parse_suite({"name": "mixed", "tasks": ["digits"], "backbones": ["raw:pixels"],
                         "methods": ["ncm", {"name": "finetune", "params": {"max_steps": 5}}]})

    def run_one(cell):
        raise AssertionError(f"{cell.label()} ran before every cell was validated")

    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(IncompatibleError) as excinfo:
        list(run_suite(suite, registries, store, LocalExecutor(), run_one, progress=False))
    assert str(excinfo.value) == (
        f"suite 'mixed', cell raw:pixels x digits x finetune[max_steps=5] seed=0: {FINETUNE_RAW}")
    assert store.rows(status=None) == []


def test_bench_refuses_a_bad_suite_before_its_first_cell_and_its_pretraining(runner, tmp_path,
                                                                             registries):
    """Bug caught: `bench` pretrained (minutes) and ran the suite's good cells before a cell
    with a missing checkpoint or a modality mismatch failed; the suite is refused first, and
    a backbone its own [[pretrain]] run writes is not a missing checkpoint."""
    path = tmp_path / "bad.toml"
    path.write_text(
        'tasks = ["digits"]\nmethods = ["ncm"]\n'
        'backbones = ["raw:pixels", "bert:tiny@{p}", "timm:test_resnet@/no/such.safetensors"]\n'
        '[[pretrain]]\nname = "p"\nbackbone = "bert:tiny"\nobjectives = ["mlm"]\n'
        f'corpus = "{tmp_path / "corpus.txt"}"\nout = "{tmp_path / "p.safetensors"}"\n')
    result = runner.invoke(cli, ["bench", str(path), "--db", str(tmp_path / "r.sqlite"),
                                 "--no-progress"])
    assert _one_error_line(result) == (
        "suite 'bad', cell bert:tiny@" + str(tmp_path / "p.safetensors") + " x digits x ncm"
        " seed=0: backbone 'bert:tiny' reads text but task 'digits' is image; pick an image"
        " backbone")
    assert not (tmp_path / "p.safetensors.checkpoints").exists()  # no pretraining started
    cells = validate_suite(parse_suite({"tasks": ["digits"], "methods": ["ncm"],
                                        "backbones": ["timm:test_resnet@{p}"],
                                        "pretrain": [{"name": "p", "backbone": "bert:tiny",
                                                      "objectives": ["mlm"],
                                                      "out": str(tmp_path / "q.safetensors")}]}),
                           registries, before_pretraining=True)
    assert [c.backbone for c in cells] == [f"timm:test_resnet@{tmp_path / 'q.safetensors'}"]


def test_relate_plans_transfers_from_checkpoints_it_has_yet_to_write(registries, tmp_path):
    """Bug caught: relate validated its transfer cells under the fine-tuned checkpoints' names
    before fine-tuning wrote them, so a family that checks @PATH at validation (bert:tiny
    already; timm now) could never be related."""
    from transferlab.harness.relations import plan_relations

    plan = plan_relations("timm:test_resnet@random", ["digits", "digits[fraction=0.5]"],
                          registries, out=tmp_path / "ckpt", transfer_methods=["ncm"])
    tuned = {t.cell.backbone for t in plan.transfers if t.source is not None}
    assert tuned == {f.backbone for f in plan.fits} and len(tuned) == 2
    assert all(not Path(b.split("@", 1)[1]).exists() for b in tuned)


# --- 4. data problems found on loading --------------------------------------------------------


def _csv_task(folder: Path, train: str) -> str:
    folder.mkdir()
    (folder / "train.csv").write_text("text,label\n" + train)
    (folder / "test.csv").write_text("text,label\nhello there,x\n")
    return f"csv:{folder}"


def test_single_class_training_split_is_a_data_error_not_scikit_learns(tmp_path, registries):
    """Bug caught: a training split with one class (a class folder with no image, one label in
    train.csv, a one-class view) reached LogisticRegression, whose ValueError ("This solver
    needs samples of at least 2 classes") surfaced with scikit-learn's file and line; it is now
    a DataError naming the task and split, raised before fitting."""
    folder = tmp_path / "img"
    for split in ("train", "test"):
        (folder / split / "a").mkdir(parents=True)
        Image.new("L", (4, 4), 90).save(folder / split / "a" / "1.png")
    (folder / "train" / "b").mkdir()
    expected = {
        f"imagefolder:{folder}": (
            f"task 'imagefolder:{folder}': class folder {folder / 'train' / 'b'} of the train"
            " split holds no image (.jpg, .jpeg, .png, .bmp, .webp), so training has one class"
            " and a classifier needs at least two; add images to it"),
        _csv_task(tmp_path / "one", "hello world,x\nfoo bar,x\n"): (
            f"task 'csv:{tmp_path / 'one'}': the train split has 1 class ('x'), and a"
            " classifier needs at least two; add training examples of another class"),
        "digits[classes=3]": (
            "task 'digits[classes=3]': the train split has 1 class ('3'), and a classifier"
            " needs at least two; add training examples of another class"),
    }
    for task, message in expected.items():
        backbone = "raw:tfidf" if task.startswith("csv:") else "raw:pixels"
        result = run_cell(Cell(backbone, task, "linear-probe", {}, {}), registries,
                          device="cpu", progress=False)
        assert (result.status, result.error, result.fit_seconds) == ("error", message, 0.0)
    with pytest.raises(DataError):  # the loader's own error, whoever loads the split
        create_task(f"imagefolder:{folder}", registries).split("train")


def test_texts_without_a_token_name_the_backbone_and_task(tmp_path, registries, runner):
    """Bug caught: raw:tfidf on training texts with no word raised scikit-learn's "empty
    vocabulary; perhaps the documents only contain stop words" with its file and line (and
    "After pruning, no terms remain" for a min_df above every word's count); both are now a
    DataError naming the backbone, the task and the fix."""
    task = _csv_task(tmp_path / "marks", "!,x\n?,y\na,x\n")
    with pytest.raises(DataError):
        registries.backbones.create("raw:tfidf").prepare(create_task(task, registries))
    result = run_cell(Cell("raw:tfidf", task, "linear-probe"), registries, device="cpu",
                      progress=False)
    assert result.error == (f"raw:tfidf: the 3 training texts of task {task!r} hold no word"
                            " (TF-IDF reads words of two or more letters or digits); check that"
                            " the train split's text column holds the texts")
    task = _csv_task(tmp_path / "rare", "red apple,x\nblue sky,y\n")
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["run", "-b", "raw:tfidf", "-B", "min_df=2", "-t", task,
                                 "-m", "linear-probe", "--no-progress", "--db", str(db)])
    assert _one_error_line(result) == (
        f"raw:tfidf x {task} x linear-probe seed=0 failed: raw:tfidf: no word occurs in 2 or"
        f" more of the 2 training texts of task {task!r} (min_df=2); lower it with -B min_df=1")


# --- 5. the cell a failure is reported under ---------------------------------------------------


def test_short_label_shows_only_parameters_that_differ_from_the_defaults(registries):
    """Bug caught: a failing cell's line listed every default of the method (fourteen for
    finetune) because validated cells carry them all; short_label keeps the ones set."""
    cell = validate_cell(Cell("raw:pixels", "digits", "knn", {"k": 3}), registries)
    assert cell.label() == "raw:pixels x digits x knn[k=3,metric=cosine,weights=uniform]"
    assert cell.short_label(registries) == "raw:pixels x digits x knn[k=3]"
    tuned = validate_cell(Cell("timm:test_resnet@random", "digits", "finetune",
                               {"objective": "cross-entropy[label_smoothing=0.1]"}), registries)
    assert tuned.short_label(registries) == ("timm:test_resnet@random x digits x finetune"
                                             "[objective=cross-entropy[label_smoothing=0.1]]")
    plain = validate_cell(Cell("timm:test_resnet@random", "digits", "finetune",
                               {"objective": "cross-entropy"}), registries)
    assert plain.short_label(registries) == "timm:test_resnet@random x digits x finetune"
    unknown = Cell("b", "t", "no-such-method", {"x": 1})
    assert unknown.short_label(registries) == unknown.label() == "b x t x no-such-method[x=1]"


def test_bench_failed_line_names_the_cell_without_its_defaults(runner, tmp_path):
    """Bug caught: bench's FAILED line repeated every default parameter of the failing cell's
    method; it now shows the ones the suite set, then the one-line error."""
    task = _csv_task(tmp_path / "one", "hello world,x\nfoo bar,x\n")
    suite = tmp_path / "s.toml"
    suite.write_text(f'tasks = ["{task}"]\nbackbones = ["raw:tfidf"]\n'
                     'methods = [{ name = "knn", params = { k = 1 } }]\n')
    result = runner.invoke(cli, ["bench", str(suite), "--db", str(tmp_path / "r.sqlite"),
                                 "--no-progress", "--format", "json"])
    assert result.exit_code == 1
    (failed,) = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert failed == (f"FAILED raw:tfidf x {task} x knn[k=1] seed=0: task {task!r}: the train"
                      " split has 1 class ('x'), and a classifier needs at least two; add"
                      " training examples of another class")
