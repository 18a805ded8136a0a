"""Benchmark runner: owns measuring rulerun against make, ninja and Snakemake.

For each workload and size (from generate.py) it lays out one directory per
tool, then runs rounds: in each round every tool in turn (A, B, C, D, A, B, ...)
goes through the workload's phases from a clean tree:

  dry      dry run (-n) from clean: nothing may be created
  full     full build from clean: every expected output, nothing else
  noop     rebuild with everything up to date: no file may change
  touch    one source edited, rebuild: exactly that source's outputs change
  version  `TOOL --version` (startup workload only)

Each command is timed (wall clock) and its peak RSS taken by GNU time
(/usr/bin/time, `apt-get install time`): the largest single process of the
tree, in KiB.  Without GNU time, memory is not reported.
The correctness of every phase is checked from the file tree (existence and
mtimes), whatever the tool.  The table reports medians over the rounds.

  python bench/run.py                      # everything, all tools
  python bench/run.py --quick              # CI: rulerun only, correctness only
  python bench/run.py --workloads chains --sizes 1000 --tools make,ninja
  python bench/run.py --scaling            # chains at 1,000 ... 100,000: plot, growth
  python bench/run.py --forms --sizes 1000 # the Part 2 forms against plain patterns
  python bench/run.py --workloads lua      # Lua 5.4.8 compiled (sources from PyPI, cached)
  python bench/run.py --targets --runs 3 --big-runs 1   # issue 17's figures, judged, in one run

Exit status: 0 when every check passed, 1 when one failed (or a command
failed; with --quick a timeout counts as a failure too), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from generate import BUILD_FILES, FORM_BASELINE, FORMS, TOOLS, WORKLOADS, Workload, generate
from measures import Measurement, ratio, summarize

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "results"
VENV = BENCH / ".venv"
RULERUN_VENV = BENCH / ".venv-rulerun"
BIG = 100_000  # sizes from here on get --big-runs rounds
SCALABLE = ("chains", "fanin", "trivial", *FORMS)  # the workloads --sizes applies to
SCALING_SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
# --targets: the growth of chains (every tool, Snakemake until the time limit stops it), and
# the two workloads whose targets name make: each at its own size, without Snakemake
TARGET_WORKLOADS = ("chains", "trivial", "lua")
GROWN = "chains"
LOG_TAIL = 12


# ---------------------------------------------------------------- measuring


def tail(path: Path, count: int = LOG_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-count:])


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time, for peak RSS


def peak_rss_wrapper(argv: list[str], rss_file: Path) -> list[str]:
    """Prefix argv with GNU time writing the peak RSS (KiB) to rss_file.

    The RSS is not taken from our own wait4: a child forked from this Python
    process starts with Python's memory, and Linux counts that in ru_maxrss
    even after exec.  GNU time is a small C program, so its share is ~1 MiB.
    """
    return [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--"] + argv if GNU_TIME else argv


def read_rss(rss_file: Path) -> int:
    try:
        return int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0


def run_command(argv: list[str], cwd: Path, env: dict, timeout: float, log: Path) -> Measurement:
    """Run argv in cwd: wall time and peak RSS of its largest process; killed on timeout."""
    timed_out = threading.Event()

    def kill_group(pid: int) -> None:
        timed_out.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    rss_file = log.with_suffix(".rss")
    rss_file.unlink(missing_ok=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(peak_rss_wrapper(argv, rss_file), cwd=cwd, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return Measurement("error", message=f"cannot start {argv[0]}: {exc}")
        timer = threading.Timer(timeout, kill_group, [proc.pid])
        timer.start()
        try:
            proc.wait()
        except KeyboardInterrupt:
            # the command has a session of its own, out of the terminal's reach: pass Ctrl-C on
            # (a rulerun then cancels its cluster jobs) and let it finish before giving up
            timer.cancel()
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
        wall = time.perf_counter() - start
        timer.cancel()
    rss = read_rss(rss_file)
    if timed_out.is_set():
        return Measurement("timeout", wall, rss, f"killed after {timeout:g} s")
    if proc.returncode != 0:
        return Measurement("error", wall, rss,
                           f"exit {proc.returncode}: {' '.join(argv)}\n{tail(log)}")
    return Measurement("ok", wall, rss)


# ---------------------------------------------------------------- tools


@dataclass
class Tool:
    """How to invoke one build tool for each phase."""

    name: str
    base: list[str]
    env: dict
    dry_flag: str = "-n"
    jobs_flag: str = "-j"
    note: str = ""
    family: str = ""  # whose build files it reads, when not its name (rulerun-base: rulerun)

    @property
    def build_tool(self) -> str:
        return self.family or self.name

    def command(self, phase: str, jobs: int) -> list[str]:
        if phase == "version":
            return self.base + ["--version"]
        dry = [self.dry_flag] if phase == "dry" else []
        return self.base + dry + [self.jobs_flag, str(jobs), "all"]


def script_package_dir(script: str) -> Path | None:
    """The rulerun package a console script imports (read from its `#!` interpreter)."""
    try:
        with open(script, "rb") as f:
            interpreter = f.readline().decode().removeprefix("#!").strip().split()
        probe = subprocess.run(interpreter + ["-c", "import rulerun; print(rulerun.__file__)"],
                               cwd="/", capture_output=True, text=True, timeout=60)
    except (OSError, UnicodeDecodeError, subprocess.TimeoutExpired):
        return None
    return Path(probe.stdout.strip()).resolve().parent if probe.returncode == 0 else None


def installed_rulerun_tool(source: Path = REPO, venv: Path = RULERUN_VENV, name: str = "rulerun") -> Tool:
    """The checkout at `source` (default: this one) installed as a user installs it (a wheel,
    not an editable install) in a virtual environment of the bench's own, reinstalled on every
    run so it is that checkout's code. Start-up then costs what it costs a user: an editable
    install, or the .pth files of a busy base interpreter, add tens of milliseconds to every
    command."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} for an installed rulerun (benchmark only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(source)],
                   check=True)
    script = venv / "bin" / "rulerun"
    return Tool(name, [str(script)], dict(os.environ), note=f"installed from {source}: {script}", family="rulerun")


