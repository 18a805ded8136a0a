"""The Python worker process: loads the Pipefile's top-level namespace once, then runs Python
actions sent to it one at a time, each with its stdout, stderr and `log` going to the job's log.

Only plain data crosses the process boundary: a JobSpec in, a (ok, reason, detail) tuple out.
An action's exception is turned into text here, so an exception that can't be pickled still
reaches the user. A value the action tries to send out (through `run_job`) that can't be
pickled fails that job with a clear message.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from typing import Any

from rulerun.run.executor import JobSpec

_conn = None  # the pipe to the main process, for calls made during an action (run_job)


class Wildcards(dict):
    """Wildcard values by key and by attribute: wildcards['sample'] or wildcards.sample."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no wildcard named '{name}'") from None


def main(conn, pipefile_path: str, overrides: dict[str, str], workdir: str,
         environ: dict[str, str | None] | None = None) -> None:
    """Entry point of a worker process; `environ`: variables to set (a value) or unset (None)."""
    global _conn
    _conn = conn
    for name, value in (environ or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides how a run stops
    os.setpgid(0, 0)  # so the whole group (the action's own children too) can be stopped
    os.chdir(workdir)
    _route_cluster_jobs()
    try:
        namespace, rules = _load(pipefile_path, overrides)
    except BaseException as exc:  # noqa: BLE001 - reported for every job instead
        namespace, rules, load_error = None, None, f"the worker could not load the Pipefile: {exc}"
    else:
        load_error = None
    codes: dict[int, Any] = {}
    while True:
        try:
            spec = conn.recv()
        except EOFError:
            return
        if spec is None:
            return
        if load_error:
            conn.send(("result", False, load_error, ""))
            continue
        ok, reason, detail = _run(spec, namespace, rules, codes)
        conn.send(("result", ok, reason, detail))


def _route_cluster_jobs() -> None:
    """run_job in an action submits through the rulerun process's one DRMAA session."""
    from rulerun.run.cluster import session as cluster

    cluster.set_submitter(lambda request: call_main("cluster_run", request))


def _load(path: str, overrides: dict[str, str]):
    from rulerun.lang.namespace import build_namespace
    from rulerun.lang.parse import load_pipefile

    from rulerun.lang.config import split_overrides

    pipefile = load_pipefile(path, overrides=split_overrides(overrides)[0], check_amounts=False)  # the run checked them
    return build_namespace(pipefile, overrides), pipefile.rules


def _run(spec: JobSpec, namespace: dict, rules, codes: dict) -> tuple[bool, str, str]:
    from rulerun.lang.namespace import compile_block
    from rulerun.run.cluster import session as cluster

    cluster.set_shell(spec.shell)  # run_job's commands run with the Pipefile's shell too
    rule = rules[spec.rule_index]
    code = codes.get(spec.rule_index)
    if code is None:
        code = codes[spec.rule_index] = compile_block(rule.action.source, rule.action.loc)
    scope = dict(namespace)
    scope.update(input=list(spec.inputs), output=list(spec.outputs), wildcards=Wildcards(spec.wildcards),
                 stem=spec.stem, log=_job_logger(spec), params=spec.params, threads=spec.threads,
                 resources=spec.resources)
    with _redirected(spec.log_path):
        try:
            exec(code, scope)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                return False, f"the action called exit({exc.code!r})", ""
        except BaseException as exc:  # noqa: BLE001 - every failure becomes text for the user
            detail = _traceback_text(exc, rule.action.loc.file)
            sys.stderr.write(detail)
            return False, f"{type(exc).__name__}: {_safe_str(exc)}", detail
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    return True, "", ""


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
    mine = [f for f in frames if not f.filename.endswith(("rulerun/run/worker.py",))]
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
