"""The stability policy: the public API recorded in ``tests/public_api.txt`` never loses a
name without a deprecation, every public name is recorded, and the deprecation helpers
(:mod:`transferlab.deprecation`) warn, name the replacement and keep the old name working."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from transferlab import __version__
from transferlab.deprecation import (
    Deprecation,
    TransferlabDeprecationWarning,
    deprecated,
    deprecated_alias,
    warn_deprecated,
)

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "python tools/public_api.py --write"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("public_api", ROOT / "tools" / "public_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


TOOL = _load_tool()


@pytest.fixture(scope="module")
def current() -> dict[str, str]:
    return TOOL.public_api()


@pytest.fixture(scope="module")
def comparison(current):
    snapshot = TOOL.parse(TOOL.SNAPSHOT.read_text())
    return TOOL.compare(snapshot, current, __version__)


# --- the snapshot ----------------------------------------------------------------------------


def test_no_public_name_disappears_without_a_deprecation(comparison):
    """Bug caught: a public name (an ``__all__`` entry, a class member, a hook spec or one
    of its parameters) removed or renamed outright, breaking every plugin that used it."""
    assert comparison.missing == [], (
        f"{len(comparison.missing)} public name(s) in tests/public_api.txt are gone from the"
        " code without a deprecation:\n  " + "\n  ".join(comparison.missing) + "\nRestore them,"
        " or keep them working with a warning for at least one minor version first"
        " (transferlab.deprecation: deprecated_alias for module names, @deprecated for"
        " functions and methods), then `" + REGENERATE + "`."
    )


def test_every_public_name_is_recorded(comparison):
    """Bug caught: a new public name (or a new deprecation) that the snapshot does not
    record, so its later removal would go unnoticed."""
    problems = comparison.unrecorded + comparison.changed + comparison.removed
    assert problems == [], (
        f"tests/public_api.txt is out of date for {len(problems)} name(s):\n  "
        + "\n  ".join(problems) + f"\nRecord them: `{REGENERATE}` (and commit the file)."
    )


def test_no_deprecation_outlives_its_removal_version(comparison):
    """Bug caught: deprecated aliases kept past the version the warning promised."""
    assert comparison.overdue == [], (
        f"transferlab {__version__} is the removal version of: {', '.join(comparison.overdue)};"
        f" remove them, then `{REGENERATE}`"
    )


def test_the_snapshot_covers_modules_classes_and_hook_parameters(current):
    """Bug caught: a snapshot that silently lists nothing for a kind of public name."""
    api = current
    for key in ("transferlab.api.Backbone", "transferlab.api.Backbone.fingerprint",
                "transferlab.api.Task.split_names", "transferlab.training.GradientMethod",
                "transferlab.training.method.GradientMethod.configure",
                "transferlab.training.TrainConfig.batch_size",
                "transferlab.hookspecs.register_tasks(data_dirs)",
                "transferlab.deprecation.deprecated_alias", "transferlab.scaffold.create_plugin"):
        assert key in api, key
    assert not [key for key in api if "._" in key.replace("__version__", "")]
    assert not [key for key in api if key.startswith("transferlab.cli.")]  # no __all__


def test_compare_tells_removals_deprecations_and_additions_apart():
    """Bug caught: a removal accepted because it was deprecated in the snapshot although its
    removal version has not come, or a due removal flagged as a break."""
    note = "deprecated since 0.1, removed in 0.3; use new"
    snapshot = {"m.kept": "", "m.gone": "", "m.old": note, "m.older": note}
    current = {"m.kept": "", "m.old": note, "m.added": ""}
    at_02 = TOOL.compare(snapshot, current, "0.2.0")
    assert at_02.missing == ["m.gone", "m.older"]  # m.older vanished before 0.3
    assert at_02.unrecorded == ["m.added"] and at_02.overdue == at_02.changed == []
    at_03 = TOOL.compare(snapshot, current, "0.3.0")
    assert at_03.missing == ["m.gone"] and at_03.removed == ["m.older"]
    assert at_03.overdue == ["m.old"]
    deprecated_now = TOOL.compare({"m.kept": ""}, {"m.kept": note}, "0.2")
    assert deprecated_now.changed == ["m.kept"]


def test_the_snapshot_round_trips_through_its_file_format():
    api = {"a.b": "", "a.c": "deprecated since 0.1, removed in 0.2; use a.b"}
    assert TOOL.parse(TOOL.render(api)) == api


def test_write_refuses_to_drop_a_name_that_was_never_deprecated(tmp_path, monkeypatch, capsys):
    """Bug caught: regenerating the snapshot as a way to hide a breaking removal."""
    snapshot = tmp_path / "public_api.txt"
    monkeypatch.setattr(TOOL, "SNAPSHOT", snapshot)
    monkeypatch.setattr(TOOL, "public_api", lambda: {"m.kept": ""})
    snapshot.write_text(TOOL.render({"m.kept": "", "m.gone": ""}))
    assert TOOL.main(["--write"]) == 1
    assert "m.gone" in capsys.readouterr().err
    assert "m.gone" in snapshot.read_text()
    assert TOOL.main(["--write", "--allow-removal"]) == 0
    assert TOOL.parse(snapshot.read_text()) == {"m.kept": ""}


# --- the deprecation helpers -----------------------------------------------------------------


def _module(name: str = "fake_module") -> ModuleType:
    module = ModuleType(name)
    module.__dict__["New"] = type("New", (), {"__module__": name})
    return module


def test_deprecated_alias_warns_names_the_replacement_and_returns_the_new_object():
    """Bug caught: an alias that breaks the old import, warns without saying what to use
    instead or when it goes, or blames the helper's frame instead of the caller's line."""
    module = _module()
    deprecated_alias(vars(module), "Old", module.New, since="0.1", removal="0.3")
    with pytest.warns(TransferlabDeprecationWarning) as record:
        assert module.Old is module.New
    message = str(record[0].message)
    assert message == ("fake_module.Old is deprecated since transferlab 0.1 and will be removed"
                       " in 0.3; use fake_module.New instead")
    assert record[0].filename == __file__
    assert module.__deprecated__["Old"].removal == "0.3"
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        module.Missing  # noqa: B018


def test_deprecated_alias_resolves_a_dotted_path_lazily_and_keeps_an_existing_getattr():
    """Bug caught: the alias importing its target eagerly (torch at plugin import), or
    replacing a module's own lazy ``__getattr__`` (``transferlab.training`` has one)."""
    module = _module()
    module.__dict__["__getattr__"] = lambda name: f"lazy {name}"
    deprecated_alias(vars(module), "old_join", "os.path.join", since="0.1", removal="0.2")
    deprecated_alias(vars(module), "old_sep", "os.sep", since="0.1", removal="0.2")
    assert module.__deprecated_targets__["old_join"] == "os.path.join"  # not imported yet
    with pytest.warns(TransferlabDeprecationWarning, match="use os.path.join instead"):
        import os.path

        assert module.old_join is os.path.join
    with pytest.warns(TransferlabDeprecationWarning, match="fake_module.old_sep"):
        assert module.old_sep == os.sep
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert module.other == "lazy other"


