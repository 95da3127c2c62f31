"""The tutorials' code runs: every code block with a file name (```python title="x.py"```) in
docs/tutorials/*.md is written to a folder, installed as the distribution its
``pyproject.toml`` block describes (a real ``*.dist-info`` with its entry points, found by
``importlib.metadata`` exactly as after ``pip install``), loaded by a fresh plugin host, and run
through the harness on tiny data; the ``transferlab ...`` commands the page shows are run too
(a line ending in ``# fails: TEXT`` must fail with TEXT)."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from transferlab.harness.cell import Cell, run_cell, validate_cell
from transferlab.plugins import PluginHost

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
FENCE = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```$', re.S | re.M)
FAILS = re.compile(r"\s+#\s*fails:\s*(.+)$")
TINY_NET = "timm:test_efficientnet@random"  # timm's test network, random weights
FEW_DIGITS = "digits[classes=0+1,k_per_class=5]"  # 2 classes, 5 training images each


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    body: str
    adjacent: bool = False  # nothing but blank lines since the previous block


def blocks(page: str) -> list[Block]:
    text = (TUTORIALS / page).read_text()
    found, end = [], None
    for match in FENCE.finditer(text):
        lang, title, body = match.groups()
        adjacent = end is not None and not text[end : match.start()].strip()
        found.append(Block(lang, title or None, body, adjacent))
        end = match.end()
    return found


@dataclass(frozen=True)
class Command:
    args: list[str]
    error: str | None = None  # a line ending in `# fails: TEXT` must fail with TEXT
    output: str | None = None  # a ```text block right after a one-command block


def commands(page: str) -> list[Command]:
    """``transferlab`` command lines of the page's bash blocks."""
    found: list[Command] = []
    shown = blocks(page)
    for block, after in zip(shown, [*shown[1:], None], strict=True):
        if block.lang != "bash":
            continue
        lines = [line for line in block.body.splitlines() if line.startswith("transferlab ")]
        for line in lines:  # pip install -e . is what install() below stands for
            fails = FAILS.search(line)
            line = line[: fails.start()] if fails else line.split("  #", 1)[0]
            output = after.body if after is not None and after.lang == "text" and after.adjacent \
                and len(lines) == 1 else None
            found.append(Command(shlex.split(line)[1:], fails.group(1).strip() if fails else None,
                                 output))
    return found


