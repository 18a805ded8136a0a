"""The DRMAA layer: the process's one Grid Engine session, job scripts, and Ruffus-style run_job.

    load_drmaa()                 import drmaa, or a ClusterSetupError saying what to do
    job_name(rule, wildcards)    a name Grid Engine accepts
    make_request(...)            -> JobRequest: one job as plain, picklable data
    ClusterSession               the ONE drmaa.Session of this process, opened lazily
        .run(request, shutdown) -> JobResult   write script, submit, wait, interpret, retry
        .submit / .wait / .terminate_all / .close
    run_job(cmd_str, ...)        Ruffus-style helper for Python actions; ClusterJobError on failure

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

The submission seam for worker processes.  Python actions run in worker processes, which must
not open a second session (nor use one inherited through fork).  A worker that calls run_job
routes the job through the module attribute `_submitter`: when it is set (see set_submitter),
run_job calls `_submitter(request: JobRequest) -> JobResult` instead of submitting itself.
The runner installs, in each worker, a function that sends the request to the main process
(both types are picklable dataclasses), where a thread calls
`current_session().run(request)` and sends the JobResult back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from rulerun.errors import ClusterSetupError
from rulerun.run import shell as shells
from rulerun.run.executor import JobResult
from rulerun.run.touch import touch
from rulerun.run.cluster.tls import REEXEC_MARKER, TLS_TUNABLE, reexec_with_tls_fix, tls_restart_due  # noqa: F401

LOCAL_HINT = "or run with --local"
from rulerun.store.layout import CLUSTER_DIR, CLUSTER_KEPT
NAME_MAX = 64
SETTLE_SECONDS = 5.0       # how long a late (shared) filesystem gets to show a job's files
TERMINATE_WAIT = 60.0      # how long a terminated job gets to be reported before we give up

# Variables Grid Engine sets for each job: the submitter's own values (when rulerun itself runs
# inside a job) must not override the new job's.
_SGE_JOB_VARS = {"JOB_ID", "JOB_NAME", "JOB_SCRIPT", "QUEUE", "NSLOTS", "NHOSTS", "NQUEUES",
                 "PE", "PE_HOSTFILE", "RESTARTED", "ENVIRONMENT", "REQUEST", "ARC",
                 "SGE_STDOUT_PATH", "SGE_STDERR_PATH", "SGE_STDIN_PATH", "SGE_JOB_SPOOL_DIR",
                 "SGE_CWD_PATH", "SGE_ACCOUNT", "SGE_BINARY_PATH", "SGE_TASK_ID",
                 "SGE_TASK_FIRST", "SGE_TASK_LAST", "SGE_TASK_STEPSIZE", REEXEC_MARKER}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


# ------------------------------------------------------------------------------ requests

def job_name(rule: str, wildcards: Mapping[str, str] | None = None, stem: str | None = None) -> str:
    """A job name Grid Engine accepts: [A-Za-z0-9_.-], starting with a letter or '_', bounded.

    Rule and target names like 'a/b:c' are refused by qmaster, and a space even fails with an
    opaque InternalException, so everything else becomes '_'."""
    parts = [rule, *(wildcards or {}).values()] if wildcards else [rule, stem or ""]
    raw = ".".join(p for p in parts if p)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw) or "job"
    if not re.match(r"[A-Za-z_]", name):
        name = "r" + name
    if len(name) > NAME_MAX:
        # keep distinct long names distinct
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        name = f"{name[:NAME_MAX - 9]}-{digest}"
    return name


def job_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to hand a job: `env` (default os.environ) without Grid Engine's per-job
    variables and without entries that are not plain NAME=VALUE (exported shell functions)."""
    env = os.environ if env is None else env
    inside_job = "JOB_ID" in env
    return {k: v for k, v in env.items()
            if _ENV_NAME.match(k) and "\n" not in v and k not in _SGE_JOB_VARS
            and not k.startswith("SGE_O_") and not (inside_job and k in ("TMPDIR", "TMP"))}


def native_specification(queue: str | None, native_spec: str | None) -> str:
    """`-q QUEUE` (if any) followed by the rule's own options."""
    parts = [f"-q {queue}"] if queue else []
    if native_spec and native_spec.strip():
        parts.append(native_spec.strip())
    return " ".join(parts)


