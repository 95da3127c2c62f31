"""Shared fixtures: real data locations, fake plugin distributions, a CLI runner."""

from __future__ import annotations

import os
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRANSFERLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name!r} not found at {path} (set TRANSFERLAB_SHARED_DATA)")
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's plugin filter, data dirs or results file, or this machine's
    bf16 units."""
    for var in ("TRANSFERLAB_PLUGINS", "TRANSFERLAB_STRICT", "TRANSFERLAB_TRACE",
                "TRANSFERLAB_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TRANSFERLAB_DB", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "feature-cache"))
    import transferlab.plugins as plugins
    import transferlab.precision as precision

    monkeypatch.setattr(plugins, "_HOST", None)
    # every test resolves precision=auto as on a CPU without bf16 units (fp32), whatever this
    # machine has; tests of bf16 resolution pretend otherwise (tests/test_precision.py)
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: False)


class FakeDistribution:
    """Writes a plugin module plus a real ``*.dist-info`` with an entry_points.txt to a folder
    on ``sys.path``, so ``importlib.metadata`` discovers it like a pip-installed plugin."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        monkeypatch.syspath_prepend(str(root))
        self.added: list[str] = []

    def add(self, dist: str, entry_name: str, module: str, source: str) -> None:
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[transferlab]\n{entry_name} = {module}\n")
        self.added.append(module)

    def cleanup(self) -> None:
        for module in self.added:
            sys.modules.pop(module, None)


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dists = FakeDistribution(tmp_path / "site", monkeypatch)
    dists.root.mkdir()
    yield dists
    dists.cleanup()


def entry_points_named(*names: str) -> list[metadata.EntryPoint]:
    return [ep for ep in metadata.entry_points(group="transferlab") if ep.name in names]


@pytest.fixture(scope="module")
def registries():
    """The installed plugins' registries, built once per test module (a module that needs
    extra plugins defines its own ``registries``)."""
    from transferlab.plugins import PluginHost

    host = PluginHost()
    host.load_entry_points()
    return host.registries
