"""Registries: exact names, family patterns, @tags, natural sort, helpful errors."""

from __future__ import annotations

import pytest

from transferlab.errors import (
    DuplicateNameError,
    ParamError,
    RegistrationError,
    UnknownNameError,
)
from transferlab.params import Param
from transferlab.registry import Entry, Registries, Registry, natural_key


def _registry() -> Registry:
    reg = Registry("backbones")
    reg.add(Entry("timm:*", lambda name, **kw: ("family", name), "timm", "backbones"))
    reg.add(Entry("timm:efficientnet_lite0", lambda name, **kw: ("exact", name, kw), "timm",
                  "backbones", params=(Param("img_size", int, 128),)))
    reg.add(Entry("raw:pixels", lambda name, **kw: name, "baselines", "backbones"))
    return reg


def test_exact_then_tag_then_family():
    reg = _registry()
    assert reg.create("timm:efficientnet_lite0")[0] == "exact"
    assert reg.create("timm:efficientnet_lite0@random") == (
        "exact", "timm:efficientnet_lite0@random", {"img_size": 128})
    assert reg.create("timm:resnet18@random") == ("family", "timm:resnet18@random")


def test_unknown_name_suggests_and_lists_choices():
    with pytest.raises(UnknownNameError) as excinfo:
        _registry().get("raw:pixel")
    message = str(excinfo.value)
    assert "Did you mean 'raw:pixels'" in message and "transferlab list backbones" in message


def test_unresolved_duplicate_fails_that_name_only_naming_both_distributions():
    """A name two third-party plugins claim is unusable, and says how to choose; the other
    names keep working (the bug: one collision took out a whole plugin)."""
    reg = _registry()
    conflict = reg.add(Entry("raw:pixels", lambda name: name, "other", "backbones",
                             distribution="other-dist"))
    assert conflict is not None and conflict.chosen is None
    with pytest.raises(DuplicateNameError) as excinfo:
        reg.get("raw:pixels")  # the conflict is never resolved silently
    assert str(excinfo.value) == (
        "backbone 'raw:pixels' is registered by ? (plugin 'baselines') and other-dist (plugin"
        " 'other'); choose one with TRANSFERLAB_PREFER=raw:pixels=DIST, or disable one with"
        " TRANSFERLAB_DISABLE=DIST")
    assert [c.plugin for c in reg.conflicts["raw:pixels"].claims] == ["baselines", "other"]
    assert reg.create("timm:efficientnet_lite0")[0] == "exact"  # other names unaffected


def _claims(*owners: tuple[str, str | None]) -> list[Entry]:
    return [Entry("linear-probe", lambda name, o=plugin: o, plugin, "methods",
                  distribution=dist) for plugin, dist in owners]


def test_a_builtin_keeps_its_name_against_a_third_party_in_either_order():
    for order in (0, 1):
        claims = _claims(("feature", "transferlab"), ("theirs", "their-dist"))
        reg = Registry("methods")
        for entry in claims if order == 0 else claims[::-1]:
            reg.add(entry)
        assert reg.create("linear-probe") == "feature"
        conflict = reg.conflicts["linear-probe"]
        assert conflict.chosen.plugin == "feature"
        assert conflict.message().startswith("method 'linear-probe' is registered by")
        assert "using transferlab (built-ins keep their names;" in conflict.message()


def test_the_user_preference_wins_by_name_or_by_distribution():
    from transferlab.registry import Preferences

    for text in ("linear-probe=their-dist", "their-dist", "linear-probe=theirs"):
        reg = Registry("methods", Preferences.parse(text))
        for entry in _claims(("feature", "transferlab"), ("theirs", "their-dist")):
            reg.add(entry)
        assert reg.create("linear-probe") == "theirs", text
        assert reg.conflicts["linear-probe"].reason == "chosen by TRANSFERLAB_PREFER"
    prefs = Preferences.parse(" a=x , y ,, b = z ")
    assert prefs.by_name == {"a": "x", "b": "z"} and prefs.everywhere == ("y",)
    unrelated = Registry("methods", Preferences.parse("knn=their-dist"))
    for entry in _claims(("feature", "transferlab"), ("theirs", "their-dist")):
        unrelated.add(entry)
    assert unrelated.create("linear-probe") == "feature"


def test_one_plugin_registering_a_name_twice_is_refused():
    reg = Registry("methods")
    reg.add(Entry("x", _factory, "p", "methods"))
    with pytest.raises(RegistrationError, match="registered method 'x' twice"):
        reg.add(Entry("x", _factory, "p", "methods"))


