"""The Slurm adapter: a session with the ClusterSession shape (open, run, terminate_all, close)
that drives Slurm through its commands, since no DRMAA library for Slurm is installable here.

    SlurmSession.run(request, shutdown) -> JobResult   write script, sbatch, wait, interpret, retry
    Poller                                              ONE thread asking squeue for all jobs

Facts this module is built around (Slurm 22.05, scripts/slurm.sh):
- `sbatch --parsable` prints "ID" or "ID;CLUSTER" and refuses a bad option with a message on
  stderr and a non-zero exit; the job gets the submitter's environment (--export=ALL).
- A job that ended leaves squeue at once; its state (COMPLETED, FAILED, CANCELLED, TIMEOUT,
  NODE_FAIL) and ExitCode are then known to `scontrol show job` only for MinJobAge (300 s), and
  to sacct only where accounting runs (slurmdbd) or a job completion log is kept (`sacct
  --completion`, JobCompType=jobcomp/filetxt: the test cell's). So each job's script writes
  its own exit status into a file beside it: that answer outlives the scheduler's memory.
- A cancelled or timed-out job is signalled before its script can write that file: no file and
  a state from scontrol means the scheduler ended it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from rulerun.errors import ClusterSetupError
from rulerun.run import shell as shells
from rulerun.run.cluster.job import (LOCAL_HINT, SETTLE_SECONDS, JobFiles, JobRequest, _failure,
                                     run_with_retries)
from rulerun.run.executor import JobResult
from rulerun.store.cluster_jobs import Submitted, SubmittedJobs, job_key

COMMAND_TIMEOUT = 30.0     # seconds any one Slurm command may take
TERMINATE_WAIT = 60.0      # how long a cancelled job gets to leave squeue
# squeue states of a job that has not ended
_LIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
         "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED",
         "RESV_DEL_HOLD", "SPECIAL_EXIT"}
_STATE_WORDS = {"CANCELLED": "cancelled", "TIMEOUT": "time limit reached",
                "NODE_FAIL": "node failure", "PREEMPTED": "preempted",
                "OUT_OF_MEMORY": "out of memory", "BOOT_FAIL": "node boot failure",
                "DEADLINE": "deadline reached"}


def slurm_command(args: list[str], env=None) -> subprocess.CompletedProcess:
    """Run a Slurm client command; a missing program is a ClusterSetupError."""
    try:
        return subprocess.run(args, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, env=env, timeout=COMMAND_TIMEOUT)
    except FileNotFoundError:
        raise ClusterSetupError(f"'{args[0]}' is not on PATH: Slurm's client commands are needed",
                                hint=f"install slurm-client, {LOCAL_HINT}") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"{args[0]} timed out")


# ------------------------------------------------------------------------------ job script

def status_path(files: JobFiles) -> str:
    return files.script[:-len(".sh")] + ".status"


def write_wrapper(request: JobRequest, files: JobFiles) -> str:
    """The script sbatch runs: the job's own script under the rule's shell, then its exit
    status written (atomically) beside it, so the status is known after Slurm forgot the job."""
    status = status_path(files)
    command = " ".join(shlex.quote(a) for a in shells.file_argv(request.shell, files.script))
    path = files.script[:-len(".sh")] + ".sbatch"
    with open(path, "w", encoding="utf-8") as f:
        # Slurm signals the whole job when it cancels it or its time is up: the status of a
        # job Slurm ended is Slurm's to tell (scontrol), so the trap leaves no file then
        f.write("#!/bin/sh\n"
                "trap 'exit 143' TERM INT HUP\n"
                f"{command}\n"
                "rc=$?\n"
                f"echo $rc > {shlex.quote(status + '.tmp')} && mv {shlex.quote(status + '.tmp')} "
                f"{shlex.quote(status)}\n"
                "exit $rc\n")
    os.chmod(path, 0o755)
    return path


def read_status(files: JobFiles) -> int | None:
    try:
        with open(status_path(files), encoding="utf-8") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def sbatch_args(request: JobRequest, files: JobFiles, wrapper: str) -> list[str]:
    args = ["sbatch", "--parsable", "-J", request.name, "-D", request.workdir,
            "-o", files.stdout, "-e", files.stderr]
    if request.queue:
        args += ["-p", request.queue]
    return args + shlex.split(request.options) + [wrapper]


# ------------------------------------------------------------------------------ the poller

class Watch:
    """One submitted job as the poller sees it: set `ended` once it left squeue."""

    def __init__(self, job_id: str, name: str = ""):
        self.job_id = job_id
        self.name = name
        self.ended = threading.Event()
        self.state = "PENDING"
        self.reason = ""
        self.times = ("", "")   # (submitted, started) as squeue showed them once it ran
        self.since = time.monotonic()
        self.told_pending = False


class Poller:
    """ONE thread asking squeue, every `interval` seconds, about every job of the run at once
    (a query per job per second would load the controller of a real cluster)."""

    def __init__(self, interval: float, pending_warn: float = 300.0,
                 on_pending: Callable[[Watch], None] | None = None):
        self.interval = interval
        self.pending_warn = pending_warn
        self.on_pending = on_pending   # told once about a job queued longer than pending_warn
        self._jobs: dict[str, Watch] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, job_id: str, name: str = "") -> Watch:
        with self._lock:
            watch = self._jobs[job_id] = Watch(job_id, name)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="slurm-poller", daemon=True)
                self._thread.start()
        return watch

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                ids = list(self._jobs)
            if ids:
                self._poll(ids)

    def _poll(self, ids: list[str]) -> None:
        # %V and %S: submitted and (once it runs) started, for the job's time in the queue
        proc = slurm_command(["squeue", "-h", "-o", "%i|%T|%r|%V|%S", "-j", ",".join(ids)])
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            return   # the controller is busy or restarting: ask again next turn
        seen = {}
        for line in proc.stdout.splitlines():
            job_id, state, reason, submitted, started = (line.split("|") + [""] * 4)[:5]
            seen[job_id.strip()] = (state.strip(), reason.strip(), submitted, started)
        with self._lock:
            for job_id in ids:
                watch = self._jobs.get(job_id)
                state = seen.get(job_id)
                if state is not None and state[0] in _LIVE:
                    watch.state, watch.reason = state[:2]
                    if watch.state in ("RUNNING", "COMPLETING"):   # %S is a forecast before
                        watch.times = state[2:]
                    self._tell_pending(watch)
                    continue
                del self._jobs[job_id]
                watch.ended.set()


    def _tell_pending(self, watch: Watch) -> None:
        if (watch.state == "PENDING" and not watch.told_pending and self.on_pending is not None
                and time.monotonic() - watch.since >= self.pending_warn):
            watch.told_pending = True
            try:
                self.on_pending(watch)
            except Exception:   # noqa: BLE001 - a message must not stop the polling
                pass


def pending_text(watch: Watch, seconds: float) -> str:
    """The line a person sees about a job the scheduler keeps waiting."""
    reason = watch.reason if watch.reason and watch.reason != "None" else "no reason given"
    return (f"cluster job {watch.job_id} ({watch.name}) still pending after {seconds:.0f}s: "
            f"{reason}")


# ------------------------------------------------------------------------------ the session

class SlurmSession:
    """Submits through sbatch and waits through the one Poller; shared by threads."""

    def __init__(self, poll_seconds: float = 2.0, settle_seconds: float = SETTLE_SECONDS,
                 record: SubmittedJobs | None = None, pending_warn: float = 300.0,
                 warn: Callable[[str], None] | None = None):
        self.poll_seconds = poll_seconds
        self._record = record   # where submitted jobs are recorded (a run's; not run_job's alone)
        self.settle_seconds = settle_seconds
        self._warn = warn
        tell = (lambda watch: warn(pending_text(watch, pending_warn))) if warn else None
        self._poller = Poller(poll_seconds, pending_warn, tell)

    def open(self) -> "SlurmSession":
        """Check that the controller answers; ClusterSetupError (suggesting --local) if not."""
        proc = slurm_command(["scontrol", "ping"])
        if proc.returncode != 0:
            raise ClusterSetupError(f"Slurm is unreachable: {_one_line(proc.stderr or proc.stdout)}",
                                    hint="is slurmctld running? (rulerun's test cluster: "
                                         f"bash scripts/slurm.sh start) {LOCAL_HINT}")
        if self._record:
            self._record.prune()
        return self

    def close(self) -> None:
        self._poller.stop()
        if self._record:
            self._record.close()

    def terminate_all(self) -> None:
        """scancel every job of this run still in squeue; waiters then collect them."""
        ids = self._poller.job_ids()
        if ids:
            slurm_command(["scancel", *ids])
            self._poller._wake.set()

    def run(self, request: JobRequest, shutdown: threading.Event | None = None) -> JobResult:
        """Carry out `request`, resubmitting a failed (not interrupted, not refused) job up to
        request.retries times."""
        return run_with_retries(self._run_once, request, shutdown, self._warn)

    def _run_once(self, request: JobRequest, shutdown) -> JobResult:
        if shutdown is not None and shutdown.is_set():
            return JobResult(request.key, False, reason="not submitted: the run was aborted",
                             interrupted=True)
        key = job_key(request.name, request.outputs, request.command, request.workdir)
        try:
            result = self._adopt(request, key, shutdown) if self._record else None
            return result if result is not None else self._submit_and_wait(request, key, shutdown)
        finally:
            if self._record:   # its result is taken (or it was never submitted): nothing to find
                self._record.forget(key)

    def _submit_and_wait(self, request: JobRequest, key: str, shutdown) -> JobResult:
        try:
            files = JobFiles(request)
            wrapper = write_wrapper(request, files)
        except OSError as exc:
            return _failure(request, None, f"cannot write the job script: {exc}")
        env = dict(request.env)
        env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        proc = slurm_command(sbatch_args(request, files, wrapper), env=env)
        if proc.returncode != 0:
            _remove_all(files, wrapper)
            return _failure(request, None, f"Slurm refused the job: {_one_line(proc.stderr)}",
                            detail=f"sbatch options: {_options_text(request)}")
        job_id = proc.stdout.strip().split(";")[0]
        if self._record:   # before waiting: a run that dies now leaves the id to the next one
            self._record.add(Submitted(key, job_id, "slurm", request.outputs,
                                       files.script[:-len(".sh")]))
        return self._wait(request, files, wrapper, job_id, shutdown)

    def _adopt(self, request: JobRequest, key: str, shutdown) -> JobResult | None:
        """The result of this job as submitted by an earlier run (waited for if it still runs),
        or None when there is none to take and it must be submitted."""
        earlier = self._record.find(key)
        if earlier is None or earlier.scheduler != "slurm":
            return None
        files = JobFiles.at(earlier.base)
        wrapper = earlier.base + ".sbatch"
        if read_status(files) is None:
            result = self._wait(request, files, wrapper, earlier.job_id, shutdown)
            if result.interrupted or result.exit_status is not None:   # its script said how it ended
                return result
            _remove_all(files, wrapper)
            return None   # it ended without running to its end: submit it anew
        watch = Watch(earlier.job_id)
        return self._result(request, files, wrapper, earlier.job_id, watch, False)

    def _wait(self, request, files: JobFiles, wrapper: str, job_id: str, shutdown) -> JobResult:
        watch = self._poller.watch(job_id, request.name)
        cancelled_at = None
        while not watch.ended.wait(0.2):
            if shutdown is not None and shutdown.is_set() and cancelled_at is None:
                slurm_command(["scancel", job_id])
                cancelled_at = time.monotonic()
            if cancelled_at is not None and time.monotonic() - cancelled_at > TERMINATE_WAIT:
                return _failure(request, job_id, "did not leave squeue after scancel",
                                interrupted=True)
        return self._result(request, files, wrapper, job_id, watch,
                            bool(shutdown and shutdown.is_set()))

    def _result(self, request, files: JobFiles, wrapper: str, job_id: str, watch: Watch,
                interrupted: bool) -> JobResult:
        status = read_status(files)
        if status is None and not interrupted:   # a shared filesystem may show it late
            files.settle([status_path(files)], min(self.settle_seconds, 2.0))
            status = read_status(files)
        stdout, stderr = files.read()
        if interrupted or (status == 0 and watch.times[1]):   # squeue told when it ran: no more to ask
            ended = JobEnd()
        else:   # its queue time, and for a job its script did not end, how the scheduler ended it
            ended = job_end(job_id, accounting=status is None or status > 128)
        queued = queue_time(*watch.times) if watch.times[1] else ended.queued
        if status == 0:
            if not request.keep_files:
                _remove_all(files, wrapper)
            return JobResult(request.key, True, exit_status=0, job_id=job_id,
                             stdout=stdout, stderr=stderr, queued=queued)
        detail = f"job script: {files.script}\nstdout: {files.stdout}\nstderr: {files.stderr}"
        if status is not None:
            what = f"exit status {status}"
            if status > 128 and ended.state in _STATE_WORDS:   # a signal's status: say who sent it
                what += f": {ended.said()}"
        elif interrupted:
            what = "cancelled because the run was aborted"
        else:
            what = ended.said() or "ended without an exit status"
        return _failure(request, job_id, what, detail=detail, exit_status=status,
                        stdout=stdout, stderr=stderr, interrupted=interrupted, queued=queued)


@dataclass(frozen=True)
class JobEnd:
    """How Slurm says a job ended; empty strings for what it does not (or no longer) know.
    `source` is the command that said it."""

    state: str = ""
    reason: str = ""
    submitted: str = ""
    started: str = ""
    exit_code: str = ""     # sacct's and scontrol's STATUS:SIGNAL
    source: str = "scontrol"

    @property
    def queued(self) -> float | None:
        return queue_time(self.submitted, self.started)

    def said(self) -> str:
        """'time limit reached (sacct: TIMEOUT, exit code 0:15)': in words, then Slurm's own."""
        if not self.state:
            return ""
        own = [w for w in (self.state, self.reason) if w and w not in ("None", "Unknown")]
        if self.exit_code not in ("", "0:0"):
            own.append(f"exit code {self.exit_code}")
        return f"{_STATE_WORDS.get(self.state, self.state.lower())} ({self.source}: {', '.join(own)})"


