"""The SQLite state store: per source the window, pending sessions, counted ids and counter totals.

One transaction per source cycle, so the counted ids and the counter increments land together:
after a crash at any instant the exporter restarts from the last committed cycle, and a session
is neither counted twice nor lost.
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import Callable

import structlog

from agent_session_exporter.count.state import CycleDelta, PendingSession, SourceState, SourceTotals
from agent_session_exporter.keep.codec import totals_from_json, totals_to_json
from agent_session_exporter.keep.state_file import StateError, file_identity, lock_state_file, reset_state
from agent_session_exporter.safetext import is_safe, safe_text

SCHEMA_VERSION = 2
#: Older schema versions this one upgrades in place: version -> the statements that do it.
_UPGRADES = {1: ("ALTER TABLE pending ADD COLUMN workflow TEXT NOT NULL DEFAULT ''",)}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, provider TEXT NOT NULL, floor REAL, watermark REAL, totals TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counted (
    source TEXT NOT NULL, id TEXT NOT NULL, key_time REAL NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    source TEXT NOT NULL, id TEXT NOT NULL, key_time REAL NOT NULL, status TEXT NOT NULL, first_seen REAL NOT NULL,
    end_time REAL, end_seen_at REAL, workflow TEXT NOT NULL DEFAULT '', PRIMARY KEY (source, id)) WITHOUT ROWID;
"""
log = structlog.get_logger()


