"""The benchmark's CI mode: `bench/run.py --quick` builds every workload with rulerun
at its smallest size and checks each phase's result from the file tree."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.mark.slow
def test_bench_quick_passes_its_correctness_checks():
    proc = subprocess.run([sys.executable, str(RUN), "--quick"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    summary = re.search(r"correctness checks: (\d+) passed, (\d+) failed", output)
    assert summary, output[-4000:]
    passed, failed = map(int, summary.groups())
    assert failed == 0 and passed > 0, output[-4000:]
    assert "FAILED" not in output, output[-4000:]
