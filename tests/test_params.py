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


def _error(param: Param, value) -> str:
    with pytest.raises(ParamError) as excinfo:
        param.coerce(value, "owner")
    return str(excinfo.value)


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


# -- bounds ---------------------------------------------------------------------------------

INT_RANGE = Param("n", int, 5, min=1, max=10)
FLOAT_RANGE = Param("x", float, 0.5, min=0.0, max=1.0)


@pytest.mark.parametrize(("param", "value", "expected"), [
    (INT_RANGE, "1", 1), (INT_RANGE, "10", 10), (INT_RANGE, 1, 1), (INT_RANGE, 10, 10),
    (FLOAT_RANGE, "0.0", 0.0), (FLOAT_RANGE, "1.0", 1.0), (FLOAT_RANGE, 0, 0.0),
    (FLOAT_RANGE, 1, 1.0),
])
def test_bounds_are_inclusive(param, value, expected):
    """Catches a bound check that rejects the limit itself (> vs >=, < vs <=)."""
    result = param.coerce(value, "owner")
    assert result == expected and type(result) is param.type


@pytest.mark.parametrize(("param", "value", "message"), [
    (INT_RANGE, "0", "owner: parameter n=0 must be >= 1"),
    (INT_RANGE, "11", "owner: parameter n=11 must be <= 10"),
    (INT_RANGE, -3, "owner: parameter n=-3 must be >= 1"),
    (FLOAT_RANGE, "-1e-9", "owner: parameter x=-1e-09 must be >= 0.0"),
    (FLOAT_RANGE, "1.000001", "owner: parameter x=1.000001 must be <= 1.0"),
    (FLOAT_RANGE, 2, "owner: parameter x=2.0 must be <= 1.0"),
])
def test_just_past_a_bound_fails_with_the_exact_message(param, value, message):
    """Catches a max that is never enforced (and a min that is not), and a message that
    does not show the converted value and the limit."""
    assert _error(param, value) == message


def test_one_sided_bounds_leave_the_other_side_open():
    """Catches a missing bound treated as 0 (or as the other bound)."""
    only_max = Param("m", int, 0, max=3)
    assert only_max.coerce("-100", "o") == -100 and only_max.coerce("3", "o") == 3
    assert _error(only_max, "4") == "owner: parameter m=4 must be <= 3"
    only_min = Param("m", float, 0.0, min=-1.0)
    assert only_min.coerce("1e9", "o") == 1e9
    assert _error(only_min, "-1.5") == "owner: parameter m=-1.5 must be >= -1.0"
    assert Param("free", float, 0.0).coerce("-1e300", "o") == -1e300


# -- None and nullable ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "none", "null", "None", " NULL ", "nOnE"])
def test_nullable_accepts_none_and_its_spellings(value):
    """Catches nullable parameters that reject "none"/"null" (any case, padded) or None."""
    assert Param("steps", int, None, nullable=True).coerce(value, "o") is None


def test_not_nullable_refuses_none():
    """Catches None slipping through a non-nullable parameter (or becoming the string
    'None'), and "none" read as None where it is not allowed."""
    assert _error(Param("k", int, 5), None) == "owner: parameter k may not be empty"
    assert _error(Param("s", str, "a"), None) == "owner: parameter s may not be empty"
    assert _error(Param("k", int, 5), "none") == (
        "owner: parameter k expects int, got 'none' (e.g. -p k=5)")
    assert Param("s", str, "a").coerce("none", "o") == "none"  # a string is a string


def test_nullable_value_still_checks_bounds_and_type():
    """Catches nullable turning off every other check."""
    steps = Param("steps", int, None, min=1, nullable=True)
    assert steps.coerce("4", "o") == 4
    assert _error(steps, "0") == "owner: parameter steps=0 must be >= 1"
    assert _error(steps, "nothing") == (
        "owner: parameter steps expects int, got 'nothing' (e.g. -p steps=None)")


# -- conversion -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("1", True), ("true", True), ("yes", True), ("on", True),
    ("0", False), ("false", False), ("no", False), ("off", False),
    ("TRUE", True), (" Yes ", True), ("On", True), ("OFF", False), (" False\t", False),
    (True, True), (False, False), (1, True), (0, False),
])
def test_every_bool_spelling(text, expected):
    """Catches a missing or swapped spelling, and case or whitespace sensitivity."""
    assert Param("flag", bool, False).coerce(text, "o") is expected


