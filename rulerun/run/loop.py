"""The run loop: start every job whose inputs are made, within -j and the limits; wait for one to
end; record it; repeat. The graph may grow while it runs (split rules).

    queue the jobs the plan says must run and whose deps are complete
    loop:  take the ready jobs that fit the limits -> the journal records what must be written
           before they start (their incomplete marks, the successes they need: run/journal.py)
           -> start them -> wait for results (and handle the shell jobs' ends, run/poller.py)
           -> complete each job: its dependents' counts drop; a dependent at zero is grown
              (if it waited on a split), then queued, or completed at once if up to date

Each job event costs O(its dependents + number of limit queues): no rescans of the graph.
The loop never asks what kind of executor it drives, and reaches the project's files only
through the plan's view and its Disk (so a fake disk and a fake executor test it whole).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from rulerun.lang.patterns import split_glob
from rulerun.plan.resolve import split_globs
from rulerun.plan.conflicts import refuse_conflicting_outputs
from rulerun.plan.graph import Job
from rulerun.plan.planner import Plan
from rulerun.plan.signature import job_key
from rulerun.run.executor import Executor, JobResult, JobSpec
from rulerun.run.journal import Journal
from rulerun.run.outputs import SetAside, quarantine
from rulerun.run.ready import ReadyQueue
from rulerun.run.spec import UnpicklableParam
from rulerun.store.state import State


COMPLETE = -1  # a job's count of unfinished deps once it is complete itself


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP reached the run loop."""


@dataclass
class Failure:
    job: Job
    spec: JobSpec
    result: JobResult
    quarantined: SetAside = field(default_factory=SetAside)


@dataclass
class Outcome:
    ran: int = 0
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    interrupted: bool = False
    grew: bool = False  # a split rule ran: the graph is not the one planned
    unmade: list[str] = field(default_factory=list)  # requested targets a failure kept from being made

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failures else 0)


class Inbox:
    """Where executors leave results, from any thread; the loop waits here. A SimpleQueue: a C
    queue, cheaper per job than Queue. With a `poller` (a local executor's), the loop waits on
    it instead: shell jobs' ends are handled by the loop's own thread as they come, and other
    threads' results wake it. A fake executor brings its own (see tests)."""

    def __init__(self, poller=None) -> None:
        self._queue: queue.SimpleQueue[JobResult] = queue.SimpleQueue()
        self._poller = poller
        self._waiter: int | None = None  # the thread waiting, whose own results need no wake

    def put(self, result: JobResult) -> None:
        self._queue.put(result)
        if self._poller is not None and threading.get_ident() != self._waiter:
            self._poller.wake()

    def wait(self, stop_requested, timeout: float = 0.1) -> list[JobResult]:
        """The results that have arrived, at least one; [] once `stop_requested()` (checked
        every `timeout` seconds while waiting, and after each event with no result)."""
        while True:
            try:
                results = [self._queue.get_nowait() if self._poller else self._queue.get(timeout=timeout)]
                break
            except queue.Empty:
                if self._poller is not None:
                    self._waiter = threading.get_ident()
                    self._poller.poll(timeout)
                    if not self._queue.empty():
                        continue
                if stop_requested():
                    return []
        while True:
            try:
                results.append(self._queue.get_nowait())
            except queue.Empty:
                return results


def _split_directories(job: Job) -> set[str]:
    """The directories a split job's output globs look in: made before it runs, as every job's
    output directories are (its outputs are not known before it ran)."""
    if not job.is_split:
        return set()
    return {head for head in (split_glob(glob)[0] for glob in split_globs(job)) if head}


