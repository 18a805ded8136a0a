"""Cluster submission: rulerun against a plain qsub / sbatch loop, on the real cells.

For each scheduler -- drmaa (Grid Engine) and slurm (Slurm) -- each round runs N trivial
cluster jobs, each `echo I > out/I.txt`, twice, each time from a clean directory:

  loop     a bash loop of N `qsub -b y -terse` / `sbatch --parsable --wrap` submissions, then
           waiting until none of its jobs is left in `qstat` / `squeue` (asked every --poll s)
  rulerun  `rulerun --scheduler S -j N all` on a Pipefile of one pattern rule with a
           `cluster:` line (-j N: every job may be in flight at once)

and takes, for each:

  wall       from its start to its exit; every output must then hold its number
  first/last seconds from the start to the first and to the last submission
  rate       submissions per second, (N - 1) / (last - first)
  written    seconds from the start to the last output's mtime (the last job's work done)
  after      wall - written: noticing that the jobs ended, and what the runner does then
  overhead   rulerun's wall minus the loop's: the median over the rounds of each round's
             difference (the two run back to back, so they share the machine's load)

A submission's time is when its job id came back from the scheduler. The loop writes
$EPOCHREALTIME after each qsub/sbatch. rulerun writes each id with the time into its state
database (table cluster_jobs) before it waits on the job and deletes the row once the job
ended, so a trigger put into the database before the run keeps a copy (one INSERT per job).

Nothing is started here: the cells must be up (as root, `bash scripts/sge.sh start` and
`bash scripts/slurm.sh start`, as scripts/test.sh does); their variables come from
`bash scripts/sge.sh env` and `bash scripts/slurm.sh env`. The cells may be shared: each run
first waits (up to --quiet-wait s) for the queue to empty, and notes the jobs of others it saw
then and the job ids others took between its first and its last submission. Jobs that a run
leaves behind (a timeout, Ctrl-C) are cancelled; the scratch directory bench/work/cluster is
removed at the end.

  python bench/cluster.py                          # both schedulers, 200 jobs, 3 rounds
  python bench/cluster.py --schedulers slurm --count 50 --runs 1

Exit status: 0 when every run made every output and left nothing queued, 1 otherwise, 2 on
bad usage or when a cell is not running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from run import REPO, RESULTS, WORK, Measurement, Tool, csv, make_tool, run_command, summarize, tool_version

sys.path.insert(0, str(REPO))   # this checkout's rulerun, for the definition of its record

SCRATCH = WORK / "cluster"
STATE_DB = Path(".rulerun") / "state.db"   # rulerun's, relative to the project (store/layout.py)
QUEUE_POLL = 2.0        # seconds between looks at the queue while waiting for it to empty
CANCEL_WAIT = 60.0      # seconds cancelled jobs get to leave the queue

# Keeps what rulerun's record of submitted jobs (store/cluster_jobs.py) deletes once a job ended.
TRIGGER = """
CREATE TABLE IF NOT EXISTS bench_submits (job_id TEXT, submitted REAL);
CREATE TRIGGER IF NOT EXISTS bench_submit AFTER INSERT ON cluster_jobs
BEGIN INSERT INTO bench_submits VALUES (NEW.job_id, NEW.submitted); END;
"""


@dataclass(frozen=True)
class Cell:
    """One scheduler's cell: how rulerun names it and how a plain shell loop drives it."""

    scheduler: str        # rulerun's --scheduler
    name: str
    script: str           # the project's start script, relative to the checkout
    submitter: str        # the loop's submission program
    submit: str           # bash: its arguments submitting job $i (writing out/$i.txt); it prints the id
    live: str             # bash: the id of every job queued or running, one a line
    cancel: str           # the command that cancels the jobs whose ids follow it
    version: str          # the command printing the scheduler's version


