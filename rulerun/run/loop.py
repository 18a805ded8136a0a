"""The run loop: start every job whose inputs are made, within -j and the limits; wait for one to
end; record it; repeat. The graph may grow while it runs (split rules).

    decide which jobs must run (dependency order) -> queue those whose deps are complete
    loop:  take ready jobs while capacity allows -> one transaction: record the results of the
           last turn and mark the new jobs incomplete -> start them -> wait for results
           -> complete each job: its dependents' counts drop; a dependent at zero is expanded
              (if it waited on a split), then queued, or completed at once if up to date

Each job event costs O(its dependents + number of limit queues): no rescans of the graph.
The scheduler never asks what kind of executor it drives.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from rulerun.plan.decide import Dirty
from rulerun.run.executor import Executor, JobResult, JobSpec
from rulerun.plan.graph import Job, JobGraph
from rulerun.lang.model import Pipefile
from rulerun.plan.resolve import Resolver
from rulerun.store.state import STATE_DIR, State
from rulerun.plan.work import Work, job_key

QUARANTINE = os.path.join(STATE_DIR, "failed")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM reached the run loop."""


@dataclass
class Failure:
    job: Job
    spec: JobSpec
    result: JobResult
    quarantined: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    ran: int = 0
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failures else 0)


class Limits:
    """-j and the per-rule and named limits: a job starts only when every one it counts
    against has room."""

    def __init__(self, jobs: int, pipefile: Pipefile):
        self.capacity = {"": max(1, jobs)}
        self.capacity.update({name: limit.size for name, limit in pipefile.limits.items()})
        self.used: dict[str, int] = {}

    def keys(self, job: Job) -> tuple[str, ...]:
        limit = job.rule.limit
        if limit is None:
            return ("",)
        if isinstance(limit, int):
            self.capacity.setdefault(f"rule:{job.rule.index}", limit)
            return ("", f"rule:{job.rule.index}")
        return ("", limit)

    def has_room(self, keys: tuple[str, ...]) -> bool:
        return all(self.used.get(k, 0) < self.capacity[k] for k in keys)

    def take(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self.used[key] = self.used.get(key, 0) + 1

    def give(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self.used[key] -= 1

    @property
    def full(self) -> bool:
        return self.used.get("", 0) >= self.capacity[""]


class Scheduler:
    def __init__(self, graph: JobGraph, executor: Executor, limits: Limits, dirty: Dirty, work: Work,
                 state: State, reporter, resolver: Resolver, keep_going: bool = False):
        self.graph = graph
        self.executor = executor
        self.limits = limits
        self.dirty = dirty
        self.work = work
        self.state = state
        self.reporter = reporter
        self.resolver = resolver
        self.keep_going = keep_going
        self.outcome = Outcome()
        # results arrive from executor threads; SimpleQueue is a C queue, cheaper per job than Queue
        self._events: queue.SimpleQueue[JobResult] = queue.SimpleQueue()
        self._remaining: dict[Job, int] = {}
        self._dependents: dict[Job, list[Job]] = {}
        self._complete: set[Job] = set()
        self._ready: dict[tuple[str, ...], deque[Job]] = {}
        self._running: dict[int, tuple[Job, JobSpec, float]] = {}
        self._stopping = False
        self._unrecorded: list[tuple[Job, bool]] = []  # ended (and succeeded?) since the last commit
        self._newest_input: dict[int, int] = {}
        self._made_dirs: set[str] = set()  # output directories known to exist: one mkdir each a run

    # ------------------------------------------------------------------ the loop

    def run(self) -> Outcome:
        with _DeferredSignals() as signals:  # also while stopping: a second Ctrl-C must not orphan jobs
            try:
                self._plan(self.graph.jobs)
                self.reporter.run_started(self._count_to_run(self.graph.jobs))
                while self._running or (self._any_ready() and not self._stopping):
                    signals.check()
                    self._start(self._take_ready())
                    if not self._running:
                        break
                    self._finish(self._wait(signals))
                self._commit([])
                signals.check()
            except (KeyboardInterrupt, Interrupted):
                self._interrupt()
            except BaseException:
                self._stopping = True
                self.executor.abort()  # e.g. the cluster can't be reached: leave no job behind
                with contextlib.suppress(Exception):  # the first error is the one to show
                    self._commit([])  # what ended before it stays done (e.g. a split's expansion failed)
                raise
        return self.outcome

    def _wait(self, signals: "_DeferredSignals") -> list[JobResult]:
        """The results that have arrived, at least one; [] when a signal asks the run to stop."""
        while True:
            try:
                results = [self._events.get(timeout=0.1)]
                break
            except queue.Empty:
                if signals.received:
                    return []
        while True:
            try:
                results.append(self._events.get_nowait())
            except queue.Empty:
                return results

    def _interrupt(self) -> None:
        self._stopping = True
        self.outcome.interrupted = True
        self.reporter.interrupted(len(self._running))
        self.executor.abort()
        results = []
        while self._running and len(results) < len(self._running):
            try:
                results.append(self._events.get(timeout=10))
            except queue.Empty:
                break
        for result in results:
            result.interrupted = True
        self._finish(results)
        self._commit([])

    # ------------------------------------------------------------------ planning

    def _plan(self, jobs: list[Job]) -> None:
        """Decide which of `jobs` (deps first) must run, count their unfinished deps, and
        queue or complete those that wait for nothing."""
        self._add(jobs)
        self._advance([job for job in jobs if self._remaining[job] == 0])

    def _add(self, jobs: list[Job]) -> None:
        """Take `jobs` (deps first) into the run: decide each, count its unfinished deps, and
        register it as a dependent of each dep."""
        for job in jobs:
            self._dependents.setdefault(job, [])
        for job in jobs:
            self.dirty.decide(job)
            self._remaining[job] = sum(1 for dep in job.deps if dep not in self._complete)
            for dep in job.deps:
                self._dependents.setdefault(dep, []).append(job)

    def _count_to_run(self, jobs: list[Job]) -> int:
        return sum(1 for job in jobs if self.dirty.must_run(job) and _has_action(job))

    def _advance(self, jobs: list[Job]) -> None:
        """Each job in `jobs` waits for nothing more: expand it, queue it, or complete it now."""
        work = deque(jobs)
        while work:
            job = work.popleft()
            if job in self._complete or self._remaining.get(job, 0) > 0:
                continue
            if job.pending:
                work.extend(self._expand(job))
                continue
            if self.dirty.must_run(job) and _has_action(job):
                self._queue(job)
            else:
                work.extend(self._completed(job))

    def _expand(self, job: Job) -> list[Job]:
        counted_before = self.dirty.must_run(job) and _has_action(job)
        new = [j for j in self.resolver.expand(job) if j not in self._remaining]
        self._add(new)
        for dep in job.deps:
            if job not in self._dependents.setdefault(dep, []):
                self._dependents[dep].append(job)
        self._remaining[job] = sum(1 for dep in job.deps if dep not in self._complete)
        self.dirty.decide(job)
        counted_now = self.dirty.must_run(job) and _has_action(job)
        self.reporter.total_grew(self._count_to_run(new) + counted_now - counted_before)
        return [j for j in new if self._remaining[j] == 0] + ([job] if self._remaining[job] == 0 else [])

    def _queue(self, job: Job) -> None:
        self._ready.setdefault(self.limits.keys(job), deque()).append(job)

    def _completed(self, job: Job) -> list[Job]:
        """Mark `job` complete; return the dependents that now wait for nothing."""
        self._complete.add(job)
        freed = []
        for dependent in self._dependents.get(job, ()):
            self._remaining[dependent] -= 1
            if self._remaining[dependent] == 0:
                freed.append(dependent)
        return freed

    # ------------------------------------------------------------------ starting

    def _any_ready(self) -> bool:
        return any(self._ready.values())

    def _take_ready(self) -> list[Job]:
        """The queued jobs that fit within the limits now (their room is taken)."""
        batch: list[Job] = []
        for keys, waiting in self._ready.items():
            while waiting and not self._stopping and self.limits.has_room(keys):
                self.limits.take(keys)
                batch.append(waiting.popleft())
            if self.limits.full:
                break
        return batch

    def _start(self, batch: list[Job]) -> None:
        specs = [(job, self.work.spec(job)) for job in batch]
        self._commit(batch)
        processes = []
        for job, spec in specs:
            self._newest_input[job.id] = _newest_mtime(job.inputs)
            self._running[job.id] = (job, spec, time.monotonic())
            self.reporter.job_started(job, spec, self.dirty.reasons.get(job, []))
            try:
                self._prepare_outputs(job)
                process = self.executor.start(spec, self._events.put)
                if process is not None:
                    processes.append((job_key(job), process))
            except OSError as exc:  # e.g. its output directory is on a read-only or full disk
                what = f"{exc.strerror or exc}" + (f": '{exc.filename}'" if exc.filename else "")
                self._events.put(JobResult(spec.key, False, f"it could not be started: {what}"))
        if processes:  # known only now: a second, small transaction (see State.record)
            self.state.record(running=processes)

    def _commit(self, starting: list[Job]) -> None:
        """One transaction a turn: the jobs that ended since the last one (a success's signature,
        a failure forgotten) and the incomplete marks of `starting`, before any of them starts.
        A dependent of a job starts only after the job's success is recorded here."""
        ended, self._unrecorded = self._unrecorded, []
        if ended or starting:
            self.state.record(succeeded=[(job_key(j), j.outputs, self._signature(j)) for j, ok in ended if ok],
                              failed=[(job_key(j), j.outputs) for j, ok in ended if not ok],
                              started=[(job_key(j), j.outputs) for j in starting])

    def _prepare_outputs(self, job: Job) -> None:
        """Output directories exist before a job starts; a split rule's old outputs are removed
        so that only what this run makes counts as its outputs."""
        if job.is_split:
            for old in job.outputs:
                _remove(old)
        for output in job.outputs:
            directory = os.path.dirname(output)
            if directory and directory not in self._made_dirs:
                os.makedirs(directory, exist_ok=True)
                self._made_dirs.add(directory)

    # ------------------------------------------------------------------ finishing

    def _finish(self, results: list[JobResult]) -> None:
        """Take in ended jobs: a success completes its job, a failure's outputs are quarantined.
        Both are written to the state by the next _commit."""
        freed: list[Job] = []
        for result in results:
            job, spec, started = self._running.pop(result.key)
            self.limits.give(self.limits.keys(job))
            if result.ok and not result.interrupted:
                result = self._check_outputs(job, result)
            ok = result.ok and not result.interrupted
            self._unrecorded.append((job, ok))
            if ok:
                self.outcome.ran += 1
                self.reporter.job_finished(job, spec, result, time.monotonic() - started)
                freed.extend(self._completed(job))
            else:
                self._failed(job, spec, result, _quarantine(job.outputs))
        self._advance(freed)

    def _check_outputs(self, job: Job, result: JobResult) -> JobResult:
        for output in job.outputs:
            self.resolver.fs.forget(output)
        if job.is_split:
            self.resolver.split_finished(job)
            if not job.outputs:
                return JobResult(result.key, False, "split rule made no file matching its output glob "
                                 + " ".join(o.text for o in job.rule.outputs))
            return result
        missing = [o for o in job.outputs if not os.path.lexists(o)]
        if missing:
            return JobResult(result.key, False, f"it succeeded but did not create its declared output "
                             f"'{missing[0]}'" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return result

    def _signature(self, job: Job) -> dict:
        """The job's signature, with its inputs' newest time as it was when the job started: an
        input changed while the job ran is then seen as changed by the next run."""
        signature = self.work.signature(job)
        signature["newest_input"] = self._newest_input.pop(job.id, 0)
        return signature

    def _failed(self, job: Job, spec: JobSpec, result: JobResult, quarantined: list[str]) -> None:
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
            for dependent in self._dependents.get(work.pop(), ()):
                if dependent not in seen:
                    seen.add(dependent)
                    skipped.append(dependent)
                    work.append(dependent)
        return [j for j in skipped if _has_action(j)]


class _DeferredSignals:
    """SIGINT and SIGTERM during the run loop only set a flag, acted on by `check()` between two
    steps of the loop. Raised at any bytecode (Python's default), KeyboardInterrupt could land
    between taking a result off the queue and recording it, or between starting a process and
    registering it: that job would then never be stopped or waited for, and the run would hang
    waiting for its result. In a thread other than the main one (no signals there) this does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: dict[int, object] = {}

    def __enter__(self) -> "_DeferredSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
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


def _newest_mtime(paths: list[str]) -> int:
    newest = 0
    for path in paths:
        try:
            newest = max(newest, os.stat(path).st_mtime_ns)
        except OSError:
            pass
    return newest


def _has_action(job: Job) -> bool:
    return job.rule is not None and job.rule.action is not None


def _quarantine(outputs: list[str]) -> list[str]:
    """Move what a failed job left behind to .rulerun/failed/, so nothing half-made looks finished."""
    moved = []
    for output in outputs:
        if not os.path.lexists(output):
            continue
        target = os.path.join(QUARANTINE, output.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _remove(target)
        try:
            os.replace(output, target)
            moved.append(target)
        except OSError:
            _remove(output)
    return moved


def _remove(path: str) -> None:
    import shutil

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