def test_bad_registrations_are_refused():
    reg = Registry("methods")
    with pytest.raises(RegistrationError, match="empty"):
        reg.add(Entry("", lambda name: name, "p", "methods"))
    with pytest.raises(RegistrationError, match="not callable"):
        reg.add(Entry("x", 42, "p", "methods"))  # type: ignore[arg-type]


def test_names_match_wildcards_in_natural_order():
    reg = Registry("backbones")
    for arch in ("lite10", "lite2", "lite1"):
        reg.add(Entry(f"timm:{arch}", lambda name: name, "p", "backbones"))
    assert reg.names("timm:lite1*") == ["timm:lite1", "timm:lite10"]
    assert reg.names() == ["timm:lite1", "timm:lite2", "timm:lite10"]
    assert sorted(["b10", "b9"], key=natural_key) == ["b9", "b10"]


def test_validate_checks_params_without_building():
    built = []
    reg = Registry("backbones")
    reg.add(Entry("x", lambda name, **kw: built.append(name), "p", "backbones",
                  params=(Param("size", int, 8, min=1),)))
    # every backbone with weights also takes the core's precision setting
    assert reg.get("x").validate("x", {"size": "4"}) == {"size": 4, "precision": "auto"}
    assert built == []


def test_backbones_get_the_precision_setting_unless_they_have_no_weights_or_declare_it():
    """Bugs caught: a backbone family without `-B precision` (a suite's precision refused as
    an unknown parameter), one whose factory receives it (TypeError in every plugin), and a
    weightless baseline (raw:pixels) offered a setting that changes nothing."""
    seen = {}

    class Made:
        precision = "fp32"

    def factory(name, **kw):
        seen[name] = kw
        return Made()

    reg = Registry("backbones")
    reg.add(Entry("w", factory, "p", "backbones"))
    reg.add(Entry("raw", factory, "p", "backbones", info={"has_weights": False}))
    own = Param("precision", str, "fp32", choices=("fp32", "bf16"))
    reg.add(Entry("own", factory, "p", "backbones", params=(own,)))
    made = reg.create("w", {"precision": "bf16"})
    assert made.precision == "bf16" and seen["w"] == {}
    assert [p.name for p in reg.get("raw").params] == []
    assert reg.get("own").params == (own,)
    assert reg.create("own", {"precision": "bf16"}).precision == "fp32"  # the factory's own
    assert seen["own"] == {"precision": "bf16"}


def _factory(name, **kw):
    return name


def _named(*names: str, kind: str = "backbones") -> Registry:
    reg = Registry(kind)
    for name in names:
        reg.add(Entry(name, _factory, "p", kind))
    return reg


def test_tagged_name_of_a_conflicted_registration_is_not_served_by_a_family():
    """Catches get() checking only the exact name for conflicts: 'timm:x@random' would then
    fall through to the 'timm:*' pattern and silently build something else."""
    reg = Registry("backbones")
    reg.add(Entry("timm:*", lambda name, **kw: ("family", name), "timm", "backbones"))
    reg.add(Entry("timm:x", _factory, "one", "backbones"))
    reg.add(Entry("timm:x", _factory, "two", "backbones"))
    for name in ("timm:x", "timm:x@random", "timm:x@a@b"):
        with pytest.raises(DuplicateNameError) as excinfo:
            reg.get(name)
        assert str(excinfo.value).startswith("backbone 'timm:x' is registered by ? (plugin"
                                             " 'one') and ? (plugin 'two')")
    assert reg.create("timm:y@random") == ("family", "timm:y@random")
    assert "timm:x" not in reg.names() and len(reg) == 1


def test_tag_is_cut_at_the_first_at_sign():
    """Catches the tag split from the right: 'timm:x@a@b' must resolve through 'timm:x'."""
    reg = _named("timm:x")
    assert reg.get("timm:x@a@b").name == "timm:x"
    assert reg.create("timm:x@a@b") == "timm:x@a@b"  # the factory gets the full name


def test_family_selection_picks_the_most_specific_pattern():
    """Catches the first (or the least specific) matching family winning over a longer
    one, in either registration order."""
    for order in (("timm:*", "timm:efficientnet*", "*"), ("*", "timm:efficientnet*", "timm:*")):
        reg = _named(*order)
        assert reg.get("timm:efficientnet_b0").name == "timm:efficientnet*"
        assert reg.get("timm:efficientnet_b0@random").name == "timm:efficientnet*"
        assert reg.get("timm:resnet18").name == "timm:*"
        assert reg.get("hf:bert").name == "*"


def test_families_match_the_name_without_its_tag():
    """Catches the family pattern matched against the tagged name: 'hf:*-base' must serve
    'hf:bert-base@random'."""
    reg = _named("hf:*-base")
    assert reg.get("hf:bert-base@random").name == "hf:*-base"
    assert "hf:bert-large" not in reg


