"""What a job will do, as plain data: its JobSpec (the rendered command, its log, its cluster
settings) for the executors."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Mapping

from rulerun.lang.model import PythonAction, ShellAction
from rulerun.lang.named import named_values
from rulerun.plan.graph import Job
from rulerun.run import shell as shells
from rulerun.run.executor import JobSpec
from rulerun.store.layout import LOG_DIR


def log_path(job: Job) -> str:
    what = job.outputs[0] if job.outputs else job.name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", what)[:80]
    digest = hashlib.sha1("\0".join(job.outputs or [job.name]).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    rule = re.sub(r"[^A-Za-z0-9._-]+", "_", job.name)[:60]
    return os.path.join(LOG_DIR, rule, f"{safe}.{digest}.log")


class Specs:
    """Turns jobs into JobSpecs, for one loaded Pipefile's namespace."""

    def __init__(self, namespace: Mapping[str, Any], shell: tuple[str, ...] = shells.DEFAULT,
                 workdir: str | None = None):
        self.namespace = namespace
        self.shell = shell
        self.workdir = workdir or os.getcwd()

    def __call__(self, job: Job, command: str | None = None) -> JobSpec:
        """The job as data; `command` instead of the rendered one when given. Raises ValueError
        when the command can't be rendered (an index past the job's inputs or outputs)."""
        rule = job.rule
        kind = "python" if isinstance(rule.action, PythonAction) else "shell"
        return JobSpec(
            key=job.id, rule=rule.name, kind=kind, command=self.command(job) if command is None else command,
            outputs=tuple(job.outputs), inputs=tuple(job.inputs), log_path=log_path(job),
            workdir=self.workdir, wildcards=job.wildcards, stem=job.stem, rule_index=rule.index,
            native_spec=_native_spec(rule), queue=rule.queue, retries=rule.retries, shell=self.shell,
            named_inputs=named_values(rule, job.named))

    def command(self, job: Job) -> str:
        """The shell script with every {…} substituted, or the Python action's source."""
        from rulerun.lang.template import render_shell

        action = job.rule.action
        if isinstance(action, ShellAction):
            return render_shell(action.script, job.inputs, job.outputs, job.wildcards, job.stem, self.namespace,
                                named=job.named)
        if isinstance(action, PythonAction):
            return action.source
        return ""


def _native_spec(rule) -> str | None:
    return rule.cluster if rule.is_cluster and rule.cluster is not None else ("" if rule.is_cluster else None)