@dataclass(frozen=True)
class JobRequest:
    """One cluster job as plain data (it may cross a process boundary)."""

    command: str                       # shell script text, run with `shell`
    rule: str                          # for messages
    name: str                          # sanitised job name
    workdir: str                       # absolute; also where .rulerun/cluster lives
    env: Mapping[str, str] = field(default_factory=dict)
    native_spec: str = ""
    outputs: tuple[str, ...] = ()
    retries: int = 0
    keep_files: bool = False
    key: int = -1
    shell: tuple[str, ...] = shells.DEFAULT   # the shell's command line (rulerun.run.shell)
    # the queue and the rule's own options apart, for schedulers other than Grid Engine
    # (Slurm: -p QUEUE, then the options as sbatch options)
    queue: str | None = None
    options: str = ""
    script_dir: str = ""   # where the job's files go (absolute); '' is WORKDIR/.rulerun/cluster
    log_path: str = ""                 # the job's log in a run: every attempt's output goes there


def make_request(command: str, *, rule: str, workdir: str | None = None, name: str | None = None,
                 env: Mapping[str, str] | None = None, queue: str | None = None,
                 native_spec: str | None = None, outputs=(), retries: int = 0,
                 keep_files: bool = False, key: int = -1,
                 wildcards: Mapping[str, str] | None = None, stem: str | None = None,
                 shell: tuple[str, ...] | None = None, script_dir: str | None = None,
                 log_path: str = "") -> JobRequest:
    """A JobRequest with every default worked out (name, environment, native specification)."""
    return JobRequest(command=command, rule=rule, name=job_name(name or rule, wildcards, stem),
                      workdir=os.path.abspath(workdir or os.getcwd()), env=job_environment(env),
                      native_spec=native_specification(queue, native_spec),
                      outputs=tuple(outputs or ()), retries=max(0, retries or 0),
                      keep_files=keep_files, key=key,
                      shell=shells.resolved(shell or _shell),
                      queue=queue or None, options=(native_spec or "").strip(),
                      script_dir=os.path.abspath(script_dir) if script_dir else "", log_path=log_path)


# ------------------------------------------------------------------------------ job files

