"""What one measured command gave, and the median of several: shared by run.py, which measures,
scaling.py, which reads a run's saved measurements, and cluster.py."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Measurement:
    """One command run: status is ok, fail (check), error (exit), timeout or skipped."""

    status: str
    wall: float = 0.0
    rss_kib: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Summary:
    """Median (or failure) of one phase of one case."""

    status: str
    wall: float = 0.0
    rss_kib: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def cell(self) -> str:
        if self.status == "n/a":
            return "n/a"
        if self.status != "ok":
            return self.status.upper() if self.status in ("fail", "error") else self.status
        mem = f"{self.rss_kib / 1024:.1f} MiB" if self.rss_kib else "? MiB"
        return f"{self.wall:.3f} s, {mem}"


def summarize(runs: list[Measurement]) -> Summary:
    if not runs:
        return Summary("n/a")  # not measured: the workload has no build file for the tool
    for bad in ("fail", "error", "timeout", "skipped"):
        if any(m.status == bad for m in runs):
            return Summary(bad)
    return Summary("ok", statistics.median(m.wall for m in runs),
                   statistics.median(m.rss_kib for m in runs))


def ratio(ours: Summary, theirs: Summary) -> str:
    if ours.status != "ok" or theirs.status != "ok" or not theirs.wall:
        return "–"
    text = f"{ours.wall / theirs.wall:.2f}× t"
    if ours.rss_kib and theirs.rss_kib:
        text += f", {ours.rss_kib / theirs.rss_kib:.2f}× mem"
    return text
