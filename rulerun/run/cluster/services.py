"""What a Python action in a worker process may ask the rulerun process to do for it (through
the worker's `call_main`): submit a cluster job through the run's one DRMAA session, so that
workers never open sessions of their own (GRID-ENGINE facts: one session per process, never
used from a forked child)."""

from __future__ import annotations

from typing import Callable


def services(cluster) -> dict[str, Callable]:
    """The calls workers may make: `cluster` is the run's LazyCluster, or None with --local
    (the job then runs on this machine)."""

    def cluster_run(request):
        from rulerun.run.cluster import python_api

        if cluster is None:
            return python_api.run_here(request.command, request.env, request.workdir, request.key, request.shell)
        return cluster.get().session().run(request)

    return {"cluster_run": cluster_run}
