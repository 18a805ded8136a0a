"""Growth: how each tool's time grows with N, from the measurements of `run.py --scaling`.

run.py measures (rounds, timing, correctness); this module only reads what it measured and
writes, beside the run's STAMP.md and STAMP.json in bench/results/:

  STAMP.csv                one row per workload, N, tool and phase: status, rounds, the
                           median wall time and the median peak RSS
  STAMP-WORKLOAD.png       time against N, log-log: a colour per tool, a line style per phase
  STAMP-WORKLOAD-memory.png  peak RSS against N, the same way

and a markdown table of growth exponents: for each tool and phase, the slope of log t against
log N between the two largest sizes where the phase ran (and, beside it, the least-squares
slope over every size). A rulerun phase whose slope is above GROWTH_LIMIT grows faster than
linearly: issue 17 counts that as a bug.

    python bench/run.py --scaling                   # measure, then all of the above
    python bench/scaling.py bench/results/scaling-STAMP.json   # again, from a saved run
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from measures import Measurement, summarize

GROWTH_LIMIT = 1.15  # a slope above this is faster than linear, beyond the machine's noise
PHASE_ORDER = ("dry", "full", "noop", "touch")
TOOL_COLOURS = {"rulerun": "tab:blue", "make": "tab:orange", "ninja": "tab:green",
                "snakemake": "tab:red", "rulerun-base": "tab:purple"}
PHASE_STYLES = {"dry": (":", "s"), "full": ("-", "o"), "noop": ("--", "^"), "touch": ("-.", "D")}


@dataclass(frozen=True)
class Point:
    """One workload, N, tool and phase: the medians over its rounds."""

    workload: str
    n: int
    tool: str
    phase: str
    status: str
    rounds: int
    wall: float
    rss_kib: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def points(raw: list[dict]) -> list[Point]:
    """The medians of a run's raw measurements (as run.py saves them in STAMP.json)."""
    found = []
    for case in raw:
        for phase, runs in case["runs"].items():
            summary = summarize([Measurement(**m) for m in runs])
            # A timeout is drawn where it was killed: its wall time is the limit's.
            wall = max((m["wall"] for m in runs), default=0.0) if summary.status == "timeout" else summary.wall
            found.append(Point(case["workload"], case["n"], case["tool"], phase, summary.status,
                               len(runs), wall, summary.rss_kib))
    return found


def grown(found: list[Point]) -> list[Point]:
    """The points of the workloads measured at two sizes or more (a run may also measure others,
    each at its own size: `run.py --targets`); they alone have a growth."""
    sizes: dict[str, set[int]] = {}
    for p in found:
        sizes.setdefault(p.workload, set()).add(p.n)
    return [p for p in found if len(sizes[p.workload]) > 1]


def in_order(names, order) -> list[str]:
    return sorted(set(names), key=lambda name: (order.index(name) if name in order else len(order), name))


# ---------------------------------------------------------------- growth exponents


def slope(pairs: list[tuple[int, float]]) -> float:
    """Least-squares slope of log t against log N."""
    xs = [math.log(n) for n, _ in pairs]
    ys = [math.log(t) for _, t in pairs]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
            / sum((x - mean_x) ** 2 for x in xs))


@dataclass(frozen=True)
class Growth:
    workload: str
    tool: str
    phase: str
    sizes: tuple[int, ...]  # where the phase ran
    last: float  # slope between the two largest sizes
    overall: float  # least-squares slope over every size

    @property
    def faster_than_linear(self) -> bool:
        return self.last > GROWTH_LIMIT


def growths(found: list[Point]) -> list[Growth]:
    """Each (workload, tool, phase) measured at two sizes or more."""
    result = []
    for workload in in_order((p.workload for p in found), ()):
        mine = [p for p in found if p.workload == workload]
        for tool in in_order((p.tool for p in mine), tuple(TOOL_COLOURS)):
            for phase in in_order((p.phase for p in mine), PHASE_ORDER):
                pairs = sorted((p.n, p.wall) for p in mine
                               if p.tool == tool and p.phase == phase and p.ok and p.wall > 0)
                if len({n for n, _ in pairs}) < 2:
                    continue
                result.append(Growth(workload, tool, phase, tuple(n for n, _ in pairs),
                                     slope(pairs[-2:]), slope(pairs)))
    return result


def growth_table(found: list[Point]) -> str:
    rows = ["| workload | tool | phase | between | slope | slope over all sizes | verdict |",
            "|---|---|---|---|---|---|---|"]
    for g in growths(found):
        verdict = ""
        if g.tool == "rulerun":
            verdict = f"**faster than linear** (> {GROWTH_LIMIT})" if g.faster_than_linear else "linear or better"
        rows.append(f"| {g.workload} | {g.tool} | {g.phase} | {g.sizes[-2]:,}–{g.sizes[-1]:,} "
                    f"| {g.last:.2f} | {g.overall:.2f} | {verdict} |")
    return (f"Growth: the slope of log t against log N (1 is linear; rulerun's phases are "
            f"flagged above {GROWTH_LIMIT})\n\n" + "\n".join(rows))


def warnings(found: list[Point]) -> list[str]:
    return [f"GROWTH: rulerun {g.workload} {g.phase} grows as N^{g.last:.2f} between "
            f"N={g.sizes[-2]:,} and N={g.sizes[-1]:,} (above {GROWTH_LIMIT})"
            for g in growths(found) if g.tool == "rulerun" and g.faster_than_linear]


