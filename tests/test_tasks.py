"""Built-in tasks: digits, CSV folders, image folders, --data-dir discovery, bad layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import shared_dataset
from transferlab.errors import DataError
from transferlab.plugins import PluginHost
from transferlab_tasks.digits import DigitsTask
from transferlab_tasks.folders import CsvTextTask, ImageFolderTask


def _tasks(data_dirs=()):
    host = PluginHost(data_dirs=data_dirs)
    host.load_entry_points()
    return host.registries.tasks


def test_digits_fixed_stratified_split():
    task = DigitsTask()
    train, test = task.split("train"), task.split("test")
    assert (len(train), len(test)) == (1347, 450)
    assert train.inputs[0].shape == (8, 8) and train.inputs[0].dtype == np.uint8
    assert np.bincount(test.labels).min() >= 43  # stratified: every digit ~10%
    again = DigitsTask().split("test")
    assert np.array_equal(again.labels, test.labels)  # the split never changes


def _write_csv(folder, split, rows, header="text,label"):
    folder.mkdir(parents=True, exist_ok=True)
    body = "\n".join([header, *rows]) + "\n"
    (folder / f"{split}.csv").write_text(body, encoding="utf-8")


def test_csv_task_reads_labels_from_train(tmp_path):
    _write_csv(tmp_path, "train", ["good film,pos", "bad film,neg", '"a, quoted",pos'])
    _write_csv(tmp_path, "test", ["fine,pos"])
    task = CsvTextTask("csv:x", tmp_path)
    assert task.label_names == ["neg", "pos"]
    assert task.split("train").inputs[2] == "a, quoted"
    assert task.split("test").labels.tolist() == [1]
    assert task.split_names() == ["train", "test"]


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("sentence,label", ["x,a"], "expected columns text,label"),
        ("text,label", [], "has a header but no rows"),
        ("text,label", ["only text,"], "row has no text or no label"),
    ],
)
def test_malformed_csv(tmp_path, header, rows, message):
    _write_csv(tmp_path, "train", rows, header=header)
    _write_csv(tmp_path, "test", ["x,a"])
    with pytest.raises(DataError, match=message):
        CsvTextTask("csv:x", tmp_path).split("train")


def test_csv_not_utf8(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"text,label\n\xff\xfe bad,a\n")
    _write_csv(tmp_path, "test", ["x,a"])
    with pytest.raises(DataError, match="not UTF-8"):
        CsvTextTask("csv:x", tmp_path).split("train")


def test_test_label_absent_from_train(tmp_path):
    _write_csv(tmp_path, "train", ["x,a", "y,b"])
    _write_csv(tmp_path, "test", ["z,c"])
    with pytest.raises(DataError, match=r"label\(s\) \['c'\] that never occur in train"):
        CsvTextTask("csv:x", tmp_path).split("test")


def test_missing_split(tmp_path):
    _write_csv(tmp_path, "train", ["x,a"])
    with pytest.raises(DataError, match="has no test split"):
        CsvTextTask("csv:x", tmp_path)


def _write_images(root, split, classes, n=2, size=10):
    for index, name in enumerate(classes):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(n):
            array = np.full((size, size, 3), 40 * index + i, dtype=np.uint8)
            Image.fromarray(array).save(folder / f"{i}.png")


def test_imagefolder_task(tmp_path):
    _write_images(tmp_path, "train", ["ants", "bees"])
    _write_images(tmp_path, "test", ["ants", "bees"], n=1)
    task = ImageFolderTask("imagefolder:x", tmp_path)
    assert task.label_names == ["ants", "bees"]
    assert task.split("test").labels.tolist() == [0, 1]
    assert task.fingerprint() == ImageFolderTask("imagefolder:x", tmp_path).fingerprint()


def test_imagefolder_without_classes(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        ImageFolderTask("imagefolder:x", tmp_path).split("train")


def test_corrupt_image_is_named(tmp_path):
    from transferlab.data import load_image

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"bad.jpg is unreadable or corrupt"):
        load_image(bad)


def test_data_dir_registers_each_layout(tmp_path):
    _write_csv(tmp_path / "reviews", "train", ["x,a"])
    _write_csv(tmp_path / "reviews", "test", ["x,a"])
    _write_images(tmp_path / "insects", "train", ["ants"])
    _write_images(tmp_path / "insects", "test", ["ants"])
    (tmp_path / "notes").mkdir()
    tasks = _tasks([tmp_path])
    assert {"reviews", "insects"} <= set(tasks.names())
    assert "notes" not in tasks
    assert tasks.create("reviews").modality == "text"
    assert tasks.create("insects").modality == "image"


@pytest.mark.slow
def test_real_shared_data_dir_tasks():
    root = shared_dataset("sst2").parent
    tasks = _tasks([root])
    sst2 = tasks.create("sst2")
    assert sst2.split_names() == ["train", "val", "test"]
    assert (len(sst2.split("train")), len(sst2.split("test"))) == (6920, 1821)
    hymenoptera = tasks.create("hymenoptera")
    assert hymenoptera.label_names == ["ants", "bees"]
    assert len(hymenoptera.split("test")) == 153
