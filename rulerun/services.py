"""What a Python action in a worker process may ask the rulerun process to do for it (through
the worker's `call_main`): submit a cluster job through the run's one DRMAA session, so that
workers never open sessions of their own (GRID-ENGINE facts: one session per process, never
used from a forked child)."""

from __future__ import annotations

from typing import Callable


def services(router) -> dict[str, Callable]:
    """The calls workers may make, bound to this run's executor `router`."""

    def cluster_run(request):
        from rulerun.executors.base import JobResult

        if not router.to_cluster:
            return _run_here(request, JobResult)
        return router.cluster().session().run(request)

    return {"cluster_run": cluster_run}


def _run_here(request, JobResult):
    """--local: a cluster job requested by run_job runs on this machine instead."""
    import subprocess

    proc = subprocess.run(["/bin/sh", "-e", "-c", request.command], cwd=request.workdir, env=dict(request.env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    ok = proc.returncode == 0
    return JobResult(request.key, ok, "" if ok else f"exit status {proc.returncode}",
                     exit_status=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