@pytest.mark.parametrize("text", ["maybe", "", "2", "tru", "y", "n", 2])
def test_other_bool_spellings_fail(text):
    """Catches bool('anything') == True sneaking in as the conversion."""
    assert _error(Param("flag", bool, False), text) == (
        f"owner: parameter flag expects bool, got {text!r} (e.g. -p flag=False)")


@pytest.mark.parametrize(("value", "expected"), [
    (" 3 ", 3), ("3", 3), ("-2", -2), (3, 3), (3.0, 3), (-4.0, -4),
])
def test_int_accepts_padded_text_and_whole_floats(value, expected):
    """Catches int() without strip, and whole floats (3.0 from a TOML suite) rejected."""
    result = Param("k", int, 5).coerce(value, "o")
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [2.5, "2.5", "3.0", "x", "", True, False, float("nan")])
def test_int_rejects_fractions_text_and_bools(value):
    """Catches int(2.5) == 2 silently truncating, and True/False accepted as 1/0."""
    assert _error(Param("k", int, 5), value) == (
        f"owner: parameter k expects int, got {value!r} (e.g. -p k=5)")


@pytest.mark.parametrize(("value", "expected"), [
    ("0.5", 0.5), (" 2 ", 2.0), (3, 3.0), ("1e-3", 1e-3), ("-1e300", -1e300),
])
def test_float_conversion(value, expected):
    result = Param("C", float, 1.0).coerce(value, "o")
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", [True, False, "nan", "NaN", float("nan"), "abc", "",
                                   "inf", "-inf", float("inf"), "1e999"])
def test_float_rejects_bools_nan_and_text(value):
    """Catches True accepted as 1.0 and NaN accepted (it passes every bound check)."""
    assert _error(Param("C", float, 1.0), value) == (
        f"owner: parameter C expects float, got {value!r} (e.g. -p C=1.0)")


def test_other_types_convert_with_the_type_itself():
    assert Param("name", str, "a").coerce(3, "o") == "3"
    assert Param("name", str, "a").coerce(" padded ", "o") == " padded "


# -- choices --------------------------------------------------------------------------------


def test_choices_are_checked_after_conversion():
    """Catches choices compared before conversion or not at all, and a message that does not
    list every choice."""
    level = Param("level", int, 1, choices=(1, 2, 3))
    assert level.coerce(" 2 ", "o") == 2
    assert _error(level, "4") == "owner: parameter level=4 is not one of 1, 2, 3"
    metric = DECLARED[3]
    assert metric.coerce("euclidean", "o") == "euclidean"
    assert _error(metric, "Cosine") == (
        "owner: parameter metric='Cosine' is not one of cosine, euclidean")


# -- describe -------------------------------------------------------------------------------


def test_describe_lists_choices_only_when_there_are_some():
    """Catches describe() dropping a field, reporting the type object instead of its name,
    or emitting a choices key for free parameters."""
    assert Param("k", int, 5, "neighbours").describe() == {
        "name": "k", "type": "int", "default": 5, "help": "neighbours"}
    assert Param("k", int, 5, "neighbours", min=1, max=9).describe() == {
        "name": "k", "type": "int", "default": 5, "help": "neighbours", "min": 1, "max": 9}
    assert DECLARED[3].describe() == {"name": "metric", "type": "str", "default": "cosine",
                                      "help": "", "choices": ["cosine", "euclidean"]}
    assert Param("flag", bool, None, nullable=True).describe() == {
        "name": "flag", "type": "bool", "default": None, "help": "", "nullable": True}
    assert Param("lr", float, 1.0, gt=0.0, lt=2.0, refers_to="x").describe() == {
        "name": "lr", "type": "float", "default": 1.0, "help": "", "gt": 0.0, "lt": 2.0,
        "refers_to": "x"}


def test_exclusive_bounds_at_and_just_past_each_limit():
    """Param can say "strictly greater than": gt/lt reject the bound itself."""
    param = Param("lr", float, 1.0, gt=0.0, lt=1.0)
    assert param.coerce("1e-12", "o") == 1e-12 and param.coerce("0.999", "o") == 0.999
    assert _error(param, "0") == "owner: parameter lr=0.0 must be > 0.0"
    assert _error(param, "-0.1") == "owner: parameter lr=-0.1 must be > 0.0"
    assert _error(param, "1") == "owner: parameter lr=1.0 must be < 1.0"


