"""The plugin loader: isolation, strict mode, filters, misspelled hooks, duplicate names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import entry_points_named
from transferlab.cli import cli
from transferlab.errors import DuplicateNameError, TransferlabError
from transferlab.hookspecs import hookimpl
from transferlab.plugins import PluginHost

GOOD = """
from transferlab.hookspecs import hookimpl
from transferlab.api import TransferMethod

class Majority(TransferMethod):
    name = "majority"
    def fit(self, backbone, task, ctx):
        raise NotImplementedError

@hookimpl
def register_methods(register):
    register("majority", Majority, summary="third-party method")
"""
BROKEN_IMPORT = "raise RuntimeError('boom at import')\n"
MISSPELLED = """
from transferlab.hookspecs import hookimpl

@hookimpl
def register_method(register):
    register("never", object)
"""
DUPLICATE = """
from transferlab.api import TransferMethod
from transferlab.hookspecs import hookimpl

class TheirProbe(TransferMethod):
    name = "linear-probe"
    summary = "a third party's linear probe"

    def fit(self, backbone, task, ctx):
        raise NotImplementedError

@hookimpl
def register_methods(register):
    register(TheirProbe)
    register("their-method", TheirProbe)
"""
BAD_SIGNATURE = """
from transferlab.hookspecs import hookimpl

@hookimpl
def register_methods(register, not_an_argument):
    pass
"""
FAILING_HOOK = """
from transferlab.hookspecs import hookimpl

@hookimpl
def register_tasks(register):
    register("early", lambda name: None)
    raise ValueError("cannot read config")