def rulerun_tool() -> Tool:
    """The console script if on PATH and it runs this checkout, else `python -m rulerun`.

    A console script installed from another checkout (say an editable install
    elsewhere, seen from a CI clone) would measure the wrong code.
    """
    env = dict(os.environ)
    script = shutil.which("rulerun")
    here = (REPO / "rulerun").resolve()
    if script and script_package_dir(script) == here:
        return Tool("rulerun", [script], env, note=f"console script {script}")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    why = f"; console script {script} runs another checkout" if script else ""
    return Tool("rulerun", [sys.executable, "-m", "rulerun"], env,
                note=f"{sys.executable} -m rulerun with PYTHONPATH={REPO}{why}")


def ensure_snakemake() -> Path:
    """Snakemake lives only in bench/.venv, made here on first use."""
    exe = VENV / "bin" / "snakemake"
    if not exe.exists():
        print(f"installing snakemake into {VENV} (benchmark only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "snakemake"], check=True)
    return exe


def make_tool(name: str, installed: bool = False) -> Tool:
    env = dict(os.environ)
    if name == "rulerun":
        return installed_rulerun_tool() if installed else rulerun_tool()
    if name == "snakemake":
        exe = ensure_snakemake()
        return Tool(name, [str(exe)], env, jobs_flag="--cores", note=str(exe))
    exe = shutil.which(name)
    if not exe:
        sys.exit(f"run.py: {name} is not installed")
    return Tool(name, [exe], env, note=exe)


def tool_version(tool: Tool) -> str:
    proc = subprocess.run(tool.command("version", 1), env=tool.env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    text = (proc.stdout or proc.stderr).strip().splitlines()
    first = text[0] if text else ""
    return first if proc.returncode == 0 else f"DOES NOT RUN (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}"


# ---------------------------------------------------------------- file tree checks


def snapshot(root: Path, build_file: str) -> dict[str, int]:
    """rel path -> mtime_ns of every file, except the build file and hidden tool state."""
    found: dict[str, int] = {}
    stack = [(root, "")]
    while stack:
        path, prefix = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if not prefix and (entry.name.startswith(".") or entry.name == build_file):
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                else:
                    found[rel] = entry.stat(follow_symlinks=False).st_mtime_ns
    return found


def clean(root: Path, keep: set[str], build_file: str) -> None:
    """Remove outputs and tool state: everything but the build file and the sources."""
    keep_dirs = {k.split("/", 1)[0] for k in keep if "/" in k}
    for entry in os.scandir(root):
        if entry.name == build_file or entry.name in keep:
            continue
        if entry.name in keep_dirs and entry.is_dir(follow_symlinks=False):
            for rel in snapshot(Path(entry.path), "").keys():
                if f"{entry.name}/{rel}" not in keep:
                    os.unlink(Path(entry.path) / rel)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def sample(paths, count: int = 5) -> str:
    paths = sorted(paths)
    more = f" (+{len(paths) - count} more)" if len(paths) > count else ""
    return ", ".join(paths[:count]) + more


def changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def check_phase(phase: str, spec: Workload, n: int,
                before: dict[str, int], after: dict[str, int]) -> list[str]:
    """What is wrong with the tree after `phase` ([] when it is right)."""
    sources = set(spec.sources(n))
    outputs = set(spec.outputs(n))
    problems = []
    if phase in ("dry", "version"):
        if changed(before, after):
            problems.append(f"{phase} changed files: {sample(changed(before, after))}")
    elif phase == "full":
        if outputs - after.keys():
            problems.append(f"missing outputs: {sample(outputs - after.keys())}")
        if after.keys() - outputs - sources:
            problems.append(f"unexpected files: {sample(after.keys() - outputs - sources)}")
        if changed(before, after) & sources:
            problems.append(f"sources changed: {sample(changed(before, after) & sources)}")
    elif phase == "noop":
        if changed(before, after):
            problems.append(f"no-op rebuild changed files: {sample(changed(before, after))}")
    elif phase == "touch":
        source, expected = spec.touched(n)
        got = changed(before, after) - {source}
        if got != set(expected):
            missing, extra = set(expected) - got, got - set(expected)
            if missing:
                problems.append(f"not rebuilt after touching {source}: {sample(missing)}")
            if extra:
                problems.append(f"rebuilt though not depending on {source}: {sample(extra)}")
    return problems


def touch_source(root: Path, rel: str) -> None:
    """Edit `rel` so that every tool must see it changed.

    Its content changes too, not only its time: Snakemake skips a job whose
    input is newer but has the checksum it recorded.  The edit is a C comment
    appended, so a real source (the lua workload's) still compiles.  Waiting
    first makes the new time later than every output's, whatever the
    file-time granularity.
    """
    time.sleep(0.05)
    with open(root / rel, "a") as source:
        source.write(f"/* edited {time.time_ns()} */\n")


# ---------------------------------------------------------------- rounds


@dataclass
class Case:
    """One (workload, size, tool) directory and what it measured so far."""

    spec: Workload
    n: int
    tool: Tool
    root: Path
    runs: dict[str, list[Measurement]] = field(default_factory=dict)

    @property
    def build_file(self) -> str:
        return BUILD_FILES[self.tool.build_tool]

    def dead(self, phase: str) -> bool:
        """A phase that timed out once is not tried again."""
        return any(m.status == "timeout" for m in self.runs.get(phase, []))


def run_phase(case: Case, phase: str, args) -> Measurement:
    if phase == "touch":
        touch_source(case.root, case.spec.touched(case.n)[0])
    before = snapshot(case.root, case.build_file)
    log = args.work / "logs" / f"{case.spec.name}-{case.n}-{case.tool.name}-{phase}.log"
    result = run_command(case.tool.command(phase, args.jobs), case.root, case.tool.env,
                         args.timeout, log)
    if result.ok:
        problems = check_phase(phase, case.spec, case.n, before,
                               snapshot(case.root, case.build_file))
        if problems:
            result.status, result.message = "fail", "; ".join(problems)
    return result


def run_round(case: Case, args) -> None:
    """All phases of one tool, from a clean tree."""
    clean(case.root, set(case.spec.sources(case.n)), case.build_file)
    built = True
    for phase in case.spec.phases:
        if case.dead(phase):
            result = Measurement("timeout", message="timed out in an earlier round")
        elif phase in ("noop", "touch") and not built:
            result = Measurement("skipped", message="the full build did not finish")
        else:
            result = run_phase(case, phase, args)
        if phase == "full":
            built = result.status in ("ok", "fail")
        case.runs.setdefault(phase, []).append(result)
        report(case, phase, result)


def report(case: Case, phase: str, m: Measurement) -> None:
    where = f"{case.spec.name:8} {case.n:>7} {phase:8} {case.tool.name:10}"
    line = f"  {where} {m.status:8} {m.wall:9.3f} s {m.rss_kib / 1024:8.1f} MiB"
    print(line + (f"  {m.message.splitlines()[0]}" if m.message else ""), flush=True)
    if m.status in ("fail", "error") and len(m.message.splitlines()) > 1:
        print("\n".join("      " + l for l in m.message.splitlines()[1:]), flush=True)


def rounds_for(n: int, args) -> int:
    return min(args.runs, args.big_runs) if n >= BIG else args.runs


def timed_out_at(earlier: list[Case], spec: Workload, n: int, tool: Tool) -> int | None:
    """The smaller N of this workload at which `tool` already timed out, if any: a larger N
    would only time out again, after as long."""
    for case in earlier:
        if (case.spec.name, case.tool.name) == (spec.name, tool.name) and case.n < n \
                and any(m.status == "timeout" for ms in case.runs.values() for m in ms):
            return case.n
    return None


def run_size(specs: list[Workload], n: int, tools: list[Tool], args, earlier: list[Case] = ()) -> list[Case]:
    """Each workload of `specs` with each tool that has a build file for it, through their
    rounds at size n, taking turns; a tool that timed out at a smaller n is recorded as
    skipped without running."""
    cases, live = [], []
    for spec, tool in ((spec, tool) for spec in specs for tool in tools):
        if not spec.writes_for(tool.build_tool):
            continue  # the Part 2 forms are rulerun's alone; the table shows n/a
        case = Case(spec, n, tool, args.work / f"{spec.name}-{n}" / tool.name)
        cases.append(case)
        smaller = timed_out_at(earlier, spec, n, tool)
        if smaller is not None:
            for phase in spec.phases:
                case.runs[phase] = [Measurement("skipped", message=f"timed out at N={smaller:,}")]
                report(case, phase, case.runs[phase][0])
            continue
        generate(spec.name, n, tool.build_tool, case.root)
        live.append(case)
    for r in range(rounds_for(n, args) if live else 0):
        print(f"{','.join(s.name for s in specs)} N={n} round {r + 1}/{rounds_for(n, args)}", flush=True)
        for case in live:  # interleaved: A, B, C, D, A, B, ...
            run_round(case, args)
    return cases


# ---------------------------------------------------------------- summary


def table(cases: list[Case], tool_names: list[str]) -> str:
    peers = [t for t in tool_names if t != "rulerun"] if "rulerun" in tool_names else []
    head = ["workload", "N", "phase"] + tool_names + [f"rulerun/{p}" for p in peers]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_key = {(c.spec.name, c.n, c.tool.name): c for c in cases}
    for workload, n in dict.fromkeys((c.spec.name, c.n) for c in cases):
        for phase in WORKLOADS[workload].phases:
            # no case: the workload has no build file for that tool (n/a)
            sums = {t: summarize(by_key[(workload, n, t)].runs.get(phase, []) if (workload, n, t) in by_key else [])
                    for t in tool_names}
            cells = [workload, f"{n:,}", phase] + [sums[t].cell() for t in tool_names]
            cells += [ratio(sums["rulerun"], sums[p]) for p in peers]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


FORM_LIMIT = 1.2  # issue 17: a Part 2 form costs at most this much more than plain patterns
FORM_TARGET_PHASES = ("dry", "noop")


def forms_table(cases: list[Case]) -> str:
    """rulerun on each Part 2 form against the same graph in plain patterns ('' when the run
    measured no pair): inputfn also against expand, which lists its targets the same way, so
    that the share of the input functions alone shows."""
    runs = {(c.spec.name, c.n): c.runs for c in cases if c.tool.name == "rulerun"}
    pairs = [("expand", FORM_BASELINE), ("inputfn", FORM_BASELINE), ("inputfn", "expand")]
    sizes = sorted({n for (w, n) in runs if w == FORM_BASELINE})
    if not any((form, n) in runs for n in sizes for form in FORMS if form != FORM_BASELINE):
        return ""
    forms = list(FORMS)
    head = ["N", "phase", *forms, *(f"{a}/{b}" for a, b in pairs)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in sizes:
        for phase in WORKLOADS[FORM_BASELINE].phases:
            sums = {f: summarize(runs.get((f, n), {}).get(phase, [])) for f in forms}
            cells = [f"{n:,}", phase, *(sums[f].cell() for f in forms)]
            for a, b in pairs:
                cell = ratio(sums[a], sums[b])
                over = sums[a].ok and sums[b].ok and sums[a].wall > FORM_LIMIT * sums[b].wall
                if over and phase in FORM_TARGET_PHASES and b == FORM_BASELINE:
                    cell += f" **over {FORM_LIMIT}×**"
                cells.append(cell)
            rows.append("| " + " | ".join(cells) + " |")
    return (f"Part 2 forms against plain patterns (rulerun; target: dry and noop at most "
            f"{FORM_LIMIT}× plain)\n\n" + "\n".join(rows))


def environment(tools: list[Tool], args) -> str:
    lines = [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
             f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
             f"- rounds: {args.runs} (N ≥ {BIG:,}: {min(args.runs, args.big_runs)}), -j {args.jobs}, "
             f"timeout {args.timeout:g} s per command; times are medians of wall time, memory the "
             "median peak RSS of the largest process"
             + ("" if GNU_TIME else " (not measured: GNU time is not installed)")]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool_version(tool)} ({tool.note})")
    return "\n".join(lines)


def correctness(cases: list[Case], quick: bool) -> tuple[int, list[str]]:
    """(checks passed, failures) over every measurement taken."""
    passed, failures = 0, []
    bad = {"fail", "error"} | ({"timeout"} if quick else set())
    for case in cases:
        for phase, runs in case.runs.items():
            for m in runs:
                if m.status in bad:
                    failures.append(f"{case.spec.name} N={case.n} {case.tool.name} {phase}: "
                                    f"{m.status}: {m.message.splitlines()[0] if m.message else ''}")
                elif m.ok:
                    passed += 1
    return passed, failures


def raw(cases: list[Case]) -> list[dict]:
    """Every measurement, as saved in the run's .json (and read back by scaling.py)."""
    return [{"workload": c.spec.name, "n": c.n, "tool": c.tool.name,
             "runs": {p: [asdict(m) for m in ms] for p, ms in c.runs.items()}} for c in cases]


def save(cases: list[Case], text: str, stamp: Path) -> Path:
    """The raw measurements as STAMP.json and the report as STAMP.md."""
    stamp.with_suffix(".json").write_text(json.dumps(raw(cases), indent=1))
    path = stamp.with_suffix(".md")
    path.write_text(text)
    return path


# ---------------------------------------------------------------- command line


def csv(kind):
    return lambda text: [kind(x) for x in text.split(",") if x]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark rulerun against make, ninja and Snakemake.")
    p.add_argument("--tools", type=csv(str), default=list(TOOLS), help="comma list (default: all)")
    p.add_argument("--workloads", type=csv(str),
                   help="comma list (default: all; chains with --scaling)")
    p.add_argument("--sizes", type=csv(int),
                   help="comma list of N for chains, fanin, trivial and the forms (default: each "
                        "its own; with --scaling " + ",".join(map(str, SCALING_SIZES)) + ")")
    p.add_argument("--runs", type=int, default=5, help="rounds per size (default 5)")
    p.add_argument("--big-runs", type=int, default=3, help=f"rounds for N >= {BIG:,} (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="-j for every tool (default 2)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per command (default 600)")
    p.add_argument("--work", type=Path, help="scratch directory (default bench/work, "
                   "bench/work/quick with --quick, so that CI does not disturb a full run)")
    p.add_argument("--quick", action="store_true",
                   help="CI: smallest size of each workload, rulerun only, one round, correctness")
    p.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                   help="also measure the rulerun of another checkout (e.g. a clone at an older "
                        "commit), as the tool rulerun-base, side by side with this one")
    p.add_argument("--scaling", action="store_true",
                   help="growth: chains (or --workloads) at --sizes, then a log-log plot of time "
                        "against N, the figures as CSV and each phase's growth exponent "
                        "(needs matplotlib: the bench extra)")
    p.add_argument("--forms", action="store_true",
                   help="the Part 2 forms ($(...) over the samples, input functions) against the "
                        "same graph in plain patterns: rulerun only, with their ratios")
    p.add_argument("--targets", action="store_true",
                   help="every figure issue 17's targets are judged by, in one run: --scaling on "
                        "chains with every tool (--sizes: chains only), trivial and lua against make and "
                        "Ninja; the report adds a table of the targets, each met or missed")
    p.add_argument("--in-place", action="store_true",
                   help="run the rulerun of this checkout as it is (console script or python -m) "
                        "instead of installing it into bench/.venv-rulerun (implied by --quick)")
    args = p.parse_args(argv)
    if args.forms and args.workloads:
        p.error("--forms chooses the workloads itself (plain, expand, inputfn)")
    if args.targets and (args.workloads or args.forms or args.quick):
        p.error("--targets chooses the workloads itself (" + ", ".join(TARGET_WORKLOADS) + ")")
    args.sized = set(SCALABLE)  # the workloads --sizes applies to
    if args.targets:
        args.scaling, args.workloads, args.sized = True, list(TARGET_WORKLOADS), {GROWN}
    if args.forms:
        args.workloads, args.tools = list(FORMS), ["rulerun"]
    if args.scaling:
        args.workloads = args.workloads or ["chains"]
        args.sizes = sorted(args.sizes or SCALING_SIZES)
    # lua fetches its sources from PyPI and compiles for real: asked for by name, never by default
    # in --quick (CI), which must not hang on the network
    args.workloads = args.workloads or [w for w in WORKLOADS if not (args.quick and WORKLOADS[w].populate)]
    for name in args.tools:
        if name not in TOOLS:
            p.error(f"unknown tool {name!r} (choose from {', '.join(TOOLS)})")
    for name in args.workloads:
        if name not in WORKLOADS:
            p.error(f"unknown workload {name!r} (choose from {', '.join(WORKLOADS)})")
    if args.quick:
        args.tools, args.runs, args.in_place = ["rulerun"], 1, True
    args.work = args.work or (WORK / "quick" if args.quick else WORK)
    return args


def workload_groups(names: list[str]) -> list[list[Workload]]:
    """The workloads measured side by side: the Part 2 forms together, taking turns as tools
    do, since their ratios compare one workload with another; every other one alone."""
    forms = [WORKLOADS[name] for name in names if name in FORMS]
    return [[WORKLOADS[name]] for name in names if name not in FORMS] + ([forms] if forms else [])


def sizes_for(spec: Workload, args) -> list[int]:
    if args.quick:
        return [min(args.sizes or spec.sizes)] if spec.name in args.sized else [min(spec.sizes)]
    return list(args.sizes) if args.sizes and spec.name in args.sized else list(spec.sizes)


def tools_for(group: list[Workload], tools: list[Tool], args) -> list[Tool]:
    """The tools measured on `group`: with --targets, Snakemake on the grown workload only (at
    2,000 jobs it takes minutes per round, and no target names it)."""
    if args.targets and all(spec.name != GROWN for spec in group):
        return [tool for tool in tools if tool.name != "snakemake"]
    return tools


def run_kind(args) -> str:
    """The name a run's results are saved under, before its time stamp."""
    return next((kind for kind in ("quick", "targets", "scaling", "forms") if getattr(args, kind)), "")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.scaling:
        from scaling import check_plotting

        if (problem := check_plotting()):
            print(f"run.py: {problem}", file=sys.stderr)
            return 2
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    tools = [make_tool(name, installed=not args.in_place) for name in args.tools]
    if args.baseline:
        tools.append(installed_rulerun_tool(args.baseline.resolve(), BENCH / ".venv-rulerun-base", "rulerun-base"))
        args.tools = [*args.tools, "rulerun-base"]
    header = environment(tools, args)
    print(header, flush=True)
    cases: list[Case] = []
    for group in workload_groups(args.workloads):
        for n in sorted({n for spec in group for n in sizes_for(spec, args)}):
            cases += run_size(group, n, tools_for(group, tools, args), args, cases)
    passed, failures = correctness(cases, args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = RESULTS / "-".join(filter(None, [run_kind(args), time.strftime("%Y%m%d-%H%M%S")]))
    sections = [table(cases, args.tools), forms_table(cases)]
    if args.scaling:
        from scaling import write_growth

        sections.append(write_growth(raw(cases), stamp))
    if args.targets:
        from scaling import points
        from targets import targets_table

        sections.insert(0, targets_table(points(raw(cases))))
    sections = [s for s in sections if s]
    print("\n" + "\n\n".join(sections))
    saved = save(cases, "\n\n".join([header, *sections]) + "\n", stamp)
    print(f"\nresults saved to {saved}")
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"correctness checks: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
