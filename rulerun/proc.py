"""Processes as Linux shows them under /proc, and stopping a set of them for good.

A process is named by its pid *and* its start time (field 22 of /proc/PID/stat, clock ticks
since boot): a pid is reused once its process is gone, the pair never is. Every signal sent
here is sent only after checking that the pid still names the process that was found.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from typing import Iterable, NamedTuple

GRACE_SECONDS = 1.0  # from SIGTERM to SIGKILL
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


class Proc(NamedTuple):
    """A process as /proc/PID/stat shows it; a zombie has ended and waits to be reaped."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    start: int
    zombie: bool


class ProcessId(NamedTuple):
    """What a run records of a job's main process to find its processes after a crash. `start`
    is its start time (field 22 of /proc/PID/stat) or a bound taken right after it started
    (`boot_ticks`): a process with that pid that started no later is that process, as the pid
    was free when it started and can be reused only once it is gone."""

    pid: int
    pgid: int
    start: int


def stat(pid: int) -> Proc | None:
    """The process `pid` now, or None if there is none."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text[text.rindex(b")") + 2:].split()  # the name in (...) may hold spaces and ')'
    ppid, pgid, sid, start = (int(fields[i]) for i in (1, 2, 3, 19))  # fields 4, 5, 6, 22
    return Proc(pid, ppid, pgid, sid, start, fields[0] in (b"Z", b"X"))


def _read(path: str) -> bytes | None:
    """A small /proc file (raw os calls: a job's end reads a few, and open() costs more than the read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def boot_ticks() -> int:
    """Now, in the clock and units of the start times in /proc/PID/stat (clock ticks since boot).
    Taken right after starting a process, it bounds the process's start time without reading
    /proc/PID/stat, which waits until the process's exec is complete (half a millisecond)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


@functools.lru_cache(maxsize=1)
def run_id() -> str:
    """This process among all processes of this boot: its pid and start time."""
    return f"{os.getpid()}-{stat(os.getpid()).start}"


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    """The children of `pid` (from /proc/PID/task/*/children: one small read per thread, where a
    scan of /proc reads a file per process on the machine)."""
    if not _have_children_files():
        return [p for p in all_pids() if (s := stat(p)) and s.ppid == pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    return [child for task in tasks for child in _task_children(pid, int(task))]


def adopted() -> list[int]:
    """The children of this process's main thread: where the kernel puts the orphans this process
    adopts as the subreaper (the first live thread of the process, its main one while it runs)."""
    if not _have_children_files():
        return children(os.getpid())
    return _task_children(os.getpid(), os.getpid())


def _task_children(pid: int, task: int) -> list[int]:
    text = _read(f"/proc/{pid}/task/{task}/children")  # None: the thread has ended
    if text is None:
        return []
    if len(text) == 4096:  # more children than one read holds
        with open(f"/proc/{pid}/task/{task}/children", "rb") as file:
            text = file.read()
    return [int(word) for word in text.split()]


@functools.lru_cache(maxsize=1)
def _have_children_files() -> bool:
    """Whether the kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)."""
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def tree(root: Proc) -> list[Proc]:
    """`root` and every process descending from it."""
    found, work = [], [root]
    while work:
        process = work.pop()
        found.append(process)
        work.extend(s for s in map(stat, children(process.pid)) if s is not None)
    return found


def environment_value(pid: int, name: str) -> str | None:
    """The value of `name` in the environment `pid` was started with (None if unset or unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            entries = file.read().split(b"\0")
    except OSError:
        return None
    prefix = name.encode() + b"="
    for entry in entries:
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def set_subreaper(on: bool) -> bool:
    """Make this process the child subreaper (orphans among its descendants become its children
    rather than init's), or stop being one; returns whether it was one before. A no-op where
    prctl can't be called."""
    prctl = _prctl()
    if prctl is None:
        return False
    import ctypes

    was = ctypes.c_int(0)
    prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
    prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    return bool(was.value)


@functools.lru_cache(maxsize=1)
def _prctl():
    import ctypes  # only where jobs run: not in the import time of a no-op run

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def stop(targets: Iterable[Proc], grace: float = GRACE_SECONDS, patience: float = 5.0) -> list[Proc]:
    """SIGTERM every target, SIGKILL those still there after `grace` seconds, and wait (up to
    `patience` more) until all are gone; a target that is this process's child is reaped.
    Returns those that would not go."""
    every = [t for t in targets if t.pid != os.getpid()]
    _signal(every, signal.SIGTERM)
    left = _wait_gone(every, grace)
    if left:
        _signal(left, signal.SIGKILL)
        left = _wait_gone(left, patience)
    for target in every:  # one that ended before its parent (a target too) became a child here since
        reap(target)
    return left


def alive(target: Proc) -> bool:
    """Whether `target` still runs (a zombie does not: it has ended and only waits to be reaped)."""
    now = stat(target.pid)
    return now is not None and now.start == target.start and not now.zombie


def reap(target: Proc) -> None:
    """Reap `target` if it is a zombie child of this process (checked first: its pid could
    name another child by now, whose exit status belongs to whoever waits for it)."""
    now = stat(target.pid)
    if now is None or now.start != target.start or not now.zombie or now.ppid != os.getpid():
        return
    try:
        os.waitpid(target.pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal(targets: list[Proc], sig: signal.Signals) -> None:
    for target in targets:
        if alive(target):
            try:
                os.kill(target.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _wait_gone(targets: list[Proc], timeout: float) -> list[Proc]:
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        for target in targets:
            reap(target)
        targets = [t for t in targets if alive(t)]
        if not targets or time.monotonic() >= deadline:
            return targets
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
