"""The results store: one SQLite file (WAL), each result inserted once in its own transaction.

Result rows are never updated or deleted: a re-run of a failed cell adds a new row, and
``finished`` tells a suite which cells already have a successful result so it can resume.

Transferability scores (``transferlab rank``) live in their own table, ``scores``, one row per
(task, backbone with its parameter values, score with its parameter values, split): a re-rank
replaces the value, since a score is a deterministic function of the features, and the latest
computation is the one to compare with the measured cells.

Task-relation maps (``transferlab relate``) live in ``relations``, one row per map computed,
appended like results: the map itself (gains per source and target task, per transfer
method) as JSON, next to the cells it was computed from, which are ordinary result rows.

Schema changes are additive: :data:`MIGRATIONS` lists columns added after the first release,
and opening an older file adds them (``ALTER TABLE ... ADD COLUMN``), leaving old rows as they
were (NULL in the new column). New tables are created with ``CREATE TABLE IF NOT EXISTS`` when
a file is opened, so an older file gains them and keeps every row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.harness.cell import Cell, CellResult
from transferlab.precision import keyed_backbone_params

__all__ = ["CLAIMS_SCHEMA", "MIGRATIONS", "RELATIONS_SCHEMA", "SCHEMA", "SCORES_SCHEMA",
           "ResultsStore", "ScoreRecord"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_key TEXT NOT NULL,
    suite TEXT,
    backbone TEXT NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    backbone_params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT NOT NULL,
    fit_seconds REAL,
    predict_seconds REAL,
    trainable_params INTEGER,
    total_params INTEGER,
    peak_memory_mb REAL,
    error TEXT,
    environment TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    finished_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_cell ON results (cell_key, status);
"""

# One value per (task, backbone, backbone_params, score, score_params, split): the UNIQUE
# constraint is what makes a re-rank replace the old value (ResultsStore.add_score).
SCORES_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    backbone TEXT NOT NULL,
    backbone_params TEXT NOT NULL,
    score TEXT NOT NULL,
    score_params TEXT NOT NULL,
    split TEXT NOT NULL,
    examples INTEGER NOT NULL,
    value REAL NOT NULL,
    seconds REAL,
    environment TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    UNIQUE (task, backbone, backbone_params, score, score_params, split)
);
"""

# Task-relation maps, appended (never updated): ``relation_map`` is RelationMap.to_dict().
RELATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    backbone TEXT NOT NULL,
    backbone_params TEXT NOT NULL,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    tasks TEXT NOT NULL,
    seeds TEXT NOT NULL,
    relation_map TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# Pretraining runs (``transferlab pretrain``), appended: which objectives, data and budget
# produced the checkpoint a backbone name ``NAME@PATH`` points at; ``record`` holds the rest.
PRETRAINING_SCHEMA = """
CREATE TABLE IF NOT EXISTS pretraining (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    backbone TEXT NOT NULL,
    objectives TEXT NOT NULL,
    data TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    budget TEXT NOT NULL,
    steps INTEGER NOT NULL,
    final_loss REAL,
    validation_loss REAL,
    checkpoint TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


# Cells being run right now: one row per cell a worker (``owner``: host, pid and a random
# tag) has claimed, until ``expires_at`` (a Unix time the worker's heartbeat keeps pushing
# forward). Any number of ``bench`` processes on one file split a suite's cells through it.
CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    cell_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class ScoreRecord:
    """One transferability score value: what was scored, how, and with what software.

    ``task`` is the canonical task name (its view included), ``backbone_params`` and
    ``score_params`` the fully resolved parameter values (defaults included, as cells store
    them), so one backbone written two ways is one row. ``environment`` has the shape of a
    cell's (python, platform, device, packages, plugins); ``extra`` holds the backbone's and
    the task's fingerprints.
    """

    task: str
    backbone: str
    backbone_params: Mapping[str, Any]
    score: str
    score_params: Mapping[str, Any]
    split: str
    examples: int
    value: float
    seconds: float | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""


# (column, SQL type) added since the first schema; applied in order to older files.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("source_task", "TEXT"),  # domain adaptation: the labeled source task, NULL otherwise
    ("regime", "TEXT"),  # multi-task / continual: the regime setting, NULL otherwise
    ("tasks", "TEXT"),  # with a regime: the JSON list of its tasks, in order
)


