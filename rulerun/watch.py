"""Watch mode: build, then rebuild whenever something the targets depend on changes.

Owns what is watched (`WatchSet`: the graph's sources, the directories its globs cover, the
Pipefile; never the outputs rulerun writes, never .rulerun/), the watchdog observer that
reports file events (`Changes`), the debounce that turns a burst of events into one rebuild,
and the loop (`WatchLoop`) that reloads the Pipefile and rebuilds with a fresh Project each
time: the runner's up-to-date logic decides which jobs run.

Exit status: 130 when Ctrl-C (or SIGTERM) interrupts a build, 0 when it stops an idle watch,
which is the normal way to end one, whatever the last build's result was. Errors found while
watching (a broken Pipefile, a missing source, a failed job) are reported and watching goes on;
an error in the Pipefile keeps the last good version's watch set until it is fixed.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from rulerun.options import Options
from rulerun.errors import RulerunError, UsageError
from rulerun.plan.view import normalise
from rulerun.lang.patterns import glob_regex, split_glob
from rulerun.store.layout import STATE_DIR

DEBOUNCE = 0.08     # seconds of quiet that end a burst (an editor's save, a git checkout)
BURST_LIMIT = 2.0   # a burst that never goes quiet is built after this long anyway
MAX_WATCHES = 24    # each watched directory costs an inotify instance (128 per user by default)
SHOWN_PATHS = 3     # changed paths named in a trigger line before "and N more"


def watch(options: Options, reporter) -> int:
    """Build the targets, then rebuild on every relevant change until Ctrl-C. Returns 130 when
    Ctrl-C interrupted a build, else 0. Raises UsageError when watchdog is not installed."""
    changes = Changes()  # before the first build: a missing watchdog is said at once
    sys.stdout.reconfigure(line_buffering=True)  # a reader of a pipe sees each line as it happens
    loop = WatchLoop(options, reporter, changes)
    try:
        return loop.run()
    except KeyboardInterrupt:
        return loop.stopped()
    finally:
        changes.close()


# ---------------------------------------------------------------------- what to watch


@dataclass
class WatchSet:
    """Paths as the graph writes them (normalised, relative to the working directory or
    absolute). `files` are watched exactly; a path matching one of `globs` counts unless it is
    in `outputs`. `directories` (absolute path -> recursive) and `missing` (wanted directories
    that don't exist yet) are worked out from the disk when the set is made."""

    files: frozenset[str]
    outputs: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    directories: dict[str, bool] = field(init=False)
    missing: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self._regexes = [glob_regex(glob) for glob in self.globs]
        self._state_dir = os.path.abspath(STATE_DIR)
        self.directories, self.missing = _directories(self.files, self.globs)

    @classmethod
    def of(cls, plan, pipefile_path: str, also_outputs: frozenset[str] = frozenset()) -> "WatchSet":
        """What `plan`'s graph reads that no rule makes, plus the Pipefile. Call it after the
        build too: a split rule's outputs and what depends on them are known only then."""
        from rulerun.plan.graph import topological

        jobs = topological(plan.graph.targets)  # from the targets: the graph grows as splits run
        made = {out for job in jobs for out in job.outputs}
        tasks = set(plan.resolver.index.tasks)
        sources = {path for job in jobs for path in job.inputs if path not in made and path not in tasks}
        globs = set(plan.resolver.globs_used()) | {glob for _, glob in plan.resolver.index.splits}
        globs |= {text for job in jobs for kind, text, _ in job.pending if kind == "glob"}
        from rulerun.plan.record import read_sources

        # config and included files are read as the Pipefile is: an edit of one reloads it
        others = {normalise(path) for path in read_sources(plan.resolver.pipefile)}
        files = frozenset(sources | others | {normalise(pipefile_path)})
        return cls(files, frozenset(made) | also_outputs, tuple(sorted(globs)))

    def with_globs(self, more: list[str]) -> "WatchSet":
        """This set, also watching `more` (what a resolution that failed half-way looked at)."""
        return WatchSet(self.files, self.outputs, tuple(sorted(set(self.globs) | set(more))))

    def remembering(self, previous: "WatchSet") -> "WatchSet":
        """This set, still watching `previous` files that are gone: a source deleted and brought
        back must trigger a rebuild even when the graph did without it meanwhile (an existing
        output with no way left to make it is a source)."""
        gone = {path for path in previous.files - self.files if not os.path.lexists(path)}
        return WatchSet(self.files | gone, self.outputs, self.globs) if gone else self

    def affects(self, path: str) -> bool:
        """Does an event on absolute `path` call for a rebuild?"""
        if _inside(path, self._state_dir):
            return False
        names = {path, os.path.relpath(path)}
        if names & self.outputs:
            return False
        if names & self.files or any(r.fullmatch(n) for r in self._regexes for n in names):
            return True
        # A wanted directory (or one on the way to it) appeared: look again at what it holds.
        return any(_inside(wanted, path) for wanted in self.missing)

    def describe(self) -> str:
        globs = f" and {_count(len(self.globs), 'glob')}" if self.globs else ""
        return f"{_count(len(self.files), 'file')}{globs} in {_count(len(self.directories), 'directory')}"


def _directories(files: frozenset[str], globs: tuple[str, ...]) -> tuple[dict[str, bool], list[str]]:
    """The directories to watch (absolute path -> recursive) and the wanted ones that are
    missing, for which their nearest existing ancestor is watched instead."""
    wanted: dict[str, bool] = {}
    missing: list[str] = []
    needs = [(os.path.dirname(path), False) for path in files]
    # A glob's fixed head is watched; recursively only when the glob spans directories.
    needs += [(head, "/" in rest) for head, rest in map(split_glob, globs)]
    for directory, recursive in needs:
        directory = os.path.abspath(directory or ".")
        existing = directory
        while not os.path.isdir(existing) and existing != os.path.dirname(existing):
            existing = os.path.dirname(existing)
        if existing != directory:
            missing.append(directory)
            recursive = False
        wanted[existing] = wanted.get(existing, False) or recursive
    return _coalesce(wanted, MAX_WATCHES), missing


def _coalesce(directories: dict[str, bool], limit: int) -> dict[str, bool]:
    """At most `limit` watches: while there are more, the deepest directories are replaced by a
    recursive watch of their parent. Directories under a recursive watch are dropped."""
    directories = _uncovered(directories)
    while len(directories) > limit:
        deepest = max(d.count(os.sep) for d in directories)
        merged: dict[str, bool] = {}
        for directory, recursive in directories.items():
            if directory.count(os.sep) == deepest and os.path.dirname(directory) != directory:
                directory, recursive = os.path.dirname(directory), True
            merged[directory] = merged.get(directory, False) or recursive
        directories = _uncovered(merged)
    return directories


def _uncovered(directories: dict[str, bool]) -> dict[str, bool]:
    recursive = [d for d, r in directories.items() if r]
    return {d: r for d, r in directories.items()
            if not any(d != top and _inside(d, top) for top in recursive)}


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------------- file events


class Changes:
    """File events from one watchdog observer on the directories asked for. `next` waits for a
    burst of events that matter and returns the paths they touched, in order."""

    def __init__(self):
        Observer, self._kinds = _import_watchdog()
        self._events: queue.SimpleQueue[tuple[bool, list[str]]] = queue.SimpleQueue()
        self._handler = _Handler(self._events)
        self._scheduled: dict[tuple[str, bool], object] = {}
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()

    def watch(self, directories: dict[str, bool]) -> None:
        """Watch exactly `directories` (absolute path -> recursive) from now on."""
        for key in set(self._scheduled) - set(directories.items()):
            self._unschedule(key)
        for key in set(directories.items()) - set(self._scheduled):
            path, recursive = key
            try:
                self._scheduled[key] = self._observer.schedule(self._handler, path, recursive=recursive,
                                                               event_filter=self._kinds)
            except OSError:
                pass  # it vanished since it was looked at; the next rebuild looks again

    def next(self, affects: Callable[[str], bool]) -> list[str]:
        """Block until paths for which `affects` is true changed, and DEBOUNCE passed without
        more of them; return those paths. Events that don't matter are dropped."""
        changed: dict[str, None] = {}
        first = deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if changed else 1.0
            try:
                dir_deleted, paths = self._events.get(timeout=timeout)
            except queue.Empty:
                if changed:
                    return list(changed)
                continue
            if dir_deleted:
                self._forget(paths[0])
            hits = [path for path in paths if affects(path)]
            if hits:
                now = time.monotonic()
                first = first or now
                changed.update(dict.fromkeys(hits))
                deadline = min(now + DEBOUNCE, first + BURST_LIMIT)

    def _forget(self, path: str) -> None:
        """A watched directory was deleted, and its watch with it: drop it, so that it is
        watched again if it comes back."""
        for key in [k for k in self._scheduled if k[0] == path]:
            self._unschedule(key)

    def _unschedule(self, key: tuple[str, bool]) -> None:
        try:
            self._observer.unschedule(self._scheduled.pop(key))
        except (KeyError, OSError):
            pass  # its emitter already stopped on its own (the directory went away)

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=2)