"""


def _host(**kwargs) -> PluginHost:
    host = PluginHost(**kwargs)
    host.load_entry_points()
    return host


def test_builtin_plugins_load_through_entry_points():
    host = _host()
    assert {"tasks", "timm", "feature", "baselines", "executors"} <= set(host.plugins)
    assert all(not info.errors for info in host.plugins.values())
    regs = host.registries
    assert "digits" in regs.tasks and "linear-probe" in regs.methods
    assert "timm:efficientnet_lite0" in regs.backbones
    assert host.plugins["feature"].registered["methods"] == [
        "linear-probe", "knn", "ncm", "adapter", "coral"]


def test_third_party_distribution_shows_up(fake_dists, runner):
    fake_dists.add("transferlab-majority", "majority", "tl_majority", GOOD)
    host = _host()
    assert host.plugins["majority"].distribution == "transferlab-majority"
    assert host.plugins["majority"].version == "1.0"
    assert "majority" in host.registries.methods
    result = runner.invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    info = {p["name"]: p for p in json.loads(result.stdout)}["majority"]
    assert info["hooks"] == ["register_methods"] and info["registered"]["methods"] == ["majority"]


def test_plugin_raising_on_import_is_reported_and_isolated(fake_dists, runner, capsys):
    fake_dists.add("transferlab-broken", "broken", "tl_broken", BROKEN_IMPORT)
    host = _host()
    assert "boom at import" in host.plugins["broken"].errors[0]
    assert "linear-probe" in host.registries.methods  # everything else still works
    assert "plugin 'broken' failed to import" in capsys.readouterr().err
    for args in (["--help"], ["list", "methods"], ["plugins"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    assert "boom at import" in runner.invoke(cli, ["plugins"]).stdout


def test_strict_mode_reraises(fake_dists, monkeypatch):
    fake_dists.add("transferlab-broken", "broken", "tl_broken2", BROKEN_IMPORT)
    monkeypatch.setenv("TRANSFERLAB_STRICT", "1")
    with pytest.raises(TransferlabError, match="boom at import"):
        _host()


def test_misspelled_hook_is_reported_with_suggestion(fake_dists):
    fake_dists.add("transferlab-typo", "typo", "tl_typo", MISSPELLED)
    host = _host()
    (error,) = host.plugins["typo"].errors
    assert "unknown hook 'register_method'" in error and "register_methods" in error
    assert "never" not in host.registries.methods


def test_hookimpl_with_unknown_argument_is_rejected(fake_dists):
    fake_dists.add("transferlab-badsig", "badsig", "tl_badsig", BAD_SIGNATURE)
    host = _host()
    (error,) = host.plugins["badsig"].errors
    assert error.startswith("is invalid: ") and "not_an_argument" in error
    assert host.pm.get_plugin("badsig") is None and host.plugins["badsig"].hooks == []


def test_failing_hook_is_reported_other_kinds_still_load(fake_dists):
    fake_dists.add("transferlab-failing", "failing", "tl_failing", FAILING_HOOK)
    host = _host()
    assert "digits" in host.registries.tasks
    assert "cannot read config" in host.plugins["failing"].errors[0]


def test_a_third_party_taking_a_builtin_name_takes_out_nothing(fake_dists, runner, capsys):
    """Bug caught: a plugin registering `linear-probe` made the whole built-in feature plugin
    fail (knn, ncm, adapter, coral vanished), blamed by entry-point name order."""
    fake_dists.add("transferlab-dup", "dup", "tl_dup", DUPLICATE)
    host = _host()
    methods = host.registries.methods
    assert methods.get("linear-probe").plugin == "feature"  # built-ins keep their names
    for name in ("knn", "ncm", "adapter", "coral", "finetune", "their-method"):
        assert name in methods, name
    assert host.plugins["feature"].errors == [] and host.plugins["dup"].errors == []
    warning = capsys.readouterr().err
    assert ("method 'linear-probe' is registered by transferlab (plugin 'feature') and"
            " transferlab-dup (plugin 'dup'); using transferlab") in warning
    assert host.plugins["dup"].conflicts == host.plugins["feature"].conflicts != []
    listed = runner.invoke(cli, ["plugins"])
    assert "conflict: method 'linear-probe' is registered by" in listed.output


def test_the_user_can_prefer_the_third_party_or_disable_it(fake_dists, monkeypatch):
    fake_dists.add("transferlab-dup", "dup", "tl_dup", DUPLICATE)
    monkeypatch.setenv("TRANSFERLAB_PREFER", "linear-probe=transferlab-dup")
    assert _host().registries.methods.get("linear-probe").plugin == "dup"
    monkeypatch.delenv("TRANSFERLAB_PREFER")
    monkeypatch.setenv("TRANSFERLAB_DISABLE", "transferlab-dup")
    host = _host()
    assert "dup" not in host.plugins and not host.registries.methods.conflicts
    monkeypatch.setenv("TRANSFERLAB_DISABLE", "feature")
    assert _host().registries.methods.get("linear-probe").plugin == "dup"


def test_the_chosen_plugin_is_recorded_with_the_result(fake_dists, runner, tmp_path):
    fake_dists.add("transferlab-dup", "dup", "tl_dup", DUPLICATE)
    from transferlab.harness.cell import Cell, run_cell

    host = _host()
    result = run_cell(Cell("raw:pixels", "digits", "linear-probe",
                           backbone_params={"size": 8, "grayscale": True}),
                      host.registries, progress=False)
    assert result.status == "ok", result.error
    plugins = result.environment["plugins"]
    assert plugins["method"] == {"name": "linear-probe", "plugin": "feature",
                                 "distribution": "transferlab",
                                 "version": plugins["method"]["version"]}
    assert plugins["task"]["plugin"] == "tasks" and plugins["backbone"]["plugin"] == "baselines"


def test_two_third_parties_on_one_name_leave_it_unusable_until_the_user_chooses(
        fake_dists, runner):
    fake_dists.add("transferlab-dup", "dup", "tl_dup", DUPLICATE)
    fake_dists.add("transferlab-dup2", "dup2", "tl_dup2", DUPLICATE)
    host = _host()
    with pytest.raises(DuplicateNameError) as excinfo:
        host.registries.methods.get("their-method")
    assert "transferlab-dup (plugin 'dup') and transferlab-dup2 (plugin 'dup2')" in str(
        excinfo.value)
    assert host.registries.methods.get("linear-probe").plugin == "feature"
    result = runner.invoke(cli, ["run", "-b", "raw:pixels", "-t", "digits", "-m",
                                 "their-method"])
    assert result.exit_code != 0 and "TRANSFERLAB_PREFER=their-method=DIST" in result.output


def test_plugin_filter_env_var(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_PLUGINS", "tasks,feature")
    host = _host()
    assert set(host.plugins) == {"tasks", "feature"}
    monkeypatch.setenv("TRANSFERLAB_PLUGINS", "")
    assert _host().plugins == {}


def test_trace_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_TRACE", "1")
    _host().registries  # noqa: B018
    assert "tasks.register_tasks()" in capsys.readouterr().err


def test_register_commands_hook_adds_a_command(fake_dists):
    fake_dists.add("transferlab-cmd", "cmd", "tl_cmd", """
