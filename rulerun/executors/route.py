"""Send each job to the executor it belongs to: cluster rules to DRMAA (opened only when the
first cluster job starts), everything else to this machine."""

from __future__ import annotations

import threading

from rulerun.executors.base import Done, JobSpec


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

    def start(self, spec: JobSpec, done: Done) -> None:
        (self.cluster() if self._is_cluster(spec) else self.local).start(spec, done)

    def cluster(self):
        with self._lock:
            if self._cluster is None:
                if self._cluster_factory is not None:
                    self._cluster = self._cluster_factory()
                else:
                    from rulerun.executors.drmaa import DrmaaExecutor

                    self._cluster = DrmaaExecutor()
            return self._cluster

    def abort(self) -> None:
        parts = [self.local] + ([self._cluster] if self._cluster else [])
        threads = [threading.Thread(target=p.abort) for p in parts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        self.local.close()
        if self._cluster is not None:
            self._cluster.close()
