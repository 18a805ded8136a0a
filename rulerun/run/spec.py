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
    """The rule's `log:` for this job, or one under .rulerun/logs/."""
    if job.rule is not None and job.rule.log is not None:
        from rulerun.lang.patterns import compile_pattern

        return os.path.normpath(compile_pattern(job.rule.log.text).expand(job.values))
    return _internal_log_path(job)


def _internal_log_path(job: Job) -> str:
    what = job.outputs[0] if job.outputs else job.name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", what)[:80]
    digest = hashlib.sha1("\0".join(job.outputs or [job.name]).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    rule = re.sub(r"[^A-Za-z0-9._-]+", "_", job.name)[:60]
    return os.path.join(LOG_DIR, rule, f"{safe}.{digest}.log")


class Specs:
    """Turns jobs into JobSpecs, for one loaded Pipefile's namespace."""

    def __init__(self, namespace: Mapping[str, Any], shell: tuple[str, ...] = shells.DEFAULT,
                 workdir: str | None = None, values=None, max_threads: int = 0):
        self.namespace = namespace
        self.shell = shell
        self.workdir = workdir or os.getcwd()
        # the plan's Signatures.values (a job's params evaluated once), or evaluated here
        self.values = values or self._evaluate
        self.max_threads = max_threads  # -j: a job asking more threads gets this many

    def __call__(self, job: Job, command: str | None = None) -> JobSpec:
        """The job as data; `command` instead of the rendered one when given. Raises ValueError
        when the command can't be rendered (an index past the job's inputs or outputs)."""
        rule = job.rule
        kind = "python" if isinstance(rule.action, PythonAction) else "shell"
        log = log_path(job)
        own = self.own(job, log)
        if kind == "python" and command is None:
            _refuse_unpicklable(rule.name, own["params"])
        return JobSpec(
            key=job.id, rule=rule.name, kind=kind, command=self.command(job, own) if command is None else command,
            outputs=tuple(job.outputs), inputs=tuple(job.inputs), log_path=log,
            workdir=self.workdir, wildcards=job.wildcards, stem=job.stem, rule_index=rule.index,
            native_spec=_native_spec(rule, own), queue=rule.queue, retries=rule.retries, shell=self.shell,
            params=own["params"], threads=own["threads"], resources=own["resources"],
            keep_log=rule.log is not None, named_inputs=named_values(rule, job.named))

    def own(self, job: Job, log: str | None = None) -> dict[str, Any]:
        """The job's own values as its action sees them: threads capped at -j. `log`: its log
        path, if known."""
        values = self.values(job)
        threads = min(values.threads, self.max_threads) if self.max_threads else values.threads
        return {"params": values.params, "threads": threads, "resources": values.resources,
                "log": log_path(job) if log is None else log}

    def _evaluate(self, job: Job):
        from rulerun.lang.params import job_values

        return job_values(job.rule, job.inputs, job.outputs, job.wildcards, job.stem, self.namespace)

    def command(self, job: Job, own: Mapping[str, Any] | None = None) -> str:
        """The shell script with every {…} substituted, or the Python action's source. `own`:
        the job's own values, if known."""
        from rulerun.lang.template import render_shell

        action = job.rule.action
        if isinstance(action, ShellAction):
            return render_shell(action.script, job.inputs, job.outputs, job.wildcards, job.stem, self.namespace,
                                named=job.named, own=self.own(job) if own is None else own)
        if isinstance(action, PythonAction):
            return action.source
        return ""


def _native_spec(rule, own: Mapping[str, Any] | None = None) -> str | None:
    """The cluster options, with {threads} and {resources.NAME} substituted."""
    options = rule.cluster if rule.is_cluster and rule.cluster is not None else ("" if rule.is_cluster else None)
    if options and own and "{" in options:
        from rulerun.lang.template import render_shell

        options = render_shell(options, (), (), {}, None, {}, own=own)
    return options


def _refuse_unpicklable(rule: str, params: Mapping[str, Any]) -> None:
    """A Python action's params cross to its worker process pickled: a value that can't be
    pickled is said here, naming the rule, rather than as a worker's broken pipe."""
    import pickle

    for name, value in params.items():
        try:
            pickle.dumps(value)
        except Exception as exc:  # noqa: BLE001 - pickling raises many kinds
            raise UnpicklableParam(f"param '{name}' of rule '{rule}' can't be sent to the Python action's "
                                   f"process (it must be picklable): {type(exc).__name__}: {exc}") from None


class UnpicklableParam(ValueError):
    """A param a Python action can't be given."""
