"""What rulerun remembers between runs, in one sqlite file under .rulerun/, and the run lock.

Per job (keyed by its outputs, or 'task:NAME' / 'split:NAME') the signature of its last success:
a hash of its action, of each variable it uses and of its input list. Before a job starts its
outputs are marked incomplete in the same database, and the mark is cleared only when it
succeeded: after a crash (even kill -9) the next run sees which outputs can't be trusted.
Writes are batched: one transaction per batch of starts or completions.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from typing import Iterable

from rulerun.errors import StateError

SCHEMA_VERSION = 1
STATE_DIR = ".rulerun"


class State:
    """The state database of one project directory."""

    def __init__(self, directory: str = STATE_DIR, readonly: bool = False):
        self.directory = directory
        self.path = os.path.join(directory, "state.db")
        self.warnings: list[str] = []
        self._readonly = readonly
        self._db = self._open()

    def _open(self) -> sqlite3.Connection | None:
        if self._readonly and not os.path.exists(self.path):
            return None
        os.makedirs(self.directory, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            return self._recover(exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            db.executescript(
                "CREATE TABLE IF NOT EXISTS signatures (job TEXT PRIMARY KEY, signature TEXT, finished REAL);"
                "CREATE TABLE IF NOT EXISTS incomplete (output TEXT PRIMARY KEY, job TEXT, started REAL);")
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise StateError(f"{self.path} was written by another version of rulerun (schema {row[0]})",
                             hint=f"remove {self.directory}/state.db; every job whose outputs exist and "
                                  "are newer than its inputs stays up to date")
        db.execute("SELECT count(*) FROM signatures").fetchone()
        db.execute("SELECT count(*) FROM incomplete").fetchone()
        return db

    def _recover(self, exc: Exception) -> sqlite3.Connection:
        """A corrupt database: keep it aside for inspection and start a new one. Everything
        whose outputs are newer than its inputs stays up to date; only remembered signatures
        and incomplete marks are lost, so say so."""
        aside = f"{self.path}.corrupt-{int(time.time())}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, aside + suffix)
        self.warnings.append(
            f"the state database {self.path} was unreadable ({exc}); moved it to {aside} and started a "
            "new one: changed actions and interrupted jobs from before can't be detected this time "
            "(use -B to rebuild everything if in doubt)")
        try:
            return self._connect()
        except sqlite3.DatabaseError as again:
            raise StateError(f"can't create the state database {self.path}: {again}") from again

    # ------------------------------------------------------------------ reading

    def signature(self, job_key: str) -> dict | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT signature FROM signatures WHERE job=?", (job_key,)).fetchone()
        return json.loads(row[0]) if row else None

    def incomplete(self) -> set[str]:
        """Outputs of jobs that started and never finished (crash, kill -9, power loss)."""
        if self._db is None:
            return set()
        return {row[0] for row in self._db.execute("SELECT output FROM incomplete")}

    # ------------------------------------------------------------------ writing

    def jobs_started(self, jobs: Iterable[tuple[str, list[str]]]) -> None:
        """Mark each (job key, outputs) incomplete; committed before any of them starts."""
        now = time.time()
        rows = [(out, key, now) for key, outputs in jobs for out in [*outputs, key]]
        self._write("INSERT OR REPLACE INTO incomplete VALUES (?, ?, ?)", rows)

    def jobs_finished(self, records: Iterable[tuple[str, list[str], dict]]) -> None:
        """Record each (job key, outputs, signature) as succeeded and clear its incomplete marks."""
        now = time.time()
        records = list(records)
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)",
                           [(key, json.dumps(sig, sort_keys=True), now) for key, _, sig in records])
            db.executemany("DELETE FROM incomplete WHERE job=?", [(key,) for key, _, _ in records])

    def jobs_cleared(self, jobs: Iterable[tuple[str, list[str]]]) -> None:
        """Forget each (job key, outputs): it failed or was interrupted and its outputs are gone."""
        jobs = list(jobs)
        with self._transaction() as db:
            db.executemany("DELETE FROM signatures WHERE job=?", [(key,) for key, _ in jobs])
            db.executemany("DELETE FROM incomplete WHERE job=?", [(key,) for key, _ in jobs])

    def _write(self, sql: str, rows: list[tuple]) -> None:
        with self._transaction() as db:
            db.executemany(sql, rows)

    def _transaction(self):
        if self._db is None:
            raise StateError("the state database is read-only here")
        return _Transaction(self._db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


class RunLock:
    """An exclusive kernel lock (flock) on .rulerun/lock: released by the kernel when the process
    dies, so it can never go stale after a crash."""

    def __init__(self, directory: str = STATE_DIR):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "lock")
        self._fd: int | None = None

    def acquire(self, wait: bool, on_wait=lambda holder: None) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                os.close(fd)
                raise StateError(f"another rulerun ({holder}) is running in this directory",
                                 hint="wait for it to finish, or stop it")
            on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