# Where an ended job's state, reason and exit code are asked, best first: Slurm's accounting
# (slurmdbd), then its job completion log (JobCompType=jobcomp/filetxt, read by `sacct
# --completion` with no daemon), then the controller's memory of the job (scontrol, for
# MinJobAge seconds). A source this Slurm says is disabled is not asked again by this process.
SACCT = {"accounting": ("sacct",), "completion": ("sacct", "--completion")}
_SACCT_FIELDS = "JobID,State,ExitCode,Reason,Submit,Start"
_disabled: set[str] = set()


def job_end(job_id: str, accounting: bool = True) -> JobEnd:
    """How an ended job ended: from sacct where Slurm keeps accounting or a job completion log
    (unless `accounting` is False: the queue time alone is the controller's to tell), else from
    `scontrol show job`; an empty JobEnd once Slurm forgot it."""
    for source, program in SACCT.items() if accounting else ():
        if source not in _disabled:
            end = _from_sacct(source, program, job_id)
            if end.state:
                return end
    return _from_scontrol(job_id)


def _from_sacct(source: str, program: tuple[str, ...], job_id: str) -> JobEnd:
    try:
        proc = slurm_command([*program, "-n", "-P", "-X", "-j", job_id, "-o", _SACCT_FIELDS])
    except ClusterSetupError:   # no sacct here: scontrol still answers
        _disabled.update(SACCT)
        return JobEnd()
    if proc.returncode != 0:
        if "disabled" in proc.stderr:   # "Slurm accounting storage is disabled", "... job completion ..."
            _disabled.add(source)
        return JobEnd()
    for line in proc.stdout.splitlines():   # a row may lag the job's end: then scontrol answers
        fields = line.split("|")
        if len(fields) == 6 and fields[0] == job_id and fields[1]:
            state = fields[1].split()[0]   # "CANCELLED by 0"
            # the completion log's reader (22.05) gives the start time as Submit: no queue time
            submitted = fields[4] if source == "accounting" else ""
            return JobEnd(state, fields[3], submitted, fields[5], fields[2], "sacct")
    return JobEnd()


