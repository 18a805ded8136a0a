"""run_job: the cluster for Python actions and plain scripts, as Ruffus's drmaa_wrapper.run_job
served them; ClusterJobError when a job fails. (rulerun.cluster is the name users import.)

The submission seam for worker processes.  Python actions run in worker processes, which must
not open a second session (nor use one inherited through fork).  A worker that calls run_job
routes the job through the module attribute `_submitter`: when it is set (see set_submitter),
run_job calls `_submitter(request: JobRequest) -> JobResult` instead of submitting itself.
The runner installs, in each worker, a function that sends the request to the main process
(both types are picklable dataclasses), where a thread calls
`current_session().run(request)` and sends the JobResult back.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Mapping

from rulerun.errors import ClusterSetupError
from rulerun.run import shell as shells
from rulerun.run.cluster import job
from rulerun.run.cluster import session as sessions
from rulerun.run.cluster.job import JobRequest, make_request, set_shell  # noqa: F401 (set_shell: the worker's)
from rulerun.run.cluster.session import ClusterSession, current_session
from rulerun.run.executor import JobResult
from rulerun.run.touch import touch


class ClusterJobError(Exception):
    """A job started by run_job failed; carries what it printed and how it ended."""

    def __init__(self, message: str, *, stdout: str = "", stderr: str = "",
                 exit_status: int | None = None, job_id: str | None = None, command: str = ""):
        super().__init__(message)
        self.stdout, self.stderr = stdout, stderr
        self.exit_status, self.job_id, self.command = exit_status, job_id, command


Submitter = Callable[[JobRequest], JobResult]
_submitter: Submitter | None = None


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
    if kind == "drmaa" and session is None and sessions._current is not None:
        sessions._current._check_process()   # inherited through fork: libdrmaa's state here is unusable
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
    argv = shells.script_argv(shell or job.shell_of_run_job(), command)
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
