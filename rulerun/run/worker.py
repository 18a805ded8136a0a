"""The Python side of a run: one zygote process loads the Pipefile's top-level namespace once,
then forks a fresh process for each Python action, which runs the action with its stdout,
stderr and `log` going to the job's log, stops whatever it started, reports, and exits. So the
top-level Python runs once per run in the zygote, and one job's os.chdir, module state or
leftover threads and processes never reach another job: the zygote itself runs no action.

The rulerun process asks for a job by sending the zygote, over a control socket, one end of a
new socket pair: the job's channel. The zygote forks and answers on the control socket with the
new process's pid and start time (or '-' if it could not fork). On its channel, the job process
receives its JobSpec and mark (RULERUN_JOB), may call back (call_main), and sends its (ok,
reason, detail). The zygote keeps its own copy of the channel and, once it has reaped the job
process, sends its exit status there: the last message, so a job is over only when its process
is. Only plain data crosses: an action's exception is turned into text here, so an
exception that can't be pickled still reaches the user, and a value the action tries to send
out (through `run_job`) that can't be pickled fails that job with a clear message.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import traceback
from multiprocessing.connection import Connection

from rulerun import proc
from rulerun.lang.named import InputList
from rulerun.run.executor import JobSpec
from rulerun.run.orphans import MARK

_RULERUN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_conn = None  # the job's channel to the rulerun process, for calls made during an action (run_job)


class Wildcards(dict):
    """Wildcard values by key and by attribute: wildcards['sample'] or wildcards.sample."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no wildcard named '{name}'") from None


def zygote(control: socket.socket, pipefile_path: str, overrides: dict[str, str], workdir: str,
           environ: dict[str, str | None] | None = None) -> None:
    """Entry point of the zygote process: fork a job process for each channel received on
    `control`, report each one's exit, until `control` closes (then stop those still running:
    rulerun is gone). `environ`: variables to set (a value) or unset (None) first: the forkserver
    it comes from keeps the environment it started with, perhaps in an earlier build."""
    for name, value in (environ or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides how a run stops
    os.chdir(workdir)
    _route_cluster_jobs()
    loaded = _Loaded(pipefile_path, overrides)
    proc.set_subreaper(False)  # loads prctl here, once, for every job process to become a subreaper
    jobs: dict[int, int] = {}  # job pid -> the zygote's copy of its channel
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)  # a SIGCHLD wakes the select below
    signal.signal(signal.SIGCHLD, lambda *_: None)
    inherited = [control.fileno(), wake_read, wake_write]
    try:
        while True:
            ready = select.select([control, wake_read], [], [])[0]
            if wake_read in ready:
                _drain(wake_read)
                _reap(jobs)
            if control in ready:
                data, channels, _, _ = socket.recv_fds(control, 1, 4)
                if not data:
                    return
                for channel in channels:
                    control.send(_fork(channel, loaded, jobs, inherited))
    except OSError:
        return  # the control socket broke: rulerun is gone
    finally:
        _stop_jobs(jobs)


def _fork(channel: int, loaded: "_Loaded", jobs: dict[int, int], inherited: list[int]) -> bytes:
    """A job process on `channel`; returns the answer for the rulerun process: its pid and (a
    bound of) its start time, see rulerun.proc.ProcessId."""
    try:
        pid = os.fork()
    except OSError:
        os.close(channel)
        return b"-"
    if pid:
        jobs[pid] = channel
        return f"{pid} {proc.boot_ticks()}".encode()
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # before its pipe is closed: a signal must not write into a reused fd
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in [*inherited, *jobs.values()]:  # the zygote's, and other jobs' channels
            os.close(fd)
        code = _job(channel, loaded)
    finally:
        os._exit(code)


def _job(channel: int, loaded: "_Loaded") -> int:
    """The job process: run one action, stop what it started, report."""
    global _conn
    os.setsid()  # its own session and group: abort stops the group; the session tells what it left
    proc.set_subreaper(True)  # orphans of its processes come back to it, to be stopped before it reports
    conn = _conn = Connection(channel)
    spec, mark = conn.recv()
    os.environ[MARK] = mark  # for processes the action starts, as for a shell job's
    ok, reason, detail, facts = loaded.run(spec)
    _stop_what_it_started()
    conn.send(("result", ok, reason, detail, facts))
    return 0


def _stop_what_it_started() -> None:
    """Stop every process the action started and left running (its own children, and orphans of
    theirs, which this process adopts as the subreaper), and reap them."""
    me = proc.stat(os.getpid())
    proc.stop([p for p in proc.tree(me) if p.pid != me.pid])