class Scheduler:
    def __init__(self, plan: Plan, specs, state: State, executor: Executor, ready: ReadyQueue,
                 reporter, keep_going: bool = False, keep_temp: bool = False):
        self.plan = plan
        self.decisions = plan.decisions
        self.disk = plan.view.disk
        self.specs = specs
        self.state = state
        self.executor = executor
        self.ready = ready
        self.reporter = reporter
        self.keep_going = keep_going
        self.outcome = Outcome()
        self.inbox = getattr(executor, "inbox", None) or Inbox(getattr(executor, "poller", None))
        self._remaining: dict[Job, int] = {}  # unfinished deps; COMPLETE once the job is
        self._dependents = _Dependents()
        self._running: dict[int, tuple[Job, JobSpec, float]] = {}
        self._stopping = False
        self._newest_input: dict[int, int] = {}
        self.journal = Journal(state, self._signature, self.decisions.incomplete)
        self._made_dirs: set[str] = set()  # output directories known to exist: one mkdir each a run
        self.keep_temp = keep_temp
        self._temp = None  # TempOutputs, once the decisions are known (run)

    # ------------------------------------------------------------------ the loop

    def run(self) -> Outcome:
        with _DeferredSignals() as signals:  # also while stopping: a second Ctrl-C must not orphan jobs
            try:
                jobs = self.plan.graph.jobs
                if not self.keep_temp:
                    from rulerun.run.temp import TempOutputs

                    requested = {path for job in self.plan.graph.targets for path in job.outputs}
                    self._temp = TempOutputs(jobs, self.decisions.runs, requested)
                self._add(jobs)
                self.reporter.run_started(sum(1 for job in jobs if self.decisions.runs(job)))
                self._advance([job for job in jobs if self._remaining[job] == 0])
                while self._running or (self.ready and not self._stopping):
                    signals.check()
                    self._start(self.ready.take() if not self._stopping else [])
                    if not self._running:
                        break
                    self._finish(self._wait(signals))
                self.journal.close()
                signals.check()
            except (KeyboardInterrupt, Interrupted):
                self._interrupt()
            except BaseException:
                self._stopping = True
                self.executor.abort()  # e.g. the cluster can't be reached: leave no job behind
                with contextlib.suppress(Exception):  # the first error is the one to show
                    self._finish(self._aborted())  # their partial outputs are set aside, as for Ctrl-C
                with contextlib.suppress(Exception):
                    self.journal.close()  # what ended before it stays done (e.g. a split's expansion failed)
                raise
        return self.outcome

    def _interrupt(self) -> None:
        self._stopping = True
        self.outcome.interrupted = True
        self.reporter.interrupted(len(self._running))
        self.executor.abort()
        self._finish(self._aborted())
        self.journal.close()

    def _aborted(self) -> list[JobResult]:
        """After executor.abort(): the results of the jobs that were running, each marked
        interrupted (waiting up to 10 s for them)."""
        results: list[JobResult] = []
        while self._running and len(results) < len(self._running):
            got = self.inbox.wait(lambda: True, timeout=10)
            if not got:
                break
            results.extend(got)
        for result in results:
            result.interrupted = True
        return results

    # ------------------------------------------------------------------ planning

    def _add(self, jobs: list[Job]) -> None:
        """Take `jobs` (deps first) into the run: count each one's unfinished deps, and register
        it as a dependent of each dep."""
        for job in jobs:
            self._remaining[job] = self._unfinished(job)
            for dep in job.deps:
                self._dependents.add(dep, job)

    def _advance(self, jobs: list[Job]) -> None:
        """Each job in `jobs` waits for nothing more: grow it, queue it, or complete it now."""
        work = deque(jobs)
        while work:
            job = work.popleft()
            if self._remaining.get(job, 0) != 0:  # waiting, or complete
                continue
            if job.pending:
                work.extend(self._grow(job))
            elif self.decisions.runs(job):
                per_job = getattr(job.rule, "threads_expression", None) is not None
                self.ready.add(job, job.rule, self.plan.signatures.values(job).threads if per_job else None)
            else:
                work.extend(self._completed(job))

    def _grow(self, job: Job) -> list[Job]:
        """Every split `job` waited on has run: take the jobs its inputs now need into the run."""
        counted_before = self.decisions.runs(job)
        self.outcome.grew = True
        new = [j for j in self.plan.grow(job) if j not in self._remaining]
        refuse_conflicting_outputs([*new, *job.deps], self.plan.graph.owners)  # deps: the splits it waited on
        self._add(new)
        for dep in job.deps:
            if job not in self._dependents.of(dep):
                self._dependents.add(dep, job)
        self._remaining[job] = self._unfinished(job)
        counted_now = self.decisions.runs(job)
        self.reporter.total_grew(sum(1 for j in new if self.decisions.runs(j)) + counted_now - counted_before)
        return [j for j in new if self._remaining[j] == 0] + ([job] if self._remaining[job] == 0 else [])

    def _unfinished(self, job: Job) -> int:
        remaining = self._remaining
        return sum(1 for dep in job.deps if remaining.get(dep) != COMPLETE)

    def _completed(self, job: Job) -> list[Job]:
        """Mark `job` complete; return the dependents that now wait for nothing."""
        self._remaining[job] = COMPLETE
        freed = []
        for dependent in self._dependents.of(job):
            self._remaining[dependent] -= 1
            if self._remaining[dependent] == 0:
                freed.append(dependent)
        return freed

    # ------------------------------------------------------------------ starting

    def _start(self, batch: list[Job]) -> None:
        specs = [(job, *self._spec(job)) for job in batch]
        self.journal.before_start(batch, self.ready.upcoming)
        processes = []
        for job, spec, unrenderable in specs:
            self._newest_input[job.id] = self._newest_mtime(job.inputs)
            self._running[job.id] = (job, spec, time.monotonic())
            self.reporter.job_started(job, spec, self.decisions.reasons(job))
            try:
                if unrenderable:
                    self.inbox.put(JobResult(spec.key, False, unrenderable))
                    continue
                self._prepare_outputs(job, spec)
                process = self.executor.start(spec, self.inbox.put)
                if process is not None:
                    processes.append((job_key(job), process))
            except OSError as exc:  # e.g. its output directory is on a read-only or full disk
                what = f"{exc.strerror or exc}" + (f": '{exc.filename}'" if exc.filename else "")
                self.inbox.put(JobResult(spec.key, False, f"it could not be started: {what}"))
        self.journal.processes(processes)  # known only now: see _wait

    def _wait(self, signals) -> list[JobResult]:
        """The next results. What the journal holds uncommitted (jobs that ended, processes
        started) is committed once it is RECORD_DELAY old, if no turn did it before: a short
        job costs no transaction of its own, and a long one is recorded while it runs."""
        due = self.journal.due()
        if due is not None:
            results = self.inbox.wait(lambda: True, timeout=due) if due > 0 else []
            if results:
                return results
            self.journal.commit()
        return self.inbox.wait(lambda: signals.received is not None)

    def _spec(self, job: Job) -> tuple[JobSpec, str | None]:
        """The job's spec; or, when its command can't be made (`{input[1]}` in a job with one
        input), a spec showing the action as written and why it can't run: that job fails, the
        others go on."""
        try:
            return self.specs(job), None
        except UnpicklableParam as exc:
            return self.specs(job, command=job.rule.action.source), str(exc)
        except ValueError as exc:
            return self.specs(job, command=job.rule.action.script), f"its command can't be made: {exc}"

    def _prepare_outputs(self, job: Job, spec: JobSpec) -> None:
        """Output directories (and a `log:` file's) exist before a job starts; a split rule's old
        outputs are set aside so that only what this run makes counts as its outputs."""
        if job.is_split:
            quarantine(job.outputs)  # moved, not deleted: its glob may match files it did not make
        directories = {os.path.dirname(output) for output in job.outputs} | _split_directories(job)
        if spec.keep_log:  # the rule's own log: the action may write to {log} itself
            directories.add(os.path.dirname(spec.log_path))
        for directory in directories:
            if directory and directory not in self._made_dirs:
                self.disk.makedirs(directory)
                self._made_dirs.add(directory)

    def _newest_mtime(self, paths: list[str]) -> int:
        """The newest time among a starting job's inputs; the view keeps each (the times this
        job's result is based on, which the no-op record keeps)."""
        times = [self.plan.view.observe(path) for path in paths]
        return max((t for t in times if t is not None), default=0)

    # ------------------------------------------------------------------ finishing

    def _finish(self, results: list[JobResult]) -> None:
        """Take in ended jobs: a success completes its job, a failure's outputs are quarantined.
        Both are written to the state by the journal (before any dependent starts)."""
        freed: list[Job] = []
        for result in results:
            job, spec, started = self._running.pop(result.key)
            self.ready.done(job)
            if result.ok and not result.interrupted:
                result = self._check_outputs(job, result)
            ok = result.ok and not result.interrupted
            self.journal.ended(job, ok)
            if ok:
                self.outcome.ran += 1
                self.reporter.job_finished(job, spec, result, time.monotonic() - started)
                freed.extend(self._completed(job))
                self._delete_temp(job)
            else:
                if job.is_split:  # what it made before it failed is no split's finished output
                    self.plan.split_failed(job)
                self._failed(job, spec, result, quarantine(job.outputs))
        self._advance(freed)

    def _delete_temp(self, job: Job) -> None:
        """Temporary outputs whose last reader in this run was `job` go (files only)."""
        if self._temp is None:
            return
        for path in self._temp.succeeded(job):
            if not self.disk.is_dir(path):
                with contextlib.suppress(OSError):  # a temporary file left behind harms nothing
                    self.disk.remove(path)
                    self.plan.view.made(path)

    def _check_outputs(self, job: Job, result: JobResult) -> JobResult:
        """A job that exited 0 succeeded if it made every declared output; the view learns the
        outputs' times (what the no-op record keeps)."""
        if job.is_split:
            self.plan.split_finished(job)
            if not job.outputs:
                return JobResult(result.key, False, "split rule made no file matching its output glob "
                                 + " ".join(split_globs(job)))
            return result
        view = self.plan.view
        missing = [o for o in job.outputs if view.made(o) is None and not self.disk.exists(o)]
        if missing:
            # the rest of the result stays: a cluster job's id, what it printed, its queue time
            who = f"cluster job {result.job_id}" if result.job_id else "it"
            return replace(result, ok=False, reason=f"{who} succeeded but did not create its declared output "
                           f"'{missing[0]}'" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return self._directories_made(job, result)

    def _directories_made(self, job: Job, result: JobResult) -> JobResult:
        """An output directory counts as made when its job succeeded, at the time it finished:
        its own time only says when an entry was last added or removed."""
        if not job.rule.directories:
            return result
        for pattern, path in zip(job.rule.outputs, job.outputs):
            if pattern.text not in job.rule.directories:
                continue
            if not self.disk.is_dir(path):
                return JobResult(result.key, False, f"its output '{path}/' is not a directory")
            self.disk.touch(path)
            self.plan.view.made(path)
        return result

    def _signature(self, job: Job) -> dict:
        """The job's signature, with its inputs' newest time as it was when the job started: an
        input changed while the job ran is then seen as changed by the next run."""
        signature = self.plan.signatures(job)
        signature["newest_input"] = self._newest_input.pop(job.id, 0)
        return signature

    def _failed(self, job: Job, spec: JobSpec, result: JobResult, quarantined: SetAside) -> None:
        failure = Failure(job, spec, result, quarantined)
        if result.interrupted:
            self.reporter.job_interrupted(failure)
            return
        self.outcome.failures.append(failure)
        self.reporter.job_failed(failure)
        if not self.keep_going:
            self._stopping = True
            return
        self.outcome.skipped.extend(self._skip_dependents(job))

    def _skip_dependents(self, job: Job) -> list[Job]:
        """Everything that needs `job`, transitively: it will not run in this run."""
        skipped, work, seen = [], [job], {job}
        while work:
            for dependent in self._dependents.of(work.pop()):
                if dependent not in seen:
                    seen.add(dependent)
                    skipped.append(dependent)
                    work.append(dependent)
        return [j for j in skipped if j.has_action]


class _Dependents:
    """The jobs that need each job. Most jobs of a large build have one (a chain's step): it is
    kept as itself, a list only from the second on (a list per job was 14 MB at 200,000 jobs)."""

    def __init__(self) -> None:
        self._of: dict[Job, Job | list[Job]] = {}

    def add(self, job: Job, dependent: Job) -> None:
        found = self._of.get(job)
        if found is None:
            self._of[job] = dependent
        elif isinstance(found, list):
            found.append(dependent)
        else:
            self._of[job] = [found, dependent]

    def of(self, job: Job) -> list[Job] | tuple[Job, ...]:
        found = self._of.get(job)
        if found is None:
            return ()
        return found if isinstance(found, list) else (found,)


class _DeferredSignals:
    """SIGINT, SIGTERM and SIGHUP (the terminal went away: a dropped ssh session, which does not
    reach the jobs, each in a session of its own) during the run loop only set a flag, acted on
    by `check()` between two steps of the loop. Raised at any bytecode (Python's default),
    KeyboardInterrupt could land between taking a result off the queue and recording it, or
    between starting a process and registering it: that job would then never be stopped or
    waited for, and the run would hang waiting for its result. A signal ignored when rulerun
    started stays ignored, as in make: `nohup rulerun` goes on after a hangup. In a thread
    other than the main one (no signals there) this does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: dict[int, object] = {}

    def __enter__(self) -> "_DeferredSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._saved[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self.received = signum

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(signal.Signals(self.received).name)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
