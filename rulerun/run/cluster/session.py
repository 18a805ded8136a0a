"""The DRMAA adapter: the process's one Grid Engine session, which carries out JobRequests (job.py).

    load_drmaa()                 import drmaa, or a ClusterSetupError saying what to do
    ClusterSession               the ONE drmaa.Session of this process, opened lazily
        .run(request, shutdown) -> JobResult   write script, submit, wait, interpret, retry
        .submit / .wait / .terminate_all / .close

Facts this module is built around (SGE 8.1.9, drmaa 0.7.9; see scripts/sge.sh):
- `import drmaa` loads libdrmaa at once: it fails with RuntimeError (no DRMAA_LIBRARY_PATH) or
  an OSError (libjemalloc's static TLS) unless GLIBC_TUNABLES was set when the process started.
  So drmaa is imported only inside functions, and --local/touch_only never need it.
- Only one session may be open per process; it may be shared by threads but never by a forked
  child (its calls hang there). drmaa-python writes every error message to one global buffer,
  so template building and runJob are serialised to keep the scheduler's message ours.
- wait() must poll (a job may stay pending forever); a job deleted before it ran makes wait()
  raise the builtin Exception "code 24: ...", not a DrmaaException.
- -o/-e files are opened in append mode and their directory must exist; jobs get the execd's
  environment, not the submitter's, unless it is passed explicitly.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from typing import Callable

from rulerun.errors import ClusterSetupError
from rulerun.run import shell as shells
from rulerun.run.executor import JobResult
from rulerun.run.cluster.job import (LOCAL_HINT, SETTLE_SECONDS, JobFiles, JobRequest, _failure,
                                     run_with_retries)
from rulerun.run.cluster.tls import REEXEC_MARKER, TLS_TUNABLE, reexec_with_tls_fix, tls_restart_due  # noqa: F401

TERMINATE_WAIT = 60.0      # how long a terminated job gets to be reported before we give up


# ------------------------------------------------------------------------------ loading

def load_drmaa():
    """The drmaa module; raises ClusterSetupError naming the fix when it can't be loaded."""
    try:
        import drmaa
    except ImportError as exc:
        if exc.name not in ("drmaa", None) and not exc.name.startswith("drmaa."):
            raise
        raise ClusterSetupError("the Python package 'drmaa' is not installed",
                                hint=f"pip install 'rulerun[cluster]', {LOCAL_HINT}") from None
    except RuntimeError as exc:
        raise ClusterSetupError(
            f"the DRMAA library was not found ({exc})",
            hint="set DRMAA_LIBRARY_PATH to libdrmaa.so (for the test cell: "
                 f"bash scripts/sge.sh start > sge.env && . sge.env), {LOCAL_HINT}") from None
    except OSError as exc:
        if "static TLS" in str(exc):
            raise ClusterSetupError(
                f"the DRMAA library could not be loaded: {exc}",
                hint=f"start rulerun with GLIBC_TUNABLES={TLS_TUNABLE} in its environment "
                     f"(setting it from Python is too late), {LOCAL_HINT}") from None
        path = os.environ.get("DRMAA_LIBRARY_PATH", "(unset)")
        raise ClusterSetupError(f"the DRMAA library {path} could not be loaded: {exc}",
                                hint=f"check DRMAA_LIBRARY_PATH, {LOCAL_HINT}") from None
    return drmaa

# ------------------------------------------------------------------------------ results

def interpret(info) -> tuple[str, int | None, str | None]:
    """('exited', status, None), ('signal', None, 'SIGKILL') or ('aborted', None, None) from a
    drmaa JobInfo.  exitStatus means nothing unless hasExited."""
    if info.hasExited:
        return "exited", info.exitStatus, None
    if info.hasSignal:
        return "signal", None, info.terminatedSignal or "a signal"
    return "aborted", None, None


