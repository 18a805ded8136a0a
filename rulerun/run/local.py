"""Run jobs on this machine: shell actions with their shell (`bash -euo pipefail` unless the
Pipefile's SHELL says otherwise) in their own session, Python actions
each in a fresh process forked from a zygote that loaded the Pipefile's namespace once.

Shell jobs are waited for by one reaper (a pidfd per process, in the epoll set of a Poller that
the run loop's own thread waits on), which also copies their output into their logs; each
Python job has one thread that serves its process.
The scheduler caps how many run at once. A job ends only once what it left running is stopped
too (rulerun.run.orphans).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from multiprocessing.connection import Connection
from typing import Callable

from rulerun import proc as processes
from rulerun.proc import GRACE_SECONDS, ProcessId, boot_ticks
from rulerun.run import orphans
from rulerun.run import shell as shells
from rulerun.store.lock import RUNNING_IN
from rulerun.run.executor import Done, JobResult, JobSpec, abort_all
from rulerun.run.poller import Poller, PollingThread


class LocalExecutor:
    """Shell and Python jobs on this machine. Its `poller` is for the run loop to wait on: the
    shell jobs' ends are handled in the loop's own thread (rulerun.run.poller)."""

    def __init__(self, pipefile_path: str, overrides: dict[str, str], services: dict[str, Callable] | None = None):
        self.poller = Poller() if _have_pidfds() else None
        self._shell = ShellRunner(self.poller)
        self._python = PythonWorkers(pipefile_path, overrides, services or {})

    def start(self, spec: JobSpec, done: Done) -> ProcessId:
        return (self._python if spec.kind == "python" else self._shell).start(spec, done)

    def abort(self) -> None:
        abort_all([self._shell, self._python])
        orphans.end_all()  # also those no job could be told to own

    def close(self) -> None:
        self._python.close()
        orphans.end_all()
        self._shell.close()
        if self.poller is not None:
            self.poller.close()


class ShellRunner:
    """Shell jobs as process groups; abort sends SIGTERM to each group, SIGKILL after a grace.

    A reaper waits for every job (a pidfd per process) and copies what each job prints, read
    from a pipe, into its log, through a Poller: the one the run loop waits on when it is
    given one (its events are then handled in the loop's thread, and only while the loop
    waits: a job printing more than a pipe holds waits meanwhile), else one polled by a
    thread of its own. A thread per job cost a thread start per job, and Thread.start()
    blocks until the new thread has been scheduled, which on a busy machine was the largest
    cost of a short job. Without pidfds (Linux < 5.3) each job writes straight to its log
    file and gets a thread that waits for it."""

    def __init__(self, poller: Poller | None = None) -> None:
        self._running: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self._aborting = False
        self._poller = poller
        self._polling_thread: PollingThread | None = None
        self._reaper: _Reaper | None = None
        self._devnull: int | None = None  # every job's stdin, opened once rather than per job
        self._environ = dict(os.environ)  # every job's environment but its mark, copied once
        self._cwd = os.getcwd()
        self._closed = False
        _close_inherited_on_exec()
        orphans.adopt()

    def start(self, spec: JobSpec, done: Done) -> ProcessId:
        if self._reaper is None and _have_pidfds():
            if self._poller is None:  # nobody's loop polls it: a thread of its own does
                self._poller = Poller()
                self._polling_thread = PollingThread(self._poller)
            self._reaper = _Reaper(self._poller)
        log = _Log(spec.log_path)
        output = log.pipe() if self._reaper else log.file()
        try:
            with orphans.spawning():  # registered before any sweep could reap it
                proc = self._spawn(spec, output)
                orphans.waited_for(proc.pid)
        except BaseException:
            log.close()
            raise
        finally:
            if self._reaper:
                os.close(output)  # the job has it now: the pipe ends when the job's last process does
        started = ProcessId(proc.pid, proc.pid, boot_ticks())  # its own session: pgid = pid
        with self._lock:
            self._running[spec.key] = proc
        ended = functools.partial(self._ended, spec, proc, log, done)
        if not self._reaper:
            threading.Thread(target=ended, daemon=True).start()
            return started
        try:
            self._reaper.watch(proc.pid, log, ended)
        except OSError:  # e.g. out of file descriptors: stop the job rather than lose sight of it
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            orphans.done_with(proc.pid)
            with self._lock:
                self._running.pop(spec.key, None)
            log.close()
            raise
        return started

    def _spawn(self, spec: JobSpec, output: int) -> "_Child":
        argv = command_line(spec.command, spec.shell)
        # looked up here once per program, not by the child trying each PATH entry in turn
        executable = argv[0] if "/" in argv[0] else _program(argv[0])
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_RDONLY)
        env = dict(self._environ)
        env[orphans.MARK] = orphans.token(spec.key)  # what it starts can be told apart as its own
        if executable and spec.workdir == self._cwd and _SPAWN_SETSID:
            return _Child(_posix_spawn(executable, argv, env, self._devnull, output))
        popen = subprocess.Popen(argv, executable=executable, cwd=spec.workdir, stdin=self._devnull,
                                 stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        return _Child(popen.pid, popen)

    def _ended(self, spec: JobSpec, proc: "_Child", log: "_Log", done: Done) -> None:
        # Its process has ended (the pidfd said so; without pidfds, waitid waits for it) and is
        # not reaped yet: until it is, its pid, so its session's number, can't name another
        # process. What it left running is stopped now, before the job is judged: a job is over
        # only once all of it is.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        orphans.end_job(proc.pid, None, spec.key)
        status = proc.wait()
        orphans.done_with(proc.pid)
        with self._lock:
            self._running.pop(spec.key, None)
            interrupted = self._aborting
        result = _shell_result(spec.key, status, interrupted)
        log.ended(keep=not result.ok or spec.keep_log)  # before done(): a failure report shows its tail
        result.printed = log.written
        done(result)

    def close(self) -> None:
        if self._polling_thread is not None:
            self._polling_thread.stop()
            self._polling_thread = None
            self._reaper.close()
            self._poller.close()
        elif self._reaper is not None:
            self._reaper.close()
        self._reaper = None
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None
        if not self._closed:
            self._closed = True
            orphans.let_go()

    def abort(self) -> None:
        with self._lock:
            self._aborting = True
            groups = [proc.pid for proc in self._running.values()]
        _stop_groups(groups, self._any_running)

    def _any_running(self) -> bool:
        """Whether a job still runs, after handling the ends that came meanwhile: in the run
        loop's place when the loop's poller reaps them (the loop waits for this abort)."""
        if self._poller is not None and self._polling_thread is None:
            self._poller.poll(0.02)
        with self._lock:
            return bool(self._running)


# posix_spawn (glibc: clone with CLONE_VFORK) starts a job in about 60% of the time
# subprocess.Popen takes, most of it Python work per job; it can't change directory, so a job
# that runs elsewhere, or a Python without setsid for it, goes through Popen.
_SPAWN_SETSID = hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2")
# Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec: a job
# gets them back at their defaults, as subprocess does (`yes | head` must end `yes`).
_DEFAULT_SIGNALS = {sig for sig in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if sig}


def _posix_spawn(executable: str, argv: list[str], env: dict[str, str], stdin: int, output: int) -> int:
    """Start `argv` in a session of its own, stdin from `stdin`, stdout and stderr to `output`.
    Every other descriptor rulerun holds is close-on-exec (Python's and sqlite's are), so
    the job gets none of them."""
    return os.posix_spawn(executable, argv, env, setsid=True, setsigdef=_DEFAULT_SIGNALS, setsigmask=(),
                          file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, output, 1),
                                        (os.POSIX_SPAWN_DUP2, output, 2)])


def _close_inherited_on_exec() -> None:
    """Descriptors rulerun itself inherited (its parent's pipes, a terminal's extras) are not
    passed on to jobs, as subprocess's close_fds did: a job that left a process running would
    otherwise keep, say, the pipe of a `$(rulerun ...)` open."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


