"""Limits under stress: 1,000 tiny jobs with -j 8, three named limits (one shared by two rules)
and a per-rule limit. Each job counts itself in and out under flock(1), so the observed
concurrency is exact for the part of the job between the two counts (which lies inside the
time rulerun counts it as running): it must never exceed any limit, and every job must run
exactly once."""

from __future__ import annotations

import pytest

JOB = """\
#!/bin/sh
# job.sh LIMIT OUTPUT: count in, work a little, count out; every count under one lock
exec 9>>counts/lock
count() {
    for key in all "$1"; do
        n=0; [ -f counts/now.$key ] && read n < counts/now.$key
        n=$((n + $2)); echo $n > counts/now.$key
        m=0; [ -f counts/max.$key ] && read m < counts/max.$key
        [ $n -gt $m ] && echo $n > counts/max.$key
    done
    return 0
}
flock 9; count "$1" 1; echo "$2" >> counts/ran; flock -u 9
sleep 0.01
echo "$2" > "$2"
flock 9; count "$1" -1; flock -u 9
"""

PIPEFILE = """
limit net = 3
limit disk = 2
limit cpu = 4

%.a : src/%.in
    limit: net
    shell: sh job.sh net {output}
%.b : src/%.in
    limit: disk
    shell: sh job.sh disk {output}
%.c : src/%.in
    limit: cpu
    shell: sh job.sh cpu {output}
%.c2 : src/%.in
    limit: cpu
    shell: sh job.sh cpu {output}
%.d : src/%.in
    name: own
    limit: 2
    shell: sh job.sh own {output}

task all : *.a *.b *.c *.c2 *.d
"""

LIMITS = {"all": 8, "net": 3, "disk": 2, "cpu": 4, "own": 2}
RULES = ("a", "b", "c", "c2", "d")   # 200 jobs each


@pytest.mark.slow
def test_thousand_jobs_never_exceed_any_limit_and_each_runs_once(project):
    project.write("Pipefile", PIPEFILE)
    project.write("job.sh", JOB)
    (project.root / "counts").mkdir()
    (project.root / "src").mkdir()
    for i in range(200):
        (project.root / "src" / f"j{i}.in").write_text("")
    result = project.run("-j", "8", "all", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    ran = project.read("counts/ran").split()
    assert len(ran) == len(set(ran)) == 1000, f"{len(ran)} runs of {len(set(ran))} jobs"
    assert set(ran) == {f"j{i}.{ext}" for ext in RULES for i in range(200)}
    peaks = {key: int(project.read(f"counts/max.{key}")) for key in LIMITS}
    for key, limit in LIMITS.items():
        assert peaks[key] <= limit, f"{key}: {peaks[key]} jobs at once, limit {limit}"
        assert int(project.read(f"counts/now.{key}")) == 0
    # usually every peak equals its limit; demand enough concurrency that a broken limit shows
    assert peaks["all"] >= 4 and peaks["cpu"] >= 2 and peaks["net"] >= 2, f"too little concurrency to test anything: {peaks}"
    assert "nothing to do" in project.run("all").stdout
