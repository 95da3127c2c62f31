"""Registries: exact names, family patterns, @tags, natural sort, helpful errors."""

from __future__ import annotations

import pytest

from transferlab.errors import DuplicateNameError, RegistrationError, UnknownNameError
from transferlab.params import Param
from transferlab.registry import Entry, Registry, natural_key


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


def test_duplicate_is_error_naming_both_plugins():
    reg = _registry()
    with pytest.raises(DuplicateNameError, match="'baselines' and 'other'"):
        reg.add(Entry("raw:pixels", lambda name: name, "other", "backbones"))
    with pytest.raises(DuplicateNameError):
        reg.get("raw:pixels")  # the conflict is never resolved silently
    assert reg.conflicts == {"raw:pixels": ["baselines", "other"]}


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
    assert reg.get("x").validate("x", {"size": "4"}) == {"size": 4}
    assert built == []
