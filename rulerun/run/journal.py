"""What the run loop writes to the state database, and when: as few transactions as the promises
allow, since a transaction costs far more than its rows (about 0.15 ms, against a trivial job's
1 ms).

The promises (docs/guarantees.md), and how each is kept with fewer transactions:
  - a job's outputs are marked incomplete in a committed transaction before it starts: the jobs
    about to start are marked together with up to PREMARK of those waiting behind them, so most
    starts find their marks already written;
  - a job starts only after the success of every job it needs is committed: a start that needs
    one not yet written commits first;
  - a job's end, and a started job's process, are committed within RECORD_DELAY: the loop
    commits when one of them is that old, or when it would otherwise wait longer (`due`). After
    a kill -9 in between, a job that ended unrecorded is still marked incomplete and runs
    again: the window costs a rerun, never a wrong answer.

A job marked ahead that never started (the run stopped first) loses its marks when the run ends,
so a failed or interrupted run leaves no mark on a job it did not start. Only jobs with no mark
from an earlier run are marked ahead: removing a mark never removes an older one.
"""

from __future__ import annotations

import time
from typing import Callable

from rulerun.plan.graph import Job
from rulerun.plan.signature import job_key

RECORD_DELAY = 0.05  # seconds a job's end or a started job's process may go uncommitted
PREMARK = 64  # waiting jobs marked incomplete ahead of their start, in the same transaction


class Journal:
    def __init__(self, state, signature: Callable[[Job], dict], marked_before: set[str],
                 clock: Callable[[], float] = time.monotonic):
        """`signature(job)`: what a success records; `marked_before`: the outputs and job keys
        an earlier run left marked incomplete (never marked ahead, see above)."""
        self._state = state
        self._clock = clock
        self._signature = signature
        self._marked_before = marked_before
        self._ended: list[tuple[Job, bool]] = []  # ended (and succeeded?), not yet committed
        self._succeeded: set[Job] = set()  # the successes among them
        self._processes: list = []  # (job key, ProcessId) of started jobs, not yet committed
        self._ahead: set[Job] = set()  # marked incomplete, not started yet
        self._oldest: float | None = None  # when the oldest uncommitted end or process came

    # ------------------------------------------------------------------ what happened

    def ended(self, job: Job, ok: bool) -> None:
        self._ended.append((job, ok))
        if ok:
            self._succeeded.add(job)
        self._note()

    def processes(self, processes: list) -> None:
        if processes:
            self._processes.extend(processes)
            self._note()

    def _note(self) -> None:
        if self._oldest is None:
            self._oldest = self._clock()

    # ------------------------------------------------------------------ writing

    def before_start(self, starting: list[Job], waiting: Callable[[int], list[Job]]) -> None:
        """Called with the jobs about to start: commits, if their marks or a success one of them
        needs is not yet written, or something waited RECORD_DELAY; `waiting(n)` gives up to n
        jobs queued behind them, to mark ahead."""
        unmarked = [job for job in starting if job not in self._ahead]
        needs = self._succeeded and any(dep in self._succeeded for job in starting for dep in job.deps)
        if unmarked or needs or self.due() == 0:
            ahead = [job for job in waiting(PREMARK) if self._may_mark_ahead(job)] if unmarked else []
            self.commit(unmarked, ahead)
        self._ahead.difference_update(starting)

    def due(self) -> float | None:
        """Seconds until something must be committed (0: now); None when nothing waits."""
        if self._oldest is None:
            return None
        return max(0.0, self._oldest + RECORD_DELAY - self._clock())

    def commit(self, starting: list[Job] = (), ahead: list[Job] = ()) -> None:
        """One transaction: what ended and the processes started since the last one, and the
        incomplete marks of `starting` and `ahead`."""
        ended, self._ended = self._ended, []
        processes, self._processes = self._processes, []
        self._succeeded.clear()
        self._oldest = None
        ahead = [job for job in ahead if job not in self._ahead]
        if not (ended or processes or starting or ahead):
            return
        self._ahead.update(ahead)
        self._state.record(succeeded=[(job_key(j), j.outputs, self._signature(j)) for j, ok in ended if ok],
                           failed=[(job_key(j), j.outputs) for j, ok in ended if not ok],
                           started=[(job_key(j), j.outputs) for j in [*starting, *ahead]],
                           running=processes)

    def close(self) -> None:
        """The run is over: commit what is left, and take back the marks of jobs marked ahead
        that never started."""
        self.commit()
        if self._ahead:
            never, self._ahead = self._ahead, set()
            self._state.record(unstarted=[(job_key(j), j.outputs) for j in never])

    def _may_mark_ahead(self, job: Job) -> bool:
        if job.is_split:
            return False
        marked = self._marked_before
        return not marked or (job_key(job) not in marked and not any(o in marked for o in job.outputs))
