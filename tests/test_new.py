"""``transferlab new``: the plugin packages it writes, loaded as plugins and run through the
harness, and (slow) built, installed into a throwaway virtual environment and used from the
command line exactly as a new plugin author would."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from transferlab.cli import cli
from transferlab.errors import ParamError
from transferlab.harness.cell import Cell, run_cell, validate_cell
from transferlab.plugins import PluginHost
from transferlab.registry import Registries
from transferlab.scaffold import (
    SCAFFOLD_KINDS,
    PluginNames,
    ScaffoldError,
    create_plugin,
    plugin_names,
)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "core" / "transferlab" / "scaffold" / "templates"
PIXELS_8 = {"size": 8, "grayscale": True}


# --- helpers ---------------------------------------------------------------------------------


def _render(tmp_path: Path, kind: str, name: str | None = None) -> tuple[Path, PluginNames]:
    """Write the package for ``kind`` into tmp_path (no name check against the registries)."""
    name = name or f"my-{kind}"
    folder = create_plugin(name, kind, tmp_path, registries=Registries())
    return folder, plugin_names(name, kind)


def _load_module(folder: Path, names: PluginNames, monkeypatch: pytest.MonkeyPatch
                 ) -> ModuleType:
    """Import the generated module from its file, as ``tests/plugins/*.py`` are loaded."""
    spec = importlib.util.spec_from_file_location(names.module, folder / f"{names.module}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, names.module, module)
    spec.loader.exec_module(module)
    return module


def _registries_with(monkeypatch: pytest.MonkeyPatch, *packages: tuple[Path, PluginNames]
                     ) -> Registries:
    """Fresh registries: the built-in plugins plus the generated ones, loaded strictly (a
    plugin error raises instead of being reported)."""
    host = PluginHost(strict=True)
    host.load_entry_points()
    for folder, names in packages:
        host.add_plugin(_load_module(folder, names, monkeypatch), names.entry_point)
    return host.registries


def _run(cell: Cell, registries: Registries):
    result = run_cell(cell, registries, device="cpu", progress=False)
    assert result.status == "ok", result.error
    return result


# --- what is written -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SCAFFOLD_KINDS)
def test_each_kind_writes_a_complete_package(tmp_path, kind):
    """Bug caught: a template placeholder left unfilled, an entry point naming the wrong
    module, a module setuptools would not package, or tests that do not use the kit's API."""
    folder, names = _render(tmp_path, kind)
    assert folder == tmp_path / f"transferlab-my-{kind}"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    module_file = f"transferlab_my_{kind}.py"
    assert files == sorted([".gitignore", "README.md", "pyproject.toml", module_file,
                            f"tests/test_transferlab_my_{kind}.py"])
    for path in folder.rglob("*"):
        if path.is_file():
            assert "${" not in path.read_text(), f"unfilled placeholder in {path.name}"
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"transferlab-my-{kind}"
    assert project["project"]["entry-points"]["transferlab"] == {f"my-{kind}": names.module}
    assert project["tool"]["setuptools"]["py-modules"] == [names.module]
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["dependencies"][0].startswith("transferlab")
    compile((folder / module_file).read_text(), module_file, "exec")
    test_source = (folder / "tests" / f"test_transferlab_my_{kind}.py").read_text()
    assert "from transferlab.testing import parametrize_with_checks" in test_source
    assert f'@parametrize_with_checks("{names.module}")\ndef test_conformance(check):' \
           "\n" in test_source
    readme = (folder / "README.md").read_text()
    assert f"transferlab check transferlab-my-{kind}" in readme
    assert "pip install -e ." in readme


def test_generated_code_is_ruff_clean(tmp_path):
    """Bug caught: templates whose code fails the linters a new author will run (unsorted
    imports, long lines), so every package starts with lint errors."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this interpreter")
    for kind in SCAFFOLD_KINDS:
        folder, _ = _render(tmp_path, kind)
        out = subprocess.run(
            [str(ruff), "check", "--isolated", "--select", "E,F,W,I,B,UP,SIM,RUF",
             "--line-length", "100", "--target-version", "py311", "."],
            cwd=folder, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_templates_ship_as_package_data():
    """Bug caught: templates missing from the wheel (setuptools packages only .py files by
    default), so `transferlab new` works from a checkout and fails once pip-installed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["transferlab.scaffold"]
    templates = sorted(p.relative_to(TEMPLATES.parent).as_posix()
                       for p in TEMPLATES.iterdir())
    assert templates
    for template in templates:
        assert any(fnmatch.fnmatch(template, pattern) for pattern in patterns), template
    for kind in SCAFFOLD_KINDS:
        assert (TEMPLATES / f"{kind}.py.tmpl").exists()


# --- the examples work -----------------------------------------------------------------------


def test_method_example_fits_and_predicts_in_a_cell(tmp_path, monkeypatch):
    """Bug caught: a method template that registers but cannot fit (wrong hook, features
    fetched wrongly, predictor without weight counts) or whose parameters are not checked."""
    package = _render(tmp_path, "method")
    registries = _registries_with(monkeypatch, package)
    entry = registries.methods.get("my-method")
    assert entry.info["family"] == "feature" and entry.distribution is None
    cell = Cell("raw:pixels", "digits", "my-method", {"alpha": "0.5"}, PIXELS_8)
    result = _run(cell, registries)
    assert result.metrics["accuracy"] > 0.9
    assert result.cell.params == {"alpha": 0.5, "class_weight": "none"}
    assert (result.trainable_params, result.total_params) == (10 * 64 + 10, 10 * 64 + 10)
    assert result.extra == {"feature_dim": 64}
    with pytest.raises(ParamError, match="alpha"):
        validate_cell(Cell("raw:pixels", "digits", "my-method", {"alpha": "0"}), registries)


def test_task_example_is_valid_deterministic_and_learnable(tmp_path, monkeypatch):
    """Bug caught: a task template with labels out of range, splits that change between
    loads (unstable cache keys), or data no built-in method can learn."""
    package = _render(tmp_path, "task")
    registries = _registries_with(monkeypatch, package)
    first, second = (registries.tasks.create("my-task") for _ in range(2))
    assert first.split_names() == ["train", "val", "test"]
    for split in first.split_names():
        a, b = first.split(split), second.split(split)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(np.stack(a.inputs), np.stack(b.inputs))
        assert np.bincount(a.labels).tolist() == [len(a) // 3] * 3
    assert first.fingerprint() == second.fingerprint()
    cell = Cell("raw:pixels", "my-task", "linear-probe", {}, {"size": 12, "grayscale": True})
    assert _run(cell, registries).metrics["accuracy"] >= 0.9


def test_backbone_example_features_fingerprint_and_layer_groups(tmp_path, monkeypatch):
    """Bug caught: a backbone template whose fingerprint ignores its weights (stale cached
    features after training), whose seed does not fix the weights, or whose layer groups miss
    weights; and the harness must run a feature method on it."""
    pytest.importorskip("torch")
    import torch

    package = _render(tmp_path, "backbone")
    registries = _registries_with(monkeypatch, package)
    backbone = registries.backbones.create("my-backbone", {"dim": 32, "size": 8})
    images = [np.full((8, 8), 40 * i, dtype=np.uint8) for i in range(5)]
    features = backbone.encode(images)
    assert features.shape == (5, 32) and backbone.feature_dim == 32
    assert (features >= 0).all()  # ReLU
    same = registries.backbones.create("my-backbone", {"dim": 32, "size": 8})
    other = registries.backbones.create("my-backbone", {"dim": 32, "size": 8, "seed": 1})
    assert backbone.fingerprint == same.fingerprint != other.fingerprint
    np.testing.assert_array_equal(features, same.encode(images))
    before = backbone.fingerprint
    with torch.no_grad():
        backbone.module.weight.add_(0.01)
    backbone.invalidate_fingerprint()
    assert backbone.fingerprint != before
    grouped = {id(p) for _, modules in backbone.layer_groups() for m in modules
               for p in m.parameters()}
    assert grouped == {id(p) for p in backbone.module.parameters()}
    result = _run(Cell("my-backbone", "digits", "ncm", {}, {"size": 8}), registries)
    assert result.metrics["accuracy"] > 0.5


def test_objective_example_trains_the_backbone_example_with_finetune(tmp_path, monkeypatch):
    """Bug caught: an objective template with a wrong call form (outputs, batch), a loss
    that is not cross-entropy at gamma=0, or one the training loop cannot use; also that the
    backbone template has weights parameter methods can train."""
    pytest.importorskip("torch")
    import torch
    from torch.nn import functional as F

    objective_pkg = _render(tmp_path, "objective")
    backbone_pkg = _render(tmp_path, "backbone")
    registries = _registries_with(monkeypatch, objective_pkg, backbone_pkg)
    logits = torch.randn(6, 4, requires_grad=True)
    batch = {"inputs": None, "labels": torch.tensor([0, 1, 2, 3, 0, 1])}
    plain = registries.objectives.create("my-objective", {"gamma": 0})
    torch.testing.assert_close(plain(logits, batch), F.cross_entropy(logits, batch["labels"]))
    focal = registries.objectives.create("my-objective")
    loss = focal(logits, batch)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss < plain(logits, batch)  # easy examples count less
    params = {"objective": "my-objective[gamma=1]", "max_steps": 3, "batch_size": 32,
              "val_fraction": 0.0}
    result = _run(Cell("my-backbone", "digits", "finetune", params, {"size": 8, "dim": 16}),
                  registries)
    assert result.cell.params["objective"] == "my-objective[gamma=1.0]"
    assert result.trainable_params == result.total_params == 8 * 8 * 16 + 16 + 16 * 10 + 10


def test_objective_example_has_finite_gradients_on_confident_predictions(tmp_path,
                                                                         monkeypatch):
    """Bug caught: the focal-loss template computed (1 - p) ** gamma unclamped, so with
    gamma < 1 (allowed: min 0) its gradient was NaN wherever p rounds to 1, and fine-tuning
    diverged as soon as an example was learned."""
    pytest.importorskip("torch")
    import torch

    registries = _registries_with(monkeypatch, _render(tmp_path, "objective"))
    labels = torch.tensor([0, 1, 2])
    for gamma in (0.0, 0.5, 2.0):
        logits = (torch.eye(3) * 100.0).requires_grad_()
        loss = registries.objectives.create("my-objective", {"gamma": gamma})(
            logits, {"inputs": None, "labels": labels})
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all(), gamma


def test_score_example_ranks_backbones_in_rank(tmp_path, monkeypatch, runner):
    """Bug caught: a score template that passes the kit but is not what it says (Fisher's
    criterion: between- over within-class scatter), ignores its parameters, or cannot be
    used by `transferlab rank` as the generated README shows."""
    from transferlab.plugins import PluginHost

    folder, names = _render(tmp_path, "score")
    registries = _registries_with(monkeypatch, (folder, names))
    features = np.array([[0.0], [2.0], [4.0], [6.0]])
    labels = np.array([0, 0, 1, 1])
    plain = registries.scores.create("my-score", {"standardize": False})
    # class means 1 and 5 around 3: between 4 * 4 = 16; within 4 * 1 = 4
    assert plain.score(features, labels) == pytest.approx(4.0)
    assert registries.scores.create("my-score").score(features * 10, labels) == \
        pytest.approx(4.0)  # standardized: the scale does not matter
    with pytest.raises(ParamError, match="eps"):
        registries.scores.create("my-score", {"eps": -1})
    module = _load_module(folder, names, monkeypatch)
    host = PluginHost(strict=True)
    host.load_entry_points()
    host.add_plugin(module, names.entry_point)
    import transferlab.plugins as plugins

    monkeypatch.setattr(plugins, "_HOST", host)
    result = runner.invoke(cli, ["rank", "-t", "digits[fraction=0.25]", "-b",
                                 "raw:pixels[size=8]", "-b", "raw:pixels[size=4]", "--score",
                                 "my-score", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "\nmy-score\n" in result.stdout


KIT_CHECKS = {  # one check per kind that only a working example passes
    "method": "method[my-method]::fit-predict[image]",
    "backbone": "backbone[my-backbone]::fingerprint-tracks-weights",
    "task": "task[my-task]::labels",
    "objective": "objective[my-objective]::finite-gradients",
    "score": "score[my-score]::separable-above-random",
}


@pytest.mark.parametrize("kind", SCAFFOLD_KINDS)
def test_each_example_passes_the_conformance_kit(tmp_path, monkeypatch, kind):
    """Bug caught: a template that registers and runs but breaks a contract the generated
    tests (and `transferlab check`) hold it to, so a new author starts with failing tests."""
    pytest.importorskip("torch")
    from transferlab.testing import run_checks

    folder, names = _render(tmp_path, kind)
    report = run_checks(_load_module(folder, names, monkeypatch))
    assert report.ok and not report.skipped, report.render()
    assert KIT_CHECKS[kind] in {result.id for result in report.passed}, report.render()


def test_the_generated_tests_pass_under_pytest(tmp_path):
    """Bug caught: generated tests that cannot import their own module before the package
    is installed (no ``pythonpath``), or that call the kit wrongly; one test per check."""
    folder, _ = _render(tmp_path, "task")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-rA"], cwd=folder, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_conformance[task[my-task]::labels]" in out.stdout
    assert "test_registers_the_task" in out.stdout


# --- the command and its errors --------------------------------------------------------------


def test_new_command_writes_into_dir_and_says_what_next(runner, tmp_path):
    """Bug caught: --dir ignored (package written into the working directory) or the next
    steps naming a distribution other than the one written."""
    target = tmp_path / "made" / "here"
    result = runner.invoke(cli, ["new", "my-method", "--kind", "method", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "transferlab-my-method" / "transferlab_my_method.py").exists()
    assert f"pip install -e {target / 'transferlab-my-method'}" in result.output
    assert "transferlab check transferlab-my-method" in result.output


def test_new_command_defaults_to_the_working_directory(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["new", "bars", "--kind", "task"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "transferlab-bars" / "transferlab_bars.py").exists()


@pytest.mark.parametrize("name", [
    "My-Method", "my_method", "1method", "my--method", "method-", "-method", "", "a" * 41,
    "my method", "mé",
])
def test_bad_names_fail_with_one_line_error_and_write_nothing(runner, tmp_path, name):
    """Bug caught: names that make an invalid distribution or module (or a traceback
    instead of one error line), and half-written folders after a refusal."""
    args = ["new", "--kind", "method", "--dir", str(tmp_path), "--", name]  # "--": "-method"
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: invalid plugin name"), lines
    assert "lowercase letters, digits and single hyphens" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_the_distribution_prefix_is_refused_with_the_fix(runner, tmp_path):
    result = runner.invoke(cli, ["new", "transferlab-bars", "--kind", "task", "--dir",
                                 str(tmp_path)])
    assert result.exit_code == 1
    assert "without the transferlab- prefix (e.g. 'bars')" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(runner, tmp_path):
    """Bug caught: a second `new` (or a folder the user already has) silently replacing
    files the author had edited."""
    args = ["new", "my-method", "--kind", "method", "--dir", str(tmp_path)]
    assert runner.invoke(cli, args).exit_code == 0
    module = tmp_path / "transferlab-my-method" / "transferlab_my_method.py"
    module.write_text("# my edits\n")
    for kind in ("method", "task"):  # the folder is named after NAME, whatever the kind
        result = runner.invoke(cli, ["new", "my-method", "--kind", kind, "--dir",
                                     str(tmp_path)])
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and "already exists" in result.output
    assert module.read_text() == "# my edits\n"
    empty = tmp_path / "transferlab-other"
    empty.mkdir()
    result = runner.invoke(cli, ["new", "other", "--kind", "task", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and list(empty.iterdir()) == []


def test_a_file_as_dir_is_refused(runner, tmp_path):
    (tmp_path / "file").write_text("x")
    result = runner.invoke(cli, ["new", "bars", "--kind", "task", "--dir",
                                 str(tmp_path / "file")])
    assert result.exit_code == 1 and "is a file" in result.output


@pytest.mark.parametrize(("name", "kind"), [("linear-probe", "method"), ("digits", "task"),
                                            ("cross-entropy", "objective")])
def test_a_name_a_builtin_registers_is_refused(runner, tmp_path, name, kind):
    """Bug caught: scaffolding a plugin whose name loses the conflict to a built-in, so the
    new component can never be used (built-ins keep their names)."""
    result = runner.invoke(cli, ["new", name, "--kind", kind, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already registered (a built-in" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "kind"), [("text", "task"), ("timm", "backbone"),
                                            ("parameter", "method")])
def test_a_name_a_builtin_plugin_uses_as_entry_point_is_refused(runner, tmp_path, name, kind):
    """Bug caught: `transferlab new text --kind task` wrote a package whose entry point
    `text` is already the built-in text plugin's, so pluggy refused whichever of the two
    loaded second ("Plugin name already registered"), possibly the built-in one."""
    result = runner.invoke(cli, ["new", name, "--kind", kind, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert f"plugin name {name!r} is already an installed plugin's entry point" in result.output
    assert "pick another name" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["executor", "methods", "Method"])
def test_kinds_follow_the_glossary(runner, tmp_path, kind):
    """Bug caught: plural or unknown kinds accepted, writing a package for no contract."""
    result = runner.invoke(cli, ["new", "x", "--kind", kind, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "method" in result.output
    with pytest.raises(ScaffoldError, match="unknown kind"):
        plugin_names("x", kind)


# --- for real: build, install into a throwaway venv, use it ----------------------------------


def _throwaway_venv(path: Path) -> Path:
    """A venv that sees this venv's packages (torch is not installed again) through a .pth
    file. Measured: ``--system-site-packages`` exposes the base interpreter's site-packages,
    not this venv's, so transferlab and torch were missing; ``--without-pip`` takes 0.2 s
    where ensurepip takes 6 s (this venv's pip installs into it with ``--python``)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig;"
                              " print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = sysconfig.get_path("purelib")
    # addsitedir (not a bare path line) also runs the parent's .pth files: the editable
    # install of transferlab itself is one
    (Path(purelib) / "_parent_venv.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    # the console script pip writes when transferlab is installed into a venv
    script = path / "bin" / "transferlab"
    script.write_text(f"#!{python}\nimport sys\nfrom transferlab.cli import main\n"
                      "sys.exit(main())\n")
    script.chmod(0o755)
    return python


@pytest.mark.slow
def test_new_plugin_installs_into_a_venv_and_runs_everywhere(tmp_path):
    """The issue's "done when", for real: `transferlab new my-method --kind method`,
    `pip install -e` it into a fresh virtual environment, and the method shows up in
    `transferlab plugins`, passes `transferlab check`, and runs in `run` and `bench`.
    Bug caught: anything between the template and an installed, discoverable plugin (entry
    point, py-modules, build backend, package data, the kit's API)."""
    started = time.perf_counter()
    venv = tmp_path / "venv"
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "TRANSFERLAB_STRICT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    try:
        python = _throwaway_venv(venv)
        tl = str(venv / "bin" / "transferlab")

        def sh(*args: str) -> str:
            out = subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True,
                                 timeout=180)
            assert out.returncode == 0, f"{' '.join(args)}\n{out.stdout}\n{out.stderr}"
            return out.stdout

        sh(tl, "new", "my-method", "--kind", "method")
        package = work / "transferlab-my-method"
        sh(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
           "--no-deps", "--no-build-isolation", "-e", str(package))
        plugins = sh(tl, "plugins")
        assert "my-method (transferlab-my-method 0.1.0) [ok]" in plugins
        assert "  methods: my-method" in plugins
        outside = subprocess.run([str(Path(sys.executable).with_name("transferlab")),
                                  "plugins"], env=env, capture_output=True, text=True)
        assert "my-method" not in outside.stdout  # installed into the throwaway venv only
        report = sh(tl, "check", "transferlab-my-method")
        assert "method[my-method]::fit-predict[image]" in report and "OK: 0 failed" in report
        db = str(work / "results.sqlite")
        out = sh(tl, "run", "-b", "raw:pixels", "-B", "size=8", "-B", "grayscale=true",
                 "-t", "digits", "-m", "my-method", "--no-progress", "--db", db)
        assert "raw:pixels x digits x my-method" in out and "accuracy=0.9" in out
        suite = work / "suite.toml"
        suite.write_text('name = "new-plugin"\ntasks = ["digits"]\nseeds = [0]\n'
                         'backbones = [{ name = "raw:pixels", params = { size = 8,'
                         ' grayscale = true } }]\nmethods = ["my-method", "ncm"]\n')
        board = sh(tl, "bench", str(suite), "--no-progress", "--db", str(work / "bench.sqlite"),
                   "--format", "json")
        assert '"method": "my-method"' in board and '"method": "ncm"' in board
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    assert not venv.exists()
    assert time.perf_counter() - started < 120