def test_is_pattern_recognises_every_wildcard():
    """Catches a wildcard character missing from the pattern test."""
    assert [Entry(n, _factory, "p", "tasks").is_pattern
            for n in ("csv:*", "a?c", "x[ab]", "digits")] == [True, True, True, False]


def test_natural_key_and_registry_order():
    """Catches digits compared as text ('lite10' before 'lite2') and case-sensitive order."""
    assert natural_key("Lite10b2") == ["lite", 10, "b", 2, ""]
    reg = _named("b10", "B2", "a10", "a9", "A1")
    assert reg.names() == ["A1", "a9", "a10", "B2", "b10"]
    assert [e.name for e in reg] == reg.names()


def test_names_filter_by_pattern():
    """Catches a pattern ignored, or an empty pattern filtering everything out."""
    reg = _named("timm:a", "timm:b", "raw:pixels", "timm:*")
    assert reg.names() == reg.names(None) == reg.names("") == [
        "raw:pixels", "timm:*", "timm:a", "timm:b"]
    assert reg.names("timm:?") == ["timm:*", "timm:a", "timm:b"]
    assert reg.names("raw:*") == ["raw:pixels"]
    assert reg.names("nothing*") == []


def test_unknown_name_message_exact():
    """Catches a changed message: kind in singular, the suggestion, the list of names in
    natural order and the pointer to `transferlab list`."""
    with pytest.raises(UnknownNameError) as excinfo:
        _registry().get("raw:pixel")
    assert str(excinfo.value) == (
        "unknown backbone 'raw:pixel'. Did you mean 'raw:pixels'? Available: raw:pixels,"
        " timm:*, timm:efficientnet_lite0 (see `transferlab list backbones`)")


def test_unknown_name_in_an_empty_registry():
    """Catches an empty 'Available:' instead of '(none)', and a hint out of nothing."""
    with pytest.raises(UnknownNameError) as excinfo:
        Registry("methods").get("knn")
    assert str(excinfo.value) == (
        "unknown method 'knn'. Available: (none) (see `transferlab list methods`)")


def test_unknown_name_suggests_up_to_three_close_names():
    """Catches the number of suggestions or the similarity cutoff (0.5) changing."""
    with pytest.raises(UnknownNameError) as excinfo:
        _named("lora", "lore", "lorb", "lorc", "zzz", kind="methods").get("lorx")
    assert "Did you mean 'lore', 'lorc', 'lorb'? Available:" in str(excinfo.value)
    with pytest.raises(UnknownNameError) as excinfo:  # ratio exactly 0.5: still suggested
        _named("abxy", kind="methods").get("abcd")
    assert "Did you mean 'abxy'?" in str(excinfo.value)
    with pytest.raises(UnknownNameError) as excinfo:  # ratio 0.25: not suggested
        _named("axyz", kind="methods").get("abcd")
    assert "Did you mean" not in str(excinfo.value)


def test_unknown_name_lists_at_most_twelve_names():
    """Catches the list cut at the wrong length or the ', ...' marker missing/added."""
    names = [f"t{i}" for i in range(1, 14)]
    with pytest.raises(UnknownNameError) as excinfo:
        _named(*names, kind="tasks").get("zzzz")
    assert str(excinfo.value) == (
        "unknown task 'zzzz'. Available: " + ", ".join(names[:12]) + ", ..."
        " (see `transferlab list tasks`)")
    with pytest.raises(UnknownNameError) as excinfo:
        _named(*names[:12], kind="tasks").get("zzzz")
    assert str(excinfo.value).endswith("t11, t12 (see `transferlab list tasks`)")


def test_registries_of_a_kind():
    """Catches a bad kind answered with some registry (or an AttributeError) instead of a
    message listing the kinds."""
    registries = Registries()
    for kind in ("backbones", "tasks", "methods", "objectives", "executors", "scores"):
        assert registries.of(kind) is getattr(registries, kind)
        assert registries.of(kind).kind == kind
    with pytest.raises(UnknownNameError) as excinfo:
        registries.of("bogus")
    assert str(excinfo.value) == (
        "unknown kind 'bogus'; choose one of backbones, tasks, methods, objectives, executors,"
        " scores, strategies")
    with pytest.raises(UnknownNameError):
        registries.of("__init__")


