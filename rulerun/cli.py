"""The command line: argv -> Options -> a run; the one place where errors become exit codes."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

from rulerun import __version__
from rulerun.errors import RulerunError, UsageError
from rulerun.options import Options

_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(message, hint="see rulerun --help")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rulerun", description="Run the jobs that bring TARGETs up to date, as a Pipefile says.")
    p.add_argument("words", nargs="*", metavar="TARGET | NAME=VALUE",
                   help="targets to make (default: the first rule or task without a pattern); NAME=VALUE overrides a variable")
    p.add_argument("-f", dest="file", default="Pipefile", metavar="FILE", help="the Pipefile (default ./Pipefile)")
    p.add_argument("-C", dest="directory", metavar="DIR", help="change to DIR first")
    p.add_argument("-j", dest="jobs", type=int, default=0, metavar="N", help="at most N jobs at once (default: CPUs)")
    p.add_argument("-n", "--dry-run", action="store_true", help="print the jobs that would run, and why; run nothing")
    p.add_argument("-k", "--keep-going", action="store_true", help="go on with jobs that don't depend on a failed one")
    p.add_argument("-B", "--force", action="store_true", help="treat every job leading to the targets as out of date")
    p.add_argument("--touch", action="store_true", help="bring outputs up to date without running actions")
    p.add_argument("--local", action="store_true", help="run cluster rules on this machine")
    p.add_argument("--cluster", action="store_true", help="submit every shell job to the cluster")
    p.add_argument("--scheduler", choices=("drmaa", "slurm"), default=None,
                   help="the cluster's scheduler (default: $RULERUN_SCHEDULER, else drmaa when "
                        "DRMAA_LIBRARY_PATH is set, else slurm when sbatch is on PATH)")
    p.add_argument("--poll", dest="poll_seconds", type=float, default=2.0, metavar="SECONDS",
                   help="ask the cluster about jobs every SECONDS (default 2)")
    p.add_argument("--pending-warn", dest="pending_warn", type=float, default=300.0, metavar="SECONDS",
                   help="say once, with the scheduler's reason, when a cluster job is queued longer "
                        "than SECONDS (default 300; Slurm)")
    p.add_argument("--watch", action="store_true", help="after the build, watch the inputs and rebuild what changes")
    p.add_argument("--graph", action="store_true", help="print the job graph in Graphviz DOT and exit")
    p.add_argument("--list", dest="list_rules", action="store_true", help="list rules and tasks with their lines")
    p.add_argument("-q", "--quiet", action="count", default=0, help="only errors")
    p.add_argument("-v", "--verbose", action="count", default=0, help="print every command")
    p.add_argument("--version", action="version", version=f"rulerun {__version__}")
    return p


def parse_args(argv: list[str]) -> Options:
    args = _parser().parse_args(argv)
    if args.jobs < 0:
        raise UsageError(f"-j needs a positive number, not {args.jobs}")
    if args.local and args.cluster:
        raise UsageError("--local and --cluster contradict each other")
    options = Options(file=args.file, directory=args.directory, jobs=args.jobs or os.cpu_count() or 1,
                      dry_run=args.dry_run, keep_going=args.keep_going, force=args.force, touch=args.touch,
                      local=args.local, cluster=args.cluster, watch=args.watch, graph=args.graph,
                      list_rules=args.list_rules, verbosity=args.verbose - args.quiet,
                      scheduler=args.scheduler, poll_seconds=args.poll_seconds,
                      pending_warn=args.pending_warn)
    for word in args.words:
        match = _OVERRIDE.match(word)
        if match:
            options.overrides[match.group(1)] = match.group(2)
        else:
            options.targets.append(word)
    return options


def main(argv: list[str] | None = None) -> int:
    """Run rulerun with `argv`; return the exit status (0 ok, 1 a job failed, 2 a user error)."""
    restartable = argv is None   # only the program itself may be re-executed, not a caller's process
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse_args(argv)
        options.restart_argv = list(argv) if restartable else None
        options.start_dir = os.getcwd()
        if options.directory:
            try:
                os.chdir(options.directory)
            except OSError as exc:
                raise UsageError(f"can't change to directory '{options.directory}': {exc.strerror}") from None
        from rulerun.plan import record

        basis = record.look(options)
        if basis == record.UP_TO_DATE:  # answered without loading the Pipefile
            if options.verbosity >= 0:
                sys.stdout.write(record.NOTHING_TO_DO + "\n")
            return 0
        if options.watch:
            return _watch(options)
        from rulerun.app import run

        return run(options, basis)
    except RulerunError as exc:
        _say(sys.stdout, "")
        _say(sys.stderr, f"rulerun: {exc.show()}\n" if not hasattr(exc, "loc") else exc.show() + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        _say(sys.stderr, "rulerun: interrupted\n")
        return 130


def _say(stream, text: str) -> None:
    """Write `text` and flush, unless the terminal is gone (EIO after a dropped ssh session):
    the exit status must still say how the run ended."""
    try:
        stream.write(text)
        stream.flush()
    except OSError:
        pass


def _watch(options: Options) -> int:
    """--watch: build, then rebuild on every change, until Ctrl-C (a Pipefile that is broken
    is reported and waited for; one that does not exist is a usage error)."""
    from rulerun.ui import make_reporter
    from rulerun.watch import watch

    if not os.path.exists(options.file):
        raise UsageError(f"no Pipefile here: '{options.file}' does not exist in {os.getcwd()}",
                         hint="run rulerun in a directory with a Pipefile, or name one with -f FILE (or -C DIR)")
    return watch(options, make_reporter(options.verbosity))


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def entry() -> None:
    """The console script: SIGTERM, and SIGHUP (the terminal went away: a dropped ssh session),
    stop a run as Ctrl-C does. One ignored when rulerun started stays ignored (nohup), as in make.
    File names that are not UTF-8 are printed as the bytes they are (as ls does), whatever the
    terminal's encoding says."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _terminate)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    sys.exit(main())
