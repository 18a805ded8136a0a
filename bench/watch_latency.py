"""Watch-mode latency: the time from a source change to the start of the job it affects.

Runs `rulerun --watch all` on a generated project of N sources (`%.out : %.txt`, `task all :
*.out`) whose job first writes the wall-clock time. Each trial changes one source, waits for
the rebuild's result line, and takes job-start time minus change time: the debounce, the
Pipefile reload, resolving the whole graph, the up-to-date check and starting the process.
Prints the median of the trials (goal: under 300 ms).

    python bench/watch_latency.py [--trials 10] [--sources 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # measure this checkout, whatever is installed
sys.path.insert(0, str(REPO))

PIPEFILE = """\
task all : *.out

%.out : %.txt
    shell: date +%s.%N > {output}; cat {input} >> {output}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--sources", type=int, default=100, help="sources in the generated project")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rulerun-watch-") as directory:
        root = Path(directory)
        make_project(root, args.sources)
        latencies = measure(root, args.trials)
    from rulerun.watch import DEBOUNCE

    ms = sorted(1000 * t for t in latencies)
    print(f"watch latency, change -> job start ({args.sources} sources, {args.trials} trials, "
          f"debounce {DEBOUNCE * 1000:.0f} ms): median {statistics.median(ms):.0f} ms, "
          f"min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
    return 0


def make_project(root: Path, sources: int) -> None:
    (root / "Pipefile").write_text(PIPEFILE)
    for i in range(sources):
        (root / f"s{i:04}.txt").write_text(f"{i}\n")


def measure(root: Path, trials: int) -> list[float]:
    """One watch process; each trial edits the next source and times its job's start."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "-C", str(root), "--watch", "all"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    try:
        wait_for(proc, "watching ")
        latencies = []
        for trial in range(trials):
            name = f"s{trial:04}"
            changed_at = time.time()
            (root / f"{name}.txt").write_text(f"trial {trial}\n")
            wait_for(proc, "rebuilt: ")
            started_at = float((root / f"{name}.out").read_text().split()[0])
            latencies.append(started_at - changed_at)
        return latencies
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for(proc: subprocess.Popen, prefix: str) -> None:
    """Read rulerun's output until a line starts with `prefix`; a failure line is fatal."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return
        if line.startswith("failed: "):
            raise SystemExit(f"watch_latency: the build failed: {line.strip()}")
    raise SystemExit(f"watch_latency: rulerun ended (status {proc.wait()}) before printing '{prefix}'")


if __name__ == "__main__":
    sys.exit(main())
