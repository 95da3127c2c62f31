"""The conformance kit (``transferlab.testing``): every built-in plugin keeps its contracts;
deliberately broken plugins (``tests/plugins/``) fail the matching check with a message that
names the fix; checks follow declarations, not names; ``transferlab check`` reports and sets
its exit status; the ``transferlab_plugins`` fixture isolates a plugin and its commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
import types
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest

from conftest import SHARED_DATA
from transferlab import hookimpl
from transferlab.api import Backbone, Predictor, RunContext, Task, TransferMethod
from transferlab.cli import cli
from transferlab.errors import TransferlabError
from transferlab.params import Param
from transferlab.plugins import get_host
from transferlab.testing import (
    CHECK_KINDS,
    ConformanceError,
    TinyBackbone,
    TinyTask,
    checks_for,
    parametrize_with_checks,
    run_checks,
)
from transferlab.testing import fixtures as kit_fixtures
from transferlab.testing._target import builtin_entry_points

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"
BUILTINS = sorted(ep.value for ep in builtin_entry_points())  # every built-in plugin module
# The fixture under test, usable here whether or not the pytest11 entry point is installed
transferlab_plugins = kit_fixtures.transferlab_plugins
# Backbones that build in seconds offline; the slow test below checks every registered one.
FAST_BACKBONES = ["raw:pixels", "raw:tfidf", "bert:tiny", "gpt:tiny",
                  "timm:test_efficientnet@random[img_size=32]"]


# --- every built-in plugin ------------------------------------------------------------------


@parametrize_with_checks(BUILTINS, kinds=("plugin", "task", "method", "objective"))
def test_builtin_plugins_keep_their_contracts(check):
    """Bugs caught: any built-in method, task or objective breaking its contract, e.g. a
    feature method that trains the backbone, a predictor without parameter counts, a method
    that ignores the seed, a saved predictor that reloads differently, a bad parameter that
    passes validation, an objective with NaN gradients; new built-ins are checked with no
    list to update."""
    check()


@parametrize_with_checks(BUILTINS, kinds=("backbone",), names=FAST_BACKBONES)
def test_builtin_backbones_keep_their_contract(check):
    """Bugs caught: a backbone whose features are not [N, feature_dim], whose fingerprint is
    unstable or blind to its weights (stale cached features), or whose layer groups leave
    weights out (freeze / llrd would silently skip them)."""
    check()


@pytest.mark.slow
@parametrize_with_checks(BUILTINS, kinds=("backbone",))
def test_every_registered_backbone_keeps_its_contract(check):
    """As above for every backbone registered under an exact name, real pretrained weights
    included (EfficientNet-Lite, MiniLM)."""
    check()


@pytest.mark.slow
def test_real_datasets_keep_the_task_contract():
    """Bug caught: a dataset folder under ../shared/data whose labels, splits or inputs break
    the task contract (found only when a long benchmark reaches it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    report = run_checks("transferlab_tasks.plugin", kinds=("task",), data_dirs=[SHARED_DATA])
    assert report.ok, report.render()
    assert len({r.check.subject for r in report.results if r.check.kind == "task"}) > 3


def test_folder_tasks_keep_the_task_contract(tmp_path):
    """Bug caught: the csv:DIR and imagefolder:DIR patterns (never checked by default, as
    patterns) loading splits that break the task contract."""
    from fakes import image_folder

    image_folder(tmp_path / "images")
    texts = tmp_path / "texts"
    texts.mkdir()
    for split in ("train", "test"):
        (texts / f"{split}.csv").write_text("text,label\ngood film,pos\nbad film,neg\n")
    report = run_checks("transferlab_tasks.plugin",
                        names=[f"csv:{texts}", f"imagefolder:{tmp_path / 'images'}"])
    assert report.ok, report.render()
    assert len(report.passed) == 2 * 4 + 2  # four task checks each, the plugin's two


# --- deliberately broken plugins -------------------------------------------------------------

BROKEN = [
    ("bad_hook_signature", "plugin[bad_hook_signature]::loads",
     "may accept only arguments of its spec: register_methods(register)"),
    ("weight_changing_method", "method[sharpened-probe]::backbone-untouched",
     "declares family = 'parameter'"),
    ("countless_predictor", "method[majority-vote]::parameter-counts",
     "set trainable_params and total_params on the predictor"),
    ("labels_out_of_range", "task[off-by-one]::labels", "map labels to 0..1 in _load_split"),
]


@pytest.mark.parametrize(("plugin", "check_id", "fix"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_plugin_fails_exactly_its_matching_check_naming_the_fix(plugin, check_id, fix):
    """Bug caught: the kit missing (or crashing on) a plugin that breaks a contract: a hook
    with a wrong signature, a feature method that changes the backbone's weights, a predictor
    without parameter counts, a task with labels out of range."""
    report = run_checks(str(PLUGINS / f"{plugin}.py"))
    assert [r.id for r in report.failed] == [check_id], report.render()
    problem, _, named_fix = report.failed[0].message.partition("; fix: ")
    assert problem and fix in named_fix and "\n" not in report.failed[0].message
    assert report.passed  # it went on to check everything else
    failing = next(c for c in checks_for(str(PLUGINS / f"{plugin}.py")) if c.id == check_id)
    with pytest.raises(AssertionError, match=re.escape(fix)):  # as pytest would call it
        failing()


class _Leaky(Predictor):
    def __init__(self, label: int) -> None:
        self.label, self.trainable_params, self.total_params = label, 0, 0

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        return np.full(len(inputs), self.label, dtype=np.int64)


class LeakyState(TransferMethod):
    """Each fit predicts the next class: state kept across fits, not drawn from the seed."""

    name, family = "leaky-state", "baseline"
    fits = count()

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        return _Leaky(next(self.fits) % len(task.label_names))


class BadDefault(LeakyState):
    name = "bad-default"
    params = (Param("k", int, 0, "neighbours", min=1),)  # the default breaks its own bound

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        return _Leaky(0)


class SwallowsParams(BadDefault):
    name = "swallows-params"
    params = (Param("k", int, 1, "neighbours", min=1),)

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        self.hparams = {"k": 1}  # never validates what it was given


def _module(name: str, **hooks: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, hookimpl(function))
    return module


def test_determinism_and_parameter_checks_have_teeth():
    """Bugs caught: a method whose predictions depend on state left by earlier fits, a
    declared default that its own bounds reject, and a constructor that skips validation
    (bad values then surface mid-fit)."""
    plugin = _module("teeth", register_methods=lambda register: [
        register(cls) for cls in (LeakyState, BadDefault, SwallowsParams)])
    report = run_checks(plugin, kinds=("method",))
    failed = {r.id: r.message for r in report.failed}
    assert {i for i in failed if "bad-default" not in i} == {
        "method[leaky-state]::determinism", "method[swallows-params]::bad-params"}, (
        report.render())  # the bad default also breaks construction, so every check of it
    assert "fix: draw all randomness from the run's seed" in failed[
        "method[leaky-state]::determinism"]
    assert "default k=0 fails its own declaration" in failed["method[bad-default]::bad-params"]
    assert "call super().__init__(registered_name, **params)" in failed[
        "method[swallows-params]::bad-params"]


class NaiveFocal:
    """Focal loss with gamma 0.5 computed as (1 - p) ** gamma: an infinite gradient wherever
    p rounds to 1 (a confident, correct prediction), though finite on small logits."""

    def __call__(self, outputs: Any, batch: Any) -> Any:
        from torch.nn import functional as F

        log_p = F.log_softmax(outputs, dim=-1).gather(1, batch["labels"][:, None]).squeeze(1)
        return (-((1 - log_p.exp()) ** 0.5) * log_p).mean()


def test_finite_gradients_check_uses_large_logits_too():
    """Bug caught: `objective[...]::finite-gradients` ran only on small logits, so a loss
    whose gradient is NaN on confident predictions (focal loss with gamma < 1, as the
    `transferlab new --kind objective` template and the objective tutorial wrote it) passed,
    then made fine-tuning diverge."""
    from transferlab.api import Objective

    class Focal(NaiveFocal, Objective):
        pass

    plugin = _module("naive_focal", register_objectives=lambda register: register(
        "naive-focal", lambda name: Focal()))
    report = run_checks(plugin, kinds=("objective",))
    assert [r.id for r in report.failed] == ["objective[naive-focal]::finite-gradients"], (
        report.render())
    assert "with large logits; fix: compute in a numerically stable way" in (
        report.failed[0].message)


def test_objectives_are_checked_on_their_own_example():
    """Bugs caught: the kit ignoring `Objective.example` (an embedding objective then fails on
    the classification batch it cannot read), an example of the wrong type accepted, and the
    example's forward skipped (a second view computed there never reaching the batch)."""
    import torch
    from torch import nn

    from transferlab.api import Objective, ObjectiveExample

    class Cosine(Objective):  # reads batch["view2"], which only its example's forward adds
        def __call__(self, outputs: Any, batch: Any) -> Any:
            return 1 - torch.cosine_similarity(outputs, batch["view2"]).mean()

        def example(self, generator: Any) -> Any:
            def forward(model: Any, batch: Any) -> Any:
                batch["view2"] = model(batch["inputs"] + 1)
                return model(batch["inputs"])
            return ObjectiveExample(nn.Linear(4, 2), {"inputs": torch.randn(3, 4)}, forward)

    class WrongExample(Cosine):
        def example(self, generator: Any) -> Any:
            return (nn.Linear(4, 2), {})

    class NoExample(Cosine):
        def example(self, generator: Any) -> Any:
            return None

    plugin = _module("examples", register_objectives=lambda register: [
        register("cosine", lambda name: Cosine()),
        register("wrong-example", lambda name: WrongExample()),
        register("no-example", lambda name: NoExample())])
    report = run_checks(plugin, kinds=("objective",))
    failed = {r.id.split("::")[0] for r in report.failed}
    assert failed == {"objective[wrong-example]", "objective[no-example]"}, report.render()
    wrong = next(r for r in report.failed if "wrong-example" in r.id)
    assert "returned a tuple" in wrong.message and "ObjectiveExample or None" in wrong.message
    missing = next(r for r in report.failed if "no-example" in r.id)
    assert "view2" in missing.message


# --- checks follow declarations --------------------------------------------------------------


class DeclaredFeature(TransferMethod):
    """A nearest-class-mean on encoded features; subclasses change only declarations."""

    name, family = "full-finetune", "feature"  # named like a parameter method on purpose

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        train = task.split("train")
        feats = backbone.encode(train.inputs)
        means = np.stack([feats[train.labels == c].mean(0) for c in range(3)])
        return _Means(means, backbone)


class _Means(Predictor):
    def __init__(self, means: np.ndarray, backbone: Backbone) -> None:
        self.means, self.backbone = means, backbone
        self.trainable_params, self.total_params = 0, backbone.num_parameters() + means.size

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        feats = self.backbone.encode(inputs)
        return ((feats[:, None] - self.means) ** 2).sum(-1).argmin(1).astype(np.int64)


class DeclaredOther(DeclaredFeature):
    name, family = "probe", "relational"
    modalities = ("text",)
    adapts_domains = True
    saves_predictor = True


def test_checks_follow_declared_capabilities_not_names():
    """Bug caught: choosing checks by plugin or method name (a hand-kept list of built-ins)
    instead of what a component declares: family, modalities, adapts_domains,
    saves_predictor."""
    plugin = _module("declared", register_methods=lambda register: [
        register(DeclaredFeature), register("other", DeclaredOther)])
    ids = {c.id for c in checks_for(plugin, kinds=("method",))}
    assert ids == {
        "plugin[declared]::loads",
        *(f"method[full-finetune]::{n}" for n in ("fit-predict[image]", "fit-predict[text]",
                                             "determinism", "parameter-counts", "bad-params",
                                             "backbone-untouched")),
        *(f"method[other]::{n}" for n in ("fit-predict[text]", "determinism",
                                          "parameter-counts", "bad-params", "save-load",
                                          "domain-adaptation")),
    }
    report = run_checks(plugin, kinds=("method",))
    assert [r.id for r in report.failed] == ["method[other]::save-load"]  # declared, not kept
    assert "declares saves_predictor = True but its _Means has no save" in (
        report.failed[0].message)


def test_the_kits_own_tiny_inputs_keep_the_contracts():
    """Bug caught: the kit's TinyTask / TinyBackbone breaking the contracts they exercise
    (every method check would then blame the method)."""
    plugin = _module(
        "tiny",
        register_backbones=lambda register: [
            register(f"tiny-{m}", lambda name, m=m: TinyBackbone(m)) for m in ("image", "text")],
        register_tasks=lambda register: [
            register(f"tiny-{m}{s}", lambda name, m=m, s=s: TinyTask(m, shift=bool(s)))
            for m in ("image", "text") for s in ("", "-shifted")],
    )
    report = run_checks(plugin)
    assert report.ok, report.render()
    assert not report.skipped and len(report.passed) == 2 + 2 * 5 + 4 * 4


# --- ids, expected failures, selection ------------------------------------------------------


def test_check_ids_are_readable_unique_and_name_kind_subject_and_check():
    """Bug caught: ids that collide (pytest would run one check twice and skip another) or
    that do not say which component and which rule failed."""
    checks = checks_for("transferlab_feature.plugin")
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert {"plugin[feature]::loads", "method[linear-probe]::determinism",
            "method[coral]::domain-adaptation"} <= set(ids)
    pattern = re.compile(r"(plugin|backbone|task|method|objective)\[\S+\]::[a-z-]+(\[\w+\])?")
    assert all(pattern.fullmatch(i) for i in ids)
    assert all(c.summary and c.kind in CHECK_KINDS for c in checks)


def test_expected_failures_are_xfailed_strictly_with_their_reason():
    """Bug caught: a declared expected failure that hides a check that now passes (it must be
    removed), or a misspelled id that silently declares nothing."""
    broken = str(PLUGINS / "labels_out_of_range.py")
    report = run_checks(broken, expected_failures={"task[off-by-one]::labels": "fixed in 2.0"})
    assert report.ok and [r.id for r in report.xfailed] == ["task[off-by-one]::labels"]
    assert "expected: fixed in 2.0" in report.render()
    stale = run_checks(broken, expected_failures={"task[off-by-one]::inp*": "was broken"})
    assert {r.id: r.status for r in stale.failed} == {
        "task[off-by-one]::labels": "failed", "task[off-by-one]::inputs": "xpassed"}
    with pytest.raises(ValueError, match="matches no check"):
        checks_for(broken, expected_failures={"task[off-by-one]::labelz": "typo"})
    with pytest.raises(ValueError, match="matches no check"):  # brackets are literal
        checks_for(broken, expected_failures={"task[o]ff-by-one]::labels": "typo"})

    mark = parametrize_with_checks(broken, expected_failures={"*::labels": "fixed in 2.0"})
    argnames, params = mark.args
    by_id = {p.id: p for p in params}
    assert argnames == "check" and list(by_id) == [c.id for c in checks_for(broken)]
    (xfail,) = by_id["task[off-by-one]::labels"].marks
    assert xfail.name == "xfail" and xfail.kwargs == {
        "strict": True, "raises": ConformanceError, "reason": "fixed in 2.0"}
    assert not by_id["task[off-by-one]::splits"].marks


def test_names_select_components_and_patterns_serve_concrete_names():
    """Bug caught: a concrete name of a pattern (timm:ARCH@random) not checkable, or a name
    the target does not register silently checking nothing."""
    ids = [c.id for c in checks_for("transferlab_baselines.plugin", names=["raw:pixels[size=4]"])]
    assert "backbone[raw:pixels[size=4]]::feature-shape" in ids
    assert not [i for i in ids if "tfidf" in i]
    with pytest.raises(TransferlabError, match="'knn' is not registered by module"):
        checks_for("transferlab_baselines.plugin", names=["knn"])
    with pytest.raises(TransferlabError, match=r"no installed distribution .* named 'no_such_x'"):
        checks_for("no_such_x")
    with pytest.raises(ValueError, match="unknown kind 'estimator'"):
        checks_for("transferlab_baselines.plugin", kinds=["estimator"])


def test_a_plugin_that_fails_to_import_fails_its_loads_check(tmp_path):
    """Bug caught: the kit crashing (instead of reporting) on a plugin whose import raises."""
    path = tmp_path / "explodes.py"
    path.write_text("raise RuntimeError('no GPU found')\n")
    report = run_checks(str(path))
    assert [r.id for r in report.results] == ["plugin[explodes]::loads"]
    assert "RuntimeError: no GPU found; fix: make the module importable" in report.failed[0].message


def test_a_plugin_file_named_after_a_loaded_module_is_refused(tmp_path):
    """Bug caught: checking ``random.py`` replaced the standard library's ``random`` in
    ``sys.modules`` for the rest of the process (seeding then imported the plugin)."""
    import random
    import sys

    from transferlab.errors import TransferlabError

    path = tmp_path / "random.py"
    path.write_text("X = 1\n")
    with pytest.raises(TransferlabError, match=r"'random' is already taken.*rename the file"):
        run_checks(str(path))
    assert sys.modules["random"] is random


# --- transferlab check ----------------------------------------------------------------------


def test_check_command_passes_a_good_plugin(runner):
    """Bug caught: `transferlab check` failing (or not reporting) a plugin that keeps every
    contract: here the third-party LP-FT of tests/plugins/lpft.py, checked from its file."""
    result = runner.invoke(cli, ["check", str(PLUGINS / "lpft.py")])
    assert result.exit_code == 0, result.output
    assert "PASS  method[lp-ft-example]::save-load" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("OK: 0 failed, 8 passed")


def test_check_command_fails_a_broken_module_and_names_the_fix(runner, monkeypatch):
    """Bug caught: `transferlab check` exiting 0 on a broken plugin (CI would pass it), or
    hiding which check failed and how to fix it."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.delitem(sys.modules, "countless_predictor", raising=False)
    result = runner.invoke(cli, ["check", "countless_predictor"])
    assert result.exit_code == 1
    assert "FAIL  method[majority-vote]::parameter-counts" in result.output
    assert "fix: set trainable_params and total_params" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("FAILED: 1 failed")
    quiet = runner.invoke(cli, ["check", "-q", "countless_predictor"])
    assert quiet.exit_code == 1 and "PASS" not in quiet.output
    sys.modules.pop("countless_predictor", None)


def test_check_command_checks_an_installed_distribution(runner, fake_dists):
    """Bug caught: `transferlab check DIST` not finding a pip-installed plugin through its
    entry points, or --json not machine-readable."""
    fake_dists.add("transferlab-off-by-one", "off_by_one", "off_by_one_plugin",
                   (PLUGINS / "labels_out_of_range.py").read_text())
    result = runner.invoke(cli, ["check", "transferlab-off-by-one", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    statuses = {r["id"]: r["status"] for r in data["results"]}
    assert data["target"] == "distribution transferlab-off-by-one" and data["ok"] is False
    assert statuses["task[off-by-one]::labels"] == "failed"
    assert statuses["plugin[off_by_one]::loads"] == "passed"


def test_check_command_options_and_errors(runner):
    """Bug caught: --kind / --name ignored, or an unknown target crashing with a traceback
    instead of one line that names the fix."""
    result = runner.invoke(cli, ["check", "transferlab_baselines.plugin", "-n",
                                 "raw:pixels[size=4]", "-k", "backbone"])
    assert result.exit_code == 0, result.output
    assert "backbone[raw:pixels[size=4]]::feature-shape" in result.output
    assert "raw:tfidf" not in result.output
    unknown = runner.invoke(cli, ["check", "no_such_plugin_xyz"])
    assert unknown.exit_code == 1 and unknown.output.count("\n") == 1
    assert "pip install the plugin" in unknown.output


# --- the transferlab_plugins fixture ---------------------------------------------------------


class Greeter:
    """A plugin object with a method and a command that lists the registered methods."""

    class Greet(DeclaredFeature):
        name = "greet-method"

    @hookimpl
    def register_methods(self, register: Any) -> None:
        register(self.Greet)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command()
        def greet() -> None:
            """List the registered methods."""
            from transferlab.plugins import get_registries

            click.echo("methods: " + ",".join(get_registries().methods.names()))


def test_fixture_loads_only_the_named_plugins_and_runs_their_commands(transferlab_plugins,
                                                                      tmp_path):
    """Bug caught: a plugin's command untestable without installing it (commands attach only
    in main()), or a sandbox that leaks: other plugins visible in it, its command left on the
    real command line, or its registrations in the process-wide registries."""
    sandbox = transferlab_plugins(Greeter())
    assert sandbox.registries.methods.names() == ["greet-method"]
    result = sandbox.invoke("greet")
    assert result.exit_code == 0 and result.output == "methods: greet-method\n"
    listed = sandbox.invoke("list", "methods", "--data-dir", str(tmp_path))
    assert "greet-method" in listed.output and "linear-probe" not in listed.output
    assert "greet" not in cli.commands
    assert "greet-method" not in get_host().registries.methods
    both = transferlab_plugins(Greeter(), "transferlab_objectives.plugin", builtins=True)
    assert {"greet-method", "linear-probe"} <= set(both.registries.methods.names())
    assert "linear-probe" in both.invoke("greet").output


def test_fixture_is_strict_unless_asked(transferlab_plugins, monkeypatch):
    """Bug caught: a broken plugin passing its own tests because the sandbox swallowed the
    load error (the CLI's lenient default)."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    with pytest.raises(TransferlabError, match="not be found in the hookspec"):
        transferlab_plugins("bad_hook_signature")
    lenient = transferlab_plugins("bad_hook_signature", strict=False)
    assert lenient.plugins["bad_hook_signature"].errors
    sys.modules.pop("bad_hook_signature", None)


def test_pyproject_exposes_the_fixture_as_a_pytest_plugin():
    """Bug caught: the fixture module dropped from the pytest11 entry point, so plugin
    authors' tests cannot find `transferlab_plugins`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"transferlab": "transferlab.testing.fixtures"}


def test_a_plugin_authors_test_file_under_pytest(tmp_path):
    """Bug caught: the kit or the fixture failing in a real pytest run of a plugin's tests:
    ids, strict xfail with the reason, skips, and the fixture loaded as a pytest plugin."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent(f"""
        from transferlab.testing import parametrize_with_checks

        @parametrize_with_checks({str(PLUGINS / "labels_out_of_range.py")!r},
                                 expected_failures={{"*::labels": "fixed in the next release"}})
        def test_conformance(check):
            check()

        def test_fixture(transferlab_plugins):
            sandbox = transferlab_plugins("transferlab_objectives.plugin")
            assert sandbox.registries.objectives.names() == [
                "clm", "contrastive", "cross-entropy", "l2", "mlm", "nsp", "reconstruction",
                "weighted-sum"]
    """))
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only the -p plugin below
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "transferlab.testing.fixtures", "-p",
         "no:cacheprovider", "-q", "-rx", "test_author.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 passed, 1 xfailed" in out.stdout
    assert "task[off-by-one]::labels] - fixed in the next release" in out.stdout