def _timeless(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?s\b", "N s", text).strip()


def _is_test(name: str) -> bool:
    return Path(name).name.startswith("test_")


def install(page: str, root: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Write the page's modules to ``root`` (made discoverable as the distribution its
    pyproject.toml block describes) and its other files under ``data``; return the entry
    points (name -> module) the pyproject declares."""
    files = {b.title: b.body for b in blocks(page) if b.title}
    assert "pyproject.toml" in files, f"{page} shows no pyproject.toml block"
    project = tomllib.loads(files.pop("pyproject.toml"))
    entry_points = project["project"]["entry-points"]["transferlab"]
    modules = project["tool"]["setuptools"]["py-modules"]
    shown = sorted(name for name in files if name.endswith(".py") and not _is_test(name))
    assert sorted(f"{m}.py" for m in modules) == shown, (
        f"{page}: py-modules {modules} do not match the modules shown, {shown}")
    assert set(entry_points.values()) <= set(modules)
    for name, body in files.items():
        path = root / name if name.endswith(".py") else data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    dist, version = project["project"]["name"], project["project"]["version"]
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[transferlab]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    monkeypatch.syspath_prepend(str(root))
    for module in modules:
        monkeypatch.delitem(sys.modules, module, raising=False)
    return entry_points


@pytest.fixture
def tutorial(tmp_path, monkeypatch):
    """``tutorial(page)``: install the page's plugin (its data files go to ``tmp_path``);
    returns a host loaded with it."""
    loaded: list[str] = []

    def load(page: str) -> PluginHost:
        root = tmp_path / "site-packages"
        root.mkdir()
        entry_points = install(page, root, tmp_path, monkeypatch)
        loaded.extend(entry_points.values())
        host = PluginHost(strict=True)  # a plugin error fails the test with its message
        host.load_entry_points()
        for name in entry_points:
            assert host.plugins[name].hooks, f"{name} implements no hook"
            assert not host.plugins[name].errors
        return host

    yield load
    for module in loaded:
        sys.modules.pop(module, None)


def invoke(args: list[str]):
    """Run a command as the console script would: plugin commands attached first (as
    ``transferlab.cli.main`` does), removed again afterwards."""
    from transferlab.cli import cli
    from transferlab.plugins import get_host

    before = dict(cli.commands)
    try:
        get_host().add_commands(cli)
        return CliRunner().invoke(cli, args, catch_exceptions=False)
    finally:
        cli.commands.clear()
        cli.commands.update(before)


def run_ok(registries, cell: Cell, at_least: float = 0.0):
    result = run_cell(cell, registries, device="cpu", progress=False)
    assert result.status == "ok", result.error
    assert result.metrics["accuracy"] >= at_least, result.metrics
    return result


# --- every page ------------------------------------------------------------------------------

PAGES = sorted(p.name for p in TUTORIALS.glob("*.md"))


def test_every_plugin_kind_has_a_tutorial():
    assert {"method.md", "backbone.md", "task.md", "objective.md", "score.md",
            "command.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_commands_shown_in_the_tutorial_run(page, tutorial, tmp_path, monkeypatch):
    tutorial(page)
    monkeypatch.chdir(tmp_path)
    shown = commands(page)
    assert shown, f"{page} shows no transferlab command"
    for command in shown:
        result = invoke(command.args)
        if command.error is None:
            assert result.exit_code == 0, (command.args, result.output)
        else:
            assert result.exit_code != 0, (command.args, result.output)
            assert command.error in result.output, (command.args, result.output)
        if command.output is not None:
            assert _timeless(result.output) == _timeless(command.output), command.args


# --- what each page's plugin does, through the harness ----------------------------------------


def test_method_tutorial(tutorial, tmp_path):
    registries = tutorial("method.md").registries
    entry = registries.methods.get("ridge-probe")
    assert entry.info["family"] == "feature" and entry.validate("ridge-probe", {
        "balanced": "yes"})["balanced"] is True
    result = run_ok(registries, Cell("raw:pixels", "digits[fraction=0.2]", "ridge-probe"), 0.8)
    assert result.extra == {"sparse_features": False}
    assert result.trainable_params == 10 * 32 * 32 * 3 + 10
    # the same code on a sparse backbone gets a scipy matrix from ctx.features
    data = tmp_path / "reviews"
    data.mkdir()
    for split, n in (("train", 12), ("test", 6)):
        rows = [f"{'good great fine' if i % 2 else 'bad awful poor'} {i},{i % 2}"
                for i in range(n)]
        (data / f"{split}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    result = run_ok(registries, Cell("raw:tfidf", f"csv:{data}", "ridge-probe"), 1.0)
    assert result.extra == {"sparse_features": True}

    # top-layers runs in the page's commands (`transferlab run`, `transferlab check`)
    failed = run_cell(Cell("raw:pixels", "digits", "top-layers"), registries, device="cpu",
                      progress=False)
    assert failed.status == "error" and "trains weights" in failed.error


def test_backbone_tutorial(tutorial):
    registries = tutorial("backbone.md").registries
    make = registries.backbones.create
    same, other = make("tinycnn", {"init_seed": 1}), make("tinycnn", {"init_seed": 2})
    assert same.fingerprint == make("tinycnn", {"init_seed": 1}).fingerprint != other.fingerprint
    assert make("tinycnn", {"img_size": 8}).fingerprint != make("tinycnn").fingerprint
    assert {name for name, _ in same.layer_groups()} == {"stem", "block"}
    digits = registries.tasks.create("digits")
    features = same.encode(digits.split("test").inputs[:5])
    assert features.shape == (5, same.feature_dim) and features.dtype.name == "float32"
    run_ok(registries, Cell("tinycnn", "digits[fraction=0.2]", "linear-probe"), 0.3)
    # fine-tuning it runs in the page's commands


def test_task_tutorial(tutorial, tmp_path):
    registries = tutorial("task.md").registries
    task = registries.tasks.create(f"jsonl:{tmp_path / 'moods'}")
    assert task.modality == "text" and task.label_names == ["happy", "sad"]
    assert task.split_names() == ["train", "test"]
    assert len(task.split("train")) == 8 and set(task.split("test").labels) == {0, 1}
    assert task.fingerprint() == registries.tasks.create(
        f"jsonl:{tmp_path / 'moods'}").fingerprint()
    run_ok(registries, Cell("raw:tfidf", f"jsonl:{tmp_path / 'moods'}", "linear-probe"))
    (tmp_path / "moods" / "test.jsonl").write_text('{"text": "meh", "label": "bored"}\n')
    failed = run_cell(Cell("raw:tfidf", f"jsonl:{tmp_path / 'moods'}", "linear-probe"),
                      registries, device="cpu", progress=False)
    assert failed.status == "error" and "add training examples" in failed.error


def test_objective_tutorial(tutorial):
    torch = pytest.importorskip("torch")
    registries = tutorial("objective.md").registries
    focal = registries.objectives.create("focal", {"gamma": "0"})
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], requires_grad=True)
    batch = {"inputs": None, "labels": torch.tensor([0, 2])}
    expected = torch.nn.functional.cross_entropy(logits, batch["labels"])
    torch.testing.assert_close(focal(logits, batch), expected)  # gamma=0 is cross-entropy
    loss = registries.objectives.create("focal", {})(logits, batch)
    loss.backward()
    assert 0 < loss.item() < expected.item() and torch.isfinite(logits.grad).all()
    l1 = registries.objectives.create("l1", {"weight": 0.5})
    l1.setup(torch.nn.Linear(2, 1))
    assert l1(None, batch).item() > 0
    cell = validate_cell(Cell(TINY_NET, FEW_DIGITS, "finetune",
                              {"objective": "focal[gamma=2.0]"}), registries)
    assert cell.params["objective"] == "focal"  # defaults dropped: one cell key
    # training with it runs in the page's commands


def test_score_tutorial(tutorial, tmp_path):
    """Bug caught: the page's score or its tests drifting from the contract: its hand-computed
    value, its conformance tests (run here from the page's own test file), or its use in a
    ranking (the page's commands rank and validate with it)."""
    import importlib.util

    import numpy as np

    registries = tutorial("score.md").registries
    gbc = registries.scores.create("gbc")
    assert registries.scores.get("gbc").plugin == "gbc" and not gbc.needs_source_probabilities
    separable = np.array([[0.0], [0.1], [9.0], [9.1]])
    assert gbc.score(separable, np.array([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-12)
    spec = importlib.util.spec_from_file_location(
        "tutorial_test_gbc", tmp_path / "site-packages" / "tests" / "test_gbc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_two_classes_by_hand()
    (mark,) = module.test_conformance.pytestmark
    checks = [param.values[0] for param in mark.args[1]]
    assert len(checks) == 8
    for check in checks:
        module.test_conformance(check)