import click
from transferlab.hookspecs import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command(name="hello-plugin")
    def hello():
        click.echo("hello from a plugin")
""")
    import click
    from click.testing import CliRunner

    group = click.Group()
    _host().add_commands(group)
    result = CliRunner().invoke(group, ["hello-plugin"])
    assert result.output.strip() == "hello from a plugin"


REVERSE_EXECUTOR = """
from transferlab.hookspecs import hookimpl
from transferlab.params import Param

class Reverse:
    def __init__(self, tag):
        self.tag = tag

    def run(self, cells, run_one):
        for cell in reversed(list(cells)):
            yield run_one(cell)

@hookimpl
def register_executors(register):
    register("reverse", lambda name, tag: Reverse(tag), summary="last cell first",
             params=[Param("tag", str, "r")])
"""


def test_register_executors_hook(fake_dists):
    fake_dists.add("transferlab-reverse", "reverse", "tl_reverse", REVERSE_EXECUTOR)
    executors = _host().registries.executors
    assert executors.names() == ["local", "process", "ray", "reverse"]
    assert executors.create("process", {"workers": 2}).workers == 2
    assert executors.get("process").summary == (
        "cells in worker processes (isolates crashes and memory); each worker keeps its"
        " features for the next cell on them")
    reverse = executors.create("reverse", {"tag": "x"})
    assert reverse.tag == "x" and list(reverse.run([1, 2, 3], lambda c: c * 10)) == [30, 20, 10]
    assert executors.get("reverse").plugin == "reverse"


def test_register_objectives_hook(fake_dists, runner):
    fake_dists.add("transferlab-objs", "objs", "tl_objs", """
from transferlab.hookspecs import hookimpl

@hookimpl
def register_objectives(register):
    register("mse", lambda name: "mse-loss", summary="mean squared error")
""")
    assert _host().registries.objectives.create("mse") == "mse-loss"
    result = runner.invoke(cli, ["list", "objectives", "--json"])
    listed = {o["name"]: o for o in json.loads(result.stdout)}
    assert listed["mse"]["plugin"] == "objs" and listed["mse"]["summary"] == "mean squared error"


def test_register_backbones_hook_family_and_metadata(fake_dists, runner):
    fake_dists.add("transferlab-echo", "echo", "tl_echo", """
from transferlab.hookspecs import hookimpl
from transferlab.params import Param

@hookimpl
def register_backbones(register):
    register("echo:*", lambda name, width: (name, width), modality="text", offline=True,
             params=[Param("width", int, 4)], summary="echo family")