CELLS = {
    "drmaa": Cell("drmaa", "Grid Engine", "scripts/sge.sh", "qsub",
                  '-b y -terse -cwd -o /dev/null -e /dev/null -N bench-loop "echo $i > out/$i.txt"',
                  "qstat -u '*' | awk 'NR > 2 {print $1}'", "qdel", "qstat -help"),
    "slurm": Cell("slurm", "Slurm", "scripts/slurm.sh", "sbatch",
                  '--parsable -o /dev/null -e /dev/null -J bench-loop --wrap "echo $i > out/$i.txt"',
                  "squeue -h -o %i", "scancel", "sinfo --version"),
}


# ---------------------------------------------------------------- the cells


def cell_env(cell: Cell) -> dict | None:
    """The variables that reach `cell` (its script's `export` lines), or None when one of its
    daemons is down."""
    script = str(REPO / cell.script)
    status = subprocess.run(["bash", script, "status"], capture_output=True, text=True)
    if status.returncode != 0:
        return None
    exports = subprocess.run(["bash", script, "env"], capture_output=True, text=True, check=True)
    env = {}
    for line in exports.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            for word in words[1:]:
                key, _, value = word.partition("=")
                env[key] = value
    return env


def live_ids(cell: Cell, env: dict) -> set[str] | None:
    """The ids of every job in the queue (anyone's), or None when the scheduler did not answer."""
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cell.live], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    return set(proc.stdout.split()) if proc.returncode == 0 else None


def wait_for_empty_queue(cell: Cell, env: dict, seconds: float) -> int:
    """Wait up to `seconds` for the shared queue to empty; how many jobs were in it then."""
    deadline = time.monotonic() + seconds
    while True:
        jobs = live_ids(cell, env) or set()
        if not jobs or time.monotonic() >= deadline:
            return len(jobs)
        time.sleep(QUEUE_POLL)


def cancel_leftovers(cell: Cell, env: dict, ours: set[str]) -> int:
    """Cancel those of `ours` still queued or running and wait for them to go; how many there were."""
    left = ours & (live_ids(cell, env) or set())
    if left:
        subprocess.run([cell.cancel, *sorted(left)], env=env, capture_output=True)
        deadline = time.monotonic() + CANCEL_WAIT
        while ours & (live_ids(cell, env) or set()) and time.monotonic() < deadline:
            time.sleep(1)
    return len(left)


def scheduler_version(cell: Cell, env: dict) -> str:
    proc = subprocess.run(["bash", "-c", cell.version], env=env, capture_output=True, text=True)
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "?"


# ---------------------------------------------------------------- the two runners


def pipefile(n: int) -> str:
    """N outputs out/I.txt, each from one cluster job of a pattern rule."""
    outputs = " ".join(f"out/{i}.txt" for i in range(n))
    return (f"task all : {outputs}\n\n"
            "out/%.txt :\n"
            "    cluster:\n"
            "    shell: echo {stem} > {output}\n")


def loop_script(cell: Cell, n: int, poll: float, submitter: str) -> str:
    """A plain bash loop: N submissions by `submitter`, each one's time and id into `submits`,
    then a look at the queue every `poll` seconds until none of them is in it."""
    return f"""\
set -euo pipefail
export LC_ALL=C   # $EPOCHREALTIME with a decimal point
mkdir -p out
for i in $(seq 0 {n - 1}); do
    id=$({shlex.quote(submitter)} {cell.submit})
    echo "$EPOCHREALTIME ${{id%%;*}}" >> submits
done
cut -d' ' -f2 submits > ids
while true; do
    live=$({cell.live}) || live=$(cat ids)   # no answer this time: ask again
    grep -qxF -f ids <<< "$live" || break
    sleep {poll:g}
done
"""


def prepare_rulerun(root: Path, n: int) -> None:
    """The Pipefile, and a state database whose trigger keeps every submission rulerun records.

    The record's table is made as rulerun makes it (rulerun then adds the rest of its schema
    to this database as to any database without it)."""
    from rulerun.store.cluster_jobs import TABLE

    (root / "Pipefile").write_text(pipefile(n))
    (root / STATE_DB).parent.mkdir()
    with contextlib.closing(sqlite3.connect(root / STATE_DB)) as db:
        db.execute(TABLE)
        db.executescript(TRIGGER)   # commits


