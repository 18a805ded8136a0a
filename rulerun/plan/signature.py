"""What a job is recorded with: its name in the state (its key) and its signature.

The signature is what makes a changed action or value rerun a job: a hash of the action as
written, of each top-level variable it uses, and of its list of inputs. The run loop adds the
newest input time when the job started (an input changed while it ran is then seen).
"""

from __future__ import annotations

import ast
import hashlib
from typing import Any, Mapping

from rulerun.lang.model import Pipefile, PythonAction, ShellAction, Variable
from rulerun.plan.graph import Job


def job_key(job: Job) -> str:
    """The job's name in the state database."""
    if job.is_task:
        return f"task:{job.rule.name}"
    if job.is_split:
        return f"split:{job.rule.name}"
    return "\0".join(job.outputs)


class Signatures:
    """Signatures of jobs, for one loaded Pipefile and its namespace; the part that is the same
    for every job of a rule is worked out once per rule."""

    def __init__(self, pipefile: Pipefile, namespace: Mapping[str, Any]):
        self.namespace = namespace
        self._variables = {item.name for item in pipefile.preamble if isinstance(item, Variable)}
        self._rule_parts: dict[int, tuple[str, dict[str, str]]] = {}

    def __call__(self, job: Job) -> dict:
        """What decides whether the job must run again: its action as written and the values of
        the variables it uses (together they fix the command, given its inputs and outputs),
        and its list of inputs."""
        action, variables = self._rule_signature(job)
        return {"action": action, "variables": variables, "inputs": digest("\0".join(job.inputs))}

    def variables_used(self, job: Job) -> set[str]:
        """The names of the variables `job`'s signature holds."""
        return set(self._rule_signature(job)[1])

    def _rule_signature(self, job: Job) -> tuple[str, dict[str, str]]:
        parts = self._rule_parts.get(job.rule.index)
        if parts is None:
            action = job.rule.action
            text = action.script if isinstance(action, ShellAction) else (action.source if action else "")
            variables = {name: digest(repr(self.namespace.get(name))) for name in sorted(self._used(job))}
            parts = self._rule_parts[job.rule.index] = (digest(text), variables)
        return parts

    def _used(self, job: Job) -> set[str]:
        action = job.rule.action
        if isinstance(action, ShellAction):
            from rulerun.lang.template import referenced_names

            return referenced_names(action.script) & self._variables
        if isinstance(action, PythonAction):
            return _names_in(action.source) & self._variables
        return set()


def _names_in(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
