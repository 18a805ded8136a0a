"""Run shell jobs on a Grid Engine cluster through DRMAA: one waiting thread per job in flight.

The scheduler caps how many jobs are in flight (-j and limits), so it also caps the threads.
Each thread submits its job through the process's one ClusterSession (rulerun.cluster), polls
for its end, and reports a JobResult.  The session is opened on the first start(), so a run
with no cluster job never loads libdrmaa; a scheduler that can't be reached stops the run
there with a ClusterSetupError.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from rulerun.run.cluster.job import make_request, write_log
from rulerun.run.cluster.session import ClusterSession
from rulerun.run.executor import Done, JobResult, JobSpec

ABORT_WAIT = 120.0   # seconds abort() waits for the waiting threads before giving up on them


class DrmaaExecutor:
    """The Executor contract (rulerun.run.executor) on top of a ClusterSession.

    `session_factory()` returns the session to use (anything with open, run, terminate_all
    and close); by default a new ClusterSession polling every `poll_seconds`."""

    def __init__(self, session_factory: Callable[[], ClusterSession] | None = None,
                 poll_seconds: float = 2):
        self._factory = session_factory or (lambda: ClusterSession(poll_seconds=poll_seconds))
        self._session: ClusterSession | None = None
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._shutdown = threading.Event()

    def start(self, spec: JobSpec, done: Done) -> None:
        """Submit `spec` in a new thread; done(result) is called once when it ended.  Raises
        ClusterSetupError (before any thread starts) if DRMAA or the scheduler is unusable."""
        if self._shutdown.is_set():   # aborted: the scheduler is winding down
            done(JobResult(spec.key, False, reason="not submitted: the run was aborted",
                           interrupted=True))
            return
        session = self._open()
        if spec.kind != "shell":
            # a Python action needs the Pipefile's namespace, which lives in worker processes;
            # those submit through rulerun.cluster.run_job instead
            done(JobResult(spec.key, False, reason=f"rule '{spec.rule}': only shell actions "
                           f"can be submitted to the cluster, not {spec.kind} actions"))
            return
        request = make_request(spec.command, rule=spec.rule, workdir=spec.workdir,
                               queue=spec.queue, native_spec=spec.native_spec,
                               outputs=spec.outputs, retries=spec.retries, key=spec.key,
                               wildcards=spec.wildcards, stem=spec.stem, shell=spec.shell,
                               log_path=spec.log_path)
        thread = threading.Thread(target=self._carry_out, args=(session, spec, request, done),
                                  name=f"drmaa-{request.name}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def session(self) -> ClusterSession:
        """The run's one session, opened now if it is not yet (for run_job from workers)."""
        return self._open()

    def _open(self) -> ClusterSession:
        with self._lock:
            if self._session is None:
                session = self._factory()
                session.open()
                self._session = session
            return self._session

    def _carry_out(self, session, spec: JobSpec, request, done: Done) -> None:
        try:
            try:
                result = session.run(request, self._shutdown)   # it writes the job's log
            except Exception as exc:  # noqa: BLE001 - a job's failure must not kill the run
                result = JobResult(spec.key, False, reason=f"rule '{spec.rule}': {exc}",
                                   interrupted=self._shutdown.is_set())
                write_log(spec.log_path, result)
            done(result)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def abort(self) -> None:
        """Terminate every submitted job, let each waiting thread report it (interrupted=True),
        and return once all are gone from the scheduler."""
        self._shutdown.set()
        with self._lock:
            session, threads = self._session, list(self._threads)
        if session is not None:
            session.terminate_all()
        deadline = time.monotonic() + ABORT_WAIT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """End the session; jobs still in flight are aborted first, since exit() would leave
        them running on the cluster."""
        with self._lock:
            busy = bool(self._threads)
        if busy:
            self.abort()
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

