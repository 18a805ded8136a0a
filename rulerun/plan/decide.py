"""Which jobs must run, and why (PIPEFILE.md "When a job runs").

A job runs when an output is missing, an input is newer than its oldest output, its action or a
variable it uses changed since it last succeeded, its input list changed, it was interrupted
before it finished, it is forced, or something it needs runs first. The reasons are kept as
sentences for `-n` and `-v`.
"""

from __future__ import annotations

from typing import Callable

from rulerun.plan.view import FileSystem
from rulerun.plan.graph import Job
from rulerun.store.state import State


class Dirty:
    """Decides, job by job in dependency order, whether each job must run; remembers the answer."""

    def __init__(self, fs: FileSystem, state: State | None, signature: Callable[[Job], dict],
                 key: Callable[[Job], str], forced: bool = False):
        self.fs = fs
        self.state = state
        self.signature = signature
        self.key = key
        self.forced = forced
        self.reasons: dict[Job, list[str]] = {}
        self._incomplete = state.incomplete() if state else set()

    def must_run(self, job: Job) -> bool:
        return bool(self.reasons.get(job))

    def decide_with_deps(self, job: Job) -> list[str]:
        """Decide `job` and, first, every dep of it not decided yet (split rules are asked
        during resolution, before the dependency-order pass)."""
        from rulerun.plan.graph import topological

        for each in topological([job]):
            if each not in self.reasons or each is job:
                self.decide(each)
        return self.reasons[job]

    def decide(self, job: Job) -> list[str]:
        """Why `job` must run (empty: it is up to date). Its deps must be decided already."""
        reasons = self._why(job)
        self.reasons[job] = reasons
        return reasons

    def _why(self, job: Job) -> list[str]:
        if job.rule is None:
            return []
        if self.forced:
            return ["forced (-B)"]
        if job.is_task:
            return ["it is a task (tasks run every time they are asked for)"] if job.rule.action else []
        if job.pending:
            return ["its inputs are known only after a split rule has run"]
        reasons = self._from_deps(job)
        reasons += self._interrupted(job) or self._from_files(job) or self._from_state(job)
        return reasons

    def _interrupted(self, job: Job) -> list[str]:
        """Marked incomplete when it started and never cleared (by its key, or an output of it)."""
        if not self._incomplete:  # the usual case: the last run finished
            return []
        if self.key(job) in self._incomplete or any(o in self._incomplete for o in job.outputs):
            return ["it was interrupted before it finished"]
        return []

    def _from_deps(self, job: Job) -> list[str]:
        for dep in job.deps:
            if self.reasons.get(dep):
                made = dep.outputs[0] if dep.outputs else dep.name
                return [f"it needs '{made}', which is made first (rule '{dep.name}')"]
        return []

    def _from_files(self, job: Job) -> list[str]:
        if job.is_split and not job.outputs:
            return ["no file matches its output glob yet"]
        oldest, oldest_output = None, ""
        for output in job.outputs:
            mtime = self.fs.mtime(output)
            if mtime is None:
                return [f"output '{output}' is missing"]
            if oldest is None or mtime < oldest:
                oldest, oldest_output = mtime, output
        for path in job.inputs:
            mtime = self.fs.mtime(path)
            if mtime is not None and oldest is not None and mtime > oldest:
                return [f"input '{path}' is newer than output '{oldest_output}'"]
        return []

    def _from_state(self, job: Job) -> list[str]:
        if self.state is None:
            return []
        old = self.state.signature(self.key(job))
        if old is None:
            return []
        reasons = _changes(old, self.signature(job))
        changed = self._input_changed_since(job, old.get("newest_input"))
        return reasons + ([changed] if changed else [])

    def _input_changed_since(self, job: Job, newest_then: int | None) -> str | None:
        """An input newer than when the job last started: it changed while the job ran."""
        if not newest_then:
            return None
        for path in job.inputs:
            mtime = self.fs.mtime(path)
            if mtime is not None and mtime > newest_then:
                return f"input '{path}' changed after the job last started"
        return None


def _changes(old: dict, new: dict) -> list[str]:
    reasons = []
    if old.get("action") != new["action"]:
        reasons.append("its action changed")
    old_vars = old.get("variables", {})
    for name, value in new["variables"].items():
        if name in old_vars and old_vars[name] != value:
            reasons.append(f"variable '{name}' changed")
    if old.get("inputs") != new["inputs"]:
        reasons.append("its list of inputs changed")
    return reasons

