"""Nested settings (``NAME[key=value,...]``), objectives validated with the other parameters,
and task views (subsamples and class subsets) from ``-t``, suites and the Python API."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest

from transferlab.api import Split, Task
from transferlab.cli import cli
from transferlab.errors import ParamError, UnknownNameError
from transferlab.harness.cell import Cell, validate_cell
from transferlab.settings import Setting, parse_setting
from transferlab.views import TaskView, create_task, validate_task

# -- the syntax -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "name", "params"), [
    ("cross-entropy", "cross-entropy", {}),
    (" cross-entropy[label_smoothing=0.1] ", "cross-entropy", {"label_smoothing": "0.1"}),
    ("kd[teacher=timm:x[img_size=128,a=1],t=2]", "kd",
     {"teacher": "timm:x[img_size=128,a=1]", "t": "2"}),
    ("digits[classes=0+1, fraction=0.5]", "digits", {"classes": "0+1", "fraction": "0.5"}),
    ("w[terms=a:1+b:0.5,]", "w", {"terms": "a:1+b:0.5"}),
])
def test_parse_setting(text, name, params):
    assert parse_setting(text) == Setting(name, params)


def test_canonical_spelling_sorts_keys_at_every_depth():
    """Two spellings of one setting must make one cell key."""
    one = parse_setting("kd[teacher=timm:x[img_size=128,a=1],t=2]").canonical()
    two = parse_setting("kd[t=2,teacher=timm:x[a=1,img_size=128]]").canonical()
    assert one == two == "kd[t=2,teacher=timm:x[a=1,img_size=128]]"
    assert Setting("x", {"flag": True, "items": [1, 2]}).canonical() == "x[flag=true,items=1+2]"
    assert str(Setting("plain")) == "plain"


def test_toml_inline_tables_are_settings_too():
    assert parse_setting({"name": "cross-entropy", "label_smoothing": 0.1}) == Setting(
        "cross-entropy", {"label_smoothing": 0.1})
    with pytest.raises(ParamError, match="needs a 'name' key"):
        parse_setting({"label_smoothing": 0.1})


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty; give a registered name"),
    ("a[b]", "'b' in 'a[b]' is not key=value"),
    ("a[b=1", "must end with ']'"),
    ("[a=1]", "has parameters but no name"),
    ("a]", "has ']' without '['"),
    ("a[b=1]]", "unbalanced ']'"),
    ("a[b=[1]", "unbalanced '['"),
    ("a[b=1,b=2]", "'b' is given twice"),
    (3, "expected NAME[key=value,...]"),
])
def test_malformed_settings_fail_in_one_line_naming_the_fix(text, message):
    with pytest.raises(ParamError) as excinfo:
        parse_setting(text, "parameter objective")
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert str(excinfo.value).startswith("parameter objective")


# -- objectives validated with the other parameters -----------------------------------------


TRAINABLE = "timm:test_resnet@random"  # a backbone with weights (finetune refuses raw:pixels)


def test_objective_settings_are_validated_and_canonical(registries):
    cell = validate_cell(Cell(TRAINABLE, "digits", "finetune", {
        "objective": "cross-entropy[ label_smoothing = 0.10 ]"}), registries)
    assert cell.params["objective"] == "cross-entropy[label_smoothing=0.1]"
    default = validate_cell(Cell(TRAINABLE, "digits", "finetune", {
        "objective": "cross-entropy[label_smoothing=0.0]"}), registries)
    plain = validate_cell(Cell(TRAINABLE, "digits", "finetune"), registries)
    assert default.params["objective"] == plain.params["objective"] == "cross-entropy"
    assert default.key == plain.key  # a default spelled out is the same cell


def test_toml_table_settings_are_canonical_bug_table_became_its_python_text(registries):
    """Bug caught: `objective = { name = "cross-entropy", label_smoothing = 0.1 }` in a suite
    was turned into its Python text by the string-typed Param before validation and failed
    with "unknown objective"; the table is now the setting, stored in its canonical spelling
    so the cell key does not depend on which spelling was used."""
    import tomllib

    from transferlab.harness.suite import parse_suite

    suite = parse_suite(tomllib.loads("""
        tasks = ["digits"]
        backbones = ["timm:test_resnet@random"]
        [[methods]]
        name = "finetune"
        params.objective = "cross-entropy[label_smoothing=0.1]"
        [[methods]]
        name = "finetune"
        params.objective = { name = "cross-entropy", label_smoothing = 0.1 }
        [[methods]]
        name = "finetune"
        params.objective = { name = "cross-entropy", label_smoothing = 0.0 }
        [[methods]]
        name = "finetune"
        params.objective = { name = "weighted-sum", terms = ["cross-entropy:1", "l2:1"] }
    """))
    text, table, default, listed = (validate_cell(c, registries) for c in suite.cells)
    assert table.params["objective"] == text.params["objective"] == (
        "cross-entropy[label_smoothing=0.1]")
    assert table.key == text.key  # one cell, whichever spelling
    assert default.params["objective"] == "cross-entropy"  # a default spelled out is dropped
    assert listed.params["objective"] == "weighted-sum[terms=cross-entropy:1+l2:1]"
    method = registries.methods.create(
        "finetune", {"objective": {"name": "cross-entropy", "label_smoothing": 0.1}})
    assert method.hparams["objective"] == "cross-entropy[label_smoothing=0.1]"
    assert Setting("kd", {"teacher": {"name": "timm:x", "img_size": 128}}).canonical() == (
        "kd[teacher=timm:x[img_size=128]]")  # tables nest


@pytest.mark.parametrize(("params", "message"), [
    ({"objective": {"label_smoothing": 0.1}},
     "finetune: parameter objective: a table setting needs a 'name' key"),
    ({"objective": {"name": "nosuch"}}, "unknown objective 'nosuch'"),
    ({"objective": {"name": "cross-entropy", "label_smoothing": 2}}, "must be <= 0.999"),
])
def test_bad_table_settings_fail_at_validation(registries, params, message):
    with pytest.raises((ParamError, UnknownNameError), match=re.escape(message)):
        validate_cell(Cell("raw:pixels", "digits", "finetune", params), registries)


def test_a_table_for_a_parameter_that_is_not_a_setting_is_an_error(registries):
    """str() of a table would otherwise pass silently as a string value."""
    with pytest.raises(ParamError, match=re.escape(
            "knn: parameter metric expects str, got the table {'name': 'cosine'}")):
        validate_cell(Cell("raw:pixels", "digits", "knn", {"metric": {"name": "cosine"}}),
                      registries)


@pytest.mark.parametrize(("objective", "error", "message"), [
    ("nosuch", UnknownNameError, "unknown objective 'nosuch'"),
    ("cross-entropy[weight=1]", ParamError, "unknown parameter 'weight'"),
    ("cross-entropy[label_smoothing=2]", ParamError, "must be <= 0.999"),
    ("cross-entropy[label_smoothing", ParamError, "must end with ']'"),
])
def test_bad_objectives_fail_at_validation(registries, objective, error, message):
    with pytest.raises(error, match=message):
        validate_cell(Cell("raw:pixels", "digits", "finetune", {"objective": objective}),
                      registries)


def test_cli_refuses_a_bad_objective_before_loading_and_stores_nothing(runner, tmp_path):
    """Bug caught: `-p objective=nosuch` passed validation, loaded the backbone, failed in the
    cell and left an error row in the database."""
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["run", "-b", "timm:efficientnet_lite0", "-t", "digits", "-m",
                                 "finetune", "-p", "objective=nosuch", "--db", str(db)])
    assert result.exit_code != 0
    assert "unknown objective 'nosuch'" in result.output
    assert not db.exists() or sqlite3.connect(db).execute(
        "SELECT COUNT(*) FROM results").fetchone() == (0,)


# -- task views -----------------------------------------------------------------------------


class Letters(Task):
    """Three classes, 30 training rows (10 each, in class order), 6 test rows."""

    modality = "text"

    @property
    def label_names(self) -> list[str]:
        return ["a", "b", "c"]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        n = 10 if split == "train" else 2
        labels = np.repeat(np.arange(3), n)
        return Split([f"{split}-{i}" for i in range(len(labels))], labels)


def test_fraction_subsamples_train_per_class_seeded_and_keeps_test():
    view = TaskView(Letters("letters"), fraction=0.3, seed=1)
    train = view.split("train")
    assert len(train) == 9 and np.bincount(train.labels).tolist() == [3, 3, 3]
    assert len(view.split("test")) == 6  # never subsampled
    again = TaskView(Letters("letters"), fraction=0.3, seed=1).split("train")
    other = TaskView(Letters("letters"), fraction=0.3, seed=2).split("train")
    assert again.inputs == train.inputs and other.inputs != train.inputs
    tiny = TaskView(Letters("letters"), fraction=0.01).split("train")
    assert np.bincount(tiny.labels).tolist() == [1, 1, 1]  # at least one per class


def test_k_per_class_and_class_subsets_relabel_every_split():
    view = TaskView(Letters("letters"), k_per_class=2)
    assert np.bincount(view.split("train").labels).tolist() == [2, 2, 2]
    subset = TaskView(Letters("letters"), classes="c+a")
    assert subset.label_names == ["c", "a"]
    test = subset.split("test")
    assert test.inputs == ["test-0", "test-1", "test-4", "test-5"]
    assert test.labels.tolist() == [1, 1, 0, 0]
    assert TaskView(Letters("letters"), classes="0+2").split("train").labels.max() == 1


def test_views_have_their_own_fingerprints():
    base = Letters("letters")
    prints = {base.fingerprint(), TaskView(base, fraction=0.5).fingerprint(),
              TaskView(base, fraction=0.5, seed=1).fingerprint(),
              TaskView(base, k_per_class=2).fingerprint(),
              TaskView(base, classes="0+1").fingerprint()}
    assert len(prints) == 5
    assert TaskView(base, fraction=0.5).fingerprint() == TaskView(
        Letters("letters"), fraction=0.5).fingerprint()


def test_default_task_fingerprint_hashes_the_data():
    """Bug caught: the default fingerprint was the name, so a task built in code with other
    data read stale cached features."""

    class Shifted(Letters):
        def _load_split(self, split):
            data = super()._load_split(split)
            return Split([x + "!" for x in data.inputs], data.labels)

    assert Letters("same").fingerprint() != Shifted("same").fingerprint()
    assert Letters("same").fingerprint() == Letters("same").fingerprint()


@pytest.mark.parametrize(("name", "message"), [
    ("digits[fraction=0]", "must be > 0"),
    ("digits[fraction=1.5]", "must be <= 1.0"),
    ("digits[fraction=0.5,k_per_class=3]", "not both"),
    ("digits[size=3]", "unknown parameter 'size'"),
    ("nosuch[fraction=0.5]", "unknown task 'nosuch'"),
])
def test_bad_views_fail_at_validation(registries, name, message):
    with pytest.raises((ParamError, UnknownNameError), match=message):
        validate_task(name, registries)


def test_views_from_the_registry_and_in_cells(registries):
    assert validate_task("digits[seed=1,fraction=0.1]", registries) == (
        "digits[fraction=0.1,seed=1]")
    task = create_task("digits[classes=3+1]", registries)
    assert task.label_names == ["3", "1"] and set(task.split("test").labels) == {0, 1}
    one = validate_cell(Cell("raw:pixels", "digits[seed=1,fraction=0.1]", "knn"), registries)
    two = validate_cell(Cell("raw:pixels", "digits[fraction=0.1,seed=1]", "knn"), registries)
    assert one.key == two.key and one.task == "digits[fraction=0.1,seed=1]"
    with pytest.raises(ParamError, match=r"class 12 is outside 0\.\.9"):
        create_task("digits[classes=1+12]", registries)