class _Child:
    """A job's main process, started by posix_spawn or by subprocess (then `popen` waits)."""

    def __init__(self, pid: int, popen: subprocess.Popen | None = None):
        self.pid = pid
        self._popen = popen

    def wait(self) -> int:
        """Its exit status as subprocess gives it: negative for the signal that ended it."""
        if self._popen is not None:
            return self._popen.wait()
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                return os.waitstatus_to_exitcode(status)
            except InterruptedError:
                continue


class _Log:
    """A shell job's log: the file at `path` holds what the job wrote to stdout and stderr, and
    exists only once it wrote something (or failed). A log left there by an earlier run is
    removed when the job leaves none.

    The job writes into a pipe that the reaper copies into the file, created with the
    first bytes: creating a file costs about 0.4 ms of kernel time on the benchmark machine's
    ext4, more than starting the job itself, and most jobs of a big build print nothing. (An
    unnamed O_TMPFILE per job was cheap to create, but each one freed made ext4 skip it as
    recently deleted when allocating later inodes: every file creation slowed down.)"""

    def __init__(self, path: str):
        self.path = path
        self.read_end: int | None = None
        self._fd: int | None = None
        self._kept = False  # the file exists (made by this run)
        self._direct = False  # the job writes to the file itself (no pipe)

    def pipe(self) -> int:
        """A new pipe for the job's output; returns its write end, to give to the job."""
        self.read_end, write_end = os.pipe()
        os.set_blocking(self.read_end, False)  # the job may end while a process it left holds the pipe
        return write_end

    def file(self) -> int:
        """The log file itself, for a job that writes to it directly."""
        self._open()
        self._direct = True
        return self._fd

    def copy(self) -> bool:
        """Copy what the pipe holds into the file; False once the pipe has ended (EOF)."""
        while True:
            try:
                data = os.read(self.read_end, 1 << 16)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._write(data)

    @property
    def written(self) -> bool:
        """Whether the job may have written something (its log file is there, with its output)."""
        return self._kept or self._direct

    def ended(self, keep: bool) -> None:
        """The job's process has ended: keep a log if it failed, else leave none if it wrote
        nothing. Output still arriving (from a process it left running) is added as it comes."""
        try:
            if self._direct:
                if not keep and not os.fstat(self._fd).st_size:
                    _unlink(self.path)
            elif not self._kept and keep:
                self._open()  # empty: a failure's report names its log
            elif not self._kept:
                _unlink(self.path)
        except OSError:
            pass  # the log is only for people to read: never let it fail the job
        if self.read_end is None:  # nothing more can come
            self._close_file()

    def pipe_ended(self) -> None:
        """Every process that held the pipe has ended (the reaper closes its read end)."""
        self.read_end = None
        self._close_file()

    def close(self) -> None:
        if self.read_end is not None:
            os.close(self.read_end)
            self.read_end = None
        self._close_file()

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, data: bytes) -> None:
        try:
            if self._fd is None:
                self._open()
            while data:
                data = data[os.write(self._fd, data):]
        except OSError:
            pass  # a full disk: the job goes on, its output is lost, as it would be with a file

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:  # made by the first job that needs it, not tried by every job
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, flags, 0o644)
        self._kept = True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Reaper:
    """Waits, through a Poller, on the pidfds of many processes and on their output pipes. It
    copies output into each job's log as it comes, and calls a process's `ended` once the
    process has ended and what it wrote is in the log."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._pidfds: dict[int, tuple[_Log, Callable[[], None]]] = {}  # pidfd -> log, callback
        self._logs: dict[int, _Log] = {}  # a pipe's read end -> its log

    def watch(self, pid: int, log: _Log, ended: Callable[[], None]) -> None:
        pidfd = os.pidfd_open(pid)  # readable once the process has ended, even if it already has
        read_end = log.read_end
        self._logs[read_end] = log
        self._pidfds[pidfd] = (log, ended)
        try:
            self._poller.watch(read_end, lambda: self._copy(read_end))
            self._poller.watch(pidfd, lambda: self._reap(pidfd))
        except OSError:
            self._poller.forget(read_end)
            del self._logs[read_end], self._pidfds[pidfd]
            os.close(pidfd)
            raise

    def _copy(self, read_end: int) -> None:
        log = self._logs.get(read_end)
        if log is not None and not log.copy():  # every process holding the pipe has ended
            self._poller.forget(read_end, close=True)
            del self._logs[read_end]
            log.pipe_ended()

    def _reap(self, pidfd: int) -> None:
        log, ended = self._pidfds.pop(pidfd)
        self._poller.forget(pidfd, close=True)
        if log.read_end in self._logs:
            self._copy(log.read_end)  # all it wrote before it ended: the log is whole when reported
        ended()

    def close(self) -> None:
        for pidfd in list(self._pidfds):
            self._poller.forget(pidfd)
            os.close(pidfd)
        for read_end, log in list(self._logs.items()):
            self._poller.forget(read_end)
            log.close()
        self._pidfds.clear()
        self._logs.clear()


@functools.lru_cache(maxsize=1)
def _have_pidfds() -> bool:
    """Whether this Python and kernel have pidfds (os.pidfd_open, Linux 5.3)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except (AttributeError, OSError):
        return False


