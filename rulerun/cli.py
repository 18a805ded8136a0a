"""The command line: argv -> Options -> a run; the one place where errors become exit codes."""

from __future__ import annotations

import os
import re
import signal
import sys

from rulerun import __version__
from rulerun.errors import RulerunError, UsageError
from rulerun.options import Options

_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


_EXAMPLES = """\
examples:
  rulerun                      make the first rule or task of ./Pipefile
  rulerun -n -v report.md      what would run to make report.md, why, and each command
  rulerun -j 8 -k all          eight jobs at once; go on past failures
  rulerun --watch              build, then rebuild whatever an edit affects
  rulerun --report run.html    the last run as a page: timeline, rules, failures

Pipefile language: docs/pipefile.md; a first pipeline step by step: docs/tutorial.md
"""


def _parser():
    import argparse  # here, not at the top: a plain command line needs none (quick_options)

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:
            raise UsageError(message, hint="see rulerun --help")

    p = _Parser(prog="rulerun", usage="rulerun [TARGET ...] [NAME=VALUE ...] [options]",
                description="Run the jobs that bring TARGETs up to date, as a Pipefile says.",
                epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="*", metavar="TARGET | NAME=VALUE",
                   help="targets to make (default: the first rule or task without a pattern); NAME=VALUE overrides a variable")
    where = p.add_argument_group("where")
    where.add_argument("-f", dest="file", default="Pipefile", metavar="FILE", help="the Pipefile (default ./Pipefile)")
    where.add_argument("-C", dest="directory", metavar="DIR", help="change to DIR first")
    how = p.add_argument_group("how to run")
    how.add_argument("-j", dest="jobs", type=int, default=None, metavar="N", help="at most N jobs at once (default: CPUs)")
    how.add_argument("-k", "--keep-going", action="store_true", help="go on with jobs that don't depend on a failed one")
    how.add_argument("-B", "--force", action="store_true", help="treat every job leading to the targets as out of date")
    how.add_argument("--touch", action="store_true", help="bring outputs up to date without running actions")
    how.add_argument("--watch", action="store_true", help="after the build, watch the inputs and rebuild what changes")
    cluster = p.add_argument_group("cluster")
    cluster.add_argument("--local", action="store_true", help="run cluster rules on this machine")
    cluster.add_argument("--cluster", action="store_true", help="submit every shell job to the cluster")
    cluster.add_argument("--scheduler", choices=("drmaa", "slurm"), default=None,
                         help="the cluster's scheduler (default: $RULERUN_SCHEDULER, else drmaa when "
                              "DRMAA_LIBRARY_PATH is set, else slurm when sbatch is on PATH)")
    cluster.add_argument("--poll", dest="poll_seconds", type=float, default=2.0, metavar="SECONDS",
                         help="ask the cluster about jobs every SECONDS (default 2)")
    cluster.add_argument("--pending-warn", dest="pending_warn", type=float, default=300.0, metavar="SECONDS",
                         help="say once, with the scheduler's reason, when a cluster job is queued longer "
                              "than SECONDS (default 300; Slurm)")
    look = p.add_argument_group("look without running")
    look.add_argument("-n", "--dry-run", action="store_true", help="print the jobs that would run, and why; run nothing")
    look.add_argument("--list", dest="list_rules", action="store_true", help="list rules and tasks with their lines")
    look.add_argument("--graph", action="store_true", help="print the job graph in Graphviz DOT and exit")
    look.add_argument("--report", metavar="FILE.html",
                      help="write the last run as one self-contained page (timeline, rules, failures) and exit")
    language = p.add_argument_group("values for the Pipefile")
    language.add_argument("--limit", dest="limits", action="append", default=[], metavar="NAME=N",
                          help="set the size of limit NAME for this run (repeatable)")
    language.add_argument("--config", dest="config", action="append", default=[], metavar="KEY=VALUE",
                          help="override a top-level key of the config (VALUE read as YAML; repeatable)")
    how.add_argument("--keep-temp", action="store_true", help="keep temp: outputs once their readers ran")
    tidy = p.add_argument_group("other commands")
    tidy.add_argument("--clean", action="store_true",
                      help="remove what the targets' jobs make and their records (with -n: list them)")
    tidy.add_argument("--completion", choices=["bash", "zsh"],
                      help="print a shell completion script: eval \"$(rulerun --completion bash)\"")
    tidy.add_argument("--version", action="version", version=f"rulerun {__version__}")
    tidy.add_argument("--names", action="store_true", help=argparse.SUPPRESS)  # for the completion scripts
    shown = p.add_argument_group("output")
    shown.add_argument("-q", "--quiet", action="count", default=0, help="only errors")
    shown.add_argument("-v", "--verbose", action="count", default=0, help="print every command (with -n too)")
    return p


