"""What a Python action in a worker process may ask the rulerun process to do for it (the
worker's `call_main`): today, submitting a cluster job through the run's one DRMAA session."""

from __future__ import annotations

from typing import Callable


def services() -> dict[str, Callable]:
    return {"run_job": _run_job}


def _run_job(*args, **kwargs):
    from rulerun import cluster

    return cluster.run_job(*args, **kwargs)
