"""The on-disk feature cache: hits and misses, invalidation, corruption, atomic writes, CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes import FakeBackbone, TinyTask
from transferlab.api import RunContext
from transferlab.cli import cli
from transferlab.errors import DataError
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


# --- the store's key, level by level, on a tiny synthetic backbone and task ------------------


def test_feature_key_is_a_pinned_hash_of_format_backbone_task_and_split():
    """Catches a change to the key's recipe (every existing cache would silently go cold, or
    worse, an old format be read as the new one)."""
    blob = json.dumps(["transferlab-features-v1", "b", "t", "train"]).encode()
    assert feature_key("b", "t", "train") == hashlib.sha256(blob).hexdigest()[:40]
    assert len(feature_key("b", "t", "train")) == 40


def test_identical_requests_extract_once_then_hit_memory():
    backbone, task, store = FakeBackbone(), TinyTask(), FeatureStore(None)
    first = store.get(backbone, task, "train", _ctx())
    again = store.get(backbone, task, "train", _ctx())
    assert again is first and backbone.calls == [(6, "cpu")]
    assert (store.misses, store.hits, store.disk_hits) == (1, 1, 0)
    # another backbone object with the same fingerprint gives the same features: shared too
    twin = FakeBackbone(name="another-name", fingerprint="fp-a", scale=99.0)
    assert store.get(twin, TinyTask(), "train", _ctx()) is first and twin.calls == []


def test_same_backbone_name_different_fingerprint_is_a_separate_memory_entry():
    """Catches keying the store on the backbone's name instead of its fingerprint: two
    preprocessing settings of one backbone would share the first one's features."""
    store, task = FeatureStore(None), TinyTask()
    plain = store.get(FakeBackbone(fingerprint="fp-a", scale=1.0), task, "train", _ctx())
    doubled_backbone = FakeBackbone(fingerprint="fp-b", scale=2.0)
    doubled = store.get(doubled_backbone, task, "train", _ctx())
    assert doubled_backbone.calls == [(6, "cpu")] and store.misses == 2 and store.hits == 0
    np.testing.assert_array_equal(doubled, 2 * plain)


def test_same_backbone_name_different_fingerprint_is_a_separate_disk_entry(tmp_path):
    """The name-instead-of-fingerprint bug on the disk level (a new process reads the file)."""
    task = TinyTask()
    for fingerprint, scale in (("fp-a", 1.0), ("fp-b", 2.0)):
        FeatureStore(tmp_path, memory=False).get(FakeBackbone(fingerprint=fingerprint,
                                                              scale=scale), task, "train", _ctx())
    entries = DiskFeatureCache(tmp_path).entries()
    assert len(entries) == 2 and {e.backbone for e in entries} == {"fake"}
    for fingerprint, scale in (("fp-b", 2.0), ("fp-a", 1.0)):
        store, backbone = FeatureStore(tmp_path), FakeBackbone(fingerprint=fingerprint)
        feats = store.get(backbone, task, "train", _ctx())
        assert store.disk_hits == 1 and store.misses == 0 and backbone.calls == []
        np.testing.assert_array_equal(feats, scale * np.asarray(task.split("train").inputs))


def test_same_task_name_different_task_fingerprint_is_a_separate_entry(tmp_path):
    """Catches keying on the task name: changed data must never read the old features."""
    backbone = FakeBackbone()
    old = FeatureStore(tmp_path).get(backbone, TinyTask(fingerprint="t1"), "train", _ctx())
    for store in (FeatureStore(None), FeatureStore(tmp_path)):  # memory level, disk level
        store.get(backbone, TinyTask(fingerprint="t1"), "train", _ctx())
        new = store.get(backbone, TinyTask(fingerprint="t2", offset=100.0), "train", _ctx())
        assert store.misses == 1 + (store.disk is None)
        np.testing.assert_array_equal(new[:, 0] - old[:, 0], np.full(6, 100.0))
    assert len(DiskFeatureCache(tmp_path).entries()) == 2


def test_each_split_is_its_own_entry(tmp_path):
    backbone, task = FakeBackbone(), TinyTask()
    store = FeatureStore(tmp_path)
    shapes = [store.get(backbone, task, split, _ctx()).shape for split in ("train", "test")]
    assert shapes == [(6, 3), (4, 3)] and backbone.calls == [(6, "cpu"), (4, "cpu")]
    assert sorted(e.split for e in DiskFeatureCache(tmp_path).entries()) == ["test", "train"]
    reread = FeatureStore(tmp_path)
    assert reread.get(backbone, task, "test", _ctx()).shape == (4, 3) and reread.disk_hits == 1


def test_memory_false_reads_the_disk_every_time(tmp_path):
    backbone, task = FakeBackbone(), TinyTask()
    store = FeatureStore(tmp_path, memory=False)
    store.get(backbone, task, "train", _ctx())
    store.get(backbone, task, "train", _ctx())
    assert (store.misses, store.disk_hits, store.hits) == (1, 1, 0) and len(backbone.calls) == 1