def quick_options(argv: list[str]) -> Options | None:
    """The Options of a command line of targets, NAME=VALUE words and `-j N` alone (the way a
    build is usually asked for), as parse_args makes them, without argparse: its import and
    parser cost about 7 ms, a tenth of a no-op over 10,000 chains. None for anything else
    (another option, a word after an option that follows words, which argparse refuses),
    which parse_args reads. tests/test_cli.py holds the two to the same answers."""
    words: list[str] = []
    jobs = None
    after_words = False  # an option came after words: argparse takes no more words then
    index = 0
    while index < len(argv):
        word = argv[index]
        if word.startswith("-"):
            if word == "-j" and index + 1 < len(argv):
                value, index = argv[index + 1], index + 2
            elif word.startswith("-j") and len(word) > 2:
                value, index = word[2:], index + 1
            else:
                return None
            if not (value.isascii() and value.isdigit()) or int(value) < 1:
                return None  # parse_args says what is wrong with it
            jobs = int(value)
            after_words = after_words or bool(words)
            continue
        if after_words:
            return None
        words.append(word)
        index += 1
    options = Options(jobs=jobs or os.cpu_count() or 1)
    _take_words(options, words)
    return options


def _take_words(options: Options, words: list[str]) -> None:
    """TARGET and NAME=VALUE words, in the order given."""
    for word in words:
        match = _OVERRIDE.match(word)
        if match:
            options.overrides[match.group(1)] = match.group(2)
        else:
            options.targets.append(word)


def parse_args(argv: list[str]) -> Options:
    args = _parser().parse_args(argv)
    if args.jobs is not None and args.jobs < 1:  # make's -j 0 means "no limit": say it is not ours
        raise UsageError(f"-j needs a positive number of jobs, not {args.jobs}",
                         hint="leave -j out to run as many jobs as there are CPUs")
    if args.local and args.cluster:
        raise UsageError("--local and --cluster contradict each other")
    if args.completion:
        from rulerun.completion import script

        sys.stdout.write(script(args.completion, sorted(o for a in _parser()._actions for o in a.option_strings
                                                        if o != "--names")))
        raise SystemExit(0)
    options = Options(file=args.file, directory=args.directory, jobs=args.jobs or os.cpu_count() or 1,
                      dry_run=args.dry_run, keep_going=args.keep_going, force=args.force, touch=args.touch,
                      local=args.local, cluster=args.cluster, watch=args.watch, graph=args.graph,
                      list_rules=args.list_rules, clean=args.clean, report=args.report,
                      completion="names" if args.names else None, verbosity=args.verbose - args.quiet,
                      scheduler=args.scheduler, poll_seconds=args.poll_seconds, pending_warn=args.pending_warn)
    options.limit_sizes = _limit_sizes(args.limits)
    options.keep_temp = args.keep_temp
    for word in args.config:
        key, equals, value = word.partition("=")
        if not equals or not key.strip():
            raise UsageError(f"--config {word}: expected KEY=VALUE", hint="e.g. --config threads=8")
        options.config_overrides[key.strip()] = value
    _take_words(options, args.words)
    return options


def _limit_sizes(words: list[str]) -> dict[str, int]:
    """--limit NAME=N, each N a whole number of at least 1."""
    sizes: dict[str, int] = {}
    for word in words:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)", word.strip())
        if not match or int(match.group(2)) < 1:
            raise UsageError(f"--limit {word}: expected NAME=N with N a whole number of at least 1",
                             hint="e.g. --limit mem_mb=16000")
        sizes[match.group(1)] = int(match.group(2))
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Run rulerun with `argv`; return the exit status (0 ok, 1 a job failed, 2 a user error)."""
    restartable = argv is None   # only the program itself may be re-executed, not a caller's process
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = quick_options(argv) or parse_args(argv)
        options.restart_argv = list(argv) if restartable else None
        options.start_dir = os.getcwd()
        if options.directory:
            try:
                os.chdir(options.directory)
            except OSError as exc:
                raise UsageError(f"can't change to directory '{options.directory}': {exc.strerror}") from None
        if options.completion == "names":
            from rulerun.completion import print_names

            return print_names(options)
        if options.report:
            from rulerun.report import write_report

            _say(sys.stdout, write_report(options.report) + "\n")
            return 0
        from rulerun.plan import record

        basis = None if options.clean else record.look(options)
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
    return watch(options, make_reporter(options.verbosity, touching=options.touch))


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