class JobFiles:
    """The script, stdout and stderr files of one submission, in WORKDIR/.rulerun/cluster."""

    def __init__(self, request: JobRequest):
        # run_job's job_script_directory; else kept on purpose (retain_job_scripts) out of
        # the way of pruning, or with the run's own
        folder = request.script_dir or os.path.join(request.workdir, CLUSTER_KEPT if request.keep_files else CLUSTER_DIR)
        os.makedirs(folder, exist_ok=True)     # a missing -o/-e directory aborts the job
        n = 1
        while True:   # the script is created exclusively, which also reserves .out and .err
            base = os.path.join(folder, f"{request.name}.{n}")
            try:
                fd = os.open(base + ".sh", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
                break
            except FileExistsError:
                n += 1
        with os.fdopen(fd, "w") as script:
            script.write(request.command if request.command.endswith("\n") else request.command + "\n")
        self.script, self.stdout, self.stderr = base + ".sh", base + ".out", base + ".err"
        for path in (self.stdout, self.stderr):   # Grid Engine appends: start empty
            _remove(path)

    @classmethod
    def at(cls, base: str) -> "JobFiles":
        """The files of a job submitted earlier (by a run that died), which exist already."""
        files = cls.__new__(cls)
        files.script, files.stdout, files.stderr = base + ".sh", base + ".out", base + ".err"
        return files

    def settle(self, paths, seconds: float) -> None:
        """Wait up to `seconds` for `paths` to appear (a shared filesystem may show them late)."""
        deadline = time.monotonic() + seconds
        missing = [p for p in paths if not os.path.exists(p)]
        while missing and time.monotonic() < deadline:
            time.sleep(0.1)
            missing = [p for p in missing if not os.path.exists(p)]

    def read(self) -> tuple[str, str]:
        return _read(self.stdout), _read(self.stderr)

    def remove(self) -> None:
        for path in (self.script, self.stdout, self.stderr):
            _remove(path)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


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


def _failure(request: JobRequest, job_id: str | None, what: str, **extra) -> JobResult:
    """A failed JobResult whose reason names rule and job, and whose detail shows the command."""
    where = f"rule '{request.rule}'" + (f", cluster job {job_id}" if job_id else "")
    command = "\n".join("    " + line for line in request.command.rstrip("\n").splitlines())
    detail = extra.pop("detail", "")
    detail = (detail + "\n" if detail else "") + f"command:\n{command}"
    return JobResult(request.key, False, reason=f"{where}: {what}", job_id=job_id,
                     detail=detail, **extra)


# ------------------------------------------------------------------------------ the session

def run_with_retries(run_once: Callable[[JobRequest, threading.Event | None], JobResult],
                     request: JobRequest, shutdown: threading.Event | None,
                     warn: Callable[[str], None] | None = None) -> JobResult:
    """`run_once(request, shutdown)`, again up to request.retries more times while it fails;
    a job that was interrupted or never submitted (no job id: refused) is not tried again.
    Each resubmission is announced through `warn` with where the failed attempt's output is
    kept: the job's log (request.log_path), else its own files. Both schedulers' sessions carry
    out a job through this."""
    total = request.retries + 1
    log = AttemptLog(request.log_path, total)
    for attempt in range(1, total + 1):
        result = run_once(request, shutdown)
        if result.ok or result.interrupted or result.job_id is None or attempt == total:
            break
        why = result.reason.removeprefix(f"rule '{request.rule}', ")
        log.failed(attempt, why, result)
        if warn is not None:
            kept = request.log_path or ", ".join(_files_named(result.detail)) or "nowhere"
            warn(f"rule '{request.rule}': attempt {attempt} of {total} failed: {why}; "
                 f"resubmitting (its output is kept in {kept})")
    log.last(attempt, result)
    if not result.ok and attempt > 1:
        result.reason += f" (failed {attempt} times)"
    return result


class AttemptLog:
    """The job's log as its attempts end: what it printed (stdout, then stderr, as a local job's
    log); once it was tried again, each attempt under a line saying which one and how it ended."""

    def __init__(self, path: str, total: int):
        self.path, self.total, self.retried = path, total, False

    def failed(self, attempt: int, why: str, result: JobResult) -> None:
        header = f"rulerun: attempt {attempt} of {self.total} failed: {why}\n"
        write_log(self.path, result, header, "w" if attempt == 1 else "a")
        self.retried = True

    def last(self, attempt: int, result: JobResult) -> None:
        if self.retried:
            write_log(self.path, result, f"rulerun: attempt {attempt} of {self.total}\n", "a")
        else:
            write_log(self.path, result)


def write_log(path: str, result: JobResult, header: str = "", mode: str = "w") -> None:
    """Give the job's log file what it printed, as local jobs do (stdout, then stderr)."""
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, mode, encoding="utf-8") as log:
            log.write(header + result.stdout + result.stderr)
    except OSError:
        pass   # the log is a convenience; the result still carries the text


def _files_named(detail: str) -> list[str]:
    """The stdout and stderr files a failure's detail names (kept after a failure)."""
    return re.findall(r"^(?:stdout|stderr): (.+)$", detail, re.M)


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


# ------------------------------------------------------------------------------ run_job

class ClusterJobError(Exception):
    """A job started by run_job failed; carries what it printed and how it ended."""

    def __init__(self, message: str, *, stdout: str = "", stderr: str = "",
                 exit_status: int | None = None, job_id: str | None = None, command: str = ""):
        super().__init__(message)
        self.stdout, self.stderr = stdout, stderr
        self.exit_status, self.job_id, self.command = exit_status, job_id, command


Submitter = Callable[[JobRequest], JobResult]
_submitter: Submitter | None = None
_shell: tuple[str, ...] = shells.DEFAULT   # run_job's shell: the Pipefile's, in a worker (set_shell)


@dataclass(frozen=True)
class RunJobDefaults:
    """What run_job uses for a keyword its caller left out: in a Python action, its rule's
    name, `queue:`, `cluster:` options and `retries:` (see set_defaults)."""

    rule: str = "run_job"
    queue: str | None = None
    options: str | None = None
    retries: int = 0