# Words that mean something to the shell itself: a command using any of them needs the shell.
_SHELL_SYNTAX = re.compile(r"""[\n$`;&|<>()*?\[\]{}~#!\\"=]""")
_SINGLE_QUOTED = re.compile(r"'[^']*'")
_SHELL_WORDS = frozenset(
    "alias bg break case cd command continue do done echo elif else esac eval exec exit export fc fg "
    "fi for getopts hash if in jobs kill local printf pwd read readonly return set shift test then "
    "times trap type ulimit umask unalias unset until wait while . : [ true false "
    # bash's own (the default shell): `time make` is bash's keyword, not /usr/bin/time
    "builtin caller coproc declare disown enable function let logout mapfile popd pushd readarray "
    "select shopt source time typeset".split())


def command_line(script: str, shell: tuple[str, ...] = shells.DEFAULT) -> list[str]:
    """How to run `script`: as `SHELL... -c script`, or, when it is one simple command with
    nothing for the shell to do (as GNU make does), by executing the program directly: the
    same result with one process instead of two, which matters for thousands of small jobs.
    (A pipe is shell syntax: it goes through the shell, whose pipefail sees every command.)"""
    if not _SHELL_SYNTAX.search(_SINGLE_QUOTED.sub("", script)):  # nothing is special inside '…'
        words = _simple_words(script)
        if words and words[0] not in _SHELL_WORDS and _program(words[0]):
            return words
    return shells.script_argv(shell, script)


