"""Send each job to the executor it belongs to: cluster rules to DRMAA (opened only when the
first cluster job starts), everything else to this machine."""

from __future__ import annotations

import threading

from rulerun.proc import ProcessId
from rulerun.run.executor import Done, JobSpec, abort_all
from rulerun.lang.model import PythonBlock, ShellAction


def may_submit(rule, every_shell_job: bool = False, preamble_submits: bool = False) -> bool:
    """Whether a job of `rule` may submit to the cluster (when the run is not --local): its
    shell action goes there (as Router.start decides), or its Python action calls run_job,
    itself or through a helper of the top-level Python (`preamble_submits`)."""
    if rule is None or rule.action is None:
        return False
    if isinstance(rule.action, ShellAction):
        return rule.is_cluster or every_shell_job
    return preamble_submits or "run_job" in rule.action.source


def python_submits(pipefile) -> bool:
    """True if the Pipefile's top-level Python mentions run_job (a helper actions may call)."""
    return any(isinstance(item, PythonBlock) and "run_job" in item.source
               for item in pipefile.preamble)


class Router:
    def __init__(self, local, to_cluster: bool = True, every_shell_job: bool = False, cluster_factory=None):
        self.local = local
        self.to_cluster = to_cluster
        self.every_shell_job = every_shell_job
        self._cluster_factory = cluster_factory
        self._cluster = None
        self._lock = threading.Lock()

    def _is_cluster(self, spec: JobSpec) -> bool:
        if not self.to_cluster or spec.kind != "shell":
            return False  # a Python action runs here; its run_job calls reach the cluster
        return spec.native_spec is not None or (self.every_shell_job and spec.kind == "shell")

    def start(self, spec: JobSpec, done: Done) -> ProcessId | None:
        return (self.cluster() if self._is_cluster(spec) else self.local).start(spec, done)

    def cluster(self):
        with self._lock:
            if self._cluster is None:
                if self._cluster_factory is not None:
                    self._cluster = self._cluster_factory()
                else:
                    from rulerun.run.cluster.executor import DrmaaExecutor

                    self._cluster = DrmaaExecutor()
            return self._cluster

    def abort(self) -> None:
        abort_all([self.local] + ([self._cluster] if self._cluster else []))

    def close(self) -> None:
        self.local.close()
        if self._cluster is not None:
            self._cluster.close()