def _from_scontrol(job_id: str) -> JobEnd:
    proc = slurm_command(["scontrol", "-o", "show", "job", job_id])
    fields = dict(word.partition("=")[::2] for word in proc.stdout.split() if "=" in word)
    return JobEnd(fields.get("JobState", ""), fields.get("Reason", ""), fields.get("SubmitTime", ""),
                  fields.get("StartTime", ""), fields.get("ExitCode", ""))


def queue_time(submitted: str, started: str) -> float | None:
    """Seconds between two of Slurm's times (2026-11-26T00:54:24, whole seconds, local time);
    None when either is not a time ("Unknown", "N/A", "None")."""
    try:
        seconds = (datetime.fromisoformat(started) - datetime.fromisoformat(submitted)).total_seconds()
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _options_text(request: JobRequest) -> str:
    parts = ([f"-p {request.queue}"] if request.queue else []) + ([request.options] if request.options else [])
    return " ".join(parts) or "(none)"


def _one_line(text: str) -> str:
    lines = [line.removeprefix("sbatch: error: ").strip() for line in text.strip().splitlines()]
    return "; ".join(line for line in lines if line) or "no message"


def _remove_all(files: JobFiles, wrapper: str) -> None:
    files.remove()
    for path in (wrapper, status_path(files)):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


# ------------------------------------------------------------------------------ choosing

SCHEDULERS = ("drmaa", "slurm")


def choose_scheduler(option: str | None, env=None) -> str:
    """The run's scheduler: the --scheduler option, then RULERUN_SCHEDULER, then drmaa when
    DRMAA_LIBRARY_PATH is set, else slurm when sbatch is on PATH; else a ClusterSetupError."""
    env = os.environ if env is None else env
    name = option or env.get("RULERUN_SCHEDULER") or None
    if name:
        if name not in SCHEDULERS:
            raise ClusterSetupError(f"unknown scheduler '{name}'",
                                    hint=f"use one of: {', '.join(SCHEDULERS)}")
        return name
    if env.get("DRMAA_LIBRARY_PATH"):
        return "drmaa"
    if shutil.which("sbatch", path=env.get("PATH")):
        return "slurm"
    raise ClusterSetupError("no cluster scheduler found: DRMAA_LIBRARY_PATH is unset and "
                            "sbatch is not on PATH",
                            hint=f"choose one with --scheduler drmaa|slurm, {LOCAL_HINT}")
