"""What the run writes to the state database, and when (rulerun.run.journal): fewer
transactions than one a job, and never a mark lost or a success claimed too early."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from rulerun.run.journal import PREMARK, RECORD_DELAY, Journal
from rulerun.store.state import State
from tests.conftest import REPO


# ---------------------------------------------------------------- the journal alone


class _Job:
    def __init__(self, name: str, deps=(), split: bool = False):
        self.outputs, self.deps, self.is_split = [name], list(deps), split
        self.name = name

    def __repr__(self):
        return self.name


class _State:
    def __init__(self):
        self.records: list[dict] = []

    def record(self, **lists):
        self.records.append({k: [row[0] for row in v] for k, v in lists.items() if v})


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_jobs_waiting_are_marked_with_the_first_start_and_later_starts_write_nothing(monkeypatch):
    import rulerun.run.journal as journal

    monkeypatch.setattr(journal, "job_key", lambda job: job.name)
    state, clock = _State(), _Clock()
    book = Journal(state, lambda job: {}, set(), clock)
    jobs = [_Job(f"j{i}") for i in range(5)]
    book.before_start(jobs[:1], lambda n: jobs[1:1 + n])
    assert state.records == [{"started": ["j0", "j1", "j2", "j3", "j4"]}]
    book.before_start(jobs[1:2], lambda n: jobs[2:2 + n])
    book.before_start(jobs[2:3], lambda n: jobs[3:3 + n])
    assert len(state.records) == 1  # already marked: no transaction


def test_a_start_needing_a_success_not_yet_written_writes_it_first(monkeypatch):
    import rulerun.run.journal as journal

    monkeypatch.setattr(journal, "job_key", lambda job: job.name)
    state, clock = _State(), _Clock()
    book = Journal(state, lambda job: {}, set(), clock)
    a, x = _Job("a"), _Job("x")
    b = _Job("b", deps=[a])
    book.before_start([a], lambda n: [x])
    book.before_start([x], lambda n: [])
    book.ended(a, True)
    book.before_start([], lambda n: [])
    assert len(state.records) == 1  # a's end may wait: nothing needs it yet
    book.before_start([b], lambda n: [])
    assert state.records[-1] == {"succeeded": ["a"], "started": ["b"]}


def test_an_end_or_a_process_is_written_once_it_is_record_delay_old(monkeypatch):
    import rulerun.run.journal as journal

    monkeypatch.setattr(journal, "job_key", lambda job: job.name)
    state, clock = _State(), _Clock()
    book = Journal(state, lambda job: {}, set(), clock)
    a, x = _Job("a"), _Job("x")
    book.before_start([a, x], lambda n: [])
    assert book.due() is None
    book.ended(a, True)
    assert book.due() == pytest.approx(RECORD_DELAY)
    clock.now = 100.0 + RECORD_DELAY / 2
    book.before_start([], lambda n: [])
    assert len(state.records) == 1
    clock.now = 100.0 + RECORD_DELAY
    assert book.due() == 0
    book.before_start([], lambda n: [])
    assert state.records[-1] == {"succeeded": ["a"]}
    assert book.due() is None


def test_marks_an_earlier_run_left_are_never_marked_ahead_nor_taken_back(monkeypatch):
    """Taking back the mark of a job marked ahead that never started must not remove a mark an
    earlier (killed) run left: that output would then pass for finished."""
    import rulerun.run.journal as journal

    monkeypatch.setattr(journal, "job_key", lambda job: "key:" + job.name)
    state, clock = _State(), _Clock()
    book = Journal(state, lambda job: {}, {"old"}, clock)
    first, old, fresh, split = _Job("first"), _Job("old"), _Job("fresh"), _Job("split", split=True)
    book.before_start([first], lambda n: [old, fresh, split])
    assert state.records == [{"started": ["key:first", "key:fresh"]}]
    book.close()
    assert state.records[-1] == {"unstarted": ["key:fresh"]}


def test_no_more_than_premark_jobs_are_marked_ahead(monkeypatch):
    import rulerun.run.journal as journal

    monkeypatch.setattr(journal, "job_key", lambda job: job.name)
    state, clock = _State(), _Clock()
    book = Journal(state, lambda job: {}, set(), clock)
    jobs = [_Job(f"j{i}") for i in range(PREMARK * 3)]
    book.before_start(jobs[:1], lambda n: jobs[1:1 + n])
    assert len(state.records[0]["started"]) == 1 + PREMARK


# ---------------------------------------------------------------- a real run


def _rulerun(root, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120, **kwargs)


def _incomplete(root) -> set[str]:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        state = State()
        try:
            return state.incomplete()
        finally:
            state.close()
    finally:
        os.chdir(cwd)


STOPPING = """\
bad.txt :
    shell: exit 1