_BLANKS = re.compile(r"[ \t]+")  # what separates words for bash (a newline is syntax, above)


def _simple_words(script: str) -> list[str]:
    """The words of a command with no shell syntax but single quotes, as bash reads them."""
    if "'" not in script:  # nothing quoted: the words are what blanks separate
        return [word for word in _BLANKS.split(script) if word]
    lexer = shlex.shlex(script, posix=True, punctuation_chars=False)
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t", True, ""
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote: the shell says what is wrong
        return []


@functools.lru_cache(maxsize=256)
def _program(name: str) -> str | None:
    """The absolute path of program `name` (on PATH, or a path to one); None if there is none, and
    the shell then reports it as usual. Looked up once per run: PATH is not expected to change."""
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
    """Python jobs, each in a fresh process forked from one zygote (rulerun.run.worker) that loaded
    the Pipefile once for the run: one job's os.chdir, module state or leftovers never reach
    another's, and the top-level Python runs once however many jobs run at once. A job process
    that dies fails only its job. The zygote starts with the first Python job, through a
    forkserver (a fork of a small clean process, never of this threaded one); if it dies, the
    next job starts a new one."""

    def __init__(self, pipefile_path: str, overrides: dict[str, str], services: dict[str, Callable]):
        self._path = pipefile_path
        self._overrides = dict(overrides)
        self._services = services
        self._zygote: _Zygote | None = None
        self._busy: dict[int, _PythonJob] = {}
        self._lock = threading.Lock()
        self._aborting = False
        self._closed = False
        orphans.adopt()

    def start(self, spec: JobSpec, done: Done) -> ProcessId:
        if self._zygote is None or not self._zygote.alive:
            self._zygote = _Zygote(self._path, self._overrides)
        job = self._zygote.fork(spec)
        with self._lock:
            self._busy[spec.key] = job
        threading.Thread(target=self._serve, args=(spec, job, done), daemon=True).start()
        return job.process

    def _serve(self, spec: JobSpec, job: "_PythonJob", done: Done) -> None:
        result = job.run(spec, self._services)  # returns once its process has ended
        orphans.end_job(job.process.pid, job.process.start, spec.key)
        with self._lock:
            self._busy.pop(spec.key, None)
            result.interrupted = self._aborting and not result.ok
        done(result)

    def abort(self) -> None:
        with self._lock:
            self._aborting = True
            groups = [job.process.pgid for job in self._busy.values()]
        _stop_groups(groups, lambda: bool(self._busy))

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.stop()
            self._zygote = None
        if not self._closed:
            self._closed = True
            orphans.let_go()


