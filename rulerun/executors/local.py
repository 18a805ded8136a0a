"""Run jobs on this machine: shell actions as `/bin/sh -e` in their own process group, Python
actions in worker processes that keep the Pipefile's namespace loaded.

Shell jobs are waited for by one reaper thread (a pidfd per process, in one epoll set); each
Python job has one thread that serves its worker. The scheduler caps how many run at once.
"""

from __future__ import annotations

import functools
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from rulerun.executors.base import Done, JobResult, JobSpec, abort_all

GRACE_SECONDS = 1.0


class LocalExecutor:
    def __init__(self, pipefile_path: str, overrides: dict[str, str], services: dict[str, Callable] | None = None):
        self._shell = ShellRunner()
        self._python = PythonWorkers(pipefile_path, overrides, services or {})

    def start(self, spec: JobSpec, done: Done) -> None:
        (self._python if spec.kind == "python" else self._shell).start(spec, done)

    def abort(self) -> None:
        abort_all([self._shell, self._python])

    def close(self) -> None:
        self._python.close()
        self._shell.close()


class ShellRunner:
    """Shell jobs as process groups; abort sends SIGTERM to each group, SIGKILL after a grace.

    One reaper thread waits for every job: a thread per job cost a thread start per job, and
    Thread.start() blocks until the new thread has been scheduled, which on a busy machine
    was the largest cost of a short job. Without pidfds (Linux < 5.3) each job gets a thread."""

    def __init__(self) -> None:
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._aborting = False
        self._reaper: _Reaper | None = None
        self._devnull: int | None = None  # every job's stdin, opened once rather than per job

    def start(self, spec: JobSpec, done: Done) -> None:
        argv = command_line(spec.command)
        # looked up here once per program, not by the child trying each PATH entry in turn
        executable = None if spec.env or "/" in argv[0] else _program(argv[0])
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_RDONLY)
        log = _Log(spec.log_path)
        try:
            proc = subprocess.Popen(argv, executable=executable, cwd=spec.workdir,
                                    stdin=self._devnull, stdout=log.fd, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=dict(spec.env) if spec.env else None)
        except BaseException:
            log.close(keep=False)
            raise
        with self._lock:
            self._running[spec.key] = proc
        ended = functools.partial(self._ended, spec, proc, log, done)
        if not self._reaped(proc, ended, log.show):
            threading.Thread(target=ended, daemon=True).start()

    def _reaped(self, proc: subprocess.Popen, ended: Callable[[], None], lasting: Callable[[], None]) -> bool:
        """Hand `proc` to the reaper thread; False when this system has no pidfds."""
        try:
            if self._reaper is None:
                self._reaper = _Reaper()
            self._reaper.watch(proc.pid, ended, lasting)
            return True
        except (AttributeError, OSError):  # no os.pidfd_open, or the kernel refuses it
            return False

    def _ended(self, spec: JobSpec, proc: subprocess.Popen, log: "_Log", done: Done) -> None:
        status = proc.wait()  # at once from the reaper: its pidfd said the process ended
        with self._lock:
            self._running.pop(spec.key, None)
            interrupted = self._aborting
        result = _shell_result(spec.key, status, interrupted)
        log.close(keep=not result.ok)  # before done(): a failure report shows the log's tail
        done(result)

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.stop()
            self._reaper = None
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None

    def abort(self) -> None:
        with self._lock:
            self._aborting = True
            groups = [proc.pid for proc in self._running.values()]
        _stop_groups(groups, lambda: self._any_running())

    def _any_running(self) -> bool:
        with self._lock:
            return bool(self._running)


