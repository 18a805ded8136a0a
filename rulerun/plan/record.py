"""The no-op answer: a run that left every job up to date keeps what it saw, so that the next
run asking the same thing can say "nothing to do" without loading the Pipefile, or, when only
some files changed, run the jobs they affect without resolving the Pipefile again.

A run's jobs and decisions follow from the Pipefile, the request (targets and NAME=VALUE), the
state database and what the resolver saw on disk, all of it through fs.FileSystem: the listing
of each directory and the time of each file it asked about. When all of that is unchanged the
run would decide the same, so the record `.rulerun/uptodate` keeps it after a build, with the
job graph beside it in `.rulerun/uptodate.graph`:

    remember(project, ...)    after a successful build, under the run lock: decide once more on
                              a fresh view of the disk; when nothing must run, write what that
                              view saw (directory and file times) and the graph
    look(options)             at the start of a run, before anything heavy is imported: the
                              record is for this request and the Pipefile reads the same; then
                              UP_TO_DATE when every recorded time is unchanged, a Basis naming
                              the changed files when only files changed (the directories list
                              the same, so the graph is the recorded one: affected.py cuts it
                              down to what those files affect), else None (decide in full)
    forget()                  a build is about to change things: the record no longer holds

Times are compared for equality, not order, so a file put back with an older time counts as
changed. A directory listed in the same clock tick as its last change could change again
without its time moving on: such a directory is listed again once the tick is over, and the
record is written only if it still reads the same.

Not recorded (the full run decides every time): builds whose jobs use a variable computed by
Python code (a call, or a top-level `python:` block that could rebind it), since its value
can change with nothing on disk changing; graphs with tasks that have actions (they run every
time); split rules (they change the graph when they run); -n, -B, --watch, --graph and --list.
"""

from __future__ import annotations

import marshal
import os
import time

from rulerun import __version__
from rulerun.store.layout import STATE_DIR

RECORD = os.path.join(STATE_DIR, "uptodate")
GRAPH = os.path.join(STATE_DIR, "uptodate.graph")
NOTHING_TO_DO = "rulerun: nothing to do, everything is up to date"
FORMAT = 2
# A directory changed less than this before it was listed may change again within the same
# file-time tick (a few ms on Linux filesystems); one at whole seconds may have coarse times.
RACY_NS = 50_000_000
COARSE_RACY_NS = 2_000_000_000


def request(options) -> tuple | None:
    """What the record must have been written for, or None when this run can't be answered
    from a record at all."""
    if options.dry_run or options.force or options.watch or options.graph or options.list_rules:
        return None
    return (FORMAT, __version__, os.path.abspath(options.file), tuple(options.targets),
            tuple(sorted(options.overrides.items())))


class Basis:
    """A run that starts from the record: only the files at `changed` (indices into the
    record's files) have other times than recorded."""

    def __init__(self, record: dict, changed: list[int], identity: tuple = ()):
        self.record = record
        self.changed = changed
        self.identity = identity  # of the record's file when it was read
        self.where: dict[str, int] = {}  # the record's index of each file of the graph's jobs

    def current(self) -> bool:
        """Whether the record read is still the one on disk (under the run lock: no other run
        has built, and rewritten or removed it, since it was read)."""
        try:
            return _identity(os.stat(RECORD)) == self.identity
        except OSError:
            return False

    def graph(self, pipefile):
        """The recorded graph cut down to the jobs the changed files affect, or None."""
        from rulerun.plan.recorded_graph import affected_graph

        graph_id = self.record.get("graph")
        found = None
        if graph_id is not None:
            found = affected_graph(GRAPH, graph_id, pipefile, self.changed, self.record["files"][0])
        if found is None:
            return None
        graph, self.where = found
        return graph


UP_TO_DATE = "up to date"


def look(options) -> str | Basis | None:
    """UP_TO_DATE when the record shows that a run of `options` would find every job up to
    date; a Basis when only some recorded files changed; None when the run must decide in full."""
    wanted = request(options)
    if wanted is None:
        return None
    try:
        with open(RECORD, "rb") as handle:
            record = marshal.loads(handle.read())  # far faster than marshal.load(handle)
            identity = _identity(os.fstat(handle.fileno()))
        if record["request"] != wanted:
            return None
        with open(options.file, "rb") as handle:
            if handle.read() != record["pipefile"]:
                return None
        if _changed(record["dirs"]):
            return None
        changed = _changed(record["files"])
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        return None  # no record, or an unreadable one: the full run decides
    return Basis(record, changed, identity) if changed else UP_TO_DATE


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _changed(recorded: tuple[list[str], list[int | None]]) -> list[int]:
    """Indices of the recorded paths whose time is not the recorded one."""
    stat = os.stat
    paths, mtimes = recorded
    changed = []
    for index, (path, then) in enumerate(zip(paths, mtimes)):
        try:
            now = stat(path).st_mtime_ns
        except OSError:
            now = None
        if now != then:
            changed.append(index)
    return changed


def forget() -> None:
    try:
        os.unlink(RECORD)
    except FileNotFoundError:
        pass


