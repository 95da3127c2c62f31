"""The demo's ingredients: the shipped flower photos and their attribution, task views whose
subsample follows the cell seed, and suite exclusions."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.errors import DataError
from transferlab.harness.suite import parse_suite
from transferlab.views import create_task

PHOTOS = "plugins/transferlab_tasks/flowers_demo"


def test_flowers_demo_ships_300_credited_photos_and_needs_no_data_folder(registries):
    """Bugs caught: the demo task missing from a fresh install (package data left out of the
    distribution), a photo without its credit line, and a photo credited that is not
    shipped."""
    from pathlib import Path

    import transferlab_tasks

    task = create_task("flowers_demo", registries)
    assert task.label_names == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    train, test = task.split("train"), task.split("test")
    assert len(train) == 200 and len(test) == 100
    assert np.bincount(train.labels).tolist() == [40] * 5
    root = Path(transferlab_tasks.__file__).with_name("flowers_demo")
    credits = (root / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY 2.0" in credits and "LICENSE.txt" in credits
    shipped = sorted(p.name for p in root.rglob("*.jpg"))
    credited = sorted(line.split("|")[3].strip() for line in credits.splitlines()
                      if line.startswith("| train") or line.startswith("| test"))
    assert shipped == credited and len(shipped) == 300
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "flowers_demo/*/*/*.jpg" in pyproject["tool"]["setuptools"]["package-data"][
        "transferlab_tasks"]


def test_flickr_short_links_encode_the_photo_id_in_base58():
    """Bug caught: credit links that point at other photos (a wrong alphabet or digit
    order in the base-58 encoding Flickr's short links use)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "tools" / "make_flowers_demo.py"
    spec = importlib.util.spec_from_file_location("make_flowers_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.flickr_short(57) == "https://flic.kr/p/Z"  # the last digit
    assert module.flickr_short(58) == "https://flic.kr/p/21"  # 1 * 58 + 0
    assert module.flickr_short(58 * 58 + 2) == "https://flic.kr/p/213"


def test_a_cell_seed_view_draws_its_subsample_with_the_cell_seed(registries):
    """Bugs caught: seeds that change nothing in a suite of deterministic methods (the
    subsample fixed by the view's own seed: CI +- 0), and two seeds' subsamples sharing one
    feature-cache entry (same fingerprint)."""
    name = "digits[cell_seed=true,k_per_class=5]"
    first = create_task(name, registries, cell_seed=1)
    again = create_task(name, registries, cell_seed=1)
    other = create_task(name, registries, cell_seed=2)
    rows = [t.split("train").inputs for t in (first, again, other)]
    assert np.array_equal(rows[0], rows[1]) and not np.array_equal(rows[0], rows[2])
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    plain = create_task("digits[k_per_class=5,seed=1]", registries)
    assert plain.fingerprint() != first.fingerprint()
    assert np.array_equal(plain.split("train").inputs, rows[0])  # the same draw, as seed=1
    outside = create_task(name, registries)  # no cell: the view's own seed (0)
    assert np.array_equal(outside.split("train").inputs,
                          create_task("digits[k_per_class=5]", registries).split(
                              "train").inputs)


def test_suite_exclusions_drop_matching_cells_only():
    """Bugs caught: an exclusion that drops every cell of the backbone (not only with that
    method), and malformed exclusions accepted silently."""
    suite = parse_suite({"tasks": ["t1", "t2"], "backbones": ["raw:pixels", "timm:x"],
                         "methods": ["linear-probe", "finetune"],
                         "exclude": [{"backbone": "raw:pixels", "method": "finetune"},
                                     {"task": "t2", "backbone": "timm:x",
                                      "method": "linear-probe"}]})
    kept = {(c.task, c.backbone, c.method) for c in suite.cells}
    assert len(suite.cells) == 8 - 2 - 1
    assert ("t1", "raw:pixels", "linear-probe") in kept
    assert ("t1", "raw:pixels", "finetune") not in kept
    assert ("t2", "timm:x", "linear-probe") not in kept and ("t1", "timm:x",
                                                              "linear-probe") in kept
    for bad in ({"backbone": 1}, {"model": "x"}, {}, "raw:pixels"):
        with pytest.raises(DataError, match="exclude"):
            parse_suite({"tasks": ["t"], "backbones": ["b"], "methods": ["m"],
                         "exclude": [bad]})
    with pytest.raises(DataError, match="exclude must be an array"):
        parse_suite({"tasks": ["t"], "backbones": ["b"], "methods": ["m"], "exclude": "x"})