""")
    backbones = _host().registries.backbones
    assert backbones.create("echo:abc@v2", {"width": "8"}) == ("echo:abc@v2", 8)
    listed = json.loads(runner.invoke(cli, ["list", "backbones", "echo:*", "--json"]).stdout)
    assert listed[0]["offline"] is True and listed[0]["params"][0]["default"] == 4


# --- precise loader behaviour -------------------------------------------------------------------

WARNING_TAIL = " (other plugins still work; TRANSFERLAB_STRICT=1 raises)"


def test_broken_import_message_and_warning_line(fake_dists, capsys):
    fake_dists.add("transferlab-broken", "broken", "tl_broken3", BROKEN_IMPORT)
    host = _host()
    info = host.plugins["broken"]
    assert info.errors == ["failed to import tl_broken3: RuntimeError: boom at import"]
    assert (info.module, info.distribution, info.version, info.hooks) == (
        "tl_broken3", "transferlab-broken", "1.0", [])
    assert host.pm.get_plugin("broken") is None
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["transferlab: warning: plugin 'broken' failed to import tl_broken3:"
                        " RuntimeError: boom at import" + WARNING_TAIL]


def test_strict_mode_message_and_cause(fake_dists, monkeypatch, capsys):
    fake_dists.add("transferlab-broken", "broken", "tl_broken4", BROKEN_IMPORT)
    with pytest.raises(TransferlabError) as excinfo:
        _host(strict=True)
    assert str(excinfo.value) == (
        "plugin 'broken' failed to import tl_broken4: RuntimeError: boom at import")
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    assert capsys.readouterr().err == ""  # strict raises instead of warning


@pytest.mark.parametrize(("value", "strict"), [("1", True), ("true", True), (" YES ", True),
                                               ("on", True), ("0", False), ("", False),
                                               ("no", False), ("2", False)])
def test_strict_env_values(monkeypatch, value, strict):
    monkeypatch.setenv("TRANSFERLAB_STRICT", value)
    assert PluginHost().strict is strict
    assert PluginHost(strict=not strict).strict is (not strict)  # the argument wins


class _Plugin:
    """An in-process plugin object whose hooks are given as keyword functions."""

    def __init__(self, **hooks):
        for name, function in hooks.items():
            setattr(self, name, hookimpl(function))


def test_misspelled_hook_exact_message_and_it_is_unregistered():
    host = PluginHost(only=[])
    plugin = _Plugin(register_command=lambda cli: None)
    host.add_plugin(plugin, "typo")
    assert host.plugins["typo"].errors == [
        "implements unknown hook 'register_command' (did you mean 'register_commands'?);"
        " it was not loaded"]
    assert host.pm.get_plugin("typo") is None and host.plugins["typo"].hooks == []
    assert host.plugins["typo"].module == repr(plugin)  # no entry point: the object's repr
    host.add_plugin(_Plugin(frobnicate=lambda register: None), "odd")
    assert host.plugins["odd"].errors == [
        "implements unknown hook 'frobnicate'; it was not loaded"]  # nothing close: no hint


def test_misspelled_hook_in_strict_mode_raises_without_cause():
    host = PluginHost(only=[], strict=True)
    with pytest.raises(TransferlabError) as excinfo:
        host.add_plugin(_Plugin(register_task=lambda register: None), "typo")
    assert str(excinfo.value) == ("plugin 'typo' implements unknown hook 'register_task' (did"
                                  " you mean 'register_tasks'?); it was not loaded")
    assert excinfo.value.__cause__ is None


def test_failing_hook_exact_message_and_strict_raise():
    def register_tasks(register):
        raise ValueError("cannot read config")

    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_tasks=register_tasks), "failing")
    host.add_plugin(_Plugin(register_methods=lambda register: register("m", object)), "fine")
    assert "m" in host.registries.methods
    assert host.plugins["failing"].errors == [
        "failed in register_tasks: ValueError: cannot read config"]
    strict = PluginHost(only=[], strict=True)
    strict.add_plugin(_Plugin(register_tasks=register_tasks), "failing")
    with pytest.raises(TransferlabError) as excinfo:
        strict.registries  # noqa: B018
    assert str(excinfo.value) == (
        "plugin 'failing' failed in register_tasks: ValueError: cannot read config")


def test_register_rejects_params_that_are_not_param():
    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_methods=lambda register: register(
        "m", object, params=[("C", float)])), "badparams")
    assert "m" not in host.registries.methods
    assert host.plugins["badparams"].errors == [
        "failed in register_methods: RegistrationError: params of 'm' must be"
        " transferlab.params.Param"]


def test_registries_record_what_each_plugin_registered_in_order():
    def register_methods(register):
        register("m2", object, summary="second", family="feature")
        register("m1", object)

    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_methods=register_methods), "first")
    host.add_plugin(_Plugin(register_methods=lambda register: register("m3", object)), "second")
    methods = host.registries.methods
    assert host.plugins["first"].registered == {"methods": ["m2", "m1"]}
    assert host.plugins["first"].hooks == ["register_methods"]
    entry = methods.get("m2")
    assert (entry.plugin, entry.summary, dict(entry.info)) == ("first", "second",
                                                               {"family": "feature"})
    assert methods.get("m3").plugin == "second"
    assert host.registries is host.registries  # built once ...
    host.add_plugin(_Plugin(register_tasks=lambda register: register("t", object)), "third")
    assert "t" in host.registries.tasks  # ... and rebuilt after a new plugin


def test_a_duplicate_name_fails_no_plugin_and_names_both():
    """The conflict is of the name only: neither plugin records an error, both keep every
    other name, and the message names both claimants in registration order."""
    host = PluginHost(only=[])
    for name in ("alpha", "beta"):
        host.add_plugin(_Plugin(register_methods=lambda register, n=name: (
            register("same", object), register(f"only-{n}", object))), name)
    methods = host.registries.methods
    assert host.plugins["alpha"].errors == [] and host.plugins["beta"].errors == []
    assert "only-alpha" in methods and "only-beta" in methods
    with pytest.raises(DuplicateNameError) as excinfo:
        methods.get("same")
    assert "? (plugin 'alpha') and ? (plugin 'beta')" in str(excinfo.value)


def test_hooks_receive_the_data_dirs(tmp_path):
    seen = []
    host = PluginHost(only=[], data_dirs=[str(tmp_path)])
    host.add_plugin(_Plugin(register_tasks=lambda register, data_dirs: seen.append(data_dirs)),
                    "data")
    host.registries  # noqa: B018
    assert seen == [[tmp_path]] and isinstance(seen[0][0], Path)


def test_plugin_filter_accepts_distribution_names_and_ignores_blanks(fake_dists, monkeypatch):
    fake_dists.add("transferlab-majority", "majority", "tl_majority2", GOOD)
    monkeypatch.setenv("TRANSFERLAB_PLUGINS", " transferlab-majority , ,tasks")
    host = _host()
    assert set(host.plugins) == {"majority", "tasks"} and host.only == {
        "transferlab-majority", "tasks"}
    assert set(_host(only=["feature"]).plugins) == {"feature"}  # the argument wins
    monkeypatch.delenv("TRANSFERLAB_PLUGINS")
    assert _host().only is None and "majority" in _host().plugins


def test_plugins_load_in_entry_point_name_order():
    host = PluginHost()
    host.load_entry_points(list(reversed(entry_points_named("tasks", "feature", "baselines"))))
    assert list(host.plugins) == ["baselines", "feature", "tasks"]


@pytest.mark.parametrize(("value", "traced"), [("1", True), ("on", True), ("0", False)])
def test_trace_lines_exact(monkeypatch, capsys, value, traced):
    monkeypatch.setenv("TRANSFERLAB_TRACE", value)
    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_tasks=lambda register: None), "mine")
    host.registries  # noqa: B018
    err = capsys.readouterr().err
    assert err.splitlines() == (["transferlab: trace: mine.register_tasks()"] if traced else [])


def test_failing_command_plugin_is_reported(capsys):
    import click

    def register_commands(cli):
        raise RuntimeError("no cli for you")

    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_commands=register_commands), "cmds")
    host.add_commands(click.Group())
    assert host.plugins["cmds"].errors == [
        "failed in register_commands: RuntimeError: no cli for you"]
    assert "plugin 'cmds' failed in register_commands" in capsys.readouterr().err


def test_get_host_is_cached_and_follows_data_dirs(monkeypatch, tmp_path):
    from transferlab import plugins

    monkeypatch.setenv("TRANSFERLAB_PLUGINS", "tasks")
    first = plugins.get_host()
    assert plugins.get_host() is first and plugins.get_registries() is first.registries
    assert plugins.get_host(refresh=True) is not first
    monkeypatch.setenv("TRANSFERLAB_DATA",  # an empty entry (a doubled separator) is skipped
                       f"{tmp_path / 'a'}{os.pathsep}{os.pathsep}{tmp_path / 'b'}")
    host = plugins.get_host(data_dirs=[tmp_path / "c"])
    assert host.data_dirs == [tmp_path / "c", tmp_path / "a", tmp_path / "b"]
    assert plugins.get_host(data_dirs=[tmp_path / "c"]) is host


def test_rebuilding_registries_does_not_repeat_records_or_warnings(capsys):
    """Adding a plugin after the registries were built rebuilds them; every plugin's list of
    registered names and its hook errors used to be appended to again (['m', 'm'])."""
    def register_tasks(register):
        raise ValueError("bad")

    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_methods=lambda register: register("m", object)), "p")
    host.add_plugin(_Plugin(register_tasks=register_tasks), "q")
    host.registries  # noqa: B018
    host.add_plugin(_Plugin(register_objectives=lambda register: register("o", object)), "r")
    assert "o" in host.registries.objectives and "m" in host.registries.methods
    assert host.plugins["p"].registered == {"methods": ["m"]}
    assert host.plugins["q"].errors == ["failed in register_tasks: ValueError: bad"]
    assert capsys.readouterr().err.count("failed in register_tasks") == 1


def test_plugin_registered_on_pluggy_directly_is_still_recorded(capsys):
    """A plugin registered with ``host.pm.register`` (not through the host) gets a record with
    an unknown module when its hooks run, and its failures are reported like any other."""
    def register_commands(cli):
        raise RuntimeError("nope")

    host = PluginHost(only=[])
    host.pm.register(_Plugin(register_methods=lambda register: register("m", object)), "direct")
    host.pm.register(_Plugin(register_commands=register_commands), "cmds")
    assert "m" in host.registries.methods
    assert (host.plugins["direct"].module, host.plugins["direct"].registered) == (
        "?", {"methods": ["m"]})
    host.add_commands(None)
    assert (host.plugins["cmds"].module, host.plugins["cmds"].errors) == (
        "?", ["failed in register_commands: RuntimeError: nope"])


def test_use_host_pins_the_process_host_and_data_dirs_stay_on_it(tmp_path):
    """Bug caught: a command run inside ``use_host`` (the ``transferlab_plugins`` fixture)
    reaching the process-wide plugins, e.g. when ``--data-dir`` made ``get_host`` build a new
    host from every entry point; and the pin outliving its block."""
    from transferlab import plugins

    host = PluginHost(only=[])
    host.add_plugin(_Plugin(register_methods=lambda register: register("m", object)), "p")
    outside = plugins.get_host()
    with plugins.use_host(host):
        assert plugins.get_host() is host and plugins.get_registries().methods.names() == ["m"]
        host.registries  # noqa: B018
        assert plugins.get_host(data_dirs=[tmp_path]) is host
        assert host.data_dirs == [tmp_path] and host._registries is None
        assert plugins.get_host(data_dirs=[tmp_path]).data_dirs == [tmp_path]
    assert plugins.get_host() is outside


# --- register(Class): name, summary, params and family read from the class ----------------


class _Registers:
    """A plugin object whose ``register_methods`` makes the given ``register`` calls."""

    def __init__(self, *calls) -> None:
        self.calls = calls

    @hookimpl
    def register_methods(self, register) -> None:
        for args, kwargs in self.calls:
            register(*args, **kwargs)


def _registered(*calls, strict=True):
    host = PluginHost(strict=strict, only=[])
    host.add_plugin(_Registers(*calls), "mine")
    return host.registries.methods


def _method_class(**attributes):
    from transferlab.api import TransferMethod
    from transferlab.params import Param

    defaults = {"name": "mine", "summary": "from the class", "family": "feature",
                "params": (Param("k", int, 3, "neighbours"),)}
    return type("Mine", (TransferMethod,), {**defaults, **attributes})


def test_register_class_reads_name_summary_params_and_family_from_the_class():
    """Catches any of the four class attributes dropped or misspelled by ``register(Class)``
    (e.g. the family lost, so ``transferlab list`` and the conformance kit cannot see it)."""
    cls = _method_class()
    entry = _registered(((cls,), {})).get("mine")
    assert entry.factory is cls and entry.summary == "from the class"
    assert [p.name for p in entry.params] == ["k"] and isinstance(entry.params, tuple)
    assert entry.info["family"] == "feature"


def test_register_class_lets_explicit_summary_and_family_win_and_defaults_the_rest():
    """Catches the class's summary or family overriding what ``register`` was given, and a
    class without summary, params or family getting anything but empty defaults."""
    cls = _method_class()
    entry = _registered(((cls,), {"summary": "given", "family": "mine-family"})).get("mine")
    assert entry.summary == "given" and entry.info["family"] == "mine-family"
    bare = type("Bare", (), {"name": "bare", "fit": lambda *a: None})
    entry = _registered(((bare,), {})).get("bare")
    assert entry.summary == "" and entry.params == () and "family" not in entry.info


def test_register_class_ignores_a_family_that_is_not_a_string():
    """Catches a non-string ``family`` attribute (e.g. a property object) stored as the
    family."""
    cls = _method_class(family=None)
    assert "family" not in _registered(((cls,), {})).get("mine").info


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ("factory", {}, "register(Mine, ...): pass the class alone; its name, summary and params"
                    " are read from it"),
    ("noname", {}, "register(Mine): the class needs a `name` class attribute"),
    ("emptyname", {}, "register(Mine): the class needs a `name` class attribute"),
    ("numbername", {}, "register(Mine): the class needs a `name` class attribute"),
    ("params", {}, "register(Mine): declare params on the class only, not again in"
                   " register()"),
])
def test_register_class_misuse_fails_with_a_message_naming_the_fix(args, kwargs, message):
    """Catches each misuse of ``register(Class)`` passing silently or with a garbled hint."""
    from transferlab.params import Param

    cls = _method_class()
    call = {
        "factory": ((cls, cls), {}),
        "noname": ((_method_class(name=None),), {}),
        "emptyname": ((_method_class(name=""),), {}),
        "numbername": ((_method_class(name=5),), {}),
        "params": ((cls,), {"params": (Param("x", int, 1, "x"),)}),
    }[args]
    with pytest.raises(TransferlabError) as caught:
        _registered(call)
    assert message in str(caught.value)


# --- entry points without a distribution, filters, registration metadata, error chains ------


def _plain_entry_points(**names):
    from importlib import metadata

    return [metadata.EntryPoint(name=n, value=v, group="transferlab") for n, v in names.items()]


def test_entry_point_without_a_distribution_loads_with_no_distribution_recorded():
    """Catches ``dist.metadata`` read when an entry point has no distribution (as entry
    points built by hand, or by some installers, have): the plugin must still load."""
    host = PluginHost(only=None)
    host.load_entry_points(_plain_entry_points(mine="transferlab_objectives.plugin"))
    info = host.plugins["mine"]
    assert info.distribution is None and info.version is None and not info.errors
    assert "cross-entropy" in host.registries.objectives


def test_a_filtered_out_entry_point_does_not_stop_the_ones_after_it(monkeypatch):
    """Catches the loader stopping at the first skipped entry point (``break`` for
    ``continue``), and ``TRANSFERLAB_DISABLE`` read as one name instead of a comma list."""
    eps = _plain_entry_points(aaa="transferlab_baselines.plugin",
                              bbb="transferlab_feature.plugin",
                              zzz="transferlab_objectives.plugin")
    host = PluginHost(only=["zzz"])
    host.load_entry_points(eps)
    assert set(host.plugins) == {"zzz"}
    monkeypatch.setenv("TRANSFERLAB_DISABLE", "aaa, bbb")
    host = PluginHost(only=None)
    host.load_entry_points(eps)
    assert set(host.plugins) == {"zzz"}
    monkeypatch.setenv("TRANSFERLAB_DISABLE", "")
    host = PluginHost(only=None)
    host.load_entry_points(eps)
    assert set(host.plugins) == {"aaa", "bbb", "zzz"}


def test_registration_metadata_is_recorded_on_the_entry(fake_dists):
    """Catches the kind, the distribution's version, a factory's class params or an empty
    summary lost between ``register`` and the registry entry."""
    fake_dists.add("transferlab-majority", "majority", "tl_majority", GOOD)
    host = _host()
    entry = host.registries.methods.get("majority")
    assert entry.kind == "methods" and entry.summary == "third-party method"
    assert entry.distribution == "transferlab-majority" and entry.version == "1.0"
    from transferlab.api import TransferMethod
    from transferlab.params import Param

    cls = type("Probe", (TransferMethod,), {"name": "p", "params": (Param("k", int, 3, "k"),)})
    methods = _registered(((("by-name", cls)), {}), (("fn", lambda: None), {}))
    assert [p.name for p in methods.get("by-name").params] == ["k"]
    assert methods.get("fn").summary == "" and methods.get("fn").params == ()


def test_register_without_a_factory_names_the_fix():
    """Catches ``register("x")`` accepted (it would fail later, far from the plugin)."""
    with pytest.raises(TransferlabError, match=r"register\('x'\) needs a factory or a class"):
        _registered((("x",), {}))


def test_strict_errors_chain_the_plugins_own_exception():
    """Catches the original exception dropped from strict-mode errors (its traceback is how
    an author finds the failing line)."""

    class Failing:
        @hookimpl
        def register_methods(self, register):
            raise ValueError("bad config")

        @hookimpl
        def register_commands(self, cli):
            raise KeyError("no such group")

    host = PluginHost(strict=True, only=[])
    host.add_plugin(Failing(), "failing")
    with pytest.raises(TransferlabError, match="failed in register_methods") as caught:
        host.registries  # noqa: B018 - building the registries runs the hooks
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(TransferlabError, match="failed in register_commands") as caught:
        host.add_commands(cli)
    assert isinstance(caught.value.__cause__, KeyError)

    class BadSignature:
        @hookimpl
        def register_methods(self, register, not_an_argument):
            pass

    with pytest.raises(TransferlabError, match="is invalid") as caught:
        PluginHost(strict=True, only=[]).add_plugin(BadSignature(), "bad")
    assert caught.value.__cause__ is not None


def test_strict_mode_refuses_an_unresolved_conflict_but_not_a_resolved_one():
    """Catches strict mode raising on conflicts the built-in wins (every third-party
    ``linear-probe`` would break strict runs) or staying silent on unresolved ones."""
    from transferlab.api import TransferMethod

    cls = type("Mine", (TransferMethod,), {"name": "shared"})
    host = PluginHost(strict=True, only=[])
    host.add_plugin(_Registers(((cls,), {})), "first")
    host.add_plugin(_Registers(((cls,), {})), "second")
    with pytest.raises(TransferlabError, match="shared"):
        host.registries  # noqa: B018
    builtin = PluginHost(strict=True)
    builtin.load_entry_points(entry_points_named("feature"))
    theirs = type("TheirProbe", (TransferMethod,), {"name": "linear-probe"})
    builtin.add_plugin(_Registers(((theirs,), {})), "theirs")
    assert builtin.registries.methods.get("linear-probe").plugin == "feature"