def test_disk_entry_metadata_describes_the_array(tmp_path):
    backbone, task = FakeBackbone(name="fake", fingerprint="fp-z", scale=0.5), TinyTask()
    feats = FeatureStore(tmp_path).get(backbone, task, "test", _ctx())
    data, meta_path = _only_entry(tmp_path)
    key = feature_key("fp-z", "tiny-v1", "test")
    assert data.name == f"{key}.npy" and meta_path.name == f"{key}.json"
    assert meta_path.read_text().startswith('{\n "format": "transferlab-features-v1",\n')
    meta = json.loads(meta_path.read_text())
    assert meta.pop("created").endswith("+00:00")
    assert meta == {
        "format": "transferlab-features-v1", "shape": [4, 3], "dtype": "float32",
        "crc32": zlib.crc32(np.ascontiguousarray(feats).tobytes()), "backbone": "fake",
        "task": "tiny", "split": "test", "backbone_fingerprint": "fp-z",
        "task_fingerprint": "tiny-v1",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.name, meta_path.name])
    (entry,) = DiskFeatureCache(tmp_path).entries()
    assert (entry.key, entry.backbone, entry.task, entry.split, entry.shape) == (
        key, "fake", "tiny", "test", (4, 3))
    assert entry.bytes == data.stat().st_size + meta_path.stat().st_size
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.split = "train"  # type: ignore[misc]


def test_extraction_reports_progress_and_uses_the_context_device():
    class RecordingContext(RunContext):
        bars: list = []

        @contextlib.contextmanager
        def progress_bar(self, total, desc):
            done = []
            yield done.append
            self.bars.append((total, desc, sum(done)))

    backbone = FakeBackbone()
    FeatureStore(None).get(backbone, TinyTask(), "test",
                           RecordingContext(progress=False, device="meta:7"))
    assert RecordingContext.bars == [(4, "features tiny/test", 4)]
    assert backbone.calls == [(4, "meta:7")]


def test_non_finite_features_fail_with_their_count_and_nothing_is_cached(tmp_path):
    task = TinyTask(bad=float("inf"))
    task.split("train").inputs[0][1] = float("nan")  # one NaN and two inf in train
    with pytest.raises(DataError) as excinfo:
        FeatureStore(tmp_path).get(FakeBackbone(), task, "train", _ctx())
    assert str(excinfo.value) == (
        "backbone 'fake' produced 3 NaN/inf feature values on tiny/train;"
        " check the inputs and the weights")
    assert list(tmp_path.iterdir()) == []


def test_sparse_features_stay_in_memory_only(tmp_path):
    backbone, task = FakeBackbone(sparse=True), TinyTask()
    store = FeatureStore(tmp_path)
    feats = store.get(backbone, task, "train", _ctx())
    assert hasattr(feats, "tocsr") and feats.shape == (6, 3)
    assert store.get(backbone, task, "train", _ctx()) is feats and store.hits == 1
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_sparse_non_finite_values_are_refused():
    task = TinyTask(bad=float("nan"))
    with pytest.raises(DataError, match="produced 2 NaN/inf feature values on tiny/train"):
        FeatureStore(None).get(FakeBackbone(sparse=True), task, "train", _ctx())


@pytest.mark.parametrize("value", ["off", "OFF", " off ", "0", "none", "false", "no"])
def test_cache_off_values_disable_the_disk_level(monkeypatch, tmp_path, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERLAB_CACHE", value)
    assert default_cache_dir() is None
    store = FeatureStore()
    store.get(FakeBackbone(), TinyTask(), "train", _ctx())
    assert store.disk is None and list(tmp_path.iterdir()) == []  # nothing written anywhere
    store.get(FakeBackbone(), TinyTask(), "train", _ctx())
    assert store.hits == 1  # memory still works


def test_cache_dir_expands_home_and_strips_blanks(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", "  ~/feats ")
    assert default_cache_dir() == Path.home() / "feats"
    monkeypatch.setenv("TRANSFERLAB_CACHE", "   ")
    assert default_cache_dir() == Path.home() / ".cache" / "transferlab" / "features"


def _stored(tmp_path: Path) -> tuple[DiskFeatureCache, str, np.ndarray, Path, Path]:
    cache, key = DiskFeatureCache(tmp_path), "k" * 40
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    cache.save(key, array, {"task": "tiny"})
    return cache, key, array, tmp_path / f"{key}.npy", tmp_path / f"{key}.json"


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("format", "format 'transferlab-features-v0'"),
        ("shape", "shape (4, 3) float32, expected [3, 4]"),
        ("dtype", "shape (4, 3) float32, expected [4, 3]"),
        ("crc", "checksum mismatch"),
        ("no-crc", "KeyError: 'crc32'"),
        ("list", "AttributeError: 'list' object has no attribute 'get'"),
    ],
)
def test_each_corruption_is_named_and_the_entry_removed(tmp_path, caplog, damage, problem):
    """A stale or damaged entry must never be returned; the warning says what was wrong."""
    cache, key, _, _, meta_path = _stored(tmp_path)
    meta = json.loads(meta_path.read_text())
    if damage == "format":
        meta["format"] = "transferlab-features-v0"
    elif damage == "shape":
        meta["shape"] = [3, 4]
    elif damage == "dtype":
        meta["dtype"] = "float64"
    elif damage == "crc":
        meta["crc32"] += 1
    elif damage == "no-crc":
        del meta["crc32"]
    else:  # valid JSON but not an object: used to raise AttributeError out of the store
        meta = [meta]
    meta_path.write_text(json.dumps(meta))
    assert cache.load(key) is None
    (record,) = caplog.records
    assert (record.name, record.levelname) == ("transferlab.features", "WARNING")
    assert record.getMessage() == (
        f"feature cache entry {key} is corrupt ({problem}); recomputing it")
    assert list(tmp_path.iterdir()) == []


