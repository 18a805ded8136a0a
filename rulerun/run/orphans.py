"""What a job leaves running is stopped when the job ends, before its result is judged; and what
a killed run left running is stopped by the next run before it starts anything.

While it runs jobs, rulerun is the child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process
whose parent ends becomes a child of rulerun rather than of init, so a job's background process
can't get out of sight by double-forking. When a job ends, each such orphan that belongs to it
is stopped (SIGTERM, then SIGKILL) with everything it started, and the zombies are reaped. (A
Python job's process is a subreaper itself and stops what it started before it reports; what
is done here covers one that died.)

Which job an orphan belongs to:
  - its session: every job's main process leads a session of its own (start_new_session for
    shell jobs, setsid for Python jobs), which its descendants keep unless they call setsid;
  - else its environment: every job runs with RULERUN_JOB=<run>/<key> (see `token`), which its
    descendants inherit unless they clear it.
An orphan that left the session *and* cleared its environment can't be told from another
job's: it is stopped when the run ends. A process started on the job's behalf by something
outside it (`systemd-run`, `at`, a daemon asked over a socket) is not found.

A shell job's own main process is a child of rulerun that its ShellRunner waits for: it is
registered here while it exists (`spawning`, `waited_for`), so that no sweep reaps it.

After a crash: the state database lists the jobs running (their main process's pid, group and
start time, and the run's id in their mark); the next run stops their groups and sessions, and
every process carrying a mark of the killed run (`stop_left_running`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable

from rulerun import proc
from rulerun.proc import Proc

MARK = "RULERUN_JOB"

_lock = threading.RLock()
_waited: set[int] = set()  # children of this process that someone else waits for
_holders = 0
_was_subreaper = False


def token(key: int) -> str:
    """The value of RULERUN_JOB for job `key` of this run."""
    return f"{proc.run_id()}/{key}"


def adopt() -> None:
    """Become the child subreaper, for as long as someone holds it (see `let_go`)."""
    global _holders, _was_subreaper
    with _lock:
        if _holders == 0:
            _was_subreaper = proc.set_subreaper(True)
        _holders += 1


def let_go() -> None:
    """Stop being the subreaper once nobody needs it (rulerun used as a library, or the
    tests: a process that outlives the run should not collect strangers' zombies)."""
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0 and not _was_subreaper:
            proc.set_subreaper(False)


@contextlib.contextmanager
def spawning():
    """Held while a job's main process is started and registered (`waited_for`): no sweep in
    another thread reaps it meanwhile, should it end at once."""
    with _lock:
        yield


def waited_for(pid: int) -> None:
    with _lock:
        _waited.add(pid)


def done_with(pid: int) -> None:
    """`pid` has been reaped by whoever waited for it."""
    with _lock:
        _waited.discard(pid)


def end_job(session: int, start: int | None, key: int) -> None:
    """Stop what job `key`, whose main process led `session`, left running. Called once that
    process has ended. `start`: when it started, or a bound (see ProcessId), to tell whether the
    number still names its session; None if the process is not reaped yet (a shell job's), so
    the number can't be another's."""
    if start is None:
        own_session = True
    else:
        leader = proc.stat(session)
        own_session = leader is None or leader.start <= start  # else it names a newer session
    mark = token(key)

    def belongs(orphan: Proc) -> bool:
        return (own_session and orphan.sid == session) or proc.environment_value(orphan.pid, MARK) == mark

    proc.stop(_orphans(belongs))


def end_all() -> None:
    """Stop every orphan any job of this run left: the run is over (or interrupted). Those in
    rulerun's own session are its helpers (the forkserver) or came from one (a command run for
    run_job): left alone here, they are stopped by the end of the job whose mark they carry."""
    own_sid = os.getsid(0)
    proc.stop(_orphans(lambda orphan: orphan.sid != own_sid))


def _orphans(belongs: Callable[[Proc], bool]) -> list[Proc]:
    """The orphans (children of this process that no one waits for) for which `belongs` is true,
    with all they started; ended orphans from job sessions are reaped on the way. A job's main
    process just started and not yet registered is never taken: it is no zombie, and its
    session and mark are its own job's."""
    own_sid = os.getsid(0)
    found: list[Proc] = []
    for pid in proc.adopted():
        if pid in _waited:
            continue
        child = proc.stat(pid)
        if child is None:
            continue
        if child.zombie:
            if child.sid != own_sid:  # not a helper's, which its owner waits for
                _reap(child)
        elif belongs(child):
            found.extend(proc.tree(child))
    return found


def _reap(zombie: Proc) -> None:
    """Reap an ended orphan, unless it is a job's main process that ended before it could be
    registered (its exit status belongs to its ShellRunner): registration holds the lock."""
    with _lock:
        if zombie.pid not in _waited:
            proc.reap(zombie)


# ---------------------------------------------------------------------- after a crash

def stop_left_running(state) -> list[str]:
    """Before a run starts anything: stop every process of the jobs a killed run left running
    (recorded in `state`, see State.left_running), wait until they are gone, and forget them.
    Returns the warnings to show."""
    rows = state.left_running()
    if not rows:
        return []
    found = _left_by(rows)
    stuck = proc.stop(found)
    state.forget_running([row.job for row in rows])
    if not found:
        return []
    names = ", ".join(f"'{row.job.replace(chr(0), ' ')}'" for row in rows)
    text = (f"an earlier rulerun here was killed while jobs ran ({names}); stopped the "
            f"{len(found)} process(es) they left running")
    if stuck:
        text += f", but {len(stuck)} would not end (pids {', '.join(str(p.pid) for p in stuck)})"
    return [text]


def _left_by(rows) -> list[Proc]:
    """The processes of the jobs in `rows`: the members of each recorded group and session whose
    leader still exists (started no later than recorded, so the number is still the job's), and
    every process with a RULERUN_JOB mark of the killed run. A group whose leader is gone is
    not trusted: its number may have been reused since, and then its members are strangers."""
    sessions = {row.pgid for row in rows if row.pid and _leader_runs(row)}
    runs = {row.run for row in rows if row.run}
    spared = _ancestors()
    found = []
    for pid in proc.all_pids():
        process = proc.stat(pid)
        if process is None or process.zombie or pid in spared:
            continue
        if process.pgid in sessions or process.sid in sessions or _mark_run(pid) in runs:
            found.append(process)
    return found


def _leader_runs(row) -> bool:
    leader = proc.stat(row.pid)
    return leader is not None and leader.start <= row.start  # a zombie too: it holds the number


def _mark_run(pid: int) -> str | None:
    mark = proc.environment_value(pid, MARK)
    return mark.rpartition("/")[0] if mark else None


def _ancestors() -> set[int]:
    """This process and its ancestors: never stopped, whatever their environment says."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        process = proc.stat(pid)
        pid = process.ppid if process else 0
    return found
