"""Which jobs must run, and why (PIPEFILE.md "When a job runs"): the one place it is decided.

A job runs when an output is missing, an input is newer than its oldest output, its action or a
value it uses changed since it last succeeded, its input list changed, an input changed while
it last ran, it was interrupted before it finished, it is forced, or something it needs runs
first. Each job is decided once per run, deps first, and the answer (the reasons, as sentences
for `-n` and `-v`) is kept: the scheduler, `-n`, `--graph`, the no-op record and the resolver's
question about split rules all read the same Decisions.
"""

from __future__ import annotations

from typing import Callable

from rulerun.plan.graph import Job, JobKind
from rulerun.plan.view import DiskView

FORCED = "forced (-B)"
TASK = "it is a task (tasks run every time they are asked for)"
AFTER_SPLIT = "its inputs are known only after a split rule has run"
INTERRUPTED = "it was interrupted before it finished"


# The reasons most jobs of a large build run for (an output missing, a dep that runs first, an
# input newer than an output) are kept as which of the job's files or deps, not as sentences:
# one shared tuple for every job with the same reasons, where 200,000 jobs' sentences and
# lists took about 40 MB. `reasons` writes the sentences when asked.
_MISSING, _NEEDS, _NEWER = "missing", "needs", "newer"
_shared: dict[tuple, tuple] = {}


def _kept(items: list) -> tuple:
    """`items` as the one tuple shared by every job with the same reasons."""
    found = tuple(items)
    return _shared.setdefault(found, found) if len(_shared) < 4096 else found


def _sentence(job: Job, item) -> str:
    if isinstance(item, str):
        return item
    kind, index = item[0], item[1]
    if kind is _MISSING:
        return f"output '{job.outputs[index]}' is missing"
    if kind is _NEEDS:
        dep = job.deps[index]
        return f"it needs '{dep.outputs[0] if dep.outputs else dep.name}', which is made first (rule '{dep.name}')"
    return f"input '{job.inputs[index]}' is newer than output '{job.outputs[item[2]]}'"