def test_intact_entry_loads_read_only_and_equal(tmp_path, caplog):
    cache, key, array, _, _ = _stored(tmp_path)
    loaded = cache.load(key)
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)
    assert caplog.text == "" and cache.load("absent" * 5) is None


def test_checksum_streams_in_chunks(monkeypatch):
    import transferlab.harness.features as features

    array = np.arange(1000, dtype=np.float32).reshape(10, 100)[:, ::3]  # not contiguous
    whole = zlib.crc32(np.ascontiguousarray(array).tobytes())
    monkeypatch.setattr(features, "_CRC_CHUNK", 7)  # many chunks, the last one partial
    assert features._crc32(array) == whole


def test_atomic_write_replaces_whole_files_and_cleans_up_on_failure(tmp_path):
    from transferlab.harness.features import _atomic_write

    target = tmp_path / "x.json"
    seen = []

    def first(handle):
        seen.extend(p.name for p in tmp_path.iterdir())  # while writing: only the temp file
        handle.write(b"first")

    _atomic_write(target, first)
    (temp,) = seen
    assert temp.startswith(".x.json.") and temp.endswith(".tmp")  # hidden, cleared by clear()
    _atomic_write(target, lambda h: h.write(b"second"))
    assert target.read_bytes() == b"second" and [p.name for p in tmp_path.iterdir()] == ["x.json"]

    def half_then_fail(handle):
        handle.write(b"half")
        raise KeyboardInterrupt  # even an interruption leaves no temporary file behind

    with pytest.raises(KeyboardInterrupt):
        _atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"second" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_unwritable_cache_folder_only_warns(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    store = FeatureStore(blocker)
    feats = store.get(FakeBackbone(), TinyTask(), "test", _ctx())
    assert feats.shape == (4, 3)
    (record,) = caplog.records
    assert record.name == "transferlab.features" and record.getMessage().startswith(
        f"could not write feature cache entry to {blocker} (")


def test_entries_skip_unreadable_metadata_and_sort_by_creation(tmp_path):
    cache = DiskFeatureCache(tmp_path)
    assert DiskFeatureCache(tmp_path / "missing").entries() == []
    for key, created in (("b", "2024-02-01"), ("a", "2024-03-01"), ("c", "2024-01-01")):
        cache.save(key, np.zeros((1, 2), np.float32), {"task": key})
        meta = tmp_path / f"{key}.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "created": created}))
    (tmp_path / "broken.json").write_text("{oops")
    (tmp_path / "orphan.json").write_text("{}")  # no .npy next to it
    assert [e.key for e in cache.entries()] == ["c", "b", "a"]
    assert [e.task for e in cache.entries()] == ["c", "b", "a"]
    assert cache.entries()[0].backbone == "?"


def test_clear_removes_entries_and_temp_files_only(tmp_path):
    cache = DiskFeatureCache(tmp_path)
    assert DiskFeatureCache(tmp_path / "missing").clear() == 0
    cache.save("k", np.zeros((1, 2), np.float32), {})
    (tmp_path / ".k.npy.abc.tmp").write_bytes(b"left by a killed writer")
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / "sub.npy").mkdir()
    assert cache.clear() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "sub.npy"]


def test_missing_cache_folders_are_created(tmp_path):
    store = FeatureStore(tmp_path / "a" / "b")
    store.get(FakeBackbone(), TinyTask(), "test", _ctx())
    assert len(DiskFeatureCache(tmp_path / "a" / "b").entries()) == 1


def test_entry_with_minimal_metadata_is_listed_with_placeholders(tmp_path):
    np.save(tmp_path / "bare.npy", np.zeros(3, np.float32))
    (tmp_path / "bare.json").write_text("{}")
    (entry,) = DiskFeatureCache(tmp_path).entries()
    assert (entry.key, entry.backbone, entry.task, entry.split, entry.shape, entry.created) == (
        "bare", "?", "?", "?", (), "")
    assert entry.bytes == (tmp_path / "bare.npy").stat().st_size + 2
