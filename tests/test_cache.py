"""The on-disk feature cache: hits and misses, invalidation, corruption, atomic writes, CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.api import RunContext
from transferlab.cli import cli
from transferlab.harness.features import (
    DiskFeatureCache,
    FeatureStore,
    default_cache_dir,
    feature_key,
)
from transferlab_baselines.raw import RawPixels
from transferlab_tasks.digits import DigitsTask
from transferlab_tasks.folders import ImageFolderTask


class CountingPixels(RawPixels):
    """Raw pixels that count how many images they encoded."""

    def __init__(self, size: int = 8) -> None:
        super().__init__("raw:pixels", size=size, grayscale=True)
        self.encoded = 0

    def preprocess(self, inputs):
        self.encoded += len(inputs)
        return super().preprocess(inputs)


@pytest.fixture(scope="module")
def task():
    return DigitsTask()


def _ctx() -> RunContext:
    return RunContext(progress=False)


def _only_entry(root: Path) -> tuple[Path, Path]:
    (meta,) = root.glob("*.json")
    return meta.with_suffix(".npy"), meta


def test_miss_then_disk_hit_in_a_new_store_then_memory_hit(tmp_path, task):
    backbone = CountingPixels()
    first = FeatureStore(tmp_path)
    computed = first.get(backbone, task, "train", _ctx())
    assert (first.misses, backbone.encoded) == (1, 1347)
    second = FeatureStore(tmp_path)  # e.g. another process, another method or seed
    loaded = second.get(backbone, task, "train", _ctx())
    assert second.disk_hits == 1 and backbone.encoded == 1347  # nothing re-encoded
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
    assert np.array_equal(loaded, computed)
    assert second.get(backbone, task, "train", _ctx()) is loaded and second.hits == 1


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert FeatureStore().disk.root == tmp_path / "c"
    monkeypatch.setenv("TRANSFERLAB_CACHE", "off")
    assert default_cache_dir() is None and FeatureStore().disk is None
    monkeypatch.delenv("TRANSFERLAB_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "transferlab" / "features"


def test_no_cache_at_all_extracts_every_time(task):
    backbone = CountingPixels()
    store = FeatureStore(None, memory=False)
    store.get(backbone, task, "test", _ctx())
    store.get(backbone, task, "test", _ctx())
    assert backbone.encoded == 900 and store.misses == 2


def test_keys_change_with_weights_preprocessing_data_and_split(tmp_path):
    assert feature_key("b", "t", "train") != feature_key("b", "t", "test")
    assert feature_key("b", "t", "train") != feature_key("b2", "t", "train")
    assert feature_key("b", "t", "train") != feature_key("b", "t2", "train")
    assert CountingPixels(8).fingerprint != CountingPixels(16).fingerprint  # preprocessing


def test_changed_data_is_a_miss(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            Image.new("L", (8, 8), 50 if label == "a" else 200).save(root / split / label / "x.png")
    backbone, store = CountingPixels(), FeatureStore(tmp_path / "cache")
    store.get(backbone, ImageFolderTask("imgs", root), "train", _ctx())
    Image.new("L", (8, 8), 90).save(root / "train" / "a" / "y.png")  # the data changed
    again = FeatureStore(tmp_path / "cache").get(backbone, ImageFolderTask("imgs", root),
                                                 "train", _ctx())
    assert again.shape == (3, 64) and backbone.encoded == 2 + 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "bad-json", "wrong-shape", "no-data"])
def test_corrupt_entry_is_detected_and_recomputed(tmp_path, task, damage, caplog):
    backbone = CountingPixels()
    good = np.array(FeatureStore(tmp_path).get(backbone, task, "test", _ctx()))
    data, meta = _only_entry(tmp_path)
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-100])
    elif damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[-7] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "bad-json":
        meta.write_text("{not json")
    elif damage == "wrong-shape":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": [1, 2]}))
    else:
        data.unlink()
    store = FeatureStore(tmp_path)
    recovered = store.get(backbone, task, "test", _ctx())
    assert store.misses == 1 and backbone.encoded == 900  # recomputed, not crashed
    assert np.array_equal(recovered, good)
    assert "corrupt" in caplog.text
    assert FeatureStore(tmp_path).get(backbone, task, "test", _ctx()) is not None
    assert backbone.encoded == 900  # and the rewritten entry is good


def test_entry_without_metadata_is_not_read(tmp_path, task):
    """The .json is written last: a data file alone (a writer still running) is a miss."""
    backbone = CountingPixels()
    FeatureStore(tmp_path).get(backbone, task, "test", _ctx())
    _, meta = _only_entry(tmp_path)
    meta.unlink()
    store = FeatureStore(tmp_path)
    store.get(backbone, task, "test", _ctx())
    assert store.misses == 1 and store.disk_hits == 0


def test_failed_write_leaves_no_entry_and_no_temp_file(tmp_path, task, monkeypatch):
    def broken_save(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    FeatureStore(tmp_path).get(CountingPixels(), task, "test", _ctx())  # still returns features
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_and_readers_never_see_half_an_entry(tmp_path, task):
    backbone = CountingPixels()
    reference = np.array(FeatureStore(None).get(backbone, task, "test", _ctx()))
    cache = DiskFeatureCache(tmp_path)
    key = feature_key(backbone.fingerprint, task.fingerprint(), "test")
    cache.save(key, reference, {"task": "digits"})  # then writers keep replacing it
    seen, errors = [], []

    def writer():
        for _ in range(15):
            cache.save(key, reference, {"task": "digits"})

    def reader():
        for _ in range(60):
            try:
                got = cache.load(key)
            except Exception as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)
                continue
            seen.append(got is not None and np.array_equal(got, reference))

    threads = [threading.Thread(target=f) for f in (writer, writer, reader, reader, reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(seen) == 180 and all(seen)  # never missing, never partial
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cache_cli_info_and_clear(tmp_path, task, runner):
    FeatureStore(tmp_path).get(CountingPixels(), task, "test", _ctx())
    info = runner.invoke(cli, ["cache", "info", "--cache-dir", str(tmp_path)])
    assert info.exit_code == 0, info.output
    assert "1 entries" in info.output and "digits/test" in info.output
    as_json = json.loads(runner.invoke(cli, ["cache", "info", "--cache-dir", str(tmp_path),
                                             "--json"]).output)
    assert as_json["entries"][0]["shape"] == [450, 64]
    cleared = runner.invoke(cli, ["cache", "clear", "--cache-dir", str(tmp_path)])
    assert cleared.exit_code == 0 and "removed 2 files" in cleared.output
    assert DiskFeatureCache(tmp_path).entries() == []


def test_cache_cli_when_disabled(runner, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", "off")
    result = runner.invoke(cli, ["cache", "info"])
    assert result.exit_code != 0 and "feature cache is disabled" in result.output


_WORKER = """
import sys, numpy as np
from transferlab.api import RunContext
from transferlab.harness.features import FeatureStore
from transferlab_baselines.raw import RawPixels
from transferlab_tasks.digits import DigitsTask
for _ in range(5):
    feats = FeatureStore(sys.argv[1]).get(RawPixels("raw:pixels", size=8, grayscale=True),
                                          DigitsTask(), "train", RunContext(progress=False))
print(float(np.asarray(feats, np.float64).sum()))
"""


def test_processes_sharing_one_cache_agree(tmp_path):
    """Three processes race to fill and read the same entry; all see the same features."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1
    assert len(DiskFeatureCache(tmp_path).entries()) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