_defaults = RunJobDefaults()


def set_submitter(submitter: Submitter | None) -> Submitter | None:
    """Route run_job's submissions through `submitter` (None: submit directly); returns the
    previous one.  See the module docstring."""
    global _submitter
    previous, _submitter = _submitter, submitter
    return previous


def set_shell(shell: tuple[str, ...]) -> None:
    """Run the commands of run_job with `shell` (a Python action's worker sets its Pipefile's)."""
    global _shell
    _shell = tuple(shell)


def set_defaults(defaults: RunJobDefaults) -> None:
    """Fill run_job's unset keywords from `defaults` (a Python action's worker sets its rule's)."""
    global _defaults
    _defaults = defaults


def run_job(cmd_str: str, job_name: str | None = None, job_other_options: str | None = None,
            job_script_directory: str | None = None, job_environment: Mapping[str, str] | None = None,
            working_directory: str | None = None, logger=None, drmaa_session=None,
            retain_job_scripts: bool = False, run_locally: bool = False, output_files=None,
            touch_only: bool = False, verbose: int = 0, local_echo: bool = False, *,
            job_queue_name: str | None = None, resubmit: int | None = None,
            scheduler: str | None = None) -> tuple[str, str]:
    """Run shell command `cmd_str` (with the shell set_shell named, by default bash -euo pipefail)
    on the cluster and return its (stdout, stderr) text; raise ClusterJobError if it fails.

    Ruffus's drmaa_wrapper.run_job, same parameters in the same order, except that output comes
    back as text, not lists of lines, and `job_environment` adds to this process's environment
    instead of replacing it. `job_script_directory`: where the job's script, stdout and stderr
    files go (default WORKDIR/.rulerun/cluster). `verbose`: say what is submitted and how it
    ended, through `logger` (INFO) or else on stderr. `local_echo`: copy the command's output
    to this process's stdout and stderr, as it comes with run_locally, else once the job ended.
    rulerun's own keywords: `job_queue_name` (-q / -p), `resubmit` (submit a failed job up to
    that many more times), `scheduler` ('drmaa' or 'slurm'; default RULERUN_SCHEDULER, else as
    a run chooses). In a Python action, job_name, job_queue_name, job_other_options and
    resubmit default to its rule's name, `queue:`, `cluster:` and `retries:` (set_defaults).

    run_locally runs it here, touch_only only touches output_files: neither needs a scheduler.
    Otherwise the job goes through the _submitter hook if set, else `drmaa_session` (a
    ClusterSession or an initialised drmaa.Session), else the session this process opened,
    else the one session run_job shares between all its callers (rulerun.run.cluster.shared:
    opened by the first, closed when the last is done; safe from any number of threads)."""
    env = dict(os.environ, **(job_environment or {}))
    workdir = os.path.abspath(working_directory or os.getcwd())
    if touch_only:
        for path in output_files or ():
            touch(os.path.join(workdir, path))
        return "", ""
    if run_locally:
        return _run_here(cmd_str, env, workdir, echo=local_echo)
    own = _defaults
    request = make_request(cmd_str, rule=job_name or own.rule, workdir=workdir, env=env,
                           queue=own.queue if job_queue_name is None else job_queue_name,
                           native_spec=own.options if job_other_options is None else job_other_options,
                           outputs=output_files or (), keep_files=retain_job_scripts,
                           retries=own.retries if resubmit is None else int(resubmit),
                           script_dir=job_script_directory)
    tell = _teller(logger, verbose)
    tell(f"submitting {request.name} ({_options_shown(request)}): {cmd_str}")
    result = _submit_for_run_job(request, drmaa_session, scheduler)
    tell(f"cluster job {result.job_id or '(none)'} ({request.name}) "
         + ("succeeded" if result.ok else f"failed: {result.reason}"))
    if local_echo:
        _echo(result.stdout, result.stderr)
    if not result.ok:
        if logger is not None:
            logger.error("%s", result.reason)
        raise ClusterJobError(result.reason, stdout=result.stdout, stderr=result.stderr,
                              exit_status=result.exit_status, job_id=result.job_id,
                              command=cmd_str)
    return result.stdout, result.stderr


