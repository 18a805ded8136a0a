"""The no-op answer: a run that left every job up to date keeps what it saw, so that the next
run asking the same thing can say "nothing to do" without loading the Pipefile.

A run's jobs and decisions follow from the Pipefile, the request (targets and NAME=VALUE), the
state database and what the resolver saw on disk, all of it through fs.FileSystem: the listing
of each directory and the time of each file it asked about. When all of that is unchanged the
run would decide the same, so the stamp `.rulerun/uptodate` records it after a build:

    remember(project, ...)    after a successful build, under the run lock: resolve and decide
                              once more on a fresh view of the disk; when nothing must run,
                              write what that view saw (directory and file times)
    nothing_to_do(options)    at the start of a run, before anything heavy is imported: the
                              stamp is for this request, the Pipefile reads the same, and every
                              recorded time is still what it was
    forget()                  a build is about to change things: the stamp no longer holds

Times are compared for equality, not order, so a file put back with an older time counts as
changed. A directory listed in the same clock tick as its last change could change again
without its time moving on: such a directory is listed again once the tick is over, and the
stamp is written only if it still reads the same.

Not stamped (the full run decides every time): builds whose jobs use a variable computed by
Python code (a call, or a top-level `python:` block that could rebind it), since its value
can change with nothing on disk changing; graphs with tasks that have actions (they run every
time); split rules still waiting; -n, -B, --watch, --graph and --list runs.
"""

from __future__ import annotations

import marshal
import os
import time

from rulerun import __version__
from rulerun.layout import STATE_DIR

STAMP = os.path.join(STATE_DIR, "uptodate")
NOTHING_TO_DO = "rulerun: nothing to do, everything is up to date"
FORMAT = 1
# A directory changed less than this before it was listed may change again within the same
# file-time tick (a few ms on Linux filesystems); one at whole seconds may have coarse times.
RACY_NS = 50_000_000
COARSE_RACY_NS = 2_000_000_000


def request(options) -> tuple | None:
    """What the stamp must have been written for, or None when this run can't be answered
    from a stamp at all."""
    if options.dry_run or options.force or options.watch or options.graph or options.list_rules:
        return None
    return (FORMAT, __version__, os.path.abspath(options.file), tuple(options.targets),
            tuple(sorted(options.overrides.items())))


def nothing_to_do(options) -> bool:
    """True when the stamp shows that a run of `options` would find every job up to date."""
    wanted = request(options)
    if wanted is None:
        return False
    try:
        with open(STAMP, "rb") as handle:
            stamp = marshal.loads(handle.read())  # far faster than marshal.load(handle)
        if stamp["request"] != wanted:
            return False
        with open(options.file, "rb") as handle:
            if handle.read() != stamp["pipefile"]:
                return False
        return _unchanged(stamp["dirs"]) and _unchanged(stamp["files"])
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        return False  # no stamp, or an unreadable one: the full run decides


def _unchanged(recorded: tuple[list[str], list[int | None]]) -> bool:
    stat = os.stat
    paths, mtimes = recorded
    for path, then in zip(paths, mtimes):
        try:
            now = stat(path).st_mtime_ns
        except OSError:
            now = None
        if now != then:
            return False
    return True


def forget() -> None:
    try:
        os.unlink(STAMP)
    except FileNotFoundError:
        pass


def remember(project, graph, ran: int) -> bool:
    """After a successful build of `graph` (`ran` jobs run): write the stamp when a fresh look
    finds every job up to date. Returns whether it was written; never fails the build."""
    from rulerun.errors import RulerunError

    if request(project.options) is None or project.pipefile.unknown_overrides:
        return False
    fresh = None
    try:
        if ran or not project.fs.recording:  # the build changed files: look again
            fresh = project = project.look_again()
            graph = project.graph()
        if not (_all_up_to_date(project, graph) and project.fs.recording and _settled(project.fs)):
            return False
        _write(project, project.fs)
        return True
    except (RulerunError, OSError):
        return False  # the next run decides in full, and says what is wrong if anything is
    finally:
        if fresh is not None:
            fresh.state.close()


def _all_up_to_date(project, graph) -> bool:
    from rulerun.namespace import fixed_names

    fixed = fixed_names(project.pipefile, project.options.overrides)
    dirty = project.dirty
    for job in graph.jobs:   # dependency order; the build decided its jobs already
        reasons = dirty.reasons.get(job)
        if job.pending or (reasons if reasons is not None else dirty.decide(job)):
            return False
        if job.rule is not None and not set(project.work.signature(job)["variables"]) <= fixed:
            return False
    return True


def _settled(fs) -> bool:
    """Every directory listed during its last change's tick still lists the same, now that
    the tick is over."""
    racy = {path: seen for path, seen in fs.listed.items()
            if seen.mtime is not None and seen.at - seen.mtime < _racy_window(seen.mtime)}
    if not racy:
        return True
    latest = max(seen.mtime + _racy_window(seen.mtime) for seen in racy.values())
    wait = (latest - time.time_ns()) / 1e9
    if wait > 0.2:  # coarse file times: not worth holding the run up; the next run stamps it
        return False
    if wait > 0:
        time.sleep(wait)
    for path, seen in racy.items():
        if _dir_mtime(path) != seen.mtime or _names(path) != fs.listing(path):
            return False
    return True


def _racy_window(mtime: int) -> int:
    return COARSE_RACY_NS if mtime % 1_000_000_000 == 0 else RACY_NS


def _dir_mtime(path: str) -> int | None:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None


def _names(path: str) -> dict[str, bool] | None:
    try:
        with os.scandir(path or ".") as entries:
            return {entry.name: entry.is_dir() for entry in entries}
    except OSError:
        return None


def _write(project, fs) -> None:
    with open(project.options.file, "rb") as handle:
        pipefile = handle.read()
    dirs = [(path or ".", seen.mtime) for path, seen in fs.listed.items()]
    files = list(fs.files_seen().items())
    files.append((project.state.path, _dir_mtime(project.state.path)))
    stamp = {"request": request(project.options), "pipefile": pipefile,
             "dirs": ([p for p, _ in dirs], [m for _, m in dirs]),
             "files": ([p for p, _ in files], [m for _, m in files])}
    temporary = f"{STAMP}.{os.getpid()}"
    with open(temporary, "wb") as handle:
        marshal.dump(stamp, handle)
    os.replace(temporary, STAMP)