def rulerun_submits(root: Path) -> list[tuple[float, str]]:
    try:
        with contextlib.closing(sqlite3.connect(root / STATE_DB)) as db:
            rows = db.execute("SELECT submitted, job_id FROM bench_submits").fetchall()
    except sqlite3.Error:
        return []
    return sorted(rows)


def loop_submits(root: Path) -> list[tuple[float, str]]:
    try:
        lines = (root / "submits").read_text().splitlines()
    except OSError:
        return []
    return sorted((float(when), job_id) for when, job_id in (line.split() for line in lines))


def last_written(root: Path) -> float | None:
    times = [p.stat().st_mtime for p in (root / "out").iterdir()] if (root / "out").is_dir() else []
    return max(times, default=None)


def check_outputs(root: Path, n: int) -> list[str]:
    """What is wrong with out/ after a run of n jobs ([] when each out/I.txt holds I)."""
    expected = {f"{i}.txt": f"{i}\n" for i in range(n)}
    found = {p.name: p.read_text() for p in (root / "out").iterdir()} if (root / "out").is_dir() else {}
    problems = []
    if expected.keys() - found.keys():
        problems.append(f"{len(expected.keys() - found.keys())} outputs missing")
    if found.keys() - expected.keys():
        problems.append(f"unexpected files in out/: {', '.join(sorted(found.keys() - expected.keys())[:5])}")
    wrong = sorted(k for k in expected.keys() & found.keys() if found[k] != expected[k])
    if wrong:
        problems.append(f"wrong content: {', '.join(wrong[:5])}")
    return problems


# ---------------------------------------------------------------- one run


@dataclass
class Trial:
    """One run of N jobs by one runner, and when each submission came back."""

    runner: str                        # loop or rulerun
    measurement: Measurement
    started: float                     # epoch seconds
    submits: list[tuple[float, str]] = field(default_factory=list)   # (epoch seconds, job id)
    written: float | None = None       # epoch seconds the last output was written
    queued_before: int = 0             # jobs of others in the queue when it started
    load: float = 0.0                  # 1-minute load average when it started

    @property
    def first(self) -> float | None:
        return self.submits[0][0] - self.started if self.submits else None

    @property
    def last(self) -> float | None:
        return self.submits[-1][0] - self.started if self.submits else None

    @property
    def after(self) -> float | None:
        """From the last output written to the runner's exit."""
        return self.started + self.measurement.wall - self.written if self.written else None

    @property
    def rate(self) -> float | None:
        span = self.submits[-1][0] - self.submits[0][0] if len(self.submits) > 1 else 0
        return (len(self.submits) - 1) / span if span > 0 else None

    @property
    def interleaved(self) -> int | None:
        """Job ids others took between this run's first and last submission (ids are counted up)."""
        try:
            ids = [int(job_id) for _, job_id in self.submits]
        except ValueError:
            return None
        return max(ids) - min(ids) + 1 - len(ids) if ids else None


def run_trial(cell: Cell, runner: str, tool: Tool, exports: dict, args) -> Trial:
    """One runner's N jobs from a clean directory; whatever it left queued is cancelled."""
    root = args.work / cell.scheduler / runner
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if runner == "rulerun":
        prepare_rulerun(root, args.count)
        poll = ["--poll", f"{args.rulerun_poll:g}"] if args.rulerun_poll else []
        argv = [*tool.base, "--scheduler", cell.scheduler, "-j", str(args.count), *poll, "all"]
        env = {**tool.env, **exports}
        read_submits = rulerun_submits
    else:
        (root / "loop.sh").write_text(loop_script(cell, args.count, args.poll, args.submitters[cell.submitter]))
        argv = ["bash", "loop.sh"]
        env = {**os.environ, **exports}
        read_submits = loop_submits
    queued = wait_for_empty_queue(cell, env, args.quiet_wait)
    trial = Trial(runner, Measurement("error"), time.time(), queued_before=queued, load=os.getloadavg()[0])
    try:
        log = args.work / f"{cell.scheduler}-{runner}.log"
        trial.measurement = run_command(argv, root, env, args.timeout, log)
    finally:
        trial.submits = read_submits(root)
        trial.written = last_written(root)
        left = cancel_leftovers(cell, env, {job_id for _, job_id in trial.submits})
    judge(trial, root, args.count, left)
    return trial


