"""One cluster job, whichever scheduler runs it: what is submitted (JobRequest: plain,
picklable data), the files it gets (its script, stdout and stderr in .rulerun/cluster), how a
failure is told, and resubmission. The DRMAA session (session.py) and the Slurm one (slurm.py)
are the two adapters that carry a JobRequest out; run_job (python_api.py) makes requests too.

    make_request(...)            -> JobRequest, every default worked out
    JobFiles(request)            the job's script and output files, reserved under one name
    run_with_retries(run_once, request, shutdown, warn)   one job, resubmitted while it fails
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from rulerun.run import shell as shells
from rulerun.run.executor import JobResult
from rulerun.run.cluster.tls import REEXEC_MARKER
from rulerun.store.layout import CLUSTER_DIR, CLUSTER_KEPT

LOCAL_HINT = "or run with --local"
NAME_MAX = 64
SETTLE_SECONDS = 5.0       # how long a late (shared) filesystem gets to show a job's files

# Variables Grid Engine sets for each job: the submitter's own values (when rulerun itself runs
# inside a job) must not override the new job's.
_SGE_JOB_VARS = {"JOB_ID", "JOB_NAME", "JOB_SCRIPT", "QUEUE", "NSLOTS", "NHOSTS", "NQUEUES",
                 "PE", "PE_HOSTFILE", "RESTARTED", "ENVIRONMENT", "REQUEST", "ARC",
                 "SGE_STDOUT_PATH", "SGE_STDERR_PATH", "SGE_STDIN_PATH", "SGE_JOB_SPOOL_DIR",
                 "SGE_CWD_PATH", "SGE_ACCOUNT", "SGE_BINARY_PATH", "SGE_TASK_ID",
                 "SGE_TASK_FIRST", "SGE_TASK_LAST", "SGE_TASK_STEPSIZE", REEXEC_MARKER}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_shell: tuple[str, ...] = shells.DEFAULT   # the shell of run_job's commands: the Pipefile's, in a worker


def set_shell(shell: tuple[str, ...]) -> None:
    """Run the commands of run_job with `shell` (a Python action's worker sets its Pipefile's)."""
    global _shell
    _shell = tuple(shell)


def shell_of_run_job() -> tuple[str, ...]:
    return _shell


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

def _failure(request: JobRequest, job_id: str | None, what: str, **extra) -> JobResult:
    """A failed JobResult whose reason names rule and job, and whose detail shows the command."""
    where = f"rule '{request.rule}'" + (f", cluster job {job_id}" if job_id else "")
    command = "\n".join("    " + line for line in request.command.rstrip("\n").splitlines())
    detail = extra.pop("detail", "")
    detail = (detail + "\n" if detail else "") + f"command:\n{command}"
    return JobResult(request.key, False, reason=f"{where}: {what}", job_id=job_id,
                     detail=detail, **extra)

# ------------------------------------------------------------------------------ retries

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