def _reap(jobs: dict[int, int]) -> None:
    """Report each job process that has ended on its channel, then close the channel."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = jobs.pop(pid, None)
        if channel is not None:
            conn = Connection(channel)
            try:
                conn.send(("exited", status))
            except OSError:
                pass  # the rulerun process is gone or gave up on the job
            conn.close()


def _stop_jobs(jobs: dict[int, int]) -> None:
    """The rulerun process is gone (or done): no job process of this run may outlive it."""
    running = [p for p in map(proc.stat, jobs) if p is not None]
    proc.stop([member for job in running for member in proc.tree(job)])
    _reap(jobs)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _route_cluster_jobs() -> None:
    """run_job in an action submits through the rulerun process's one DRMAA session."""
    from rulerun.run.cluster import python_api as cluster

    cluster.set_submitter(lambda request: call_main("cluster_run", request))


class _Loaded:
    """The Pipefile as the zygote loaded it: its namespace and every Python action compiled, so
    that a job process only runs one. A Pipefile that can't be loaded fails every job, saying why."""

    def __init__(self, path: str, overrides: dict[str, str]):
        from rulerun.lang.model import PythonAction
        from rulerun.lang.namespace import build_namespace, compile_block
        from rulerun.lang.parse import load_pipefile

        self.error = None
        try:
            from rulerun.lang.config import split_overrides

            # amounts against limits: the run checked them, with its --limit sizes
            pipefile = load_pipefile(path, overrides=split_overrides(overrides)[0], check_amounts=False)
            self.namespace = build_namespace(pipefile, overrides)
            self.rules = pipefile.rules
            self.codes = {rule.index: compile_block(rule.action.source, rule.action.loc)
                          for rule in pipefile.rules if isinstance(rule.action, PythonAction)}
        except BaseException as exc:  # noqa: BLE001 - reported for every job instead
            self.error = f"the worker could not load the Pipefile: {exc}"

    def run(self, spec: JobSpec) -> tuple[bool, str, str, dict]:
        """(ok, reason, detail, facts): facts are JobResult fields the failure report shows."""
        if self.error:
            return False, self.error, "", {}
        from rulerun.run.cluster import python_api as cluster

        cluster.set_shell(spec.shell)  # run_job's commands run with the Pipefile's shell too
        # and its jobs with the rule's name, `queue:`, `cluster:` options and `retries:`
        cluster.set_defaults(cluster.RunJobDefaults(rule=spec.rule, queue=spec.queue,
                                                    options=spec.native_spec, retries=spec.retries))
        rule = self.rules[spec.rule_index]
        scope = dict(self.namespace)
        scope.update(input=InputList(spec.inputs, spec.named_inputs), output=list(spec.outputs),
                     wildcards=Wildcards(spec.wildcards), stem=spec.stem, log=_job_logger(spec),
                     params=spec.params, threads=spec.threads, resources=spec.resources)
        with _redirected(spec.log_path):
            try:
                exec(self.codes[spec.rule_index], scope)
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    return False, f"the action called exit({exc.code!r})", "", {}
            except BaseException as exc:  # noqa: BLE001 - every failure becomes text for the user
                detail = _traceback_text(exc, rule.action.loc.file)
                sys.stderr.write(detail)
                return False, f"{type(exc).__name__}: {_safe_str(exc)}", detail, _cluster_facts(exc)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
        return True, "", "", {}


def _cluster_facts(exc: BaseException) -> dict:
    """What an uncaught ClusterJobError knows of its cluster job (id, stdout, stderr), so the
    failure report shows them as it does for a cluster rule's job; plain strings, to cross."""
    from rulerun.run.cluster.python_api import ClusterJobError

    if not isinstance(exc, ClusterJobError):
        return {}
    return {"job_id": str(exc.job_id) if exc.job_id else None,
            "stdout": str(exc.stdout or ""), "stderr": str(exc.stderr or "")}


def call_main(name: str, *args, **kwargs):
    """Ask the main process to do something for the running action (e.g. submit a cluster job)
    and return its answer. Arguments must be picklable: they cross a process boundary."""
    if _conn is None:
        raise RuntimeError("not inside a rulerun worker")
    import pickle

    try:
        _conn.send(("call", name, args, kwargs))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"a value given to {name}() can't be sent to the rulerun process "
                        f"(it must be picklable): {exc}") from None
    kind, ok, value = _conn.recv()
    if not ok:
        raise value
    return value


def _job_logger(spec: JobSpec) -> logging.Logger:
    logger = logging.getLogger(f"rulerun.job.{spec.rule}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return logger


class _redirected:
    """fd 1 and 2 (so print(), logging and child processes) go to the job's log for its duration."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])


def _traceback_text(exc: BaseException, pipefile: str) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # the action's own frames: rulerun's (this worker, run_job raising) say nothing to its author
    mine = [f for f in frames if not f.filename.startswith(_RULERUN_DIR)]
    lines = traceback.format_list(mine)
    lines += traceback.format_exception_only(type(exc), exc) if _str_ok(exc) else [f"{type(exc).__name__}\n"]
    return "Traceback (most recent call last):\n" + "".join(lines)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
        return "(the exception's message could not be shown)"


def _str_ok(exc: BaseException) -> bool:
    try:
        str(exc)
        return True
    except Exception:  # noqa: BLE001
        return False