def judge(trial: Trial, root: Path, n: int, left: int) -> None:
    """A run that exited well is a failure when an output is wrong or a job was left queued."""
    m = trial.measurement
    problems = check_outputs(root, n) if m.ok else []
    if m.ok and len(trial.submits) != n:
        problems.append(f"{len(trial.submits)} submissions recorded, not {n}")
    if left:
        problems.append(f"{left} of its jobs were left in the queue (cancelled)")
    if problems and m.status in ("ok", "fail"):
        m.status = "fail"
    if problems:
        m.message = "; ".join(filter(None, [m.message.splitlines()[0] if m.message else "", *problems]))


def report(cell: Cell, round_no: int, t: Trial) -> None:
    m = t.measurement
    line = f"  {cell.name:11} round {round_no}  {t.runner:7} {m.status:7} {m.wall:8.2f} s"
    if t.rate:
        line += f"  {t.rate:6.1f} submissions/s, first at {t.first:.2f} s, last at {t.last:.2f} s"
    if t.after is not None:
        line += f", exit {t.after:.2f} s after the last output"
    notes = [f"{t.queued_before} jobs of others queued at its start" if t.queued_before else "",
             f"{t.interleaved} ids taken by others meanwhile" if t.interleaved else "",
             m.message.splitlines()[0] if m.message else ""]
    print(line + "".join(f"  [{n}]" for n in notes if n), flush=True)


def run_cell(cell: Cell, exports: dict, tool: Tool, args) -> list[tuple[Trial, Trial]]:
    """--runs rounds of (loop, rulerun), back to back."""
    rounds = []
    for r in range(1, args.runs + 1):
        pair = []
        for runner in ("loop", "rulerun"):
            trial = run_trial(cell, runner, tool, exports, args)
            report(cell, r, trial)
            pair.append(trial)
        rounds.append((pair[0], pair[1]))
    return rounds


# ---------------------------------------------------------------- summary


