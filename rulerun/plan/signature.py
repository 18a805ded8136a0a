"""What a job is recorded with: its name in the state (its key) and its signature.

The signature is what makes a changed action or value rerun a job: a hash of the action as
written, of every value of the shared namespace it uses (a variable, a name a `python:` block
bound, a command-line NAME=VALUE; a function by its code and what it reads; see
fingerprint.py), and of its list of inputs. The run loop adds the newest input time when the
job started (an input changed while it ran is then seen).
"""

from __future__ import annotations

import ast
import hashlib
from typing import Any, Mapping

import types

from rulerun.lang.model import Pipefile, PythonAction, ShellAction
from rulerun.plan.fingerprint import fingerprint, names_read
from rulerun.plan.graph import Job

# Names a job's action sees that are its own, not the shared namespace's.
_JOB_NAMES = frozenset({"input", "output", "wildcards", "stem", "log", "params", "threads", "resources"})


def job_key(job: Job) -> str:
    """The job's name in the state database."""
    if job.is_task:
        return f"task:{job.rule.name}"
    if job.is_split:  # one per set of wildcard values when its globs have {name}
        values = "".join(f"\0{name}={value}" for name, value in sorted(job.values.items()))
        return f"split:{job.rule.name}{values}"
    return "\0".join(job.outputs)


class Signatures:
    """Signatures of jobs, for one loaded Pipefile and its namespace; the part that is the same
    for every job of a rule is worked out once per rule."""

    def __init__(self, pipefile: Pipefile, namespace: Mapping[str, Any]):
        self.namespace = namespace
        self._shared = {name for name in namespace if not name.startswith("__")}
        self._rule_parts: dict[int, tuple[str, dict[str, str]]] = {}
        self._text = pipefile.text
        self._values: dict[Job | int, Any] = {}  # by job, or by rule index (see values)

    def __call__(self, job: Job) -> dict:
        """What decides whether the job must run again: its action as written and the values of
        the variables it uses (together they fix the command, given its inputs and outputs),
        and its list of inputs."""
        action, variables = self._rule_signature(job)
        signature = {"action": action, "variables": variables, "inputs": digest("\0".join(job.inputs))}
        if job.rule is not None and job.rule.params:  # absent otherwise: older records stay equal
            signature["params"] = {name: digest(fingerprint(value, self.namespace))
                                   for name, value in self.values(job).params.items()}
        return signature

    def values(self, job: Job):
        """The job's own values (lang/params.py), evaluated once per job and run; one value for
        all the jobs of a rule whose values can't differ between jobs (no params, threads as a
        number: most rules), so that a large graph holds one, not one per job."""
        rule = job.rule
        per_job = bool(rule.params) or rule.threads_expression is not None
        found = self._values.get(job if per_job else rule.index)
        if found is None:
            from rulerun.lang.params import job_values

            found = self._values[job if per_job else rule.index] = job_values(
                rule, job.inputs, job.outputs, job.wildcards, job.stem, self.namespace, self._text)
        return found

    def _rule_signature(self, job: Job) -> tuple[str, dict[str, str]]:
        parts = self._rule_parts.get(job.rule.index)
        if parts is None:
            action = job.rule.action
            text = action.script if isinstance(action, ShellAction) else (action.source if action else "")
            variables = {name: digest(fingerprint(self.namespace.get(name), self.namespace))
                         for name in sorted(self._used_by_action(job))}
            parts = self._rule_parts[job.rule.index] = (digest(text), variables)
        return parts

    def _read_by_params(self, job: Job) -> set[str]:
        """Every name a params: or threads: expression reads besides the job's own, builtins
        included (`open` is none of the namespace's, and must be seen). The shared ones are not
        among the signature's variables: the params' values are, each job's own, so a change of
        `config["window"]` reruns only the jobs whose params it changes."""
        names: set[str] = set()
        expressions = list(job.rule.params) if job.rule is not None else []
        if job.rule is not None and job.rule.threads_expression is not None:
            expressions.append(job.rule.threads_expression)
        for param in expressions:
            names |= _free_names("(" + param.expression + ")")
        return names - _JOB_NAMES

    def _used_by_action(self, job: Job) -> set[str]:
        action = job.rule.action
        if isinstance(action, ShellAction):
            from rulerun.lang.template import referenced_names

            return (referenced_names(action.script) - _JOB_NAMES - set(job.values)) & self._shared
        if isinstance(action, PythonAction):
            return (_names_in(action.source) - _JOB_NAMES) & self._shared
        return set()

    def follows_from_text(self, job: Job, fixed: set[str]) -> bool:
        """Whether every value `job` uses follows from the Pipefile's text and the command line:
        a name in `fixed` (see namespace.fixed_names), a module, or a function or class of the
        Pipefile whose reads do too. Other values (a list a `python:` block computed, say) may
        change with nothing on disk changing, so no record may answer for them.

        A params: or threads: expression is evaluated for the decision itself (the signature
        holds its value): what it reads must be pure (lang/purity.py), as a function that
        opens a file or globs gives another value with no input changed."""
        from rulerun.lang.purity import all_follow, follows_from_text as pure

        return (pure(self._read_by_params(job), self.namespace, fixed)
                and all_follow(self._used_by_action(job), fixed, self._read_for_action))

    def _read_for_action(self, name: str) -> set[str] | None:
        """What a value an action uses depends on, for the record: a module nothing (its name is
        its fingerprint), a Pipefile function the shared names its code reads, a Pipefile class
        nothing; None for any other value (a list a `python:` block computed may change)."""
        value = self.namespace.get(name)
        if isinstance(value, types.ModuleType):
            return set()
        if isinstance(value, types.FunctionType) and value.__module__ == "__pipefile__":
            return names_read(value) & self._shared
        if isinstance(value, type) and value.__module__ == "__pipefile__":
            return set()
        return None


def _names_in(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _free_names(source: str) -> set[str]:
    """The names an expression reads that it does not bind itself (a comprehension's variable,
    a lambda's argument); an expression that can't be parsed reads `eval`, which is never pure."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {"eval"}
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