class Decisions:
    """The decision for each job of one run, made on first request and then kept.

    `signature(job)` gives what the job would be recorded with; `key(job)` its name in the
    state; `recorded(key)` the signature its last success left (or None); `incomplete` the
    outputs and keys marked as started and never finished."""

    def __init__(self, view: DiskView, recorded: Callable[[str], dict | None], incomplete: set[str],
                 signature: Callable[[Job], dict], key: Callable[[Job], str], forced: bool = False):
        self.view = view
        self.recorded = recorded
        self.incomplete = incomplete
        self.signature = signature
        self.key = key
        self.forced = forced
        self._reasons: dict[Job, tuple] = {}  # each a tuple of sentences and _sentence items
        self._absent_temp: dict[Job, set[str]] = {}  # temp outputs missing and not needed (yet)
        self.requested: set[str] = set()  # the targets' files: a temporary one asked for is made

    def reasons(self, job: Job) -> list[str]:
        """Why `job` must run (empty: it is up to date); its deps are decided first if need be."""
        return [_sentence(job, item) for item in self._decision(job)]

    def _decision(self, job: Job) -> tuple:
        decided = self._reasons
        found = decided.get(job)
        if found is not None:
            return found
        if all(dep in decided for dep in job.deps):  # asked deps first, as the run and -n do
            found = decided[job] = _kept(self._why(job))
            return found
        for each in self._undecided_below(job):
            decided[each] = _kept(self._why(each))
        return decided[job]

    def _undecided_below(self, job: Job) -> list[Job]:
        """`job` and the deps under it not decided yet, deps first (iterative: chains may be
        deep; a decided dep ends the walk, so deciding in dependency order costs O(edges))."""
        order: list[Job] = []
        seen = {job}
        stack: list[tuple[Job, int]] = [(job, 0)]
        while stack:
            node, index = stack.pop()
            if index < len(node.deps):
                stack.append((node, index + 1))
                dep = node.deps[index]
                if dep not in seen and dep not in self._reasons:
                    seen.add(dep)
                    stack.append((dep, 0))
            else:
                order.append(node)
        return order

    def runs(self, job: Job) -> bool:
        """Whether the run carries `job` out: it must run and has an action."""
        return job.has_action and self.must_run(job)

    def running(self, job: Job) -> list[str] | None:
        """Why the run carries `job` out; None when it does not (`runs` and `reasons` at once,
        deciding once: -n asks it of each of 200,000 jobs)."""
        return (self.reasons(job) or None) if job.has_action else None

    def decided(self, job: Job) -> bool:
        return job in self._reasons

    def again(self, job: Job) -> list[str]:
        """Decide `job` anew: its inputs became known (a split rule it waited on has run)."""
        self._reasons.pop(job, None)
        return self.reasons(job)

    def must_run(self, job: Job) -> bool:
        """Whether `job` must run (reasons, without their sentences)."""
        return bool(self._decision(job))

    # ------------------------------------------------------------------ the rules

    def _why(self, job: Job) -> list[str]:
        if job.kind is not JobKind.RULE:  # nothing to run: what it waits for decides
            return []
        if self.forced:
            return [FORCED]
        if job.is_task:
            return [TASK] if job.rule.action else []
        if job.pending:
            return [AFTER_SPLIT]
        reasons = self._from_deps(job)
        reasons += self._interrupted(job) or self._from_files(job) or self._from_state(job)
        if reasons and self._absent_temp:
            self._revive(job)
        return reasons

    def _revive(self, job: Job) -> None:
        """`job` runs: a deleted temporary output it reads is made again first, and so on up."""
        for dep in job.deps:
            gone = [path for path in job.inputs if path in self._absent_temp.get(dep, ())]
            if gone and not self._reasons.get(dep):
                self._reasons[dep] = (f"its temporary output '{gone[0]}' is needed again (by rule '{job.name}')",)
                self._absent_temp.pop(dep)
                self._revive(dep)

    def _temp_may_be_absent(self, job: Job, output: str) -> bool:
        """A temporary output deleted after its readers ran is fine while what it was made from
        is unchanged: the job succeeded before and no input is newer than when it last started."""
        if output not in job.temp_outputs or output in self.requested:
            return False
        old = self.recorded(self.key(job))
        newest_then = old.get("newest_input") if old else None
        if not newest_then:
            return False
        times = [self.view.mtime(path) for path in job.inputs]
        if any(t is None or t > newest_then for t in times):
            return False
        self._absent_temp.setdefault(job, set()).add(output)
        return True

    def _interrupted(self, job: Job) -> list[str]:
        """Marked incomplete when it started and never cleared (by its key, or an output of it)."""
        if not self.incomplete:  # the usual case: the last run finished
            return []
        if self.key(job) in self.incomplete or any(o in self.incomplete for o in job.outputs):
            return [INTERRUPTED]
        return []

    def _from_deps(self, job: Job) -> list:
        for index, dep in enumerate(job.deps):
            if self._reasons.get(dep):
                return [(_NEEDS, index)]
        return []

    def _from_files(self, job: Job) -> list[str]:
        if job.is_split and not job.outputs:
            return ["no file matches its output glob yet"]
        oldest, oldest_output = None, 0
        for index, output in enumerate(job.outputs):
            mtime = self.view.mtime(output)
            if mtime is None and job.rule.temp and self._temp_may_be_absent(job, output):
                continue
            if mtime is None:
                return [(_MISSING, index)]
            if oldest is None or mtime < oldest:
                oldest, oldest_output = mtime, index
        for index, path in enumerate(job.inputs):
            mtime = self.view.mtime(path)
            if mtime is not None and oldest is not None and mtime > oldest:
                return [(_NEWER, index, oldest_output)]
        return []

    def _from_state(self, job: Job) -> list[str]:
        old = self.recorded(self.key(job))
        if old is None:
            return []
        reasons = changes(old, self.signature(job))
        changed = self._input_changed_since(job, old.get("newest_input"))
        return reasons + ([changed] if changed else [])

    def _input_changed_since(self, job: Job, newest_then: int | None) -> str | None:
        """An input newer than when the job last started: it changed while the job ran."""
        if not newest_then:
            return None
        for path in job.inputs:
            mtime = self.view.mtime(path)
            if mtime is not None and mtime > newest_then:
                return f"input '{path}' changed after the job last started"
        return None


def changes(old: dict, new: dict) -> list[str]:
    """What differs between a job's recorded signature and its signature now, as reasons."""
    reasons = []
    if old.get("action") != new["action"]:
        reasons.append("its action changed")
    old_vars = old.get("variables", {})
    for name, value in new["variables"].items():
        if name in old_vars and old_vars[name] != value:
            reasons.append(f"variable '{name}' changed")
    old_params = old.get("params", {})
    for name, value in new.get("params", {}).items():
        if old_params.get(name) != value:
            reasons.append(f"param '{name}' changed")
    if old.get("inputs") != new["inputs"]:
        reasons.append("its list of inputs changed")
    return reasons