def median_of(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def overhead(rounds: list[tuple[Trial, Trial]]) -> str:
    diffs = [r.measurement.wall - l.measurement.wall for l, r in rounds if l.measurement.ok and r.measurement.ok]
    ratios = [r.measurement.wall / l.measurement.wall for l, r in rounds
              if l.measurement.ok and r.measurement.ok and l.measurement.wall]
    if not diffs:
        return "–"
    return f"{statistics.median(diffs):+.2f} s ({statistics.median(ratios):.2f}×)"


def table(results: dict[str, list[tuple[Trial, Trial]]], submitters: dict[str, str]) -> str:
    head = ["scheduler", "runner", "wall", "first submission", "last submission", "submissions/s",
            "last output written", "exit after it", "overhead (rulerun − loop)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scheduler, rounds in results.items():
        cell = CELLS[scheduler]
        for index, runner in enumerate(("loop", "rulerun")):
            trials = [pair[index] for pair in rounds]
            summary = summarize([t.measurement for t in trials])
            wall = f"{summary.wall:.2f} s" if summary.status == "ok" else summary.cell()
            rate = median_of(t.rate for t in trials)
            name = f"plain {submitters[cell.submitter]} loop" if runner == "loop" else "rulerun"
            cells = [cell.name, name, wall, seconds(median_of(t.first for t in trials)),
                     seconds(median_of(t.last for t in trials)), "–" if rate is None else f"{rate:.1f}",
                     seconds(median_of(t.written - t.started for t in trials if t.written)),
                     seconds(median_of(t.after for t in trials)),
                     overhead(rounds) if runner == "rulerun" else ""]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def environment(tool: Tool, cells: list[tuple[Cell, dict]], args) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
             f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"load average {load} at the start",
             f"- jobs: {args.count} per run (`echo I > out/I.txt`), rulerun -j {args.count}; rounds: "
             f"{args.runs}, figures are medians; the loop looks at the queue every {args.poll:g} s, "
             f"rulerun {'every %g s (--poll)' % args.rulerun_poll if args.rulerun_poll else 'at its default'}",
             f"- rulerun: {tool_version(tool)} ({tool.note})"]
    for cell, exports in cells:
        version = scheduler_version(cell, {**os.environ, **exports})
        lines.append(f"- {cell.name}: {version} (rulerun --scheduler {cell.scheduler})")
    return "\n".join(lines)


def save(results: dict[str, list[tuple[Trial, Trial]]], text: str, args) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    settings = {k: getattr(args, k) for k in ("count", "runs", "poll", "rulerun_poll", "submitters", "in_place")}
    data = {"summary": text, "settings": settings,
            "runs": {s: [[{**asdict(t), "rate": t.rate, "first": t.first, "last": t.last,
                           "after": t.after, "interleaved": t.interleaved} for t in pair] for pair in rounds]
                     for s, rounds in results.items()}}
    path.write_text(json.dumps(data, indent=1))
    return path


# ---------------------------------------------------------------- command line


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Cluster submission: N trivial cluster jobs by rulerun against a plain "
                    "qsub/sbatch loop, on the running Grid Engine and Slurm cells "
                    "(bash scripts/sge.sh start, bash scripts/slurm.sh start: not started here).")
    p.add_argument("--schedulers", type=csv(str), default=list(CELLS),
                   help="comma list of drmaa (Grid Engine), slurm (default: both)")
    p.add_argument("--count", type=int, default=200, help="jobs per run (default 200); rulerun gets -j COUNT")
    p.add_argument("--runs", type=int, default=3, help="rounds, each the loop then rulerun (default 3)")
    p.add_argument("--poll", type=float, default=2.0,
                   help="seconds between the loop's looks at the queue (default 2, as rulerun's --poll)")
    p.add_argument("--rulerun-poll", type=float, metavar="SECONDS",
                   help="pass --poll SECONDS to rulerun (default: rulerun's own)")
    p.add_argument("--qsub", default="qsub", metavar="PROGRAM",
                   help="the loop's qsub (default: qsub on PATH; Debian's is a shell wrapper that "
                        "costs about 0.1 s a call, /usr/lib/gridengine/qsub is the program itself)")
    p.add_argument("--sbatch", default="sbatch", metavar="PROGRAM",
                   help="the loop's sbatch (default: sbatch on PATH)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run (default 600)")
    p.add_argument("--quiet-wait", type=float, default=300,
                   help="seconds to wait before each run for the shared queue to empty (default 300)")
    p.add_argument("--in-place", action="store_true",
                   help="run this checkout's rulerun as it is instead of installing it into bench/.venv-rulerun")
    args = p.parse_args(argv)
    for name in args.schedulers:
        if name not in CELLS:
            p.error(f"unknown scheduler {name!r} (choose from {', '.join(CELLS)})")
    if args.count < 2 or args.runs < 1:
        p.error("--count must be at least 2 and --runs at least 1")
    args.work = SCRATCH
    args.submitters = {"qsub": args.qsub, "sbatch": args.sbatch}
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    cells = []
    for name in args.schedulers:
        cell = CELLS[name]
        exports = cell_env(cell)
        if exports is None:
            print(f"cluster.py: {cell.name} is not running; start it first (as root): "
                  f"bash {cell.script} start", file=sys.stderr)
            return 2
        cells.append((cell, exports))
    tool = make_tool("rulerun", installed=not args.in_place)
    header = environment(tool, cells, args)
    print(header, flush=True)
    results = {}
    try:
        for cell, exports in cells:
            results[cell.scheduler] = run_cell(cell, exports, tool, args)
    except KeyboardInterrupt:   # each run's jobs were cancelled on the way out
        print("cluster.py: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    rows = table(results, args.submitters)
    print("\n" + rows)
    text = header + "\n\n" + rows + "\n"
    print(f"\nresults saved to {save(results, text, args)}")
    failed = [(CELLS[s].name, t) for s, rounds in results.items() for pair in rounds for t in pair
              if not t.measurement.ok]
    for name, t in failed:
        print(f"FAILED {name} {t.runner}: {t.measurement.status}: {t.measurement.message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
