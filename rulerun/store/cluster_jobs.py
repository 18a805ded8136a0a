"""The record of submitted cluster jobs, a table of the state database: a job's id is written
as soon as the scheduler gave it, before rulerun waits on it, and removed once its result was
taken. A run that starts after an earlier one died (kill -9) finds there the jobs it would
submit again, and waits for them instead.

The waiting threads write here while the run loop writes its own turns, so this record keeps a
connection of its own (short autocommit statements; WAL lets both go on)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass

from rulerun.store.layout import CLUSTER_DIR, STATE_DB

TABLE = ("CREATE TABLE IF NOT EXISTS cluster_jobs (key TEXT PRIMARY KEY, job_id TEXT, "
         "scheduler TEXT, outputs TEXT, base TEXT, submitted REAL)")


@dataclass(frozen=True)
class Submitted:
    key: str
    job_id: str
    scheduler: str
    outputs: tuple[str, ...]
    base: str        # the job's files without their suffix (.sh, .out, .err, .status)


def job_key(name: str, outputs, command: str, workdir: str) -> str:
    """What makes a later run's job the same as a recorded one: its name, outputs, command and
    directory (a changed command must be submitted anew)."""
    text = json.dumps([name, list(outputs), command, workdir])
    return hashlib.sha1(text.encode()).hexdigest()


class SubmittedJobs:
    """Add, find and forget submitted jobs; safe to share between threads."""

    def __init__(self, path: str = STATE_DB):
        self.path = os.path.abspath(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute(TABLE)
            self._db = db
        return self._db

    def add(self, job: Submitted) -> None:
        with self._lock:
            self._conn().execute("INSERT OR REPLACE INTO cluster_jobs VALUES (?, ?, ?, ?, ?, ?)",
                                 (job.key, job.job_id, job.scheduler, json.dumps(job.outputs),
                                  job.base, time.time()))

    def find(self, key: str) -> Submitted | None:
        with self._lock:
            row = self._conn().execute("SELECT key, job_id, scheduler, outputs, base FROM cluster_jobs "
                                       "WHERE key=?", (key,)).fetchone()
        return _submitted(row) if row else None

    def forget(self, key: str) -> None:
        with self._lock:
            self._conn().execute("DELETE FROM cluster_jobs WHERE key=?", (key,))

    def prune(self) -> int:
        """Remove the files of ended jobs from the .rulerun/cluster beside this database: all
        but those of the jobs recorded here, which a run has yet to judge (after kill -9)."""
        with self._lock:
            bases = [base for (base,) in self._conn().execute("SELECT base FROM cluster_jobs")]
        return prune_ended(os.path.join(os.path.dirname(self.path), os.path.basename(CLUSTER_DIR)), bases)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def read_all(db: sqlite3.Connection) -> list[Submitted]:
    """Every recorded job, from an open state database (for -n)."""
    try:
        rows = db.execute("SELECT key, job_id, scheduler, outputs, base FROM cluster_jobs").fetchall()
    except sqlite3.OperationalError:   # an older database, read-only: no table yet
        return []
    return [_submitted(row) for row in rows]


def _submitted(row) -> Submitted:
    key, job_id, scheduler, outputs, base = row
    return Submitted(key, job_id, scheduler, tuple(json.loads(outputs)), base)


_JOB_FILE = re.compile(r"(.+)\.(sh|out|err|sbatch|status|status\.tmp)\Z")   # base.suffix


def prune_ended(folder: str, recorded) -> int:
    """Remove from `folder` (a .rulerun/cluster) the files of every job not in `recorded` (the
    bases of jobs submitted and not judged yet): their jobs ended and were judged, by this run
    or an earlier one, so nothing reads them again. Files kept on purpose (in CLUSTER_KEPT, a
    folder) stay. Returns how many went."""
    recorded = set(recorded)
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        match = _JOB_FILE.match(name)
        if match and os.path.join(folder, match[1]) not in recorded:
            try:
                os.remove(os.path.join(folder, name))
                removed += 1
            except OSError:   # gone already, or a folder: nothing to prune
                pass
    return removed