%.out :
    shell: touch {output}
task all : bad.txt a.out b.out c.out
"""


def test_a_run_stopped_by_a_failure_leaves_no_mark_on_the_jobs_it_never_started(tmp_path):
    (tmp_path / "Pipefile").write_text(STOPPING)
    result = _rulerun(tmp_path, "-j1", "all")
    assert result.returncode == 1, result.stderr
    assert not any((tmp_path / f"{x}.out").exists() for x in "abc")  # bad.txt ran first, alone
    assert _incomplete(tmp_path) == set()
    with sqlite3.connect(tmp_path / ".rulerun" / "state.db") as db:
        assert db.execute("SELECT job FROM running").fetchall() == []


def test_a_mark_a_killed_run_left_survives_a_run_that_stopped_before_its_job(tmp_path):
    """a.out is whole on disk but was marked incomplete by a run killed while it ran (here:
    written straight into the database). A run that stops before a.out's job starts must leave
    that mark: without it, a.out would pass for finished by its time alone."""
    (tmp_path / "Pipefile").write_text(STOPPING.replace("exit 1", "touch bad.txt"))
    assert _rulerun(tmp_path, "-j1", "all").returncode == 0
    with sqlite3.connect(tmp_path / ".rulerun" / "state.db") as db:
        key = next(job for (job,) in db.execute("SELECT job FROM signatures") if "a.out" in job)
        db.execute("INSERT INTO incomplete VALUES (?, ?, ?)", ("a.out", key, time.time()))
    (tmp_path / "bad.txt").unlink()
    (tmp_path / "Pipefile").write_text(STOPPING)
    assert _rulerun(tmp_path, "-j1", "all").returncode == 1
    assert "a.out" in _incomplete(tmp_path)
    (tmp_path / "Pipefile").write_text(STOPPING.replace("exit 1", "touch bad.txt"))
    again = _rulerun(tmp_path, "-v", "-j1", "all")
    assert again.returncode == 0, again.stderr
    assert "a.out" in again.stdout + again.stderr  # run again, as a job a killed run left unfinished
    assert _incomplete(tmp_path) == set()


LONG_AND_SHORT = """\
quick.txt :
    shell: touch quick.txt
slow.txt :
    shell: while [ ! -e go ]; do sleep 0.02; done; touch slow.txt
task all : quick.txt slow.txt
"""


def test_a_job_that_ended_is_recorded_while_another_still_runs(tmp_path):
    """A success waits for no later turn of the loop to be written: a kill -9 while the long
    job runs must not make the short one run again."""
    (tmp_path / "Pipefile").write_text(LONG_AND_SHORT)
    run = subprocess.Popen([sys.executable, "-m", "rulerun", "-j2", "all"], cwd=tmp_path,
                           env=dict(os.environ, PYTHONPATH=str(REPO)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        recorded, deadline = [], time.time() + 20
        while not recorded and time.time() < deadline:
            try:
                with sqlite3.connect(f"file:{tmp_path / '.rulerun' / 'state.db'}?mode=ro", uri=True) as db:
                    recorded = [job for (job,) in db.execute("SELECT job FROM signatures")]
            except sqlite3.OperationalError:  # not there yet, or its tables not yet made
                pass
            time.sleep(0.02)
        assert any("quick.txt" in job for job in recorded), recorded
        assert not (tmp_path / "slow.txt").exists()  # still running
    finally:
        (tmp_path / "go").touch()
        assert run.wait(timeout=60) == 0
