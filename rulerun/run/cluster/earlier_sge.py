"""Grid Engine jobs an earlier run submitted and died waiting for (kill -9): a DRMAA session
can wait only for its own jobs, so these are followed with qstat and judged with qacct
(scripts/sge.sh flushes accounting at once)."""

from __future__ import annotations

import subprocess
import threading
import time

from rulerun.run.executor import JobResult

COMMAND_TIMEOUT = 30.0


def _run(args: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None


def still_queued(job_id: str) -> bool:
    proc = _run(["qstat", "-j", job_id])
    return proc is not None and proc.returncode == 0


def accounted_exit(job_id: str, tries: int = 10) -> int | None:
    """The exit status qacct knows for an ended job that ran (failed 0), else None."""
    for _ in range(tries):
        proc = _run(["qacct", "-j", job_id])
        if proc is not None and proc.returncode == 0:
            fields = {}
            for line in proc.stdout.splitlines():
                key, _, value = line.partition(" ")
                fields.setdefault(key, value.strip())
            if fields.get("failed", "").split(":")[0].strip() != "0":
                return None
            try:
                return int(fields.get("exit_status", "").split()[0])
            except (ValueError, IndexError):
                return None
        time.sleep(0.3)   # accounting may lag the end of the job by a moment
    return None


def wait_for(job_id: str, poll_seconds: float, shutdown: threading.Event | None) -> bool:
    """Wait until the job left qstat; False if the run was aborted (the job is then qdel'ed)."""
    while still_queued(job_id):
        if shutdown is not None and shutdown.is_set():
            _run(["qdel", job_id])
            return False
        time.sleep(poll_seconds)
    return True


def result_of(request, files, job_id: str, poll_seconds: float, shutdown, failure) -> JobResult | None:
    """The result of an earlier run's job, or None when it must be submitted again (it never
    ran to its end, or Grid Engine no longer knows it)."""
    if not wait_for(job_id, poll_seconds, shutdown):
        return failure(request, job_id, "terminated because the run was aborted", interrupted=True)
    status = accounted_exit(job_id)
    if status is None:   # judged: its files are of no use to the new submission
        files.remove()
        return None
    stdout, stderr = files.read()
    if status == 0:
        files.remove()
        return JobResult(request.key, True, exit_status=0, job_id=job_id, stdout=stdout, stderr=stderr)
    return failure(request, job_id, f"exit status {status}", exit_status=status,
                   stdout=stdout, stderr=stderr,
                   detail=f"job script: {files.script}\nstdout: {files.stdout}\nstderr: {files.stderr}")
