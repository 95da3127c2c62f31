"""The speed-benchmark tools: the meter of other processes' CPU use and the entry point that
refuses to write figures measured on a busy machine into the docs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import quiet
import run_all


def _meter(others: float, seconds: float) -> quiet.OthersMeter:
    meter = quiet.OthersMeter()
    meter.others, meter.seconds = others, seconds
    return meter


def test_the_verdict_says_when_figures_are_not_results(monkeypatch):
    """Bug caught: a benchmark that prints speed figures taken while other processes used the
    CPUs without saying so (measured: 4-30x slowdowns)."""
    monkeypatch.setattr(quiet.os, "cpu_count", lambda: 2)
    calm, busy = _meter(0.5, 10.0), _meter(4.0, 10.0)
    assert calm.share == pytest.approx(0.025) and calm.quiet
    assert "not results" not in calm.verdict()
    assert busy.share == pytest.approx(0.2) and not busy.quiet
    assert busy.verdict().endswith("so these speed figures are not results; re-run on a"
                                   " quiet machine")
    assert "0.40 CPUs" in busy.verdict() and "(2 CPUs, 20.0%)" in busy.verdict()


def _block(script: str, text: str) -> str:
    return f"\n`python benchmarks/{script} --x 1` (3 s, today):\n\n```text\n{text}\n```"


def test_docs_are_written_between_the_marks_only_and_keep_the_blocks_not_rerun(
        tmp_path, monkeypatch):
    """Bugs caught: text outside the marks touched, ``--only`` dropping the other benchmarks'
    blocks (the whole section was rewritten with the re-run ones), or blocks out of order."""
    doc = tmp_path / "results.md"
    old = _block("scaleout.py", "old scale") + "\n" + _block("cli_startup.py", "old cli")
    doc.write_text(f"# R\nkeep\n{run_all.BEGIN}\n_head_\n{old}\n{run_all.END}\ntail\n")
    monkeypatch.setattr(run_all, "RESULTS", doc)
    run_all.write_docs({"scaleout.py": _block("scaleout.py", "new scale")})
    text = doc.read_text()
    assert text.startswith(f"# R\nkeep\n{run_all.BEGIN}\n") and text.endswith(
        f"{run_all.END}\ntail\n")
    assert "old scale" not in text and "new scale" in text and "old cli" in text
    assert text.index("old cli") < text.index("new scale")  # cli_startup comes first
    assert "_head_" not in text and text.count(run_all.BEGIN) == 1
    doc.write_text("# no marks\n")
    with pytest.raises(SystemExit, match="no <!-- speed:begin -->"):
        run_all.write_docs({})


def test_blocks_split_a_section_by_script():
    body = "_head_\n" + _block("a.py", "1") + "\n" + _block("b.py", "2\n3")
    found = run_all.blocks(body)
    assert list(found) == ["a.py", "b.py"]
    assert found["b.py"].endswith("2\n3\n```") and "\n1\n" not in found["b.py"]
    assert run_all.blocks("_head_ only\n") == {}


def test_a_disturbed_run_refuses_to_write_the_docs(tmp_path, monkeypatch, capsys):
    """Bug caught: numbers from a busy machine landing in docs/results.md."""
    doc = tmp_path / "results.md"
    doc.write_text(f"{run_all.BEGIN}\nold\n{run_all.END}\n")
    monkeypatch.setattr(run_all, "RESULTS", doc)
    monkeypatch.setattr(run_all, "run", lambda script, arguments: ("1.0x", _meter(9, 10), 3.0))
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", "cli_startup", "--write-docs"])
    with pytest.raises(SystemExit):
        run_all.main()
    assert "old" in doc.read_text()
    assert "not writing the docs" in capsys.readouterr().out
    monkeypatch.setattr(run_all, "run", lambda script, arguments: ("1.0x", _meter(0, 10), 3.0))
    run_all.main()
    assert "old" not in doc.read_text() and "1.0x" in doc.read_text()
