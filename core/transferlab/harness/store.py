"""The results store: one SQLite file (WAL), each result inserted once in its own transaction.

Rows are never updated or deleted: a re-run of a failed cell adds a new row, and ``finished``
tells a suite which cells already have a successful result so it can resume.

Schema changes are additive: :data:`MIGRATIONS` lists columns added after the first release,
and opening an older file adds them (``ALTER TABLE ... ADD COLUMN``), leaving old rows as they
were (NULL in the new column).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.harness.cell import Cell, CellResult

__all__ = ["MIGRATIONS", "SCHEMA", "ResultsStore"]

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

# (column, SQL type) added since the first schema; applied in order to older files.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("source_task", "TEXT"),  # domain adaptation: the labeled source task, NULL otherwise
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
            _dumps(c.backbone_params), c.seed, result.status, _dumps(result.metrics),
            result.fit_seconds, result.predict_seconds, result.trainable_params,
            result.total_params, result.peak_memory_mb, result.error,
            _dumps(result.environment), _dumps(result.extra), result.finished_at, c.source_task,
        )
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO results (cell_key, suite, backbone, task, method, params,"
                " backbone_params, seed, status, metrics, fit_seconds, predict_seconds,"
                " trainable_params, total_params, peak_memory_mb, error, environment, extra,"
                " finished_at, source_task) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            return int(cursor.lastrowid or 0)

    def finished(self, cell: Cell) -> bool:
        """Whether a successful result for this cell is already stored."""
        with closing(self._connect()) as conn:
            found = conn.execute(
                "SELECT 1 FROM results WHERE cell_key = ? AND status = 'ok' LIMIT 1", (cell.key,)
            ).fetchone()
        return found is not None

    def rows(self, *, suite: str | None = None, status: str | None = "ok") -> list[dict[str, Any]]:
        """Stored results as dicts (JSON columns decoded), oldest first."""
        query, args = "SELECT * FROM results WHERE 1=1", []
        if suite is not None:
            query, args = query + " AND suite = ?", [*args, suite]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with closing(self._connect()) as conn:
            return [_decode(row) for row in conn.execute(query + " ORDER BY id", args)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows(status=None))


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


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for column in ("params", "backbone_params", "metrics", "environment", "extra"):
        data[column] = json.loads(data[column])
    return data