def _teller(logger, verbose) -> Callable[[str], None]:
    """Where run_job says what it does: with `verbose`, the caller's logger at INFO, else
    stderr; without, the logger at DEBUG (as before verbose existed), else nowhere."""
    if logger is not None:
        level = logging.INFO if verbose else logging.DEBUG
        return lambda text: logger.log(level, "%s", text)
    if verbose:
        return lambda text: print(f"run_job: {text}", file=sys.stderr, flush=True)
    return lambda text: None


def _options_shown(request: JobRequest) -> str:
    parts = [f"queue {request.queue}"] if request.queue else []
    parts += [f"options {request.options}"] if request.options else []
    return ", ".join(parts) or "no options"


def _echo(stdout: str, stderr: str) -> None:
    for text, stream in ((stdout, sys.stdout), (stderr, sys.stderr)):
        if text:
            stream.write(text)
            stream.flush()


def _submit_for_run_job(request: JobRequest, drmaa_session, scheduler: str | None = None) -> JobResult:
    if _submitter is not None:
        return _submitter(request)
    if isinstance(drmaa_session, ClusterSession):
        return drmaa_session.run(request)
    if drmaa_session is not None:
        return ClusterSession(drmaa_session=drmaa_session).run(request)
    from rulerun.run.cluster.shared import LENT

    session = current_session()
    if session is not None and not LENT["drmaa"].holds(session):
        return session.run(request)   # the process's own: a run's, or one the caller opened
    kind = _pick(scheduler)
    if kind == "drmaa" and session is None and _current is not None:
        _current._check_process()   # inherited through fork: libdrmaa's state here is unusable
    with LENT[kind].borrowed() as shared:
        return shared.run(request)


def _pick(scheduler: str | None) -> str:
    """The scheduler run_job submits to; 'drmaa' when none is found, so that its set-up error
    (which names DRMAA_LIBRARY_PATH) is the one a user sees."""
    from rulerun.run.cluster.slurm import choose_scheduler

    try:
        return choose_scheduler(scheduler)
    except ClusterSetupError:
        if scheduler or os.environ.get("RULERUN_SCHEDULER"):
            raise
        return "drmaa"


def run_here(command: str, env: Mapping[str, str], workdir: str, key: int = -1,
             shell: tuple[str, ...] | None = None, echo: bool = False) -> JobResult:
    """Run shell `command` on this machine and capture its output: what run_job(run_locally=True)
    and a run with --local do instead of submitting. `echo`: copy its output to this
    process's stdout and stderr as it comes, too."""
    argv = shells.script_argv(shell or _shell, command)
    if echo:
        code, stdout, stderr = _run_echoing(argv, env, workdir)
    else:
        proc = subprocess.run(argv, cwd=workdir, env=dict(env), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace")
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    if code == 0:
        return JobResult(key, True, stdout=stdout, stderr=stderr)
    what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    return JobResult(key, False, what, exit_status=code if code >= 0 else None,
                     stdout=stdout, stderr=stderr)


def _run_echoing(argv: list[str], env: Mapping[str, str], workdir: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `argv`, each line of its output also written to ours as
    soon as it arrives (one thread per stream, so neither pipe fills up)."""
    proc = subprocess.Popen(argv, cwd=workdir, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    kept: dict[int, str] = {}

    def copy(index: int, source, sink) -> None:
        lines = []
        for line in source:
            lines.append(line)
            sink.write(line)
            sink.flush()
        kept[index] = "".join(lines)

    copiers = [threading.Thread(target=copy, args=(i, source, sink), daemon=True)
               for i, (source, sink) in enumerate(((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)))]
    for copier in copiers:
        copier.start()
    code = proc.wait()
    for copier in copiers:
        copier.join()
    return code, kept.get(0, ""), kept.get(1, "")


def _run_here(cmd_str: str, env: Mapping[str, str], workdir: str, echo: bool = False) -> tuple[str, str]:
    result = run_here(cmd_str, env, workdir, echo=echo)
    if not result.ok:
        raise ClusterJobError(f"local job failed: {result.reason}", stdout=result.stdout,
                              stderr=result.stderr, exit_status=result.exit_status, command=cmd_str)
    return result.stdout, result.stderr
