"""bench/cluster.py's own pieces, without a cluster: the project it generates builds, its check
of the outputs agrees, and the trigger it puts into rulerun's state database keeps what
rulerun records of each submission (the submission rate is read from there)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))   # cluster.py imports run.py's helpers
    spec = importlib.util.spec_from_file_location("bench_cluster", BENCH / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_cluster", module)   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_help_needs_no_cell():
    env = {k: v for k, v in os.environ.items() if k not in ("SGE_ROOT", "DRMAA_LIBRARY_PATH", "SLURM_CONF")}
    proc = subprocess.run([sys.executable, str(BENCH / "cluster.py"), "--help"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--count" in proc.stdout and "--schedulers" in proc.stdout


def test_generated_project_builds_and_its_submissions_are_kept(bench, tmp_path):
    bench.prepare_rulerun(tmp_path, 5)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "rulerun", "--local", "-j", "4", "all"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert bench.check_outputs(tmp_path, 5) == []
    (tmp_path / "out" / "3.txt").write_text("7\n")
    assert bench.check_outputs(tmp_path, 5) == ["wrong content: 3.txt"]

    # what rulerun's record does with a cluster job: added on submission, forgotten at its end
    from rulerun.store.cluster_jobs import Submitted, SubmittedJobs

    record = SubmittedJobs(str(tmp_path / ".rulerun" / "state.db"))
    for job_id in ("41", "42"):
        record.add(Submitted(f"key{job_id}", job_id, "slurm", (), "base"))
        record.forget(f"key{job_id}")
    record.close()
    kept = bench.rulerun_submits(tmp_path)
    assert [job_id for _, job_id in kept] == ["41", "42"]
    assert kept[0][0] <= kept[1][0]
