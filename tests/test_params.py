"""Typed hyper-parameters: parsing, coercion, bounds and helpful errors."""

from __future__ import annotations

import pytest

from transferlab.errors import ParamError
from transferlab.params import Param, parse_assignments, resolve_params

DECLARED = (
    Param("C", float, 1.0, min=1e-9),
    Param("k", int, 5, min=1),
    Param("standardize", bool, True),
    Param("metric", str, "cosine", choices=("cosine", "euclidean")),
)


def test_defaults_and_coercion_from_strings():
    resolved = resolve_params(DECLARED, {"C": "0.5", "k": "3", "standardize": "no"}, "m")
    assert resolved == {"C": 0.5, "k": 3, "standardize": False, "metric": "cosine"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"C": "abc"}, "parameter C expects float, got 'abc'"),
        ({"k": "2.5"}, "parameter k expects int"),
        ({"k": "0"}, "must be >= 1"),
        ({"C": "nan"}, "parameter C expects float"),
        ({"standardize": "maybe"}, "expects bool"),
        ({"metric": "manhattan"}, "is not one of cosine, euclidean"),
        ({"kk": "1"}, "unknown parameter 'kk'. Did you mean 'k'?"),
    ],
)
def test_bad_values_fail_with_one_clear_line(given, message):
    with pytest.raises(ParamError) as excinfo:
        resolve_params(DECLARED, given, "knn")
    text = str(excinfo.value)
    assert message in text and "\n" not in text and text.startswith("knn")


def test_parse_assignments():
    assert parse_assignments(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ParamError, match="key=value"):
        parse_assignments(["novalue"])