def test_constraint_text_for_transferlab_list():
    assert Param("k", int, 5).constraint_text() == ""
    assert Param("k", int, 5, min=1, max=9).constraint_text() == ">= 1, <= 9"
    assert Param("lr", float, 1.0, gt=0, lt=2, nullable=True).constraint_text() == (
        "> 0, < 2, or none")
    assert DECLARED[3].constraint_text() == "one of cosine, euclidean"


def test_param_defaults():
    """Catches a changed dataclass default (help, choices, bounds, nullable)."""
    param = Param("x", int, 1)
    assert (param.help, param.choices, param.min, param.max, param.nullable) == (
        "", None, None, None, False)


# -- resolve_params -------------------------------------------------------------------------


def test_resolve_without_given_returns_the_defaults_in_declared_order():
    """Catches None/empty ``given`` failing, and defaults missing from the result."""
    defaults = {"C": 1.0, "k": 5, "standardize": True, "metric": "cosine"}
    for given in (None, {}):
        resolved = resolve_params(DECLARED, given, "m")
        assert resolved == defaults and list(resolved) == ["C", "k", "standardize", "metric"]
    assert resolve_params((), None, "m") == {}


def test_resolve_coerces_given_values_and_keeps_the_rest():
    """Catches given values returned raw (strings) or dropped."""
    given = {"k": " 7 "}
    resolved = resolve_params(DECLARED, given, "m")
    assert resolved == {"C": 1.0, "k": 7, "standardize": True, "metric": "cosine"}
    assert given == {"k": " 7 "}  # the caller's mapping is not modified


def test_unknown_parameter_with_a_close_match():
    """Catches a missing hint, the wrong owner, or an unsorted list of valid names."""
    with pytest.raises(ParamError) as excinfo:
        resolve_params(DECLARED, {"metrc": "x"}, "knn")
    assert str(excinfo.value) == ("knn: unknown parameter 'metrc'. Did you mean 'metric'?"
                                  " Valid parameters: C, k, metric, standardize")


def test_unknown_parameter_without_a_close_match():
    """Catches a hint invented when nothing is close."""
    with pytest.raises(ParamError) as excinfo:
        resolve_params(DECLARED, {"zzzz": "x"}, "knn")
    assert str(excinfo.value) == (
        "knn: unknown parameter 'zzzz'. Valid parameters: C, k, metric, standardize")


def test_unknown_parameter_when_none_are_declared():
    """Catches an empty 'Valid parameters:' list instead of '(none)'."""
    with pytest.raises(ParamError) as excinfo:
        resolve_params((), {"k": "1"}, "raw:pixels")
    assert str(excinfo.value) == (
        "raw:pixels: unknown parameter 'k'. Valid parameters: (none)")


def test_unknown_parameter_is_reported_before_bad_values():
    """Catches the first unknown key not being the one reported."""
    with pytest.raises(ParamError, match=r"^m: unknown parameter 'zz'"):
        resolve_params(DECLARED, {"k": "0", "zz": 1, "yy": 2}, "m")


# -- parse_assignments ----------------------------------------------------------------------


def test_parse_assignments():
    assert parse_assignments(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ParamError, match="key=value"):
        parse_assignments(["novalue"])


def test_parse_assignments_edge_cases():
    """Catches splitting on the last '=' (values may contain '='), unstripped keys or
    values, an empty value refused, and later assignments not overriding earlier ones."""
    assert parse_assignments([]) == {}
    assert parse_assignments(["k="]) == {"k": ""}
    assert parse_assignments(["url=a=b=c"]) == {"url": "a=b=c"}
    assert parse_assignments(["  key  =  spaced value  "]) == {"key": "spaced value"}
    assert parse_assignments(["a=1", "a=2"]) == {"a": "2"}
    assert parse_assignments(iter(["x=1"])) == {"x": "1"}


@pytest.mark.parametrize("pair", ["=x", " =x", "novalue", "", "   "])
def test_parse_assignments_refuses_a_missing_key_or_equals_sign(pair):
    """Catches an empty (or blank) key accepted as the parameter ''."""
    with pytest.raises(ParamError) as excinfo:
        parse_assignments(["ok=1", pair])
    assert str(excinfo.value) == (
        f"parameter {pair!r} is not of the form key=value (e.g. -p C=0.5)")