def _forkserver():
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["rulerun.run.worker"])
    return context


class _Zygote:
    """The process that loaded the Pipefile and forks a process per Python job (see
    rulerun.run.worker for the protocol)."""

    def __init__(self, path: str, overrides: dict[str, str]):
        from rulerun.run import worker

        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # the run lock's variable as it is now: the forkserver the zygote is forked from keeps
        # the environment it started with, perhaps in an earlier build of this process
        marker = {RUNNING_IN: os.environ.get(RUNNING_IN)}
        self.process = _forkserver().Process(target=worker.zygote, daemon=True,
                                             args=(theirs, path, overrides, os.getcwd(), marker))
        self.process.start()
        theirs.close()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def fork(self, spec: JobSpec) -> "_PythonJob":
        """A new process running `spec`; raises OSError if it could not be started. Called from
        one thread only (the scheduler's): the zygote's answers come in the order asked. The
        first call waits until the zygote has loaded the Pipefile, as this process did already."""
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self._control, [b"j"], [theirs.fileno()])
            answer = self._control.recv(64).split()  # b"PID START", b"-", or b"" if it died
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        if len(answer) != 2:
            ours.close()
            raise OSError("the Python worker could not start a process for it")
        pid, start = map(int, answer)
        conn = Connection(ours.detach())
        try:
            conn.send((spec, orphans.token(spec.key)))
        except OSError:
            pass  # it died at once: run() reports how
        return _PythonJob(conn, ProcessId(pid, pid, start))  # its own session: pgid = pid

    def stop(self) -> None:
        self._control.close()  # the zygote ends when its control socket does
        self.process.join(timeout=2 + GRACE_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)


class _PythonJob:
    """One Python job's process, served from this side: its calls answered (run_job) until its
    result and then its exit status arrive."""

    def __init__(self, conn: Connection, process: ProcessId):
        self.conn = conn
        self.process = process

    def run(self, spec: JobSpec, services: dict[str, Callable]) -> JobResult:
        reported, status = None, None
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "result":
                    reported = message[1:]
                elif message[0] == "exited":  # the last message: the zygote reaped it
                    status = message[1]
                    break
                else:
                    self._answer(message, services)
        except Exception:  # noqa: BLE001 - the channel ended or broke (the zygote died too)
            self._stop()
        finally:
            self.conn.close()
        if reported is not None:
            ok, reason, detail, facts = reported
            return JobResult(spec.key, ok, reason, detail=detail, **facts)
        return _died(spec, status)

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

    def _stop(self) -> None:
        """The job can't be followed any more (its channel ended without the zygote's report, or
        was garbled by a process killed in the middle of a message): make sure it has ended."""
        target = processes.stat(self.process.pid)
        if target is not None and target.start <= self.process.start:
            processes.stop([target], grace=GRACE_SECONDS)


def _died(spec: JobSpec, status: int | None) -> JobResult:
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
           else f"exit code {code}" if code is not None else "its exit status is unknown")
    return JobResult(spec.key, False, f"the Python worker process running it died ({how})",
                     exit_status=code if code and code > 0 else None)