# ---------------------------------------------------------------- CSV and plots


def write_csv(found: list[Point], path: Path) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["workload", "n", "tool", "phase", "status", "rounds",
                         "median_wall_s", "median_peak_rss_mib"])
        for p in found:
            writer.writerow([p.workload, p.n, p.tool, p.phase, p.status, p.rounds,
                             f"{p.wall:.4f}", f"{p.rss_kib / 1024:.1f}"])


def check_plotting() -> str:
    """Why no plot can be drawn ('' when matplotlib is there)."""
    try:
        import matplotlib  # noqa: F401  (heavy: only imported to plot)
    except ImportError:
        return ("the scaling plot needs matplotlib: pip install -e '.[bench]' "
                "(or pip install 'matplotlib>=3.8')")
    return ""


def plot(found: list[Point], workload: str, path: Path, memory: bool = False) -> None:
    """One workload's figure: a value against N, both axes log, a line per tool and phase;
    a timed-out point is a cross at the time it was killed."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only: no display on a build machine
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    mine = [p for p in found if p.workload == workload]
    tools = in_order((p.tool for p in mine), tuple(TOOL_COLOURS))
    phases = in_order((p.phase for p in mine), PHASE_ORDER)
    sizes = sorted({p.n for p in mine})
    value = (lambda p: p.rss_kib / 1024) if memory else (lambda p: p.wall)
    fig, ax = plt.subplots(figsize=(10, 7), dpi=110)
    timed_out = False
    for tool in tools:
        colour = TOOL_COLOURS.get(tool, "tab:gray")
        for phase in phases:
            style, marker = PHASE_STYLES.get(phase, ("-", "o"))
            line = sorted((p.n, value(p)) for p in mine
                          if (p.tool, p.phase) == (tool, phase) and p.ok and value(p) > 0)
            if line:
                ax.plot(*zip(*line), color=colour, linestyle=style, marker=marker,
                        linewidth=1.8, markersize=5)
            if not memory:
                killed = [(p.n, p.wall) for p in mine
                          if (p.tool, p.phase, p.status) == (tool, phase, "timeout") and p.wall > 0]
                if killed:
                    timed_out = True
                    ax.scatter(*zip(*killed), color=colour, marker="x", s=80, linewidths=2, zorder=3)
    if not memory and sizes:
        # A line of slope 1 through the smallest size, for the eye to compare slopes against.
        anchor = min((value(p) for p in mine if p.n == sizes[0] and p.ok and value(p) > 0), default=None)
        if anchor:
            ax.plot([sizes[0], sizes[-1]], [anchor, anchor * sizes[-1] / sizes[0]],
                    color="0.6", linewidth=1, linestyle=(0, (1, 4)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the sizes measured
    ax.set_xlabel(f"N ({workload}; " + ("2N jobs)" if workload == "chains" else "see bench/README)"))
    ax.set_ylabel("peak RSS of the largest process (MiB), median" if memory
                  else "wall time (s), median of the rounds")
    ax.set_title(f"{workload}: {'memory' if memory else 'time'} against N (log-log)")
    ax.grid(True, which="major", alpha=0.3)
    ax.yaxis.grid(True, which="minor", alpha=0.12)
    tool_handles = [Line2D([], [], color=TOOL_COLOURS.get(t, "tab:gray"), linewidth=3, label=t)
                    for t in tools]
    phase_handles = [Line2D([], [], color="black", linestyle=PHASE_STYLES.get(ph, ("-", "o"))[0],
                            marker=PHASE_STYLES.get(ph, ("-", "o"))[1], label=ph) for ph in phases]
    if timed_out:
        phase_handles.append(Line2D([], [], color="black", marker="x", linestyle="none",
                                    markersize=8, label="timed out (killed)"))
    if not memory:
        phase_handles.append(Line2D([], [], color="0.6", linestyle=(0, (1, 4)), label="∝ N (slope 1)"))
    # Outside the axes, on the right: sixteen lines leave no corner free inside.
    tool_legend = ax.legend(handles=tool_handles, title="tool (colour)", loc="upper left",
                            bbox_to_anchor=(1.02, 1.0))
    ax.add_artist(tool_legend)
    ax.legend(handles=phase_handles, title="phase (line style)", loc="upper left",
              bbox_to_anchor=(1.02, 0.62), handlelength=3.5)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def write_growth(raw: list[dict], stamp: Path) -> str:
    """The CSV, the plots and the growth table of a run saved (or to be saved) as STAMP.*;
    returns the table, with the paths written."""
    found = grown(points(raw))
    written = [stamp.with_name(stamp.name + ".csv")]
    write_csv(found, written[0])
    problem = check_plotting()
    if not problem:
        for workload in in_order((p.workload for p in found), ()):
            for memory in (False, True):
                path = stamp.with_name(f"{stamp.name}-{workload}{'-memory' if memory else ''}.png")
                plot(found, workload, path, memory)
                written.append(path)
    notes = [f"written: {', '.join(str(p) for p in written)}"] + ([f"no plot: {problem}"] if problem else [])
    return "\n\n".join([growth_table(found), *warnings(found), *notes])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python bench/scaling.py RESULTS.json  (a run of bench/run.py)", file=sys.stderr)
        return 2
    source = Path(argv[0])
    try:
        raw = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        print(f"scaling.py: cannot read {source}: {exc}", file=sys.stderr)
        return 2
    print(write_growth(raw, source.with_suffix("")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
