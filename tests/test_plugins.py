"""The plugin loader: isolation, strict mode, filters, misspelled hooks, duplicate names."""

from __future__ import annotations

import json

import pytest

from transferlab.cli import cli
from transferlab.errors import DuplicateNameError, TransferlabError
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
from transferlab.hookspecs import hookimpl

@hookimpl
def register_methods(register):
    register("linear-probe", object)
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
    assert "not_an_argument" in host.plugins["badsig"].errors[0]


def test_failing_hook_is_reported_other_kinds_still_load(fake_dists):
    fake_dists.add("transferlab-failing", "failing", "tl_failing", FAILING_HOOK)
    host = _host()
    assert "digits" in host.registries.tasks
    assert "cannot read config" in host.plugins["failing"].errors[0]


def test_duplicate_name_names_both_plugins(fake_dists, runner):
    fake_dists.add("transferlab-dup", "dup", "tl_dup", DUPLICATE)
    host = _host()
    with pytest.raises(DuplicateNameError, match="'dup'") as excinfo:
        host.registries.methods.get("linear-probe")
    assert "'feature'" in str(excinfo.value)
    assert any("registered by plugins" in e for e in host.plugins["dup"].errors)
    result = runner.invoke(cli, ["run", "-b", "raw:pixels", "-t", "digits", "-m", "linear-probe"])
    assert result.exit_code != 0
    assert "registered by plugins" in result.output and "TRANSFERLAB_PLUGINS" in result.output


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


def test_register_executors_hook():
    executors = _host().registries.executors
    assert {"local", "process"} <= set(executors.names())
    assert executors.create("process", {"workers": 2}).workers == 2


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
