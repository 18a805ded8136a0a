"""The contract between the scheduler and whatever carries out jobs.

The scheduler hands an executor one JobSpec at a time with `start(spec, done)`; the executor
carries the job out in the background (a process, a worker, a cluster job) and calls
`done(result)` exactly once, from any thread, when the job has ended (with every process it
started). The scheduler never asks which kind of executor it has: dry runs, --touch, local and
cluster runs differ only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from rulerun.run import shell as shells
from rulerun.proc import ProcessId


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to carry out one job, as plain data (it may cross a process boundary).

    `command` is the shell script after substitution (kind 'shell') or the Python source of the
    action (kind 'python'). `log_path` receives the job's stdout and stderr. `native_spec`
    and `queue` are set for cluster rules (native_spec may be ''). `shell` is the
    shell's command line (rulerun.run.shell), for shell actions and the cluster jobs of run_job.
    """

    key: int
    rule: str
    kind: str
    command: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    log_path: str
    workdir: str
    wildcards: Mapping[str, str] = field(default_factory=dict)
    stem: str | None = None
    rule_index: int = -1
    native_spec: str | None = None
    queue: str | None = None
    retries: int = 0
    shell: tuple[str, ...] = shells.DEFAULT
    named_inputs: Mapping[str, Any] = field(default_factory=dict)  # `input.NAME`: a str or a list
    # the job's own values (lang/params.py): params cross to a Python action's worker pickled
    params: Mapping[str, Any] = field(default_factory=dict)
    threads: int = 1
    resources: Mapping[str, int] = field(default_factory=dict)
    keep_log: bool = False  # log_path is the rule's `log:`: it exists after the job, empty or not

    @property
    def label(self) -> str:
        shown = " ".join(self.outputs) or " ".join(f"{k}={v}" for k, v in self.wildcards.items())
        return f"{self.rule} {shown}".strip()


@dataclass
class JobResult:
    """How a job ended. `ok` is the only thing the scheduler needs; the rest is for people:
    `reason` is one line ("exit status 3", "killed by SIGKILL", "worker process died"),
    `detail` any further lines (a traceback, the scheduler's reason), `stdout`/`stderr` the
    captured text where it was kept apart from the log (cluster jobs), `queued` the seconds a
    cluster job waited from its submission to its start (when the scheduler told)."""

    key: int
    ok: bool
    reason: str = ""
    exit_status: int | None = None
    signal: str | None = None
    job_id: str | None = None
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    interrupted: bool = False
    queued: float | None = None
    printed: bool = True  # False: the job is known to have printed nothing (its log was not made)


Done = Callable[[JobResult], None]


class Executor(Protocol):
    def start(self, spec: JobSpec, done: Done) -> ProcessId | None:
        """Begin carrying out `spec`; call done(result) once when it ends (from any thread).
        Returns the job's main process when it runs on this machine, for the state database
        to record (so that a run started after a crash can stop it); else None."""

    def abort(self) -> None:
        """Stop every job still running (SIGTERM, then SIGKILL after a grace period; on a
        cluster, terminate through the session) and return once they are gone. Each aborted
        job still gets its done(result) with interrupted=True."""

    def close(self) -> None:
        """Release what the executor holds (worker processes, a DRMAA session)."""


def abort_all(executors) -> None:
    """Abort several executors at once (each may wait out a grace period) and return when all are done."""
    import threading

    threads = [threading.Thread(target=executor.abort) for executor in executors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