def remember(project, graph, ran: int, basis: Basis | None = None) -> bool:
    """After a successful build of `graph` (`ran` jobs run; `graph` cut down from `basis` when
    the run started from the record): write the record when a fresh look finds every job up to
    date. Returns whether it was written; never fails the build. Takes `project` and `graph`
    over: before a fresh look at the whole graph, their jobs are let go, so that two graphs
    (some 400 MB each at 200,000 jobs) are never in memory at once."""
    from rulerun.errors import RulerunError

    if request(project.options) is None or project.pipefile.unknown_overrides:
        return False
    fresh = None
    try:
        if basis is not None:
            if _remember_part(project, graph, basis):
                return True
            ran = True  # the part can't be carried over: look at everything again
        if ran or not project.fs.recording:  # the build changed files: look again
            fresh = project.look_again()
            project.let_go()
            graph.jobs.clear()
            graph.targets.clear()
            project, graph = fresh, fresh.graph()
        if not (_all_up_to_date(project, graph) and project.fs.recording and _settled(project.fs)):
            return False
        _write(project, graph)
        return True
    except (RulerunError, OSError):
        return False  # the next run decides in full, and says what is wrong if anything is
    finally:
        if fresh is not None:
            fresh.state.close()


def _remember_part(project, graph, basis: Basis) -> bool:
    """The record again, after a build of only the jobs `basis` affected: when every directory
    still lists as recorded and a fresh look finds those jobs up to date, the rest of the
    record still holds and only their files' times are new."""
    from rulerun.plan.view import mtime_of

    record = basis.record
    fresh = project.look_again(lists=False)
    try:
        if not _all_up_to_date(fresh, graph) or not _same_listings(fresh.fs, record["dirs"]):
            return False
        seen = fresh.fs.files_seen()  # what the fresh decisions were based on
        if not all(path in basis.where for path in seen):
            return False  # a file the record does not know: look at everything again
        mtimes = record["files"][1]
        for path, mtime in seen.items():
            mtimes[basis.where[path]] = mtime
        mtimes[record["state"]] = mtime_of(fresh.state.path)
    finally:
        fresh.state.close()
    _replace(RECORD, record)
    return True


def _same_listings(fs, recorded: tuple[list[str], list[int | None]]) -> bool:
    """Every directory `fs` listed was recorded with the time it had then, and every recorded
    directory still has its recorded time."""
    times = dict(zip(*recorded))
    if any(times.get(path or ".", -1) != seen.mtime for path, seen in fs.listed.items()):
        return False
    return not _changed(recorded)


def _all_up_to_date(project, graph) -> bool:
    from rulerun.lang.namespace import fixed_names

    fixed = fixed_names(project.pipefile, project.options.overrides)
    dirty = project.dirty
    one_job_per_rule = {}
    for job in graph.jobs:   # dependency order; the build decided its jobs already
        reasons = dirty.reasons.get(job)
        if job.pending or (reasons if reasons is not None else dirty.decide(job)):
            return False
        if job.rule is not None:
            one_job_per_rule.setdefault(job.rule.index, job)
    # the variables a job uses are its rule's (work.Work.signature)
    return all(set(project.work.signature(job)["variables"]) <= fixed for job in one_job_per_rule.values())


def _settled(fs) -> bool:
    """Every directory listed during its last change's tick still lists the same, now that
    the tick is over."""
    from rulerun.plan.view import FileSystem, mtime_of

    racy = {path: seen for path, seen in fs.listed.items()
            if seen.mtime is not None and seen.at - seen.mtime < _racy_window(seen.mtime)}
    if not racy:
        return True
    latest = max(seen.mtime + _racy_window(seen.mtime) for seen in racy.values())
    wait = (latest - time.time_ns()) / 1e9
    if wait > 0.2:  # coarse file times: not worth holding the run up; the next run records it
        return False
    if wait > 0:
        time.sleep(wait)
    for path, seen in racy.items():
        if mtime_of(path or ".") != seen.mtime or FileSystem().listing(path) != fs.listing(path):
            return False
    return True


def _racy_window(mtime: int) -> int:
    return COARSE_RACY_NS if mtime % 1_000_000_000 == 0 else RACY_NS


def _write(project, graph) -> None:
    """The record of what `project`'s view saw, and `graph` beside it when it can be reused."""
    from rulerun.plan.recorded_graph import can_record, save
    from rulerun.plan.view import mtime_of

    fs = project.fs
    with open(project.options.file, "rb") as handle:
        pipefile = handle.read()
    dirs = [(path or ".", seen.mtime) for path, seen in fs.listed.items()]
    files = list(fs.files_seen().items())
    files.append((project.state.path, mtime_of(project.state.path)))
    paths = [p for p, _ in files]
    graph_id = None
    if can_record(graph):
        graph_id = time.time_ns()
        save(GRAPH, graph_id, graph, paths)
    _replace(RECORD, {"request": request(project.options), "pipefile": pipefile, "graph": graph_id,
                     "state": len(files) - 1,
                     "dirs": ([p for p, _ in dirs], [m for _, m in dirs]),
                     "files": (paths, [m for _, m in files])})


def _replace(path: str, value) -> None:
    temporary = f"{path}.{os.getpid()}"
    with open(temporary, "wb") as handle:
        marshal.dump(value, handle)
    os.replace(temporary, path)