class _Log:
    """A shell job's stdout and stderr, at `path` once there is something to keep.

    The file starts unnamed (O_TMPFILE, in the log's directory) and is given its name when the
    job wrote to it, failed, or has run for LASTING seconds (so a long job's log can be followed
    while it runs). Giving a new file a name is the expensive part of creating it on ext4
    (about 0.4 ms of kernel time per file on the benchmark machine, more than starting the job
    itself), and most jobs of a big build print nothing. A log left by an earlier run is removed
    when the job leaves none. Where O_TMPFILE is missing, the file is named from the start."""

    def __init__(self, path: str):
        self.path = path
        self.named = False
        self.fd = self._open()

    def _open(self) -> int:
        try:
            return self._open_in_place()
        except FileNotFoundError:  # made by the first job that needs it, not tried by every job
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            return self._open_in_place()

    def _open_in_place(self) -> int:
        try:
            return os.open(os.path.dirname(self.path) or ".", os.O_TMPFILE | os.O_RDWR, 0o644)
        except FileNotFoundError:
            raise
        except (AttributeError, OSError):  # no O_TMPFILE in this Python, kernel or file system
            self.named = True
            return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def show(self) -> None:
        """Give the log its name now, while the job still writes to it."""
        if not self.named:
            self.named = _link_fd(self.fd, self.path)

    def close(self, keep: bool) -> None:
        """The job has ended: keep its log if asked to or if it is not empty, else leave none."""
        try:
            if keep or os.fstat(self.fd).st_size:
                self.show()
                if not self.named:
                    _copy_fd(self.fd, self.path)
            else:
                _unlink(self.path)
        except OSError:
            pass  # the log is only for people to read: never let it fail the job
        finally:
            os.close(self.fd)


def _link_fd(fd: int, path: str) -> bool:
    """Give the unnamed file `fd` the name `path` (replacing a file there); False if impossible
    (no /proc, say). linkat() must follow /proc/self/fd/N, which os.link does only when it is
    given a directory fd."""
    _unlink(path)
    directory = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=directory, follow_symlinks=True)
        return True
    except OSError:
        return False
    finally:
        os.close(directory)


def _copy_fd(fd: int, path: str) -> None:
    with open(path, "wb") as out:
        os.lseek(fd, 0, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 16):
            out.write(chunk)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Reaper:
    """One thread that waits on the pidfds of many processes (epoll) and, in that thread, calls
    each process's `ended` once it has ended and its `lasting` if it still runs LASTING seconds
    after it was handed over. `stop` ends the thread (through a pipe)."""

    LASTING = 1.0

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._waiting: dict[int, _Watched] = {}  # pidfd -> its process
        self._lasting: deque[tuple[float, _Watched]] = deque()  # in time order: one delay for all
        self._wake_read, self._wake_write = os.pipe()
        self._epoll.register(self._wake_read, select.EPOLLIN)
        threading.Thread(target=self._run, name="rulerun-reaper", daemon=True).start()

    def watch(self, pid: int, ended: Callable[[], None], lasting: Callable[[], None]) -> None:
        fd = os.pidfd_open(pid)  # readable once the process has ended, even if it already has
        watched = _Watched(ended, lasting)
        self._waiting[fd] = watched
        self._lasting.append((time.monotonic() + self.LASTING, watched))
        self._epoll.register(fd, select.EPOLLIN)  # seen by a poll already waiting (epoll)

    def stop(self) -> None:
        os.write(self._wake_write, b"x")

    def _run(self) -> None:
        while True:
            # a process handed over during this poll is due LASTING from now: no earlier
            # than the timeout, so waking at the timeout is never too late for it
            for fd, _ in self._epoll.poll(self._until_lasting()):
                if fd == self._wake_read:
                    self._close()
                    return
                watched = self._waiting.pop(fd)  # before close: a new pidfd may reuse the number
                self._epoll.unregister(fd)
                os.close(fd)
                watched.over = True
                watched.ended()
            self._call_lasting()

    def _until_lasting(self) -> float:
        if not self._lasting:
            return self.LASTING
        return max(0.0, self._lasting[0][0] - time.monotonic())

    def _call_lasting(self) -> None:
        now = time.monotonic()
        while self._lasting and self._lasting[0][0] <= now:
            watched = self._lasting.popleft()[1]
            if not watched.over:
                watched.lasting()

    def _close(self) -> None:
        for fd in self._waiting:
            os.close(fd)
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        self._epoll.close()


@dataclass
class _Watched:
    ended: Callable[[], None]
    lasting: Callable[[], None]
    over: bool = False


# Words that mean something to the shell itself: a command using any of them needs /bin/sh.
_SHELL_SYNTAX = re.compile(r"""[\n$`;&|<>()*?\[\]{}~#!\\"=]""")
_SINGLE_QUOTED = re.compile(r"'[^']*'")
_SHELL_WORDS = frozenset(
    "alias bg break case cd command continue do done echo elif else esac eval exec exit export fc fg "
    "fi for getopts hash if in jobs kill local printf pwd read readonly return set shift test then "
    "times trap type ulimit umask unalias unset until wait while . : [ true false".split())


