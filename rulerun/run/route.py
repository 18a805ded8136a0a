"""Send each job to the executor it belongs to: cluster rules to the cluster (opened only when
the first cluster job starts), everything else to this machine."""

from __future__ import annotations

import threading
from typing import Callable

from rulerun.proc import ProcessId
from rulerun.lang.model import PythonBlock, ShellAction
from rulerun.run.executor import Done, JobSpec, abort_all


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


def idle_cluster_lines(pipefile) -> list[str]:
    """Warnings for Python rules with `cluster:`, `queue:` or `retries:` whose action can't
    reach the cluster (neither it nor the top-level Python mentions run_job): those lines only
    set the defaults of its run_job calls, so here they do nothing."""
    if python_submits(pipefile):
        return []
    return [f"{rule.loc}: rule '{rule.name}' has a Python action, "
            "which runs on this machine: its cluster:, queue: and retries: apply only to the "
            "rulerun.cluster.run_job calls it makes, and it makes none"
            for rule in pipefile.rules
            if rule.action is not None and not isinstance(rule.action, ShellAction)
            and (rule.is_cluster or rule.retries) and "run_job" not in rule.action.source]


class LazyCluster:
    """The run's cluster executor, made by `factory` when first asked for (a run that submits
    nothing never loads the cluster library). Shared by the router and the workers' calls."""

    def __init__(self, factory: Callable[[], object] | None = None):
        self._factory = factory
        self._executor = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._executor is None:
                if self._factory is not None:
                    self._executor = self._factory()
                else:
                    from rulerun.run.cluster.executor import DrmaaExecutor

                    self._executor = DrmaaExecutor()
            return self._executor

    @property
    def opened(self):
        """The executor if it was made, else None."""
        return self._executor


class Router:
    """The Executor contract over a local executor and, for cluster jobs, `cluster` (None:
    --local, every job runs here)."""

    def __init__(self, local, cluster: LazyCluster | None, every_shell_job: bool = False):
        self.local = local
        self._cluster = cluster
        self.every_shell_job = every_shell_job

    @property
    def poller(self):
        """What the run loop waits on: the local executor's (cluster jobs' results wake it)."""
        return getattr(self.local, "poller", None)

    def _is_cluster(self, spec: JobSpec) -> bool:
        if self._cluster is None or spec.kind != "shell":
            return False  # a Python action runs here; its run_job calls reach the cluster
        return spec.native_spec is not None or self.every_shell_job

    def start(self, spec: JobSpec, done: Done) -> ProcessId | None:
        return (self._cluster.get() if self._is_cluster(spec) else self.local).start(spec, done)

    def cluster(self):
        return self._cluster.get()

    def abort(self) -> None:
        opened = self._cluster.opened if self._cluster is not None else None
        abort_all([self.local] + ([opened] if opened else []))

    def close(self) -> None:
        self.local.close()
        opened = self._cluster.opened if self._cluster is not None else None
        if opened is not None:
            opened.close()