def queue_seconds(usage) -> float | None:
    """Seconds from submission to start, from a JobInfo's resourceUsage: Grid Engine fills
    submission_time and start_time (whole seconds since the epoch; start 0 if it never ran)."""
    try:
        submitted, started = float(usage["submission_time"]), float(usage["start_time"])
    except (KeyError, TypeError, ValueError):
        return None
    return started - submitted if 0 < submitted <= started else None


def is_no_rusage(exc: BaseException) -> bool:
    """True for drmaa's 'code 24' (the job ended without running, e.g. deleted while pending),
    which drmaa 0.7.9 raises as the builtin Exception."""
    return type(exc) is Exception and str(exc).startswith("code 24")


def qacct_failure(job_id: str, tries: int = 6) -> str | None:
    """Why Grid Engine aborted a job, from the `failed` line of `qacct -j ID` ('28  : changing
    into working directory' -> 'changing into working directory (qacct: failed 28)'), or None.  Accounting may lag the end of the job by a moment."""
    for attempt in range(tries):
        try:
            out = subprocess.run(["qacct", "-j", str(job_id)], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            if key == "failed":
                code, _, text = value.partition(":")
                code, text = code.strip(), " ".join(text.split())
                if code == "0":
                    return None
                return f"{text} (qacct: failed {code})" if text else f"qacct: failed {code}"
        time.sleep(0.3)
    return None

def _describe(kind: str, status: int | None, signal: str | None) -> str:
    if kind == "exited":
        return f"exit status {status}"
    if kind == "signal":
        return f"killed by {signal}"
    return "aborted by Grid Engine"

_current: "ClusterSession | None" = None   # the open session of this process (see run_job)


class ClusterSession:
    """Owns the one drmaa.Session of the process; opened on first use, shared by threads.

    `drmaa_session` wraps an already initialised drmaa.Session owned by the caller (Ruffus
    style): close() then leaves it open."""

    def __init__(self, poll_seconds: float = 2.0, settle_seconds: float = SETTLE_SECONDS,
                 drmaa_session=None, record=None, warn: Callable[[str], None] | None = None):
        self.poll_seconds = max(1, round(poll_seconds))   # drmaa's wait() takes whole seconds
        self._warn = warn       # where a resubmission is announced (the run's console)
        self._record = record   # rulerun.store.cluster_jobs.SubmittedJobs of a run, or None
        self.settle_seconds = settle_seconds
        self._lock = threading.Lock()          # opening/closing, and every template + runJob
        self._session = drmaa_session
        self._owned = drmaa_session is None
        self._pid = os.getpid() if drmaa_session is not None else None
        # a caller's session means drmaa was imported already, so this is cheap
        self._drmaa = load_drmaa() if drmaa_session is not None else None

    # -- lifecycle

    def open(self) -> "ClusterSession":
        """Initialise the session if it isn't yet; ClusterSetupError if the scheduler is down."""
        global _current
        with self._lock:
            if self._session is not None:
                self._check_process()
                return self
            drmaa = load_drmaa()
            session = drmaa.Session()
            try:
                session.initialize()
            except drmaa.errors.AlreadyActiveSessionException:
                raise ClusterSetupError(
                    "a DRMAA session is already open in this process",
                    hint="share it (rulerun.cluster.current_session()) instead of opening another") from None
            except drmaa.errors.DrmaaException as exc:
                root, cell = os.environ.get("SGE_ROOT", "(unset)"), os.environ.get("SGE_CELL", "default")
                raise ClusterSetupError(
                    f"scheduler unreachable: {_message(exc)}",
                    hint=f"is sge_qmaster running, and are SGE_ROOT={root} and SGE_CELL={cell} "
                         "your cluster's? (rulerun's test cell: bash scripts/sge.sh start) "
                         f"{LOCAL_HINT}") from None
            self._drmaa, self._session, self._pid = drmaa, session, os.getpid()
            _current = self
        if self._record is not None:
            self._record.prune()
        return self

    def close(self) -> None:
        """End the session (jobs still running go on running: terminate_all() first)."""
        global _current
        with self._lock:
            session, self._session = self._session, None
            if _current is self:
                _current = None
        if session is not None and self._owned and self._pid == os.getpid():
            try:
                session.exit()
            except self._drmaa.errors.DrmaaException:
                pass   # already gone: nothing left to release
        if self._record is not None:
            self._record.close()

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            raise ClusterSetupError(
                f"the DRMAA session belongs to process {self._pid}, not to this forked process "
                f"{os.getpid()} (using it here would hang)",
                hint="submit from the process that opened it (rulerun.cluster._submitter)")

    def _live(self):
        session = self._session
        if session is None:
            raise RuntimeError("the cluster session was closed")
        self._check_process()
        return session

    # -- the DRMAA calls

    def submit(self, request: JobRequest, files: JobFiles) -> str:
        """Submit `files.script` as described by `request`; returns the job id.  Raises
        drmaa's DeniedByDrmException (with the scheduler's message) for a bad request."""
        self.open()
        with self._lock:
            session = self._live()
            template = session.createJobTemplate()
            try:
                program, *args = shells.file_argv(request.shell, files.script)
                template.remoteCommand = program
                template.args = args
                template.jobName = request.name
                template.workingDirectory = request.workdir
                template.outputPath = ":" + files.stdout
                template.errorPath = ":" + files.stderr
                template.jobEnvironment = dict(request.env)
                if request.native_spec:
                    template.nativeSpecification = request.native_spec
                try:
                    return session.runJob(template)
                except self._drmaa.errors.DeniedByDrmException as exc:
                    if not _message_lost(exc):
                        raise
                    # another thread's wait() overwrote drmaa's one error buffer (seen ~1 in
                    # 10,000 refusals): a refusal is repeatable, so ask again for the message
                    return session.runJob(template)
            finally:
                session.deleteJobTemplate(template)

    def wait(self, job_id: str, shutdown: threading.Event | None = None):
        """The JobInfo of `job_id` once it ended, or None if it was deleted before it ran.

        Polls every poll_seconds so a shutdown is seen: the job is then terminated and waited
        for (at most TERMINATE_WAIT seconds, then RuntimeError)."""
        self._live()
        errors = self._drmaa.errors
        deadline = None
        while True:
            session = self._live()
            if deadline is None and shutdown is not None and shutdown.is_set():
                self.terminate(job_id)
                deadline = time.monotonic() + TERMINATE_WAIT
            try:
                return session.wait(job_id, self.poll_seconds)
            except errors.ExitTimeoutException:
                if deadline is not None and time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} did not end {TERMINATE_WAIT:.0f}s after "
                                       "it was terminated") from None
            except errors.DrmaaException:
                raise
            except Exception as exc:   # noqa: BLE001 - drmaa raises code 24 as plain Exception
                if is_no_rusage(exc):
                    return None
                raise

    def terminate(self, job_id: str) -> None:
        """Ask Grid Engine to end one job; a job that already ended is not an error."""
        try:
            self._live().control(job_id, self._drmaa.JobControlAction.TERMINATE)
        except self._drmaa.errors.DrmaaException:
            pass

    def terminate_all(self) -> None:
        """Terminate every job of this session; waiters then collect them as aborted."""
        if self._session is None or self._pid != os.getpid():
            return
        self.terminate(self._drmaa.Session.JOB_IDS_SESSION_ALL)

    # -- one job, start to end

    def run(self, request: JobRequest, shutdown: threading.Event | None = None) -> JobResult:
        """Carry out `request` on the cluster, resubmitting a failed (not interrupted, not
        refused) job up to request.retries times.  Raises only ClusterSetupError."""
        return run_with_retries(self._run_once, request, shutdown, self._warn)

    def _run_once(self, request: JobRequest, shutdown: threading.Event | None) -> JobResult:
        if shutdown is not None and shutdown.is_set():
            return JobResult(request.key, False, reason="not submitted: the run was aborted",
                             interrupted=True)
        self.open()   # before anything else uses self._drmaa
        if self._record is None:
            return self._submit_and_wait(request, shutdown, None)
        from rulerun.store.cluster_jobs import job_key

        key = job_key(request.name, request.outputs, request.command, request.workdir)
        try:
            result = self._earlier(request, key, shutdown)
            return result if result is not None else self._submit_and_wait(request, shutdown, key)
        finally:   # its result is taken (or it was never submitted): nothing for a later run
            self._record.forget(key)

    def _earlier(self, request: JobRequest, key: str, shutdown) -> JobResult | None:
        """The result of this job as an earlier run that died submitted it, or None."""
        from rulerun.run.cluster import earlier_sge

        earlier = self._record.find(key)
        if earlier is None or earlier.scheduler != "drmaa":
            return None
        return earlier_sge.result_of(request, JobFiles.at(earlier.base), earlier.job_id,
                                     self.poll_seconds, shutdown, _failure)

    def _submit_and_wait(self, request: JobRequest, shutdown, key: str | None) -> JobResult:
        try:
            files = JobFiles(request)
        except OSError as exc:
            return _failure(request, None, f"cannot write the job script: {exc}")
        try:
            job_id = self.submit(request, files)
        except self._drmaa.errors.DrmaaException as exc:
            files.remove()
            return _failure(request, None, f"Grid Engine refused the job: {_message(exc)}",
                            detail=f"native specification: {request.native_spec or '(none)'}")
        if key is not None:   # before waiting: a run that dies now leaves the id to the next
            from rulerun.store.cluster_jobs import Submitted

            self._record.add(Submitted(key, job_id, "drmaa", request.outputs, files.script[:-len(".sh")]))
        try:
            info = self.wait(job_id, shutdown)
        except (self._drmaa.errors.DrmaaException, RuntimeError) as exc:
            return _failure(request, job_id, f"lost track of the job: {_message(exc)}",
                            interrupted=bool(shutdown and shutdown.is_set()))
        return self._result(request, files, job_id, info, shutdown)

    def _result(self, request, files: JobFiles, job_id: str, info, shutdown) -> JobResult:
        interrupted = bool(shutdown and shutdown.is_set())
        if info is None:
            return _failure(request, job_id, "deleted before it ran", interrupted=interrupted)
        kind, status, signal = interpret(info)
        if kind != "aborted":   # it ran, so the shepherd made the files: wait for them
            wanted = [files.stdout, files.stderr]
            if kind == "exited" and status == 0:
                wanted += [os.path.join(request.workdir, p) for p in request.outputs
                           if not any(c in p for c in "*?[")]
            files.settle(wanted, self.settle_seconds)
        stdout, stderr = files.read()
        queued = queue_seconds(info.resourceUsage)
        if kind == "exited" and status == 0:
            if not request.keep_files:
                files.remove()
            return JobResult(request.key, True, exit_status=0, job_id=job_id,
                             stdout=stdout, stderr=stderr, queued=queued)
        what = _describe(kind, status, signal)
        detail = f"job script: {files.script}\nstdout: {files.stdout}\nstderr: {files.stderr}"
        if kind != "exited":   # Grid Engine's own kill (h_rt, h_vmem) says why only in qacct
            why = "terminated because the run was aborted" if interrupted else qacct_failure(job_id)
            what += f": {why}" if why else ""
        return _failure(request, job_id, what, detail=detail, exit_status=status, signal=signal,
                        stdout=stdout, stderr=stderr, interrupted=interrupted, queued=queued)


def _message(exc: BaseException) -> str:
    """drmaa's 'code 17: message' without the code, on one line."""
    text = re.sub(r"^code \d+:\s*", "", str(exc).strip())
    return " ".join(text.split()) or type(exc).__name__


def _message_lost(exc: BaseException) -> bool:
    """True if a refusal's text is not the scheduler's: empty, or a concurrent wait()'s."""
    return re.sub(r"^code \d+:\s*", "", str(exc).strip()) in ("", "time-out condition")


def current_session() -> ClusterSession | None:
    """The session opened in this process (not one inherited through fork), or None."""
    session = _current
    return session if session is not None and session._pid == os.getpid() else None
