"""The results file's score and relation tables, round-tripped field by field."""

from __future__ import annotations

from transferlab.harness.store import ResultsStore, ScoreRecord


def _map(backbone: str, **extra) -> dict:
    return {"backbone": backbone, "backbone_params": {"img_size": 64}, "method": "finetune",
            "params": {"max_steps": 50}, "tasks": ("a", "b"), "seeds": (0, 1),
            "gains": {"linear-probe": [[0.0, 0.1], [-0.2, 0.0]]}, **extra}


def test_relation_maps_round_trip_and_filter_by_backbone(tmp_path):
    """Bugs caught: a map stored without its backbone parameters, method parameters or seeds
    (a re-run could not tell two maps apart), the creation time ignored or not in UTC, the
    backbone filter dropped or breaking the query."""
    store = ResultsStore(tmp_path / "r.sqlite")
    first = store.add_relation(_map("timm:a", created_at="2026-01-01T00:00:00+00:00"))
    second = store.add_relation(_map("timm:b"))
    assert (first, second) == (1, 2)
    rows = store.relations()
    assert [r["backbone"] for r in rows] == ["timm:a", "timm:b"]
    one = rows[0]
    assert (one["backbone_params"], one["method"], one["params"], one["tasks"],
            one["seeds"]) == ({"img_size": 64}, "finetune", {"max_steps": 50}, ["a", "b"],
                              [0, 1])
    assert one["created_at"] == "2026-01-01T00:00:00+00:00"
    assert one["relation_map"]["gains"] == {"linear-probe": [[0.0, 0.1], [-0.2, 0.0]]}
    assert rows[1]["created_at"].endswith("+00:00")  # stamped now, in UTC
    assert [r["backbone"] for r in store.relations(backbone="timm:b")] == ["timm:b"]
    bare = store.add_relation({"backbone": "x", "method": "m", "tasks": ["a"], "seeds": [0]})
    assert store.relations(backbone="x")[0]["backbone_params"] == {} and bare == 3
    assert store.relations(backbone="x")[0]["params"] == {}


def test_a_score_without_a_time_is_stamped_in_utc(tmp_path):
    """Bug caught: a score stamped in local time, so stored times do not sort or compare."""
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_score(ScoreRecord("digits", "raw:pixels", {}, "logme", {}, "train", 10, 0.5))
    (row,) = store.scores()
    assert row["created_at"].endswith("+00:00") and len(row["created_at"]) == 25
