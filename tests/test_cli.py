"""The command line, driven through click's CliRunner (and a subprocess for import cost)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from fakes import fresh_interpreter, image_folder
from transferlab import __version__
from transferlab.cli import cli

PIXELS = ["-B", "size=8", "-B", "grayscale=true"]


def test_version_and_help(runner):
    assert __version__ in runner.invoke(cli, ["--version"]).output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("plugins", "list", "run", "bench", "report"):
        assert command in result.output


def test_importing_the_cli_does_not_import_torch():
    assert fresh_interpreter("import sys, transferlab.cli, transferlab.plugins as p;"
                             " p.get_host().registries; print('torch' in sys.modules)") == "False"


HEAVY = ("torch", "sklearn", "scipy", "timm", "transformers", "sentence_transformers",
         "matplotlib", "numpy")


@pytest.mark.parametrize("argv", [["--help"], ["list", "methods"], ["list", "backbones"],
                                  ["plugins"], ["bench", "--help"]])
def test_instant_commands_import_no_heavy_library(argv):
    """Bug caught: a module-level import in a command or a plugin's registration module that
    makes `--help`, `list` or `plugins` pay seconds (sklearn alone took 0.55 s of 0.77)."""
    code = ("import atexit, sys, io, contextlib\n"
            "from transferlab.cli import main\n"
            f"atexit.register(lambda: print(sorted(m for m in {HEAVY!r} if m in sys.modules),"
            " file=sys.__stdout__, flush=True))\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main({argv!r})\n")
    assert fresh_interpreter(code) == "[]"  # and the exit status was 0


def test_resuming_a_finished_suite_imports_no_numpy_or_progress_bar(runner, tmp_path):
    """Bug caught: a module-level numpy import in the core or a plugin's registration module,
    or the progress bar built for no cell: resuming a finished suite cost 0.45-0.56 s instead
    of 0.27-0.36 (the scale-out benchmark's target is 2% of running the suite)."""
    suite, db = tmp_path / "s.toml", tmp_path / "r.sqlite"
    suite.write_text('name = "s"\ntasks = ["digits"]\nmethods = ["ncm"]\nseeds = [0]\n'
                     'backbones = [{ name = "raw:pixels", params = { size = 8 } }]\n')
    assert runner.invoke(cli, ["bench", str(suite), "--db", str(db), "--no-progress"]
                         ).exit_code == 0
    code = ("import atexit, sys, io, contextlib\n"
            "from transferlab.cli import main\n"
            "atexit.register(lambda: print(sorted(m for m in ('numpy', 'tqdm', *"
            f"{HEAVY!r}) if m in sys.modules), file=sys.__stdout__, flush=True))\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['bench', {str(suite)!r}, '--db', {str(db)!r}])\n")
    assert fresh_interpreter(code) == "[]"


EXIT_PROBE = """
import atexit, sys, threading, time, weakref
from transferlab.cli import exit_without_teardown

class Folder:
    pass

folder = Folder()
weakref.finalize(folder, print, "finalizer ran", flush=True)
atexit.register(print, "atexit ran", flush=True)
threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
sys.stdout.write("unflushed output")
exit_without_teardown(CODE)
print("not reached")
"""


@pytest.mark.parametrize(("code", "status"), [(0, 0), (None, 0), (3, 3), ("'bad input'", 1)])
def test_exit_without_teardown_keeps_what_a_normal_exit_guarantees(code, status):
    """Bugs caught: the fast exit losing unflushed output, skipping atexit handlers (temporary
    folders, multiprocessing's clean-up), killing a thread that still works, or changing the
    exit status (a failed command reported as success)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXIT_PROBE.replace("CODE", str(code))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == status
    assert done.stdout.startswith("unflushed output")
    for line in ("thread finished", "atexit ran", "finalizer ran"):
        assert line in done.stdout
    assert "not reached" not in done.stdout
    assert ("bad input" in done.stderr) == (status == 1)


def test_the_console_script_exits_with_the_commands_status(tmp_path):
    """Bug caught: main's fast exit turning a failed command's status into 0 (scripts and CI
    would take a failure for success) or a success into an error."""
    import subprocess
    import sys
    from pathlib import Path

    script = str(Path(sys.executable).with_name("transferlab"))
    ok = subprocess.run([script, "list", "tasks", "digits"], capture_output=True, text=True)
    assert ok.returncode == 0 and "digits" in ok.stdout
    bad = subprocess.run([script, "run", "-b", "nope:x", "-t", "digits", "-m", "linear-probe",
                          "--db", str(tmp_path / "r.sqlite")], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr


def test_list_with_pattern_and_json(runner):
    result = runner.invoke(cli, ["list", "backbones", "timm:efficientnet_lite*", "--json"])
    entries = json.loads(result.stdout)
    assert [e["name"] for e in entries] == [f"timm:efficientnet_lite{i}" for i in range(3)]
    assert entries[0]["offline"] is True and entries[0]["modality"] == "image"
    assert entries[0]["params_count"] == 4_652_008
    text = runner.invoke(cli, ["list", "methods"]).output
    assert "linear-probe" in text and "C=1.0" in text
    assert "no tasks match" in runner.invoke(cli, ["list", "tasks", "zzz*"]).output


def test_run_json(runner, tmp_path):
    db = tmp_path / "r.sqlite"
    result = runner.invoke(cli, ["run", "-b", "raw:pixels", "-t", "digits", "-m", "linear-probe",
                                 *PIXELS, "-p", "C=0.5", "--seed", "3", "--json",
                                 "--no-progress", "--db", str(db)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "ok" and data["metrics"]["accuracy"] > 0.9
    assert data["cell"]["params"]["C"] == 0.5 and data["cell"]["seed"] == 3
    for key in ("macro_f1",):
        assert key in data["metrics"]
    for key in ("fit_seconds", "trainable_params", "total_params"):
        assert key in data
    report = runner.invoke(cli, ["report", "--db", str(db), "--format", "json"])
    assert json.loads(report.stdout)[0]["backbone"] == "raw:pixels"


def test_run_tiny_timm_model(runner, tmp_path):
    result = runner.invoke(cli, ["run", "-b", "timm:test_efficientnet@random", "-t", "digits",
                                 "-m", "linear-probe", "-B", "img_size=32", "--json",
                                 "--no-progress", "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["metrics"]["accuracy"] > 0.5 and data["total_params"] > 300_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "raw:pixel", "-t", "digits", "-m", "linear-probe"], "Did you mean 'raw:pixels'"),
        (["-b", "raw:pixels", "-t", "digit", "-m", "linear-probe"], "unknown task 'digit'"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linearprobe"], "unknown method"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linear-probe", "-p", "C=abc"],
         "parameter C expects float"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linear-probe", "-p", "lr=1"],
         "unknown parameter 'lr'"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linear-probe", "-p", "C"], "key=value"),
        (["-b", "raw:pixels", "-t", "csv:/no/such/dir", "-m", "linear-probe"], "does not exist"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linear-probe", "--data-dir", "/no/dir"],
         "does not exist"),
        (["-b", "timm:no_such_net", "-t", "digits", "-m", "linear-probe"],
         "timm has no architecture"),
        (["-b", "raw:tfidf", "-t", "digits", "-m", "linear-probe"], "reads text"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "finetune"],
         "method 'finetune' trains weights but 'raw:pixels' has none"),
        (["-b", "timm:test_resnet@/no/such/file.safetensors", "-t", "digits", "-m",
          "linear-probe"], "checkpoint /no/such/file.safetensors does not exist"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linear-probe", "--seed", "-5"],
         "--seed -5 is out of range"),
        (["-b", "raw:pixels", "-t", "digits", "-m", "linear-probe", "--device", "gpu"],
         "device 'gpu' is not one of cpu, cuda, cuda:N or mps"),
    ],
)
def test_bad_input_gives_one_clear_line(runner, tmp_path, args, message):
    result = runner.invoke(cli, ["run", *args, "--db", str(tmp_path / "r.sqlite"),
                                 "--no-progress"])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_malformed_csv_task_via_cli(runner, tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\nhi,a\n")
    (tmp_path / "test.csv").write_text("text,label\nhi,a\n")
    result = runner.invoke(cli, ["run", "-b", "raw:tfidf", "-t", f"csv:{tmp_path}", "-m",
                                 "linear-probe", "--no-progress",
                                 "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 1
    assert "expected columns text,label" in result.output


def test_bench_and_report(runner, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "mini"\ntasks = ["digits"]\nseeds = [0, 1]\n'
        'backbones = [{ name = "raw:pixels", params = { size = 8, grayscale = true } }]\n'
        'methods = ["linear-probe"]\n'
    )
    db = str(tmp_path / "r.sqlite")
    result = runner.invoke(cli, ["bench", str(suite), "--db", db, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "| 1 | raw:pixels | linear-probe |" in result.stdout
    again = runner.invoke(cli, ["bench", str(suite), "--db", db, "--no-progress"])
    assert "2 already finished" in again.output
    assert runner.invoke(cli, ["report", "--db", str(tmp_path / "none.sqlite")]).exit_code == 1


@pytest.mark.slow
def test_run_real_pretrained_efficientnet_on_digits(runner, tmp_path):
    args = ["run", "-b", "timm:efficientnet_lite0", "-t", "digits", "-m", "linear-probe",
            "-B", "img_size=64", "--json", "--no-progress", "--db", str(tmp_path / "r.sqlite")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["accuracy"] > 0.85


def test_bench_reports_a_failed_cell_and_retries_it_on_the_next_run(runner, tmp_path):
    """A failed cell makes bench exit 1 naming it; the next run retries only that cell (a
    store that counted failures as finished would skip it and report nothing to do)."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    image_folder(good)
    image_folder(bad, corrupt=True)
    suite = tmp_path / "files.toml"
    suite.write_text(
        f'tasks = ["imagefolder:{good}", "imagefolder:{bad}"]\n'
        'backbones = [{ name = "raw:pixels", params = { size = 4 } }]\n'
        'methods = [{ name = "knn", params = { k = 1, metric = "euclidean" } }]\n'
    )
    db = tmp_path / "r.sqlite"
    args = ["bench", str(suite), "--db", str(db), "--no-progress", "--format", "json"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 1
    (failed,) = [line for line in first.stderr.splitlines() if line.startswith("FAILED")]
    assert failed.startswith(f"FAILED raw:pixels x imagefolder:{bad} x knn[k=1,metric=euclidean")
    assert failed.endswith("seed=0: image file"
                           f" {bad / 'test' / 'light' / '1.png'} is unreadable or corrupt"
                           f" (cannot identify image file"
                           f" {str(bad / 'test' / 'light' / '1.png')!r}); remove or replace it")
    assert f"suite files: 2 cells, 0 already finished, 1 failed; results in {db}" in first.stderr
    assert [r["task"] for r in json.loads(first.stdout)] == [f"imagefolder:{good}"]

    Image.new("L", (4, 4), 225).save(bad / "test" / "light" / "1.png")
    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert f"suite files: 2 cells, 1 already finished, 0 failed; results in {db}" in (
        second.stderr)
    board = json.loads(second.stdout)
    assert sorted(r["task"] for r in board) == sorted([f"imagefolder:{good}",
                                                       f"imagefolder:{bad}"])
    assert all(r["mean"] == 1.0 and r["seeds"] == 1 for r in board)

    report = runner.invoke(cli, ["report", "--db", str(db), "--suite", "files", "--metric",
                                 "macro_f1", "--format", "csv"])
    assert report.exit_code == 0, report.output
    lines = [line for line in report.stdout.splitlines() if line]  # csv rows end in \r\n
    assert len(lines) == 3 and all(",macro_f1,1.0," in line for line in lines[1:])
    other = runner.invoke(cli, ["report", "--db", str(db), "--suite", "nope"])
    assert other.exit_code == 0 and other.stdout.strip() == ""


def test_report_without_results_file_names_the_fix(runner, tmp_path):
    result = runner.invoke(cli, ["report", "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 1
    assert f"no results file {tmp_path / 'none.sqlite'}; run `transferlab run` or pass --db" in (
        result.output)
