"""The no-op answer: a run that left every job up to date keeps what it saw, so that the next
run asking the same thing can say "nothing to do" without loading the Pipefile, or, when only
some files changed, run the jobs they affect without resolving the Pipefile again.

A run's jobs and decisions follow from the Pipefile, the request (targets and NAME=VALUE), the
state database and what the resolver saw on disk, all of it through plan/view.py's DiskView: the listing
of each directory and the time of each file it asked about. When all of that is unchanged the
run would decide the same, so the record `.rulerun/uptodate` keeps it after a build, with the
job graph beside it in `.rulerun/uptodate.graph`:

    remember(loaded, plan, ...)  after a successful build, under the run lock: write what the
                              run saw (directory and file times, brought up to date as its jobs
                              made their outputs) and its graph; only when that can't be trusted
                              (a split rule ran, a job changed a directory behind the run's
                              back) resolve and decide once more on a fresh view
    look(options)             at the start of a run, before anything heavy is imported: the
                              record is for this request and the Pipefile reads the same; then
                              UP_TO_DATE when every recorded time is unchanged, a Basis naming
                              the changed files when only files changed (the directories list
                              the same, so the graph is the recorded one: recorded_graph.py cuts it
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
from rulerun.store.layout import RECORD, RECORD_GRAPH as GRAPH

NOTHING_TO_DO = "rulerun: nothing to do, everything is up to date"
FORMAT = 4
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
            tuple(sorted(options.overrides.items())), tuple(sorted(options.limit_sizes.items())),
            tuple(sorted(options.config_overrides.items())))


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
        if _sources_text(options.file, record.get("sources", ())) != record["pipefile"]:
            return None
        if _changed(record["dirs"]):
            return None
        changed = _changed(record["files"])
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        return None  # no record, or an unreadable one: the full run decides
    return Basis(record, changed, identity) if changed else UP_TO_DATE


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _changed(recorded: tuple[list[str], list[int | None], list[int]]) -> list[int]:
    """Indices of the recorded paths whose time or mark (the change time: what a person can't
    put back, unlike a modification time) is not the recorded one."""
    stat = os.stat
    paths, mtimes, marks = recorded
    changed = []
    for index, (path, then, mark) in enumerate(zip(paths, mtimes, marks)):
        try:
            found = stat(path)
        except (OSError, ValueError):
            if then is not None:
                changed.append(index)
            continue
        if found.st_mtime_ns != then or found.st_ctime_ns != mark:
            changed.append(index)
    return changed


def forget() -> None:
    try:
        os.unlink(RECORD)
    except FileNotFoundError:
        pass


def remember(loaded, plan, options, outcome, state, basis: Basis | None = None) -> bool:
    """After a successful build of `plan` (cut down from `basis` when the run started from the
    record): write the record. What the run saw is the record when it still holds: every job
    ran or was up to date, and what the jobs left agrees (see _from_run). Otherwise (a split
    rule ran, an action changed a directory in ways the plan can't follow) a fresh look
    resolves and decides once more. Returns whether a record was written; never fails the
    build."""
    from rulerun.errors import RulerunError

    if request(options) is None or loaded.pipefile.unknown_overrides or not _recordable(loaded, plan, options):
        return False
    try:
        if basis is not None and _remember_part(plan, basis, state):
            return True
        if basis is None and _from_run(plan, outcome):
            return _write(loaded, options, plan.view, plan.graph, state.path)
        return _from_fresh_look(loaded, plan, options)
    except (RulerunError, OSError):
        return False  # the next run decides in full, and says what is wrong if anything is


def _recordable(loaded, plan, options) -> bool:
    """Whether the answer for this plan's request can be kept at all: no task with an action
    (it runs every time), nothing waiting on a split rule, and every variable its jobs use
    follows from the Pipefile's text and the command line (see namespace.fixed_names), as does
    every name a `$(...)` in a path reads (besides a job's `wildcards` and `stem`)."""
    from rulerun.lang.namespace import fixed_names
    from rulerun.lang.pathexpr import JOB_NAMES
    from rulerun.lang.purity import follows_from_text

    fixed = fixed_names(loaded.pipefile, options.overrides)
    if not follows_from_text(set(loaded.pipefile.path_names - JOB_NAMES), loaded.namespace, fixed):
        return False  # a $(...) in a path read a value (a list a block built, a function that globs) that may change
    one_job_per_rule = {}
    for job in plan.graph.jobs:
        if job.pending or (job.is_task and job.has_action):
            return False
        if job.rule is not None:
            one_job_per_rule.setdefault(job.rule.index, job)
    return all(plan.signatures.follows_from_text(job, fixed) for job in one_job_per_rule.values())


def _from_run(plan, outcome) -> bool:
    """Whether what this run saw is the record: no split rule ran (the graph is the one
    planned), every job either ran or was up to date, each job's outputs are, as the run saw
    them, no older than its inputs (what the full decision would check), and each directory
    the run changed lists now exactly what the run knows it put there. The directories are
    then looked at again for their new times."""
    view = plan.view
    if outcome.grew or not view.recording:
        return False
    if not all(_consistent(job, view) for job in plan.graph.jobs if job.rule is not None and not job.is_task):
        return False
    return _relisted(view)


def _consistent(job, view) -> bool:
    seen = view.files_seen()
    outputs = [seen.get(path) for path in job.outputs]
    if any(mtime is None for mtime in outputs):
        return False
    oldest = min(outputs, default=None)
    for path in job.inputs:
        mtime = seen.get(path, view.mtime(path))
        if mtime is not None and oldest is not None and mtime > oldest:
            return False
    return True


def _relisted(view) -> bool:
    """Each directory the run's jobs changed, listed again: its new time is taken when it lists
    what the view expects (taken before and after the listing, and equal)."""
    import time

    from rulerun.plan.view import Listed

    disk = view.disk
    for directory in view.changed_dirs:
        if directory not in view.listed:
            continue
        before = disk.stat(directory or ".")
        now = time.time_ns()
        found = disk.listing(directory) or {}
        if before is None or found != view.listing(directory) or disk.stat(directory or ".") != before:
            return False
        view.listed[directory] = Listed(now, before.mtime, before.mark)
    return True


def _remember_part(plan, basis: Basis, state) -> bool:
    """The record again, after a build of only the jobs `basis` affected: when every directory
    still lists as recorded and what the run saw of those jobs is consistent, the rest of the
    record still holds and only their files' times are new."""
    from rulerun.store.disk import RealDisk

    record = basis.record
    view = plan.view
    jobs = [job for job in plan.graph.jobs if job.rule is not None and not job.is_task]
    if not all(_consistent(job, view) for job in jobs) or not _same_listings(view, record["dirs"]):
        return False
    seen = view.files_seen()
    if not all(path in basis.where for path in seen):
        return False  # a file the record does not know: look at everything again
    _, mtimes, marks = record["files"]
    for path, mtime in seen.items():
        mtimes[basis.where[path]], marks[basis.where[path]] = mtime, view.mark(path)
    mtimes[record["state"]], marks[record["state"]] = RealDisk().stat(state.path) or (None, 0)
    _replace(RECORD, record)
    return True


def _same_listings(view, recorded: tuple[list[str], list[int | None]]) -> bool:
    """Every directory `view` listed was recorded with the time it had then, and every recorded
    directory still has its recorded time."""
    times = {path: (mtime, mark) for path, mtime, mark in zip(*recorded)}
    if any(times.get(path or ".") != (seen.mtime, seen.mark) for path, seen in view.listed.items()):
        return False
    return not _changed(recorded)


def _from_fresh_look(loaded, plan, options) -> bool:
    """Resolve and decide once more on a fresh view of the disk, and write the record when every
    job is up to date. The run's graph is let go first: two graphs of 200,000 jobs (some 400 MB
    each) are never in memory at once."""
    from rulerun.plan.planner import make_plan
    from rulerun.store.state import State

    plan.graph.jobs.clear()
    plan.graph.targets.clear()
    state = State(readonly=True)
    try:
        fresh = make_plan(loaded.pipefile, loaded.namespace, options.targets, state)
        if not (_all_up_to_date(fresh) and fresh.view.recording):
            return False
        return _write(loaded, options, fresh.view, fresh.graph, state.path)
    finally:
        state.close()


def _all_up_to_date(plan) -> bool:
    return not any(job.pending or plan.decisions.must_run(job) for job in plan.graph.jobs)


def _settled(fs) -> bool:
    """Every directory listed during its last change's tick still lists the same, now that
    the tick is over."""
    from rulerun.plan.view import DiskView

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
        if fs.disk.stat(path or ".") != (seen.mtime, seen.mark) or DiskView().listing(path) != fs.listing(path):
            return False
    return True


def _racy_window(mtime: int) -> int:
    return COARSE_RACY_NS if mtime % 1_000_000_000 == 0 else RACY_NS


def read_sources(pipefile) -> list[str]:
    """The files besides the Pipefile that its text depends on: config files (and included files)."""
    from rulerun.lang.config import config_path

    return [config_path(config) for config in getattr(pipefile, "configs", ())] + list(getattr(pipefile, "included", ()))


def _sources_text(main: str, sources) -> bytes:
    """The Pipefile's bytes and every source's: an edit of any of them is an edit of the Pipefile."""
    parts = []
    for path in (main, *sources):
        with open(path, "rb") as handle:
            parts.append(handle.read())
    return b"\0".join(parts) if sources else parts[0]


def _write(loaded, options, view, graph, state_path: str) -> bool:
    """The record of what `view` saw, and `graph` beside it when it can be reused; not written
    (False) when a directory listed in its last change's tick may have changed since."""
    from rulerun.plan.recorded_graph import can_record, save
    from rulerun.store.disk import RealDisk

    if not _settled(view):
        return False
    sources = read_sources(loaded.pipefile)
    pipefile = _sources_text(options.file, sources)
    dirs = [(path or ".", seen.mtime, seen.mark) for path, seen in view.listed.items()]
    seen = view.files_seen()
    paths, mtimes = list(seen), list(seen.values())  # three lists, not a tuple per file
    marks = [view.mark(path) for path in paths]
    state_mtime, state_mark = RealDisk().stat(state_path) or (None, 0)
    paths.append(state_path)
    mtimes.append(state_mtime)
    marks.append(state_mark)
    graph_id = None
    if can_record(graph):
        graph_id = time.time_ns()
        save(GRAPH, graph_id, graph, paths)
    _replace(RECORD, {"request": request(options), "pipefile": pipefile, "sources": sources, "graph": graph_id,
                     "state": len(paths) - 1,
                     "dirs": tuple(map(list, zip(*dirs))) if dirs else ([], [], []),
                     "files": (paths, mtimes, marks)})
    return True


def _replace(path: str, value) -> None:
    temporary = f"{path}.{os.getpid()}"
    with open(temporary, "wb") as handle:
        marshal.dump(value, handle)
    os.replace(temporary, path)
