"""Issue 17's targets, judged from the measurements of one run (`run.py --targets`).

Each target is a figure of rulerun's against a limit: its time as a multiple of a peer's in
the same run (the peer measured in the same rounds, taking turns), its time in seconds, or
its peak memory. A target whose figure the run did not measure says so; it is never met by
default. The growth target reads scaling.py's slopes: every rulerun phase of the chains
workload at most GROWTH_LIMIT between the two largest sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling import GROWTH_LIMIT, Point, growths


@dataclass(frozen=True)
class Target:
    what: str  # as the issue words it
    workload: str
    n: int | None  # None: the workload's only size
    phase: str
    limit: float
    peer: str = ""  # a ratio of rulerun's time to this tool's; else an absolute limit
    unit: str = "s"  # "s" (wall time) or "MiB" (peak memory), for an absolute limit


TARGETS = (
    Target("2,000 trivial jobs, full build, within 1.2× make", "trivial", None, "full", 1.2, "make"),
    Target("the Lua build, full, within 1.0× make", "lua", None, "full", 1.0, "make"),
    Target("full build of 10,000 chains within 1.0× make", "chains", 10_000, "full", 1.0, "make"),
    Target("full build of 100,000 chains within 1.0× make", "chains", 100_000, "full", 1.0, "make"),
    Target("no-op at 10,000 chains within 1.0× Ninja", "chains", 10_000, "noop", 1.0, "ninja"),
    Target("no-op at 100,000 chains within 1.0× Ninja", "chains", 100_000, "noop", 1.0, "ninja"),
    Target("full build of 100,000 chains under 350 MiB", "chains", 100_000, "full", 350, unit="MiB"),
    Target("dry run of 100,000 chains under 250 MiB", "chains", 100_000, "dry", 250, unit="MiB"),
    Target("dry run of 100,000 chains under 2 s", "chains", 100_000, "dry", 2.0),
)


def _point(found: list[Point], target: Target, tool: str) -> Point | None:
    for p in found:
        if (p.workload, p.tool, p.phase) == (target.workload, tool, target.phase) \
                and (target.n is None or p.n == target.n):
            return p
    return None


def _figure(p: Point, unit: str) -> str:
    return f"{p.rss_kib / 1024:.0f} MiB" if unit == "MiB" else f"{p.wall:.3g} s"


def judge(found: list[Point], target: Target) -> tuple[str, str]:
    """(what was measured, verdict): verdict is 'met', 'missed by …' or 'not measured'."""
    tools = ["rulerun", target.peer] if target.peer else ["rulerun"]
    points = {tool: _point(found, target, tool) for tool in tools}
    missing = [tool for tool, p in points.items() if p is None or not p.ok or not p.wall]
    if missing:
        return "–", "not measured (" + ", ".join(missing) + ")"
    ours, theirs = points["rulerun"], points.get(target.peer)
    if target.peer:
        value = ours.wall / theirs.wall
        measured = f"{value:.2f}× ({_figure(ours, 's')} against {_figure(theirs, 's')})"
    else:
        value = ours.rss_kib / 1024 if target.unit == "MiB" else ours.wall
        measured = _figure(ours, target.unit)
        if target.unit == "MiB" and not ours.rss_kib:
            return "–", "not measured (no GNU time)"
    if value <= target.limit:
        return measured, "**met**"
    return measured, f"**missed** by {value / target.limit - 1:.0%}"


def growth_verdict(found: list[Point]) -> tuple[str, str]:
    mine = [g for g in growths(found) if g.tool == "rulerun" and g.workload == "chains"]
    if not mine:
        return "–", "not measured (chains at two sizes or more)"
    worst = max(mine, key=lambda g: g.last)
    measured = f"steepest: {worst.phase} {worst.last:.2f} ({worst.sizes[-2]:,}–{worst.sizes[-1]:,})"
    return measured, "**met**" if not worst.faster_than_linear else "**missed**: faster than linear"


def targets_table(found: list[Point]) -> str:
    """The markdown table of every target, for the run's report."""
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    for target in TARGETS:
        measured, verdict = judge(found, target)
        rows.append(f"| {target.what} | {measured} | {verdict} |")
    measured, verdict = growth_verdict(found)
    rows.append(f"| every rulerun phase grows linearly (slope ≤ {GROWTH_LIMIT}) | {measured} | {verdict} |")
    return "Issue 17's targets, from this run\n\n" + "\n".join(rows)
