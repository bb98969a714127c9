"""The journal: every step apply takes, in an SQLite file in the workdir.

A step is recorded as ``running`` before its first write call and as ``done`` (with the
destination ID) or ``failed`` (with the API's message) after. SQLite commits survive kill -9,
so a re-run knows what was in flight. The destination itself stays the source of truth: a
re-run re-plans against it, so a lost journal costs a report, never a duplicate.

The journal also says what is stackferry's in the destination where the resource itself
cannot (keystone, nova and cinder have no tags): every identity whose create a run started,
and every one the operator adopted. A lost journal makes those conflicts to adopt again,
never something changed without being asked.

And it says what stackferry changed in the source (a server it stopped for the cutover), with
what it was before, written before the change: the first record wins, so a re-run never takes
the state stackferry left for the state the operator had.

Finishing a migration (``stackferry finish``) is recorded too: every marker it takes off a
destination resource, before it does (from then on the journal is what says the resource is
stackferry's), every source resource it retires, before it deletes it, and each finish with
when it ran and what it removed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from stackferry.errors import WorkdirError

T = TypeVar("T")

SOURCE_CHANGES_QUERY = "SELECT key, before FROM source_changes WHERE restored_at IS NULL"
# What says a destination resource is stackferry's, by table: a create a run started, the
# operator's adoption, a marker stackferry took off (``finish``).
OWNED_PARTS = (
    ("steps", "SELECT key FROM steps WHERE action = 'create' AND state IN "
              "('running', 'done', 'failed')"),
    ("adopted", "SELECT key FROM adopted"),
    ("unmarked", "SELECT key FROM unmarked"),
)  # fmt: skip
OWNED_QUERY = " UNION ".join(query for _, query in OWNED_PARTS)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS temporaries (
    key TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    undo TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    removed_at TEXT
);
CREATE TABLE IF NOT EXISTS adopted (
    key TEXT PRIMARY KEY,
    adopted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_changes (
    key TEXT PRIMARY KEY,
    before TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    restored_at TEXT
);
CREATE TABLE IF NOT EXISTS kept (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS unmarked (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    unmarked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retired (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS finishes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER REFERENCES runs(id),
    command TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    removed TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    source_id TEXT,
    destination_id TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (run_id, key)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class FinishRecord:
    """One ``stackferry finish`` that completed: which (``finish`` or ``retire-source``),
    when, and what it removed (counts and names, as its report has them)."""

    command: str
    finished_at: str
    removed: dict[str, Any]


@dataclass(frozen=True)
class FinishState:
    """What a journal says about finishing, read without writing (for ``--dry-run``)."""

    finishes: list[FinishRecord]
    temporaries: list[tuple[str, str, str]]  # (key, description, undo), still to remove
    retiring: set[str]  # keys of source resources whose deletion a retirement started
    retired: set[str]  # those deleted (or found gone already)


@dataclass(frozen=True)
class StepRecord:
    run_id: int
    key: str
    kind: str
    action: str
    state: str
    source_id: str | None
    destination_id: str | None
    error: str | None


class Journal:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            existed = path.exists()
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if not existed:
                path.chmod(0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise WorkdirError(
                f"the journal {path} cannot be written ({exc}): apply records every step "
                "there before making it; give a --workdir on a writable file system"
            ) from None
        self._lock = threading.Lock()
        self.path = path
        self.run_id: int | None = None

    @staticmethod
    def _read_only(path: Path, read: Callable[[sqlite3.Connection, set[str]], T], empty: T) -> T:
        """``read(db, tables)`` on the journal opened read-only, creating nothing (``empty``
        when there is no journal): for the commands that write nothing."""
        if not path.exists():
            return empty
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master")}
                return read(db, tables)
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise WorkdirError(f"the journal {path} cannot be read: {exc}") from None

    @staticmethod
    def owned_at(path: Path) -> set[str]:
        """The identities a journal says are stackferry's (made or adopted): for ``plan``."""

        def read(db: sqlite3.Connection, tables: set[str]) -> set[str]:
            parts = [query for table, query in OWNED_PARTS if table in tables]
            if not parts:
                return set()
            return {str(row[0]) for row in db.execute(" UNION ".join(parts))}

        return Journal._read_only(path, read, set())

    @staticmethod
    def finish_state_at(path: Path) -> FinishState:
        """Earlier finishes, temporaries not removed yet, retirements started: read-only."""

        def read(db: sqlite3.Connection, tables: set[str]) -> FinishState:
            finishes, temporaries, retiring, retired = [], [], set(), set()
            if "finishes" in tables:
                finishes = [
                    FinishRecord(str(c), str(at), json.loads(r))
                    for c, at, r in db.execute(
                        "SELECT command, finished_at, removed FROM finishes ORDER BY id"
                    )
                ]
            if "temporaries" in tables:
                temporaries = [
                    (str(k), str(d), str(u))
                    for k, d, u in db.execute(
                        "SELECT key, description, undo FROM temporaries "
                        "WHERE removed_at IS NULL ORDER BY recorded_at, rowid"
                    )
                ]
            if "retired" in tables:
                for key, state in db.execute("SELECT key, state FROM retired"):
                    retiring.add(str(key))
                    if state in ("deleted", "gone"):
                        retired.add(str(key))
            return FinishState(finishes, temporaries, retiring, retired)

        return Journal._read_only(path, read, FinishState([], [], set(), set()))

    @staticmethod
    def source_changes_at(path: Path) -> dict[str, dict[str, Any]]:
        """What a journal says stackferry changed in the source and has not put back: for
        ``export`` and ``verify --src``."""

        def read(db: sqlite3.Connection, tables: set[str]) -> dict[str, dict[str, Any]]:
            if "source_changes" not in tables:
                return {}
            return {str(k): json.loads(b) for k, b in db.execute(SOURCE_CHANGES_QUERY)}

        return Journal._read_only(path, read, {})

    @staticmethod
    def kept_at(path: Path) -> dict[str, dict[str, Any]]:
        """What kinds keep between runs (see ``keep``), read-only: for ``plan``."""

        def read(db: sqlite3.Connection, tables: set[str]) -> dict[str, dict[str, Any]]:
            if "kept" not in tables:
                return {}
            return {str(k): json.loads(v) for k, v in db.execute("SELECT key, value FROM kept")}

        return Journal._read_only(path, read, {})

    def kept(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kept WHERE key = ?", (key,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    def keep(self, key: str, value: dict[str, Any] | None) -> None:
        """Work that spans runs (a volume's warm sync: its destination volume, the snapshot
        both sides hold): written before the step it describes acts on it; None forgets."""
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM kept WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO kept (key, value, updated_at) VALUES (?, ?, ?)",
                    (key, json.dumps(value, sort_keys=True), _now()),
                )

    def source_changes(self) -> dict[str, dict[str, Any]]:
        """The same, from this open journal (apply's)."""
        with self._lock:
            rows = self._db.execute(SOURCE_CHANGES_QUERY).fetchall()
        return {str(k): json.loads(b) for k, b in rows}

    def source_changing(self, key: str, before: dict[str, Any]) -> dict[str, Any]:
        """Record what a source resource is like before stackferry changes it; an earlier
        record (not put back) wins. Returns the state recorded."""
        with self._lock:
            row = self._db.execute(
                "SELECT before FROM source_changes WHERE key = ? AND restored_at IS NULL", (key,)
            ).fetchone()
            if row is not None:
                recorded: dict[str, Any] = json.loads(row[0])
                return recorded
            self._db.execute(
                "INSERT OR REPLACE INTO source_changes (key, before, changed_at) VALUES (?, ?, ?)",
                (key, json.dumps(before, sort_keys=True), _now()),
            )
            return before

    def source_restored(self, key: str) -> None:
        """The source resource is as it was before stackferry changed it."""
        with self._lock:
            self._db.execute(
                "UPDATE source_changes SET restored_at = ? WHERE key = ? AND restored_at IS NULL",
                (_now(), key),
            )

    def owned(self) -> set[str]:
        with self._lock:
            return {str(row[0]) for row in self._db.execute(OWNED_QUERY)}

    def adopt(self, keys: Iterable[str]) -> None:
        """The operator said these destination resources are to be managed as stackferry's."""
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO adopted (key, adopted_at) VALUES (?, ?)",
                [(key, _now()) for key in keys],
            )

    def unmarking(self, key: str, kind: str, destination_id: str) -> None:
        """Before stackferry's marker comes off a destination resource: it stays stackferry's
        through the journal (see ``owned``)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO unmarked (key, kind, destination_id, unmarked_at) "
                "VALUES (?, ?, ?, ?)",
                (key, kind, destination_id, _now()),
            )

    def retiring(self, key: str, kind: str, source_id: str) -> None:
        """Before a source resource is deleted (``finish --retire-source``). A retirement once
        started stays recorded: a re-run compares that resource as the workdir has it."""
        with self._lock:
            self._db.execute(
                "INSERT INTO retired (key, kind, source_id, state, started_at) "
                "VALUES (?, ?, ?, 'deleting', ?) ON CONFLICT (key) DO UPDATE SET "
                "state = 'deleting', error = NULL, finished_at = NULL",
                (key, kind, source_id, _now()),
            )

    def retired(self, key: str, state: str, error: str | None = None) -> None:
        """How a deletion ended: ``deleted``, ``gone`` (it was already) or ``failed``, and
        why."""
        with self._lock:
            self._db.execute(
                "UPDATE retired SET state = ?, error = ?, finished_at = ? WHERE key = ?",
                (state, error, _now(), key),
            )

    def finished(self, command: str, removed: dict[str, Any]) -> None:
        """A finish completed: when, and what it removed."""
        with self._lock:
            self._db.execute(
                "INSERT INTO finishes (run_id, command, finished_at, removed) VALUES (?, ?, ?, ?)",
                (self.run_id, command, _now(), json.dumps(removed, sort_keys=True)),
            )

    def start_run(self, command: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, _now())
            )
            self.run_id = int(cur.lastrowid or 0)
        return self.run_id

    def finish_run(self, outcome: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
                (_now(), outcome, self.run_id),
            )

    def step_started(self, key: str, kind: str, action: str, source_id: str | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO steps (run_id, key, kind, action, state, source_id, "
                "started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (self.run_id, key, kind, action, source_id, _now()),
            )

    def step_finished(
        self, key: str, state: str, destination_id: str | None = None, error: str | None = None
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE steps SET state = ?, destination_id = ?, error = ?, finished_at = ? "
                "WHERE run_id = ? AND key = ?",
                (state, destination_id, error, _now(), self.run_id, key),
            )

    def step_skipped(
        self,
        key: str,
        kind: str,
        action: str,
        state: str,
        source_id: str | None,
        error: str | None = None,
    ) -> None:
        """Record a step that made no call: unchanged, blocked, or a conflict."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO steps (run_id, key, kind, action, state, source_id, "
                "error, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, key, kind, action, state, source_id, error, _now(), _now()),
            )

    def interrupted(self) -> list[StepRecord]:
        """Steps left ``running`` by an earlier run that never finished them."""
        rows = self._db.execute(
            "SELECT run_id, key, kind, action, state, source_id, destination_id, error "
            "FROM steps WHERE state = 'running' AND run_id != ?",
            (self.run_id or -1,),
        )
        return [StepRecord(*row) for row in rows]

    def steps(self, run_id: int | None = None) -> list[StepRecord]:
        rows = self._db.execute(
            "SELECT run_id, key, kind, action, state, source_id, destination_id, error "
            "FROM steps WHERE run_id = ? ORDER BY started_at",
            (run_id or self.run_id,),
        )
        return [StepRecord(*row) for row in rows]

    def temporary_recorded(self, key: str, description: str, undo: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO temporaries (key, description, undo, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (key, description, undo, _now()),
            )

    def temporaries_pending(self) -> list[tuple[str, str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, description, undo FROM temporaries "
                "WHERE removed_at IS NULL ORDER BY recorded_at, rowid"
            ).fetchall()
        return [(str(k), str(d), str(u)) for k, d, u in rows]

    def temporary_removed(self, key: str) -> None:
        with self._lock:
            self._db.execute("UPDATE temporaries SET removed_at = ? WHERE key = ?", (_now(), key))

    def close(self) -> None:
        self._db.close()