def test_deprecated_alias_refuses_a_name_that_is_still_defined():
    """Bug caught: an alias that never warns because the module still defines the name
    (module globals win over ``__getattr__``)."""
    module = _module()
    module.__dict__["Old"] = module.New
    with pytest.raises(ValueError, match="still defined"):
        deprecated_alias(vars(module), "Old", module.New, since="0.1", removal="0.2")


def test_deprecated_functions_warn_and_still_work():
    @deprecated(replacement="transferlab.settings.parse_setting", since="0.1", removal="0.2")
    def parse_old(text: str) -> str:
        """Old parser."""
        return text.upper()

    with pytest.warns(TransferlabDeprecationWarning, match="parse_old is deprecated") as record:
        assert parse_old("x") == "X"
    assert record[0].filename == __file__
    assert parse_old.__doc__ == "Old parser." and parse_old.__name__ == "parse_old"


def test_warn_deprecated_points_at_the_callers_caller():
    def api_function(old_keyword: int | None = None) -> None:
        if old_keyword is not None:
            warn_deprecated("api_function(old_keyword=...)", replacement="new_keyword",
                            since="0.1", removal="0.2")

    with pytest.warns(TransferlabDeprecationWarning, match="use new_keyword instead") as record:
        api_function(old_keyword=1)
    assert record[0].filename == __file__


def test_a_removal_must_come_at_least_one_minor_version_later():
    """Bug caught: a deprecation that removes the name in the very version that deprecates
    it (no warning period), or versions that are not MAJOR.MINOR."""
    with pytest.raises(ValueError, match="at least one minor version"):
        Deprecation("m.x", "m.y", since="0.2", removal="0.2")
    with pytest.raises(ValueError, match="at least one minor version"):
        Deprecation("m.x", "m.y", since="1.0", removal="0.9")
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR"):
        Deprecation("m.x", "m.y", since="soon", removal="0.3")
    assert Deprecation("m.x", "m.y", since="0.9", removal="1.0").removal_due("1.0.2")
    assert not Deprecation("m.x", "m.y", since="0.1", removal="0.3").removal_due("0.2.5")


def test_the_warning_is_a_deprecation_warning_users_can_filter():
    assert issubclass(TransferlabDeprecationWarning, DeprecationWarning)


# --- the real deprecation: the parameter plugin's TransferModel shim --------------------------


def test_the_old_transfer_model_path_warns_and_serves_the_core_class():
    """Bug caught: ``transferlab_parameter.model.TransferModel`` (moved to the core's
    training API in issue 9) breaking third-party code that still imports it."""
    pytest.importorskip("torch")
    import transferlab_parameter.model as shim
    from transferlab.training import TransferModel

    with pytest.warns(TransferlabDeprecationWarning,
                      match="use transferlab.training.TransferModel instead"):
        from transferlab_parameter.model import TransferModel as Old
    assert Old is TransferModel
    assert shim.__deprecated__["TransferModel"].removal == "0.3"


def test_builtin_plugins_never_use_a_deprecated_path():
    """Bug caught: the project's own code triggering its deprecation warnings (every user
    would see them)."""
    pytest.importorskip("torch")
    code = ("import transferlab_parameter.plugin, transferlab_parameter.adapters,"
            " transferlab_parameter.groups, transferlab_parameter.predictor")
    category = "transferlab.deprecation.TransferlabDeprecationWarning"
    out = subprocess.run([sys.executable, "-W", f"error::{category}", "-c", code],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
