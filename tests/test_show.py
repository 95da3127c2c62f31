"""Provenance per result (plugin distributions, git revision, data fingerprints) and
``transferlab show``, which prints one stored result whole."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

import transferlab
from transferlab.cli import cli
from transferlab.harness import environment as env_module
from transferlab.harness.cell import Cell, CellResult, run_cell
from transferlab.harness.environment import environment, git_revision
from transferlab.harness.store import ResultsStore
from transferlab.views import create_task

ROOT = Path(__file__).resolve().parents[1]
NEEDS_GIT = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
CELL = Cell("raw:pixels", "digits", "ncm", {}, {"size": 8})


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           "-c", "commit.gpgsign=false", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny git repository with one committed file."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "tracked.txt").write_text("one\n")
    _git(repo, "add", "tracked.txt")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


# --- the git revision ------------------------------------------------------------------------


@NEEDS_GIT
def test_git_revision_of_this_checkout_is_git_rev_parse():
    """Bug caught: the revision read from the wrong folder (the current directory instead of
    the checkout holding the imported package) or as a full hash instead of the short one."""
    package = Path(transferlab.__file__).resolve().parent
    if not any((p / ".git").exists() for p in (package, *package.parents)):
        pytest.skip("transferlab is not imported from a git checkout")
    found = git_revision()
    assert found is not None
    assert found["commit"] == _git(package, "rev-parse", "--short", "HEAD")
    assert isinstance(found["dirty"], bool)
    assert git_revision(package) == {
        "commit": found["commit"],
        "dirty": bool(_git(package, "status", "--porcelain", "--untracked-files=no"))}
    assert environment("cpu")["git"] == found


def test_dirty_flag_follows_modified_tracked_files(repo):
    """Bugs caught: ``dirty`` always false (or always true), untracked files counting as
    uncommitted changes, and a folder the checkout does not track (a virtual environment
    inside some other project's checkout) reporting that checkout's revision."""
    head = _git(repo, "rev-parse", "--short", "HEAD")
    assert git_revision(repo) == {"commit": head, "dirty": False}
    (repo / "untracked.txt").write_text("new\n")
    assert git_revision(repo / "tracked.txt") == {"commit": head, "dirty": False}
    (repo / "tracked.txt").write_text("two\n")
    assert git_revision(repo) == {"commit": head, "dirty": True}
    _git(repo, "commit", "-q", "-am", "second")
    second = _git(repo, "rev-parse", "--short", "HEAD")
    assert second != head and git_revision(repo) == {"commit": second, "dirty": False}
    (repo / "venv" / "site").mkdir(parents=True)
    assert git_revision(repo / "venv" / "site") is None


def test_no_git_or_no_checkout_is_none_not_an_error(repo, tmp_path, monkeypatch):
    """Bugs caught: a missing git executable, a hanging git or a folder outside any checkout
    raising (failing every cell) instead of leaving the revision out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    assert git_revision(outside) is None
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_revision(repo) is None
    monkeypatch.undo()

    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout", 0))

    monkeypatch.setattr(env_module.subprocess, "run", hangs)
    assert git_revision(repo) is None
    monkeypatch.setattr(env_module, "git_revision", lambda path=None: None)
    assert "git" not in environment("cpu")


# --- provenance recorded by run_cell -----------------------------------------------------------


def test_a_result_records_plugins_git_and_data_fingerprints(registries):
    """Bugs caught: provenance without the distribution or version of the backbone's, task's
    or method's plugin, no git revision, and no (or the wrong) data fingerprint; for a
    domain-adaptation cell, the source task's fingerprint missing."""
    result = run_cell(CELL, registries, progress=False)
    assert result.status == "ok", result.error
    env = result.environment
    version = metadata.version("transferlab")
    for role, name in (("backbone", "raw:pixels"), ("task", "digits"), ("method", "ncm")):
        assert env["plugins"][role]["name"] == name
        assert env["plugins"][role]["distribution"] == "transferlab"
        assert env["plugins"][role]["version"] == version
    assert env["fingerprints"] == {"task": create_task("digits", registries).fingerprint()}
    assert env.get("git") == git_revision()
    assert "fingerprints" not in result.extra

    adapted = run_cell(replace(CELL, source_task="digits[fraction=0.5]"), registries,
                       progress=False)
    assert adapted.status == "ok", adapted.error
    assert adapted.environment["fingerprints"] == {
        "task": env["fingerprints"]["task"],
        "source_task": create_task("digits[fraction=0.5]", registries).fingerprint()}
    assert adapted.environment["fingerprints"]["source_task"] != env["fingerprints"]["task"]


def _regime_host():
    pytest.importorskip("torch")
    from conftest import entry_points_named
    from test_regimes import RegimePlugin  # the tiny backbone and two tiny tasks
    from transferlab.plugins import PluginHost

    host = PluginHost()
    host.load_entry_points(entry_points_named("parameter", "objectives", "continual"))
    host.add_plugin(RegimePlugin(), "show-test")
    return host


def test_a_continual_cell_records_every_task_fingerprint_and_show_prints_the_matrix(
        tmp_path, runner):
    """Bugs caught: a regime cell (whose tasks are built inside the regime) recording no
    fingerprints, or only the first task's, or leaving them in ``extra``; and ``show`` not
    printing a continual cell's accuracy matrix as a table."""
    from transferlab.plugins import use_host

    host = _regime_host()
    fast = {"max_steps": 2, "epochs": 5, "batch_size": 8, "val_fraction": 0.0, "patience": 0}
    cell = Cell("tiny:mlp", "", "finetune", fast, regime="continual",
                tasks=("tiny-a", "tiny-b"))
    with use_host(host):
        result = run_cell(cell, host.registries, progress=False)
    assert result.status == "ok", result.error
    tasks = [create_task(name, host.registries) for name in ("tiny-a", "tiny-b")]
    assert result.environment["fingerprints"] == {"task": tasks[0].fingerprint(),
                                                  "task1": tasks[1].fingerprint()}
    assert "fingerprints" not in result.extra and "accuracy_matrix" in result.extra
    db = tmp_path / "regime.sqlite"
    ResultsStore(db).add(result)
    out = runner.invoke(cli, ["show", "#1", "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert "| after \\ on | E0 | E1 |" in out.output and "E1 = tiny-b" in out.output
    assert "| task1 | " + tasks[1].fingerprint() in out.output
    assert "- regime: continual" in out.output


# --- transferlab show --------------------------------------------------------------------------


def _failed(cell: Cell) -> CellResult:
    return CellResult(cell=cell, status="error", error="RuntimeError: out of memory",
                      environment={"device": "cpu"}, finished_at="2024-01-01T00:00:00+00:00")


@pytest.fixture
def results(registries, tmp_path):
    """A results file: CELL failed once then succeeded (rows 1 and 2), another seed (row 3)."""
    db = tmp_path / "show.sqlite"
    store = ResultsStore(db)
    ok = run_cell(CELL, registries, progress=False)
    assert ok.status == "ok", ok.error
    store.add(_failed(ok.cell))
    store.add(ok)
    store.add(replace(ok, cell=replace(ok.cell, seed=1)))
    return db, ok.cell.key


def _show(runner, db, *args):
    return runner.invoke(cli, ["show", *args, "--db", str(db)])


def test_show_finds_the_latest_row_of_a_cell_by_key_prefix(results, runner):
    """Bugs caught: a prefix lookup showing the failed first run instead of the latest, not
    saying the cell has several rows, and columns (environment, fingerprints, costs) missing
    from the text."""
    db, key = results
    out = _show(runner, db, key[:8])
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("# Result #2: raw:pixels x digits x ncm")
    assert "- row 2 of 2 of this cell, the latest; --all prints every row\n" in text
    assert f"- cell key: {key}" in text and "- status: ok" in text
    for expected in ("- backbone params: grayscale=false, size=8", "- params: metric=cosine",
                     "- seed: 0", "| accuracy | 0.", "- fit: ", "- predict: ",
                     "- weights: 1,920 trainable of 1,920", "- peak memory: ",
                     "| backbone | raw:pixels | baselines | transferlab |",
                     "| task | digits | tasks | transferlab |", "### Data fingerprints",
                     "| numpy | "):
        assert expected in text, expected
    assert "## Error" not in text
    if git_revision() is not None:
        assert f"- git revision: {git_revision()['commit']}" in text
    assert _show(runner, db, key.upper()).output == text  # the whole key, any case


def test_show_by_row_id(results, runner):
    """Bugs caught: ``#ID`` read as a key prefix, ``--id`` ignored, and a failed row shown
    without its error."""
    db, key = results
    by_hash, by_option = _show(runner, db, "#1"), _show(runner, db, "--id", "1")
    assert by_hash.exit_code == 0, by_hash.output
    assert by_hash.output == by_option.output
    assert by_hash.output.startswith("# Result #1: ") and f"- cell key: {key}" in by_hash.output
    assert "- row 1 of 2 of this cell; --all prints" in by_hash.output
    assert "- status: error" in by_hash.output
    assert "## Error\n\n```text\nRuntimeError: out of memory\n```" in by_hash.output
    third = _show(runner, db, "#3")
    assert "- the only row of this cell\n" in third.output and "- seed: 1" in third.output


def test_show_json_is_the_stored_row(results, runner):
    """Bug caught: ``--json`` printing a re-shaped or partial row instead of the stored one
    (``ResultsStore.rows()``), or the first row instead of the latest."""
    db, key = results
    out = runner.invoke(cli, ["show", key[:10], "--json", "--db", str(db)])
    assert out.exit_code == 0, out.output
    stored = [r for r in ResultsStore(db).rows() if r["cell_key"] == key]
    assert json.loads(out.stdout) == stored[-1]
    assert json.loads(_show(runner, db, "#1", "--json").stdout) == ResultsStore(db).row(1)


def test_show_all_prints_every_row_of_the_cell(results, runner):
    """Bug caught: ``--all`` printing only the latest row, rows of other cells, or rows out of
    order."""
    db, key = results
    out = _show(runner, db, key[:6], "--all")
    assert out.exit_code == 0, out.output
    assert out.output.count("# Result #") == 2
    assert out.output.index("# Result #1:") < out.output.index("# Result #2:")
    assert "- row 1 of 2 of this cell\n" in out.output
    assert "--all prints" not in out.output  # no hint when every row is printed
    assert "- row 2 of 2 of this cell, the latest\n" in out.output
    rows = json.loads(_show(runner, db, "#2", "--all", "--json").stdout)
    assert rows == [r for r in ResultsStore(db) if r["cell_key"] == key]


def _set_keys(db: Path, keys: dict[int, str]) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        for row_id, key in keys.items():
            conn.execute("UPDATE results SET cell_key = ? WHERE id = ?", (key, row_id))


def test_show_ambiguous_or_unknown_keys_are_one_line_errors(results, runner):
    """Bugs caught: an ambiguous prefix silently showing one of the cells (or listing every
    key), an unknown key or id, a too-short prefix or a missing file ending in a traceback
    instead of one line that names the problem and the fix."""
    db, key = results
    store = ResultsStore(db)
    for seed in range(10, 15):  # rows 4..8
        store.add(CellResult(cell=replace(CELL, seed=seed), status="ok",
                             finished_at="2024-01-01T00:00:00+00:00"))
    _set_keys(db, {i: f"abcdef{i:018d}" for i in range(3, 9)})

    def error(*args: str) -> str:
        out = _show(runner, db, *args)
        assert out.exit_code != 0 and "Traceback" not in out.output, out.output
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), out.output
        return lines[0]

    ambiguous = error("abcdef")
    assert "matches 6 cells" in ambiguous and "give more characters" in ambiguous
    assert ambiguous.count("abcdef0") == 5 and "and 1 more" in ambiguous
    assert "abcdef000000000000000003" in ambiguous
    assert "#4" in _show(runner, db, "abcdef000000000000000004").output.splitlines()[0]
    unknown = error("0123456789")
    assert "no result with a cell key starting with '0123456789'" in unknown
    assert "#ID" in unknown
    assert "too short" in error("abc")
    assert "no result #99" in error("#99") and "1 to 8" in error("#99")
    assert "not a row id" in error("#x")
    assert "not both" in error(key, "--id", "1")
    assert "give the result to show" in error()
    missing = runner.invoke(cli, ["show", "#1", "--db", str(db.parent / "none.sqlite")])
    assert missing.exit_code != 0 and "no results file" in missing.output
