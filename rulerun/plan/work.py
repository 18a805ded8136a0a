"""What a job will do, as data: its rendered command (JobSpec), its state key and its signature.

The signature is what makes a changed action or variable rerun a job: a hash of the action as
it will run, of each top-level variable it uses, and of its list of inputs.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from typing import Any, Mapping

from rulerun.run.executor import JobSpec
from rulerun.plan.graph import Job
from rulerun.lang.model import Pipefile, PythonAction, ShellAction, Variable
from rulerun.store.state import STATE_DIR

LOG_DIR = os.path.join(STATE_DIR, "logs")


def job_key(job: Job) -> str:
    """The job's name in the state database."""
    if job.is_task:
        return f"task:{job.rule.name}"
    if job.is_split:
        return f"split:{job.rule.name}"
    return "\0".join(job.outputs)


def log_path(job: Job) -> str:
    what = job.outputs[0] if job.outputs else job.name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", what)[:80]
    digest = hashlib.sha1("\0".join(job.outputs or [job.name]).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    rule = re.sub(r"[^A-Za-z0-9._-]+", "_", job.name)[:60]
    return os.path.join(LOG_DIR, rule, f"{safe}.{digest}.log")


class Work:
    """Turns jobs into JobSpecs and signatures, for one loaded Pipefile and its namespace."""

    def __init__(self, pipefile: Pipefile, namespace: Mapping[str, Any], workdir: str | None = None):
        self.pipefile = pipefile
        self.namespace = namespace
        self.workdir = workdir or os.getcwd()
        self._variables = {item.name for item in pipefile.preamble if isinstance(item, Variable)}
        self._python_names: dict[int, set[str]] = {}
        self._rule_parts: dict[int, tuple[str, dict[str, str]]] = {}

    def spec(self, job: Job, command: str | None = None) -> JobSpec:
        """The job as data; `command` instead of the rendered one when given. Raises ValueError
        when the command can't be rendered (an index past the job's inputs or outputs)."""
        rule = job.rule
        action = rule.action
        kind = "python" if isinstance(action, PythonAction) else "shell"
        return JobSpec(
            key=job.id, rule=rule.name, kind=kind, command=self.command(job) if command is None else command,
            outputs=tuple(job.outputs), inputs=tuple(job.inputs), log_path=log_path(job),
            workdir=self.workdir, wildcards=job.wildcards, stem=job.stem, rule_index=rule.index,
            native_spec=_native_spec(rule), queue=rule.queue, retries=rule.retries)

    def command(self, job: Job) -> str:
        """The shell script with every {…} substituted, or the Python action's source."""
        from rulerun.lang.template import render_shell

        action = job.rule.action
        if isinstance(action, ShellAction):
            return render_shell(action.script, job.inputs, job.outputs, job.wildcards, job.stem, self.namespace)
        if isinstance(action, PythonAction):
            return action.source
        return ""

    def signature(self, job: Job) -> dict:
        """What decides whether the job must run again: its action as written and the values of
        the variables it uses (together they fix the command, given its inputs and outputs,
        and are worked out once per rule), and its list of inputs."""
        action, variables = self._rule_signature(job)
        return {"action": action, "variables": variables, "inputs": _digest("\0".join(job.inputs))}

    def _rule_signature(self, job: Job) -> tuple[str, dict[str, str]]:
        parts = self._rule_parts.get(job.rule.index)
        if parts is None:
            action = job.rule.action
            text = action.script if isinstance(action, ShellAction) else (action.source if action else "")
            variables = {name: _digest(repr(self.namespace.get(name))) for name in sorted(self._used(job))}
            parts = self._rule_parts[job.rule.index] = (_digest(text), variables)
        return parts

    def _used(self, job: Job) -> set[str]:
        action = job.rule.action
        if isinstance(action, ShellAction):
            from rulerun.lang.template import referenced_names

            return referenced_names(action.script) & self._variables
        if isinstance(action, PythonAction):
            names = self._python_names.get(job.rule.index)
            if names is None:
                names = _names_in(action.source) & self._variables
                self._python_names[job.rule.index] = names
            return names
        return set()


def _native_spec(rule) -> str | None:
    return rule.cluster if rule.is_cluster and rule.cluster is not None else ("" if rule.is_cluster else None)


def _names_in(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