class _Handler:
    """Runs in the observer's threads: passes each event's paths on, nothing more."""

    def __init__(self, events: queue.SimpleQueue):
        self.events = events

    def dispatch(self, event) -> None:
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        self.events.put((event.is_directory and event.event_type == "deleted", paths))


def _import_watchdog():
    """watchdog's Observer and the event kinds that mean a change. Opening or reading a file is
    not one: the build reads every source, and must not trigger itself."""
    try:
        from watchdog import events
        from watchdog.observers import Observer
    except ImportError:
        raise UsageError("--watch needs the watchdog package, which is not installed",
                         hint="pip install 'rulerun[watch]'") from None
    kinds = [events.FileCreatedEvent, events.FileModifiedEvent, events.FileDeletedEvent,
             events.FileMovedEvent, events.FileClosedEvent, events.DirCreatedEvent,
             events.DirDeletedEvent, events.DirMovedEvent]
    return Observer, kinds


# ---------------------------------------------------------------------- the loop


class WatchLoop:
    """Build, wait for a change, rebuild; each build with a freshly loaded Project."""

    def __init__(self, options: Options, reporter, changes: Changes):
        self.options = options
        self.reporter = reporter
        self.changes = changes
        self.watched = WatchSet(frozenset({normalise(options.file)}))
        self.building = False

    def run(self) -> int:
        self._watch(self.watched)  # the Pipefile at least, should the first load fail
        status = self._build("built")
        self.options = self.options.but(force=False)  # -B forces the first build only
        self.reporter.note(f"watching {self.watched.describe()} for changes; Ctrl-C to stop")
        while status != 130:
            changed = self.changes.next(self.watched.affects)
            self.reporter.note(_what_changed(changed))
            status = self._build("rebuilt")
        return 130

    def stopped(self) -> int:
        """Ctrl-C: 130 if it interrupted a build, else 0."""
        if self.building:
            return 130
        self.reporter.note("watch: stopped")
        return 0

    def _build(self, verb: str) -> int:
        self.building = True
        try:
            return self._load_and_build(verb, time.monotonic())
        finally:
            self.building = False

    def _load_and_build(self, verb: str, started: float) -> int:
        from rulerun.app import load
        from rulerun.store.state import State

        try:
            loaded = load(self.options)
        except RulerunError as exc:
            return self._failed(exc, f"watching as the last good {self.options.file} said, until it is fixed")
        state = State()
        try:
            return self._plan_and_build(loaded, state, verb, started)
        finally:
            state.close()

    def _plan_and_build(self, loaded, state, verb: str, started: float) -> int:
        from rulerun.app import build
        from rulerun.plan.planner import make_plan

        for text in state.warnings:
            self.reporter.warning(text)
        try:
            plan = make_plan(loaded.pipefile, loaded.namespace, self.options.targets, state, self.options.force)
        except RulerunError as exc:
            self._watch(self.watched.with_globs(getattr(exc, "globs_used", [])))
            return self._failed(exc, "still watching")
        from rulerun.app import warn_uncountable

        warn_uncountable(plan, self.reporter)
        before = self._watch(WatchSet.of(plan, self.options.file))  # new directories are watched while it runs
        recorder = _Recorder(self._fresh_reporter())
        try:
            status = build(loaded, plan, self.options, recorder, state)
        except RulerunError as exc:  # e.g. the cluster can't be reached
            return self._failed(exc, "still watching")
        # Outputs of before and after: a split rule removes its old outputs, and that is no change.
        self._watch(WatchSet.of(plan, self.options.file, also_outputs=before.outputs))
        self._result(verb, recorder, time.monotonic() - started)
        return status

    def _watch(self, watched: WatchSet) -> WatchSet:
        self.watched = watched.remembering(self.watched)
        self.changes.watch(self.watched.directories)
        return self.watched

    def _fresh_reporter(self):
        from rulerun.ui import make_reporter

        return make_reporter(self.options.verbosity, touching=self.options.touch)  # its counters start at zero

    def _failed(self, exc: RulerunError, then: str) -> int:
        sys.stdout.flush()
        shown = exc.show() if hasattr(exc, "loc") else f"rulerun: {exc.show()}"
        sys.stderr.write(shown + "\n")
        sys.stderr.flush()
        first = str(exc) if hasattr(exc, "loc") else exc.message
        self.reporter.note(f"failed: {first}; {then}")
        return exc.exit_code

    def _result(self, verb: str, recorder: "_Recorder", elapsed: float) -> None:
        outcome = recorder.outcome
        if outcome is None or outcome.interrupted:
            return  # the reporter said it was interrupted
        if outcome.failures:
            failure, more = outcome.failures[0], len(outcome.failures) - 1
            others = f" (and {more} more failed)" if more else ""
            self.reporter.note(f"failed: {failure.spec.label}: {failure.result.reason or 'failed'}{others}; "
                               f"{_count(outcome.ran, 'job')} ran in {elapsed:.1f}s; still watching")
        else:
            recorder.note(f"{verb}: {_count(outcome.ran, 'job')} ran, ok in {elapsed:.1f}s")


class _Recorder:
    """A build's reporter that keeps the outcome. The watch loop's one-line result replaces the
    reporter's own success line; failures and interruptions are reported as usual."""

    def __init__(self, inner):
        self._inner = inner
        self.outcome = None

    def run_finished(self, outcome) -> None:
        self.outcome = outcome
        if outcome.failures or outcome.interrupted:
            self._inner.run_finished(outcome)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _count(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _what_changed(paths: list[str]) -> str:
    """`changed: a.txt`, `deleted: b.txt`, or both: a source that is gone is no edit."""
    gone = [p for p in paths if not os.path.lexists(p)]
    there = [p for p in paths if os.path.lexists(p)]
    said = [f"{verb}: {_shorten(group)}" for verb, group in (("changed", there), ("deleted", gone)) if group]
    return "; ".join(said)


def _shorten(paths: list[str]) -> str:
    """The changed paths as a person wrote them (relative where they can be), the first few."""
    shown = [os.path.relpath(p) if _inside(p, os.getcwd()) else p for p in paths]
    if len(shown) <= SHOWN_PATHS:
        return ", ".join(shown)
    return ", ".join(shown[:SHOWN_PATHS]) + f" and {len(shown) - SHOWN_PATHS} more"
