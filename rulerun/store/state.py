"""What rulerun remembers between runs, in one sqlite file under .rulerun/, and the run lock.

Per job (keyed by its outputs, or 'task:NAME' / 'split:NAME') the signature of its last success:
a hash of its action, of each variable it uses and of its input list. Before a job starts its
outputs are marked incomplete in the same database, and the mark is cleared only when it
succeeded: after a crash (even kill -9) the next run sees which outputs can't be trusted.
The jobs running are listed too, with their main process, so that after a crash the next run
can stop what they left running (rulerun.run.orphans.stop_left_running).
Writes are batched: one transaction for what a turn of the run loop learnt and started.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from typing import Iterable, NamedTuple

from rulerun import proc
from rulerun.errors import StateError
from rulerun.store.names import loaded, stored
from rulerun.store.layout import STATE_DB_NAME, STATE_DIR

SCHEMA_VERSION = 1
SINGLE_LOOKUPS = 200  # signatures asked for one by one before all are read at once
BUSY_TIMEOUT = 30.0  # seconds to wait for a lock on the database held by some other program
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: the database is fine, someone holds it
_DAMAGE_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB: set it aside and start anew


class _Damaged(sqlite3.DatabaseError):
    """PRAGMA quick_check found damage."""


class Running(NamedTuple):
    """A job a run started and had not seen end: the run (rulerun.proc.run_id) and, once it
    has started, the job's main process (pid, process group, start time or a bound of it: see
    rulerun.proc.ProcessId)."""

    job: str
    run: str
    pid: int | None
    pgid: int | None
    start: int | None


class State:
    """The state database of one project directory."""

    def __init__(self, directory: str = STATE_DIR, readonly: bool = False):
        self.directory = directory
        self.path = os.path.join(directory, STATE_DB_NAME)
        self.warnings: list[str] = []
        self._readonly = readonly
        self._signatures: dict[str, str] | None = None
        self._lookups = 0
        self._db = self._open()

    def _open(self) -> sqlite3.Connection | None:
        if self._readonly and not os.path.exists(self.path):
            return None
        os.makedirs(self.directory, exist_ok=True)
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                return self._connect()
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    # some steps fail at once instead of waiting for the lock: switching a new
                    # database to WAL while another process opens it too, for one
                    time.sleep(0.05)
                    continue
                if not _is_damage(exc):  # locked, disk full, read-only: the database itself is fine
                    raise self._unusable(exc) from None
                return self._recover(exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            db.executescript(
                "CREATE TABLE IF NOT EXISTS signatures (job TEXT PRIMARY KEY, signature TEXT, finished REAL);"
                "CREATE TABLE IF NOT EXISTS incomplete (output TEXT PRIMARY KEY, job TEXT, started REAL);")
            # OR IGNORE: two runs started at once in a new project both find no schema row
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise StateError(f"{self.path} was written by another version of rulerun (schema {row[0]})",
                             hint=f"remove {self.path}; every job whose outputs exist and "
                                  "are newer than its inputs stays up to date")
        if not self._readonly:  # added to schema 1 later: made in databases that lack them
            from rulerun.store.cluster_jobs import TABLE

            db.execute("CREATE TABLE IF NOT EXISTS running "
                       "(job TEXT PRIMARY KEY, run TEXT, pid INTEGER, pgid INTEGER, start INTEGER)")
            db.execute(TABLE)
        # Damage shows up only when a damaged page is read (an index page: at the first lookup,
        # mid-run); check every page now, while it can still be set aside.
        check = db.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise _Damaged("database disk image is malformed: " + "; ".join(r[0] for r in check[:3]))
        if not self._readonly:
            from rulerun.store import history

            history.tables(db)  # durations and the last run: for people, added to any database
        if not self._readonly:  # find a lock held elsewhere now, not when the first job starts
            db.execute("BEGIN IMMEDIATE")
            db.execute("COMMIT")

    def _recover(self, exc: Exception) -> sqlite3.Connection:
        """A corrupt database: keep it aside for inspection and start a new one. Everything
        whose outputs are newer than its inputs stays up to date; only remembered signatures
        and incomplete marks are lost, so say so."""
        aside = f"{self.path}.corrupt-{int(time.time())}"
        number = 1
        while os.path.exists(aside):
            aside, number = f"{self.path}.corrupt-{int(time.time())}-{number}", number + 1
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
            raise StateError(f"can't create the state database {self.path}: {again}") from None

    def _unusable(self, exc: Exception) -> StateError:
        """An error that is no damage of the database's: say what it is, touch nothing."""
        if _is_damage(exc):
            return StateError(f"the state database {self.path} is damaged ({exc})",
                              hint="run again: rulerun sets a damaged database aside and starts a new one")
        if _is_busy(exc):
            return StateError(f"the state database {self.path} is locked by another program and stayed "
                              f"locked for {BUSY_TIMEOUT:.0f} s ({exc})",
                              hint="rulerun runs wait for each other through .rulerun/lock, so this is "
                                   "something else (an sqlite3 shell, a backup): end it and run again")
        return StateError(f"can't use the state database {self.path}: {exc}",
                          hint="a full disk or a read-only directory? free some space or fix the "
                               "permissions, then run again; the outputs made so far are kept")

    # ------------------------------------------------------------------ reading

    def signature(self, job_key: str) -> dict | None:
        if self._db is None:
            return None
        raw = self._raw_signature(job_key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return {}  # damaged: compares as changed, so the job runs again

    def _raw_signature(self, job_key: str) -> str | None:
        """The first few are looked up one by one (a run of the few jobs some changed files
        affect); from then on all are read in one query (a no-op over 100,000 jobs asks for
        every one)."""
        if self._signatures is None:
            with self._errors():
                if self._lookups < SINGLE_LOOKUPS:
                    self._lookups += 1
                    row = self._db.execute("SELECT signature FROM signatures WHERE job = ?",
                                           (stored(job_key),)).fetchone()
                    return row[0] if row else None
                self._signatures = {loaded(job): signature for job, signature
                                    in self._db.execute("SELECT job, signature FROM signatures")}
        return self._signatures.get(job_key)

    def incomplete(self) -> set[str]:
        """Outputs of jobs that started and never finished (crash, kill -9, power loss)."""
        if self._db is None:
            return set()
        with self._errors():
            return {loaded(row[0]) for row in self._db.execute("SELECT output FROM incomplete")}

    def left_running(self) -> list[Running]:
        """The jobs recorded as running. Under the run lock, before anything starts, these are
        what a run that was killed left behind."""
        with self._errors():
            rows = self._db.execute("SELECT job, run, pid, pgid, start FROM running")
            return [Running(*row) for row in rows]
    def cluster_jobs(self) -> list:
        """The cluster jobs earlier runs submitted and never took the result of
        (rulerun.store.cluster_jobs)."""
        if self._db is None:
            return []
        from rulerun.store.cluster_jobs import read_all

        with self._errors():
            return read_all(self._db)

    # ------------------------------------------------------------------ writing

    def record(self, succeeded: Iterable[tuple[str, list[str], dict]] = (),
               failed: Iterable[tuple[str, list[str]]] = (),
               started: Iterable[tuple[str, list[str]]] = (),
               running: Iterable[tuple[str, proc.ProcessId]] = (),
               unstarted: Iterable[tuple[str, list[str]]] = ()) -> None:
        """In one transaction: each succeeded (job key, outputs, signature) gets its signature
        and loses its incomplete marks; each failed (job key, outputs) loses both, as its outputs
        are gone; each started (job key, outputs) is marked incomplete and listed as running by
        this run; each running (job key, process) gets its main process. Succeeded and failed
        jobs are no longer listed as running. When the run loop calls this, and with what, is
        rulerun.run.journal's: a transaction costs more than its rows.

        A job's process exists only after its incomplete marks are committed, so it is recorded
        by a later transaction (`running`), within the journal's RECORD_DELAY. A crash in
        between leaves the job listed without a process: the next run finds its processes by
        their RULERUN_JOB mark alone (rulerun.run.orphans). A process of a job that ended
        meanwhile updates nothing. Each unstarted (job key, outputs) was marked as started but
        never did: it loses its marks and its listing (the loop marks jobs ahead of their
        start: rulerun.run.journal).

        A failed job's output still at its path is one the quarantine had to leave there (a
        directory on another file system, a path through a symlink out of the project): it stays
        marked incomplete, or the next run would take it for finished by its time alone."""
        now = time.time()
        succeeded, failed, started = list(succeeded), list(failed), list(started)
        ended = [(stored(key),) for key, *_ in succeeded + failed + list(unstarted)]
        marks = [(stored(out), stored(key), now)
                 for key, outputs in started for out in dict.fromkeys([*outputs, key])]
        marks += [(stored(out), stored(key), now)
                  for key, outputs in failed for out in outputs if os.path.lexists(out)]
        statements = [
            ("INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)",
             [(stored(key), json.dumps(sig, sort_keys=True), now) for key, _, sig in succeeded]),
            ("DELETE FROM signatures WHERE job=?", [(stored(key),) for key, _ in failed]),
            ("DELETE FROM incomplete WHERE job=?", ended),
            ("INSERT OR REPLACE INTO incomplete VALUES (?, ?, ?)", marks),
            ("DELETE FROM running WHERE job=?", ended),
            ("INSERT OR REPLACE INTO running VALUES (?, ?, NULL, NULL, NULL)",
             [(stored(key), proc.run_id()) for key, _ in started]),
            ("UPDATE running SET pid=?, pgid=?, start=? WHERE job=?",
             [(p.pid, p.pgid, p.start, stored(key)) for key, p in running]),
        ]
        with self._transaction() as db:
            for statement, rows in statements:
                if rows:  # in order: a job that ended drops its row before its process is set
                    db.executemany(statement, rows)

    def forget_running(self, jobs: Iterable[str]) -> None:
        """`jobs` are no longer running (what they left was stopped)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM running WHERE job=?", [(stored(job),) for job in jobs])

    @contextlib.contextmanager
    def _transaction(self):
        if self._db is None:
            raise StateError("the state database is read-only here")
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self):
        """sqlite errors while a run uses the database (a full disk, a lock, damage found late)
        become a StateError saying so: rulerun stops its jobs and exits 2, without a traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    @property
    def db(self) -> sqlite3.Connection | None:
        """The connection, for store/history.py's tables (None: read-only and no database yet)."""
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _is_busy(exc: Exception) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES


def _is_damage(exc: Exception) -> bool:
    return isinstance(exc, _Damaged) or getattr(exc, "sqlite_errorcode", None) in _DAMAGE_CODES