def test_entry_describe_keeps_json_info_and_drops_validate():
    """Catches describe() leaking the validate callable (or a non-JSON value) into
    `transferlab list --json`, or dropping a JSON-friendly one."""
    entry = Entry("x", _factory, "plug", "backbones", summary="an x",
                  params=(Param("size", int, 8, "pixels"),),
                  info={"validate": lambda name: None, "modality": "image", "dim": 3,
                        "scale": 0.5, "fast": True, "none": None, "tags": ["a"],
                        "pair": (1, 2), "extra": {"k": 1}, "object": object()})
    assert entry.describe() == {
        "name": "x", "plugin": "plug", "distribution": None, "summary": "an x",
        "params": [{"name": "size", "type": "int", "default": 8, "help": "pixels"}],
        "modality": "image", "dim": 3, "scale": 0.5, "fast": True, "none": None,
        "tags": ["a"], "pair": (1, 2), "extra": {"k": 1},
    }
    named = Entry("y", _factory, "plug", "backbones", info={"validate": "text"})
    assert named.describe() == {"name": "y", "plugin": "plug", "distribution": None,
                                "summary": "", "params": []}


def test_entry_validate_calls_the_registered_check_and_resolves_params():
    """Catches Entry.validate skipping the plugin's validate callable (a bad family name
    would then only fail when the cell runs), and params resolved under the wrong owner."""
    seen = []

    def check(name):
        seen.append(name)
        if name.endswith("bad"):
            raise UnknownNameError(f"no model {name!r}")

    built = []
    entry = Entry("timm:*", lambda name, **kw: built.append(name), "timm", "backbones",
                  params=(Param("size", int, 8, min=1),), info={"validate": check})
    assert entry.validate("timm:good", {"size": "4"}) == {"size": 4}
    assert entry.validate("timm:good") == {"size": 8}
    with pytest.raises(UnknownNameError, match="no model 'timm:bad'"):
        entry.validate("timm:bad")
    assert seen == ["timm:good", "timm:good", "timm:bad"] and built == []
    with pytest.raises(ParamError) as excinfo:
        entry.validate("timm:good@random", {"size": 0})
    assert str(excinfo.value) == "timm:good@random: parameter size=0 must be >= 1"
    plain = Entry("y", _factory, "p", "backbones", info={"validate": "not callable"})
    assert plain.validate("y") == {}


def test_entry_create_passes_the_full_name_and_resolved_params():
    """Catches create() passing raw strings or defaults missing to the factory."""
    entry = Entry("x", lambda name, **kw: (name, kw), "p", "backbones",
                  params=(Param("size", int, 8), Param("flag", bool, False)))
    assert entry.create("x@t", {"size": "3"}) == ("x@t", {"size": 3, "flag": False})
    with pytest.raises(ParamError, match=r"^x@t: unknown parameter 'sise'"):
        entry.create("x@t", {"sise": 3})


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_empty_or_non_string_name_is_refused(name):
    """Catches blank or non-string names accepted (they could never be looked up)."""
    reg = Registry("methods")
    with pytest.raises(RegistrationError) as excinfo:
        reg.add(Entry(name, _factory, "plug", "methods"))  # type: ignore[arg-type]
    assert str(excinfo.value) == (
        f"plugin 'plug' registered a method with an empty or non-string name {name!r};"
        " pass a non-empty string")
    assert len(reg) == 0


def test_non_callable_factory_is_refused():
    reg = Registry("methods")
    with pytest.raises(RegistrationError) as excinfo:
        reg.add(Entry("x", 42, "plug", "methods"))  # type: ignore[arg-type]
    assert str(excinfo.value) == (
        "plugin 'plug' registered method 'x' with a factory that is not callable (int)")
    assert "x" not in reg


def test_third_registration_of_a_conflicted_name_lists_every_owner():
    """Catches a third plugin's registration of an already-conflicted name winning silently
    or its owner left out of the message."""
    reg = Registry("tasks")
    for plugin in "abc":
        reg.add(Entry("digits", _factory, plugin, "tasks"))
    with pytest.raises(DuplicateNameError) as excinfo:
        reg.get("digits")
    assert str(excinfo.value).startswith(
        "task 'digits' is registered by ? (plugin 'a') and ? (plugin 'b') and ? (plugin 'c');")
    assert len(reg) == 0 and reg.names() == []


def test_conflicts_is_a_copy_and_membership_needs_a_string():
    """Catches callers able to clear the registry's conflicts through the property, and
    `in` failing (or answering True) for non-string keys."""
    reg = _registry()
    reg.add(Entry("raw:pixels", _factory, "other", "backbones"))
    reg.conflicts.clear()
    assert list(reg.conflicts) == ["raw:pixels"]
    assert 3 not in reg and None not in reg
    assert "timm:efficientnet_lite0" in reg and "timm:anything@random" in reg
    assert len(_registry()) == 3