class SqliteStore:
    def __init__(self, path: str, providers: dict[str, str], reset: bool = False) -> None:
        """Open (or create) ``path``; ``providers`` maps the configured source names to their provider.

        ``path`` is locked for this process: a second exporter on the same file (or a
        ``--reset-state`` of it) exits with a clear message. ``reset`` deletes the file first.
        """
        self.path = path
        self.providers = providers
        self._snapshot: Callable[[], dict[str, SourceState]] = dict
        self._on_recreate: Callable[[], None] = lambda: None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"{path}: cannot create the state directory: {exc.strerror}") from None
        self._lock = lock_state_file(path)
        if reset:
            reset_state(path)
            log.warning("state reset: counting starts anew", state_path=path)
        if os.path.exists(path) and os.path.getsize(path) == 0:
            log.warning("the state file is empty: starting a new state", state_path=path)
        self._open()

    def _open(self) -> None:
        path = self.path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed cycle survives power loss too, so counters never step back.
            self.db.execute("PRAGMA synchronous=FULL")
            row = self._table_exists("meta") and self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row and row[0] in {str(v) for v in _UPGRADES}:
                with self._transaction():
                    for statement in _UPGRADES[int(row[0])]:
                        self.db.execute(statement)
                    self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
                log.info("state file upgraded", state_path=path, was=int(row[0]), now=SCHEMA_VERSION)
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise StateError(
                    f"{path}: state schema version {row[0]}, this exporter reads {SCHEMA_VERSION};"
                    " start with --reset-state to begin anew"
                )
            check = self.db.execute("PRAGMA quick_check").fetchone()
            if check[0] != "ok":
                raise StateError(f"{path}: state file is corrupt ({check[0]}); start with --reset-state to begin anew")
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot use state file ({exc}); start with --reset-state to begin anew") from None
        self._identity = file_identity(path)

    def _table_exists(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None

    def attach(self, snapshot: Callable[[], dict[str, SourceState]], on_recreate: Callable[[], None]) -> None:
        """``snapshot`` gives every source's state in memory: should the file be deleted or replaced
        while running, it is recreated from that, and ``on_recreate`` is called."""
        self._snapshot = snapshot
        self._on_recreate = on_recreate

    def check(self) -> None:
        """A cycle with nothing to write: the state file deleted or replaced meanwhile is still recreated."""
        self._check_identity()

    def _check_identity(self) -> None:
        """The file deleted or replaced under a running exporter: say so, and recreate it from memory."""
        if file_identity(self.path) == self._identity:
            return
        log.error("the state file was deleted or replaced while running; recreating it from memory", state_path=self.path)
        self._on_recreate()
        self.db.close()
        for suffix in ("-wal", "-shm"):
            try:
                os.remove(self.path + suffix)  # the old file's companions must not be applied to the new one
            except OSError:
                pass
        self._open()
        with self._transaction():
            for name, state in self._snapshot().items():
                self._write_whole(name, state)

    def _write_whole(self, source: str, state: SourceState) -> None:
        self._write_source(source, state.floor, state.watermark, state.totals)
        self.db.executemany(
            "INSERT OR REPLACE INTO counted VALUES (?, ?, ?)",
            [(source, sid, key_time) for sid, key_time in state.counted.items()],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (source, sid, p.key_time, p.status, p.first_seen, p.end_time, p.end_seen_at, p.workflow)
                for sid, p in state.pending.items()
            ],
        )

    def _write_source(self, source: str, floor: float | None, watermark: float | None, totals: SourceTotals) -> None:
        self.db.execute(
            "INSERT INTO sources (name, provider, floor, watermark, totals) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET provider=excluded.provider, floor=excluded.floor, "
            "watermark=excluded.watermark, totals=excluded.totals",
            (source, self.providers.get(source, ""), floor, watermark, totals_to_json(totals)),
        )

    def retain_only(self, providers: dict[str, str]) -> list[str]:
        """Drop the state of sources no longer configured, or whose provider changed (name -> provider)."""
        self.providers = dict(providers)
        rows = self.db.execute("SELECT name, provider FROM sources").fetchall()
        dropped = [name for name, provider in rows if providers.get(name) != provider]
        with self._transaction():
            for name in dropped:
                self._delete_source(name)
        return dropped

    def _delete_source(self, name: str) -> None:
        for table, column in (("sources", "name"), ("counted", "source"), ("pending", "source")):
            self.db.execute(f"DELETE FROM {table} WHERE {column}=?", (name,))

    def load(self, source: str) -> SourceState:
        """A source's state; its label values made safe (``safetext``), whatever version wrote them."""
        try:
            row = self.db.execute("SELECT floor, watermark, totals FROM sources WHERE name=?", (source,)).fetchone()
            if row is None:
                return SourceState()
            state = SourceState(floor=_time_or_none(row[0]), watermark=_time_or_none(row[1]), totals=totals_from_json(row[2]))
            reset = state.totals.drop_non_finite()
            if reset:
                log.error(
                    "state held counters that are not finite numbers; they restart from zero",
                    state_path=self.path,
                    source=source,
                    counters=reset,
                )
            made_safe = state.totals.make_safe(safe_text)
            state.counted = {
                str(sid): _time(key_time)
                for sid, key_time in self.db.execute("SELECT id, key_time FROM counted WHERE source=?", (source,))
            }
            for sid, key_time, status, first_seen, end_time, end_seen_at, workflow in self.db.execute(
                "SELECT id, key_time, status, first_seen, end_time, end_seen_at, workflow FROM pending WHERE source=?", (source,)
            ):
                if not isinstance(status, str) or not isinstance(workflow, str):
                    raise ValueError(f"pending status {status!r}, workflow {workflow!r}")
                made_safe += not (is_safe(status) and is_safe(workflow))
                state.pending[str(sid)] = PendingSession(
                    _time(key_time),
                    safe_text(status),
                    _time(first_seen),
                    _time_or_none(end_time),
                    _time_or_none(end_seen_at),
                    safe_text(workflow),
                )
            if made_safe:
                log.warning(
                    "state held label values with control characters or lone surrogates (written by an "
                    "older version); made safe as upstream text is now",
                    state_path=self.path,
                    source=source,
                    values=made_safe,
                )
        except (sqlite3.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(
                f"{self.path}: cannot read the state of source {source!r} ({exc}); start with --reset-state to begin anew"
            ) from None
        return state

    def commit(self, source: str, delta: CycleDelta, totals: SourceTotals) -> None:
        """Write one cycle in one transaction; ``totals`` are the source's totals after the delta."""
        self._check_identity()
        with self._transaction():
            self._write_source(source, delta.floor, delta.watermark, totals)
            if delta.counted_add:
                self.db.executemany(
                    "INSERT OR REPLACE INTO counted VALUES (?, ?, ?)",
                    [(source, sid, key_time) for sid, key_time in delta.counted_add.items()],
                )
            if delta.counted_remove:
                self.db.executemany(
                    "DELETE FROM counted WHERE source=? AND id=?", [(source, sid) for sid in delta.counted_remove]
                )
            if delta.pending_remove:
                self.db.executemany(
                    "DELETE FROM pending WHERE source=? AND id=?", [(source, sid) for sid in delta.pending_remove]
                )
            if delta.pending_upsert:
                self.db.executemany(
                    "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (source, sid, p.key_time, p.status, p.first_seen, p.end_time, p.end_seen_at, p.workflow)
                        for sid, p in delta.pending_upsert.items()
                    ],
                )

    def row_counts(self) -> dict[str, int]:
        return {
            table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("sources", "counted", "pending")
        }

    def close(self) -> None:
        self.db.close()
        self._lock.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _time(value: object) -> float:
    """A stored time; anything but a finite number is a corrupt row."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"not a time: {value!r}")
    return float(value)


def _time_or_none(value: object) -> float | None:
    return None if value is None else _time(value)