class ResultsStore:
    """Append-only SQLite storage of :class:`CellResult` rows."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(self._connect()) as conn, conn:
                conn.executescript(SCHEMA)
                _migrate(conn)
                conn.executescript(SCORES_SCHEMA)
                conn.executescript(RELATIONS_SCHEMA)
                conn.executescript(PRETRAINING_SCHEMA)
                conn.executescript(CLAIMS_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise TransferlabError(
                f"{self.path} is not a transferlab results database ({exc});"
                " pass another file with --db"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.row_factory = sqlite3.Row
        return conn

    def add(self, result: CellResult, suite: str | None = None) -> int:
        """Insert one result atomically and return its row id."""
        c = result.cell
        row = (
            c.key, suite, c.backbone, c.task, c.method, _dumps(c.params),
            _dumps(keyed_backbone_params(c.backbone_params)), c.seed, result.status,
            _dumps(result.metrics),
            result.fit_seconds, result.predict_seconds, result.trainable_params,
            result.total_params, result.peak_memory_mb, result.error,
            _dumps(result.environment), _dumps(result.extra), result.finished_at, c.source_task,
            c.regime, None if c.regime is None else _dumps(list(c.tasks)),
        )
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO results (cell_key, suite, backbone, task, method, params,"
                " backbone_params, seed, status, metrics, fit_seconds, predict_seconds,"
                " trainable_params, total_params, peak_memory_mb, error, environment, extra,"
                " finished_at, source_task, regime, tasks)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            return int(cursor.lastrowid or 0)

    def claim(self, key: str, owner: str, lease: float, *, since: int | None = None,
              alive: Any = None) -> str:
        """Claim the cell ``key`` for ``owner`` for ``lease`` seconds: ``"claimed"``;
        ``"finished"`` when it has a successful result, or any result stored after row id
        ``since`` (:meth:`last_id` when the worker started: a cell that failed in this
        campaign is not run again);
        ``"held"`` when another owner's claim has not expired and ``alive(owner)`` (default:
        yes). One ``BEGIN IMMEDIATE`` transaction, so two workers never both get a cell."""
        import time

        now = time.time()
        conn = self._connect()
        conn.isolation_level = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = conn.execute(
                "SELECT 1 FROM results WHERE cell_key = ? AND (status = 'ok' OR id > ?)"
                " LIMIT 1", (key, 2**62 if since is None else since)).fetchone()
            held = conn.execute("SELECT owner, expires_at FROM claims WHERE cell_key = ?",
                                (key,)).fetchone()
            taken = held is not None and held[0] != owner and held[1] > now and (
                alive is None or alive(held[0]))
            if done is not None or taken:
                conn.execute("ROLLBACK")
                return "finished" if done is not None else "held"
            conn.execute("INSERT OR REPLACE INTO claims (cell_key, owner, claimed_at,"
                         " expires_at) VALUES (?,?,?,?)", (key, owner, now, now + lease))
            conn.execute("COMMIT")
            return "claimed"
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def last_id(self) -> int:
        """The id of the latest result row (0 for none): where a campaign starts."""
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM results").fetchone()[0])

    def renew(self, keys: list[str], owner: str, lease: float) -> None:
        """Push the expiry of ``owner``'s claims on ``keys`` to ``lease`` seconds from now
        (the heartbeat of a worker still running them)."""
        import time

        if not keys:
            return
        marks = ",".join("?" * len(keys))
        with closing(self._connect()) as conn, conn:
            conn.execute(f"UPDATE claims SET expires_at = ? WHERE owner = ? AND cell_key IN"
                         f" ({marks})", (time.time() + lease, owner, *keys))

    def release(self, key: str, owner: str) -> None:
        """Drop ``owner``'s claim on ``key`` (its result is stored, or it was given up)."""
        with closing(self._connect()) as conn, conn:
            conn.execute("DELETE FROM claims WHERE cell_key = ? AND owner = ?", (key, owner))

    def claims(self) -> list[dict[str, Any]]:
        """The current claims (expired ones included), oldest first."""
        with closing(self._connect()) as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM claims ORDER BY claimed_at")]

    def finished(self, cell: Cell) -> bool:
        """Whether a successful result for this cell is already stored."""
        with closing(self._connect()) as conn:
            found = conn.execute(
                "SELECT 1 FROM results WHERE cell_key = ? AND status = 'ok' LIMIT 1", (cell.key,)
            ).fetchone()
        return found is not None

    def rows(self, *, suite: str | None = None, status: str | None = "ok",
             task: str | None = None) -> list[dict[str, Any]]:
        """Stored results as dicts (JSON columns decoded), oldest first; ``task`` (a canonical
        task name) keeps that task's cells only."""
        query, args = "SELECT * FROM results WHERE 1=1", []
        if suite is not None:
            query, args = query + " AND suite = ?", [*args, suite]
        if task is not None:
            query, args = query + " AND task = ?", [*args, task]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with closing(self._connect()) as conn:
            return [_decode(row) for row in conn.execute(query + " ORDER BY id", args)]

    def find(self, key_prefix: str) -> list[dict[str, Any]]:
        """Every result row (any status) whose cell key starts with ``key_prefix``, decoded
        like :meth:`rows`, oldest first; rows of several cells when the prefix is short."""
        with closing(self._connect()) as conn:
            found = conn.execute("SELECT * FROM results WHERE substr(cell_key, 1, ?) = ?"
                                 " ORDER BY id", (len(key_prefix), key_prefix))
            return [_decode(row) for row in found]

    def row(self, row_id: int) -> dict[str, Any] | None:
        """The result row with id ``row_id`` (any status), decoded like :meth:`rows`;
        ``None`` when there is none."""
        with closing(self._connect()) as conn:
            found = conn.execute("SELECT * FROM results WHERE id = ?", (row_id,)).fetchone()
        return None if found is None else _decode(found)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows(status=None))

    def add_score(self, record: ScoreRecord) -> None:
        """Store one score value, replacing the value stored for the same task, backbone,
        score (each with its parameter values) and split; atomic like :meth:`add`."""
        created = record.created_at or datetime.now(UTC).isoformat(timespec="seconds")
        row = (
            record.task, record.backbone, _dumps(dict(record.backbone_params)), record.score,
            _dumps(dict(record.score_params)), record.split, int(record.examples),
            float(record.value), record.seconds, _dumps(dict(record.environment)),
            _dumps(dict(record.extra)), created,
        )
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO scores (task, backbone, backbone_params, score, score_params,"
                " split, examples, value, seconds, environment, extra, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (task, backbone, backbone_params, score, score_params, split)"
                " DO UPDATE SET examples = excluded.examples, value = excluded.value,"
                " seconds = excluded.seconds, environment = excluded.environment,"
                " extra = excluded.extra, created_at = excluded.created_at",
                row,
            )

    def scores(self, *, task: str | None = None, split: str | None = None
               ) -> list[dict[str, Any]]:
        """Stored score values as dicts (JSON columns decoded), in the order first stored."""
        query, args = "SELECT * FROM scores WHERE 1=1", []
        if task is not None:
            query, args = query + " AND task = ?", [*args, task]
        if split is not None:
            query, args = query + " AND split = ?", [*args, split]
        with closing(self._connect()) as conn:
            return [_decode(row, _SCORE_JSON) for row in conn.execute(query + " ORDER BY id",
                                                                      args)]

    def add_relation(self, relation_map: Mapping[str, Any]) -> int:
        """Append one task-relation map (``RelationMap.to_dict()``: ``backbone``,
        ``backbone_params``, ``method``, ``params``, ``tasks``, ``seeds`` and the gains) and
        return its row id; atomic like :meth:`add`."""
        data = dict(relation_map)
        row = (
            data["backbone"], _dumps(data.get("backbone_params", {})), data["method"],
            _dumps(data.get("params", {})), _dumps(list(data["tasks"])),
            _dumps(list(data["seeds"])), _dumps(data),
            data.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO relations (backbone, backbone_params, method, params, tasks,"
                " seeds, relation_map, created_at) VALUES (?,?,?,?,?,?,?,?)", row)
            return int(cursor.lastrowid or 0)

    def relations(self, *, backbone: str | None = None) -> list[dict[str, Any]]:
        """Stored task-relation maps as dicts (JSON columns decoded), oldest first."""
        query, args = "SELECT * FROM relations WHERE 1=1", []
        if backbone is not None:
            query, args = query + " AND backbone = ?", [backbone]
        with closing(self._connect()) as conn:
            return [_decode(row, _RELATION_JSON)
                    for row in conn.execute(query + " ORDER BY id", args)]

    def add_pretraining(self, record: Mapping[str, Any]) -> int:
        """Append one pretraining run (the record ``run_request`` returns: ``backbone``,
        ``objectives``, ``data``, ``data_fingerprint``, ``budget``, ``steps``,
        ``final_loss``, ``validation_loss``, ``checkpoint``...) and return its row id."""
        data = dict(record)
        row = (
            data["backbone"], _dumps(data["objectives"]), data["data"],
            data["data_fingerprint"], _dumps(data["budget"]), int(data["steps"]),
            data.get("final_loss"), data.get("validation_loss"), str(data["checkpoint"]),
            _dumps(data), data.get("created_at") or datetime.now(UTC).isoformat(
                timespec="seconds"),
        )
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO pretraining (backbone, objectives, data, data_fingerprint, budget,"
                " steps, final_loss, validation_loss, checkpoint, record, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
            return int(cursor.lastrowid or 0)

    def pretraining_runs(self, *, checkpoint: str | Path | None = None
                         ) -> list[dict[str, Any]]:
        """Stored pretraining runs (JSON columns decoded), oldest first; with
        ``checkpoint``, only the runs that wrote that file (the path as given or resolved)."""
        query, args = "SELECT * FROM pretraining WHERE 1=1", []
        if checkpoint is not None:
            query += " AND checkpoint IN (?, ?)"
            args = [str(checkpoint), str(Path(checkpoint).resolve())]
        with closing(self._connect()) as conn:
            return [_decode(row, _PRETRAINING_JSON)
                    for row in conn.execute(query + " ORDER BY id", args)]


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns of :data:`MIGRATIONS` that an older file lacks."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    for column, sql_type in MIGRATIONS:
        if column in have:
            continue
        try:
            conn.execute(f"ALTER TABLE results ADD COLUMN {column} {sql_type}")
        except sqlite3.OperationalError as exc:  # another process migrated first
            if "duplicate column" not in str(exc):
                raise


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_RESULT_JSON = ("params", "backbone_params", "metrics", "environment", "extra")
_SCORE_JSON = ("backbone_params", "score_params", "environment", "extra")
_RELATION_JSON = ("backbone_params", "params", "tasks", "seeds", "relation_map")
_PRETRAINING_JSON = ("objectives", "budget", "record")


def _decode(row: sqlite3.Row, columns: tuple[str, ...] = _RESULT_JSON) -> dict[str, Any]:
    data = dict(row)
    for column in columns:
        data[column] = json.loads(data[column])
    if data.get("tasks") is not None and isinstance(data["tasks"], str):
        data["tasks"] = json.loads(data["tasks"])
    return data
