"""What past runs leave for people: each job's last duration (the status line's ETA) and the
last run's timeline (`rulerun --report`).

Kept in the state database, in tables of their own (added with CREATE TABLE IF NOT EXISTS: a
database from before them is used as it is). Nothing here decides whether a job runs; losing
it loses an estimate and a report, never a rebuild.

The timeline is written during the run, a batch at a time (every FLUSH_SECONDS and at its
end), so that a run that crashed still leaves the jobs it ran; a row a job costs is then a
few microseconds, not a transaction.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import time
from dataclasses import dataclass

from rulerun.store.names import loaded, stored  # job keys kept as the state keeps them

FLUSH_SECONDS = 1.0

_TABLES = """
CREATE TABLE IF NOT EXISTS durations (job TEXT PRIMARY KEY, rule TEXT, seconds REAL);
CREATE TABLE IF NOT EXISTS last_run (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS last_run_jobs (
    id INTEGER PRIMARY KEY, rule TEXT, label TEXT, slot INTEGER, started REAL, ended REAL,
    status TEXT, kind TEXT, command TEXT, log TEXT, reason TEXT, cluster_id TEXT, queued REAL);
"""


@dataclass
class JobRow:
    """One job of the last run, as the report shows it (times in seconds since the run began)."""

    id: int
    rule: str
    label: str
    slot: int
    started: float
    ended: float | None
    status: str          # 'ok', 'failed', 'interrupted', or 'running' (the run never said)
    kind: str
    command: str
    log: str
    reason: str
    cluster_id: str | None
    queued: float | None  # seconds it waited in a cluster's queue, when known


def tables(db: sqlite3.Connection) -> None:
    db.executescript(_TABLES)


def durations(db: sqlite3.Connection | None) -> dict[str, float]:
    """Every job's last duration in seconds, by its job key."""
    if db is None:
        return {}
    try:
        return {loaded(job): seconds for job, seconds in db.execute("SELECT job, seconds FROM durations")}
    except sqlite3.Error:  # a database from before these tables, opened read-only
        return {}


def last_run(db: sqlite3.Connection | None) -> tuple[dict, list[JobRow]]:
    """The last run's facts (when, which targets, how it ended) and its jobs in start order."""
    if db is None:
        return {}, []
    try:
        facts = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM last_run")}
        rows = [JobRow(*row) for row in db.execute(
            "SELECT id, rule, label, slot, started, ended, status, kind, command, log, reason, cluster_id, queued "
            "FROM last_run_jobs ORDER BY started, id")]
    except sqlite3.Error:
        return {}, []
    return facts, rows


class RunLog:
    """The timeline of the run going on: a job's start and end, in batches."""

    def __init__(self, db: sqlite3.Connection, facts: dict):
        self._db = db
        self._began = time.time()
        self._pending: list[tuple] = []
        self._ended: list[tuple] = []
        self._durations: list[tuple] = []
        self._flushed = time.monotonic()
        self._slots: dict[int, int] = {}  # running job id -> its slot
        self._free: list[int] = []  # slots given back, lowest first (a heap)
        self._db.execute("BEGIN")
        db.execute("DELETE FROM last_run_jobs")
        db.execute("DELETE FROM last_run")
        db.executemany("INSERT INTO last_run VALUES (?, ?)",
                       [(k, json.dumps(v)) for k, v in {**facts, "began": self._began}.items()])
        db.execute("COMMIT")

    def started(self, job_id: int, rule: str, label: str, kind: str, command: str, log: str) -> None:
        slot = heapq.heappop(self._free) if self._free else len(self._slots)
        self._slots[job_id] = slot
        self._pending.append((job_id, _shown(rule), _shown(label), slot, time.time() - self._began, None, "running",
                              kind, _shown(command), _shown(log), "", None, None))
        self._maybe_flush()

    def ended(self, job_id: int, key: str, rule: str, status: str, reason: str = "",
              cluster_id: str | None = None, queued: float | None = None) -> None:
        """`queued`: the seconds a cluster job waited in the scheduler's queue, when known."""
        now = time.time() - self._began
        slot = self._slots.pop(job_id, None)
        if slot is not None:
            heapq.heappush(self._free, slot)
        self._ended.append((now, status, _shown(reason), cluster_id, queued, job_id))
        if status == "ok":
            self._durations.append((stored(key), _shown(rule), job_id))
        self._maybe_flush()

    def finished(self, outcome: str) -> None:
        self.flush(extra={"ended": time.time(), "outcome": outcome})

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self, extra: dict | None = None) -> None:
        """Write what was learnt since the last flush, in one transaction. Never fails the
        run: this is for people to look at afterwards."""
        self._flushed = time.monotonic()
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO last_run_jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 self._pending)
            self._db.executemany("UPDATE last_run_jobs SET ended=?, status=?, reason=?, cluster_id=?, queued=? WHERE id=?",
                                 self._ended)
            self._db.executemany("INSERT OR REPLACE INTO durations SELECT ?, ?, ended - started FROM "
                                 "last_run_jobs WHERE id=?", self._durations)
            for key, value in (extra or {}).items():
                self._db.execute("INSERT OR REPLACE INTO last_run VALUES (?, ?)", (key, json.dumps(value)))
            self._db.execute("COMMIT")
        except (sqlite3.Error, ValueError):  # ValueError: text sqlite can't take
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        self._pending, self._ended, self._durations = [], [], []


def _shown(text: str) -> str:
    """Text for people: a file name that is not UTF-8 is shown with a replacement character
    (sqlite takes no lone surrogates)."""
    if text.isascii():  # most names: nothing to replace
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