def command_line(script: str) -> list[str]:
    """How to run `script`: as `/bin/sh -e -c script`, or, when it is one simple command with
    nothing for the shell to do (as GNU make does), by executing the program directly: the
    same result with one process instead of two, which matters for thousands of small jobs."""
    if not _SHELL_SYNTAX.search(_SINGLE_QUOTED.sub("", script)):  # nothing is special inside '…'
        try:
            words = shlex.split(script)
        except ValueError:
            words = []
        if words and words[0] not in _SHELL_WORDS and _program(words[0]):
            return words
    return ["/bin/sh", "-e", "-c", script]


@functools.lru_cache(maxsize=256)
def _program(name: str) -> str | None:
    """The absolute path of program `name` (on PATH, or a path to one); None if there is none, and
    /bin/sh then reports it as usual. Looked up once per run: PATH is not expected to change."""
    path = shutil.which(name)
    return os.path.abspath(path) if path else None


def _shell_result(key: int, status: int, interrupted: bool) -> JobResult:
    if status == 0 and not interrupted:
        return JobResult(key, True)
    if status < 0:
        name = signal.Signals(-status).name
        return JobResult(key, False, f"killed by {name}", signal=name, interrupted=interrupted)
    return JobResult(key, False, f"exit status {status}", exit_status=status, interrupted=interrupted)


def _stop_groups(groups: list[int], still_running: Callable[[], bool]) -> None:
    """SIGTERM every process group, then SIGKILL what is left after the grace period."""
    for pgid in groups:
        _kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while still_running() and time.monotonic() < deadline:
        time.sleep(0.02)
    for pgid in groups:
        _kill_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while still_running() and time.monotonic() < deadline:
        time.sleep(0.02)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class PythonWorkers:
    """A pool of worker processes (rulerun.worker), grown on demand. A worker that dies fails
    only the job it was running, and is replaced."""

    def __init__(self, pipefile_path: str, overrides: dict[str, str], services: dict[str, Callable]):
        self._path = pipefile_path
        self._overrides = dict(overrides)
        self._services = services
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._aborting = False
        self._context = None

    def start(self, spec: JobSpec, done: Done) -> None:
        worker = self._take()
        with self._lock:
            self._busy[spec.key] = worker
        threading.Thread(target=self._serve, args=(spec, worker, done), daemon=True).start()

    def _take(self) -> "_Worker":
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Worker(self._mp(), self._path, self._overrides)

    def _mp(self):
        if self._context is None:
            import multiprocessing

            # forkserver: a fork of a small clean process, never of this threaded one
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload(["rulerun.worker"])
        return self._context

    def _serve(self, spec: JobSpec, worker: "_Worker", done: Done) -> None:
        result = worker.run(spec, self._services)
        with self._lock:
            self._busy.pop(spec.key, None)
            result.interrupted = self._aborting and not result.ok
            if worker.alive and not self._aborting:
                self._idle.append(worker)
        done(result)

    def abort(self) -> None:
        with self._lock:
            self._aborting = True
            groups = [w.process.pid for w in self._busy.values()]
        _stop_groups(groups, lambda: bool(self._busy))

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.stop()


class _Worker:
    def __init__(self, context, path: str, overrides: dict[str, str]):
        from rulerun import worker

        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker.main, args=(child, path, overrides, os.getcwd()),
                                       daemon=True)
        self.process.start()
        child.close()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def run(self, spec: JobSpec, services: dict[str, Callable]) -> JobResult:
        """Send `spec`, answer the action's calls (run_job) until its result arrives."""
        try:
            self.conn.send(spec)
            while True:
                message = self.conn.recv()
                if message[0] == "result":
                    _, ok, reason, detail = message
                    return JobResult(spec.key, ok, reason, detail=detail)
                self._answer(message, services)
        except (EOFError, OSError, BrokenPipeError):
            return self._died(spec)

    def _answer(self, message, services: dict[str, Callable]) -> None:
        _, name, args, kwargs = message
        try:
            value = (True, services[name](*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - sent back to the action, raised there
            value = (False, exc)
        try:
            self.conn.send(("answer",) + value)
        except Exception as exc:  # noqa: BLE001 - the answer itself can't cross
            self.conn.send(("answer", False, RuntimeError(f"{name}() returned a value that can't be "
                                                         f"sent to the worker: {exc}")))

    def _died(self, spec: JobSpec) -> JobResult:
        self.process.join(timeout=5)
        code = self.process.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit code {code}")
        return JobResult(spec.key, False, f"the Python worker process running it died ({how})",
                         exit_status=code if code and code > 0 else None)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
