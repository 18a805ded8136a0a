"""The cluster path through the real command line: `python -m rulerun` in a project directory,
cluster rules submitted to the Grid Engine of scripts/sge.sh, compared with `--local`.

Run with the cell's environment:  bash scripts/sge.sh start > sge.env && . sge.env &&
RULERUN_SGE=1 python -m pytest -q tests/test_cluster_cli.py
Tests marked `cluster` need that Grid Engine; the others (--local, --touch, set-up errors,
when rulerun restarts itself) run anywhere.  rulerun is started without GLIBC_TUNABLES, as a
user would start it, so every cluster run also goes through its restart with the tunable.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import written_ids

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "cluster"

needs_sge = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("RULERUN_SGE") != "1",
                       reason="needs Grid Engine: bash scripts/sge.sh start, then RULERUN_SGE=1"),
]


def sge(test):
    for mark in needs_sge:
        test = mark(test)
    return test


# ------------------------------------------------------------------------------ helpers

def environment(extra: dict | None = None, drop=(), pythonpath=()) -> dict:
    """The environment a user's shell would give rulerun: the SGE variables inherited, but no
    GLIBC_TUNABLES (so the CLI must restart itself), no restart marker, and DRMAA chosen."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "RULERUN_TLS_REEXEC", *drop)}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(REPO)])
    env["RULERUN_SCHEDULER"] = "drmaa"   # these tests are Grid Engine's, Slurm or not
    env.update(extra or {})
    return env


def rulerun(cwd: Path, *args: str, timeout: float = 120, **env_kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=cwd,
                          env=environment(**env_kw), capture_output=True, text=True,
                          timeout=timeout)


def write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def tree(root: Path, *folders: str) -> dict[str, bytes]:
    """Every file under `folders` of `root`, by relative path, as bytes."""
    found = {}
    for folder in folders:
        base = root / folder
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def intervals(folder: Path) -> dict[str, tuple[float, float]]:
    """name -> (start, end) from files holding 'START END' (date +%s.%N, written by jobs)."""
    spans = {}
    for path in folder.iterdir():
        start, end = path.read_text().split()
        spans[path.name] = (float(start), float(end))
    return spans


def most_at_once(spans) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])   # ends first at a tie
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def qstat_ids() -> set[str]:
    out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}


TIMED = 'start=$(date +%s.%N); sleep {SLEEP}; echo "$start $(date +%s.%N)" > times/{stem}'


# ------------------------------------------------------------------------------ same files, cluster or local

PRODUCTS = {
    "Pipefile": """\
        task all : summary.txt queue.txt

        counts/%.count : inputs/%.txt
            cluster: -l h_vmem=1G
            shell:
                mkdir -p jobids
                printf '%s' "${{JOB_ID:-}}" > jobids/{stem}
                wc -w < {input} | tr -d ' ' > {output}
                sort {input} > counts/{stem}.sorted

        summary.txt : counts/*.count
            shell: for f in {input}; do echo "$f $(cat $f)"; done > {output}

        queue.txt :
            queue: test.q
            shell: printf '%s' "${{QUEUE:-}}" > {output}
        """,
    "inputs/a.txt": "one two three\nfour\n",
    "inputs/b.txt": "zebra\napple\nmango tree\n",
    "inputs/c.txt": "",
    "inputs/d e.txt": "a file name with a space\n",
}


@sge
def test_cluster_run_makes_the_same_files_as_local(tmp_path):
    cluster = write(tmp_path / "cluster", PRODUCTS)
    local = write(tmp_path / "local", PRODUCTS)
    ok(rulerun(cluster, "-j", "8"))
    ok(rulerun(local, "-j", "8", "--local"))

    made = tree(cluster, "counts", "summary.txt")
    assert made == tree(local, "counts", "summary.txt")
    assert len(made) == 9 and made["counts/a.count"] == b"4\n" and made["counts/d e.count"] == b"6\n"
    # it really went through Grid Engine: every job had a job id, all different; not with --local
    ids = tree(cluster, "jobids")
    assert len(ids) == 4 and all(re.fullmatch(rb"\d+", v) for v in ids.values()), ids
    assert len(set(ids.values())) == 4
    assert set(tree(local, "jobids").values()) == {b""}
    # queue: test.q -> the job ran in test.q
    assert (cluster / "queue.txt").read_text() == "test.q"
    assert (local / "queue.txt").read_text() == ""
    # nothing is left in the job-script folder after successes
    assert not list((cluster / ".rulerun" / "cluster").glob("*"))

    again = ok(rulerun(cluster, "-j", "8"))
    assert "nothing to do" in again.stdout


@sge
def test_cluster_flag_submits_plain_shell_rules(tmp_path):
    root = write(tmp_path, {"Pipefile": """\
        where.txt :
            shell: printf '%s' "${{JOB_ID:-here}}" > {output}
        """})
    ok(rulerun(root, "--cluster"))
    assert re.fullmatch(r"\d+", (root / "where.txt").read_text())
    ok(rulerun(root, "-B"))
    assert (root / "where.txt").read_text() == "here"


# ------------------------------------------------------------------------------ failures

FAILURES = """\
    task all : broken.txt refused.txt flaky.txt hopeless.txt forgetful.txt

    broken.txt :
        cluster:
        shell:
            echo "made some progress"
            echo "disk on fire" >&2
            exit 3

    refused.txt :
        name: greedy
        cluster: -l nosuchres=1
        shell: touch {output}

    flaky.txt :
        cluster:
        retries: 1
        shell:
            n=$(( $(cat flaky.attempts 2>/dev/null || echo 0) + 1 ))
            echo $n > flaky.attempts
            test $n -ge 2
            echo "worked on attempt $n" > {output}

    hopeless.txt :
        cluster:
        retries: 1
        shell:
            echo x >> hopeless.attempts
            echo "still broken" >&2
            exit 5

    forgetful.txt :
        cluster:
        shell: echo "$JOB_ID" > forgetful.id
    """


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    if os.environ.get("RULERUN_SGE") != "1":
        pytest.skip("needs Grid Engine")
    root = write(tmp_path_factory.mktemp("failures"), {"Pipefile": FAILURES})
    return root, rulerun(root, "-k", "-j", "8")


def _report_of(stderr: str, rule: str) -> str:
    """The FAILED block of `rule` in rulerun's stderr."""
    blocks = re.split(r"\n(?=FAILED: )", stderr)
    found = [b for b in blocks if b.lstrip().startswith(f"FAILED: rule '{rule}'")]
    assert found, f"no failure report for {rule} in:\n{stderr}"
    return found[0]


@sge
def test_failing_cluster_job_is_reported_whole(failed_run):
    root, proc = failed_run
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = _report_of(proc.stderr, "broken.txt")
    assert re.search(r"cluster job: \d+", report), report
    assert 'echo "disk on fire" >&2' in report and "exit 3" in report   # the command
    assert "exit status 3" in report
    assert "disk on fire" in report and "made some progress" in report
    assert not (root / "broken.txt").exists()
    assert "broken.txt" in proc.stderr.split("job(s) failed")[1]      # in the summary too


@sge
def test_bad_native_specification_names_rule_and_scheduler_message(failed_run):
    root, proc = failed_run
    report = _report_of(proc.stderr, "greedy")
    assert "Grid Engine refused the job" in report
    assert 'unknown resource "nosuchres"' in report
    assert "-l nosuchres=1" in report                                  # the specification shown
    assert "cluster job:" not in report                                # it never got an id


@sge
def test_retries_resubmits_a_failed_job_once(failed_run):
    root, proc = failed_run
    assert (root / "flaky.txt").read_text() == "worked on attempt 2\n"
    assert "FAILED: rule 'flaky.txt'" not in proc.stderr                # it failed once, then worked
    assert "rule 'flaky.txt': attempt 1 of 2 failed: cluster job" in proc.stderr
    assert (root / "hopeless.attempts").read_text() == "x\nx\n"        # 1 + 1 retry, no more
    report = _report_of(proc.stderr, "hopeless.txt")
    assert "exit status 5 (failed 2 times)" in report and "still broken" in report
    announced = re.search(r"rule 'hopeless\.txt': attempt 1 of 2 failed: cluster job \d+: exit status 5; "
                          r"resubmitting \(its output is kept in (\S+)\)\n", proc.stderr)
    assert announced, proc.stderr
    log = (root / announced[1]).read_text()
    assert log.count("still broken\n") == 2 and "rulerun: attempt 2 of 2\n" in log
    assert "4 job(s) failed (1 succeeded)" in proc.stderr


@sge
def test_a_missing_output_names_the_cluster_job(failed_run):
    root, proc = failed_run
    job_id = (root / "forgetful.id").read_text().strip()
    report = _report_of(proc.stderr, "forgetful.txt")
    assert f"cluster job {job_id} succeeded but did not create its declared output 'forgetful.txt'" in report


# ------------------------------------------------------------------------------ parallelism and limits

@sge
def test_twenty_jobs_in_flight_from_one_run(tmp_path):
    names = [f"t{i:02d}" for i in range(20)]
    root = write(tmp_path, {"Pipefile": f"""\
        SLEEP = "2"
        task all : {" ".join(f"out/{n}.done" for n in names)}

        out/%.done :
            cluster:
            shell:
                {TIMED}
                echo "$JOB_ID" > {{output}}
        """})
    (root / "times").mkdir()
    started = time.monotonic()
    ok(rulerun(root, "-j", "20"))
    elapsed = time.monotonic() - started
    ids = {(root / "out" / f"{n}.done").read_text().strip() for n in names}
    assert len(ids) == 20 and all(i.isdigit() for i in ids)
    spans = intervals(root / "times")
    assert len(spans) == 20
    # far more than this 2-core machine's default -j: rulerun kept many jobs submitted at once
    # (the cell has 8 + 2 slots; other test runs may hold some of them)
    assert most_at_once(spans.values()) >= 5, sorted(spans.values())
    assert elapsed < 20 * 2 / 3, elapsed


@sge
def test_named_limit_holds_across_cluster_and_local_rules(tmp_path):
    root = write(tmp_path, {"Pipefile": f"""\
        SLEEP = "1"
        limit net = 2
        task all : {" ".join(f"c/{i}.txt l/{i}.txt" for i in range(4))}

        c/%.txt :
            limit: net
            cluster:
            shell:
                {TIMED.replace("times/{stem}", "times/c{stem}")}
                printf '%s' "$JOB_ID" > {{output}}

        l/%.txt :
            limit: net
            shell:
                {TIMED.replace("times/{stem}", "times/l{stem}")}
                printf '%s' "${{{{JOB_ID:-}}}}" > {{output}}
        """})
    (root / "times").mkdir()
    ok(rulerun(root, "-j", "10"))
    spans = intervals(root / "times")
    assert len(spans) == 8
    assert all((root / f"c/{i}.txt").read_text().isdigit() for i in range(4))
    assert all((root / f"l/{i}.txt").read_text() == "" for i in range(4))
    assert most_at_once(spans.values()) <= 2, sorted(spans.items(), key=lambda kv: kv[1])


# ------------------------------------------------------------------------------ interrupt

@sge
def test_interrupt_deletes_the_cluster_jobs_and_exits_130(tmp_path):
    root = write(tmp_path, {"Pipefile": """\
        task all : s/1 s/2 s/3 s/4 local

        s/% :
            cluster:
            shell:
                echo "$JOB_ID" > ids/{stem}
                sleep 120
                touch {output}

        local :
            shell: echo $$ > local.pid; sleep 120; touch {output}
        """})
    (root / "ids").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", "-j", "8"], cwd=root,
                            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        # the shell makes each file before echo writes the id into it: wait for the ids
        while time.monotonic() < deadline and len(written_ids(root / "ids")) < 4:
            time.sleep(0.2)
        ids = written_ids(root / "ids")
        assert len(ids) == 4, "the cluster jobs did not start"
        assert ids <= qstat_ids()
        time.sleep(0.5)   # (ids are written as soon as each job starts)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert stopped_in < 10, stopped_in
    deadline = time.monotonic() + 10
    while ids & qstat_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ids & qstat_ids(), "rulerun left its jobs in qstat"
    assert not any((root / "s").glob("*"))
    pid = int((root / "local.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ------------------------------------------------------------------------------ run_job in Python actions

RUN_JOB = {"Pipefile": """\
    python:
        import sys
        from rulerun.cluster import ClusterJobError, run_job

    result.txt :
        python:
            out, err = run_job('echo "hello from ${JOB_ID:-here}"; echo warning >&2',
                               job_name="greet")
            try:
                run_job("echo half-way; exit 4", job_name="doomed")
            except ClusterJobError as exc:
                failure = f"{exc.exit_status}|{exc.stdout.strip()}"
            else:
                failure = "no error"
            drmaa_here = "drmaa" in sys.modules   # the worker itself never loads DRMAA
            with open(output[0], "w") as f:
                f.write(f"{out.strip()}|{err.strip()}|{failure}|{drmaa_here}\\n")
    """}


@sge
def test_run_job_in_a_python_action_goes_through_the_run(tmp_path):
    root = write(tmp_path, RUN_JOB)
    ok(rulerun(root))
    text = (root / "result.txt").read_text()
    assert re.fullmatch(r"hello from \d+\|warning\|4\|half-way\|False\n", text), text


def test_run_job_in_a_python_action_with_local_runs_here(tmp_path):
    root = write(tmp_path, RUN_JOB)
    ok(rulerun(root, "--local", pythonpath=[_no_drmaa(tmp_path)], drop=("DRMAA_LIBRARY_PATH",)))
    assert (root / "result.txt").read_text() == "hello from here|warning|4|half-way|False\n"


UNCAUGHT = {"Pipefile": """\
    doomed.txt :
        python:
            from rulerun.cluster import run_job
            print("the action began")
            run_job("echo 'partial result on stdout'; echo 'disk on fire on stderr' >&2; exit 6")
    """}


def _uncaught_report(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr.split("log:")[0]   # the traceback is the log's, below
    report = _report_of(proc.stderr, "doomed.txt")
    assert "ClusterJobError" in report and "exit status 6" in report, report
    assert "partial result on stdout" in report and "disk on fire on stderr" in report, report
    assert "the action began" in report, report                 # the action's own log still shown
    return report


@sge
def test_an_uncaught_cluster_job_error_shows_the_jobs_output(tmp_path):
    """A Python action that lets run_job's ClusterJobError through: the report names the rule, the
    cluster job's id and exit status, and what it printed on stdout and stderr."""
    report = _uncaught_report(rulerun(write(tmp_path, UNCAUGHT)))
    assert re.search(r"cluster job: \d+", report), report


def test_an_uncaught_local_job_error_shows_the_jobs_output(tmp_path):
    """The same with --local: the job ran here, so there is no job id, but its output is shown."""
    report = _uncaught_report(rulerun(write(tmp_path, UNCAUGHT), "--local"))
    assert "cluster job:" not in report, report


def python_rule_pipefile(queue: str, options: str, queue_var: str, name_var: str, other_queue: str,
                         bad_options: str) -> dict:
    """A Pipefile whose Python rule has cluster:, queue: and retries: (its run_job calls take
    them unless they say otherwise), and one whose cluster: options the scheduler refuses."""
    return {"Pipefile": f"""\
        task all : placed.txt refused.txt

        placed.txt :
            name: placed
            cluster: {options}
            queue: {queue}
            retries: 1
            python:
                from rulerun.cluster import run_job
                flaky = 'echo x >> attempts; [ $(wc -l < attempts) -ge 2 ]; echo "${queue_var} ${name_var}"'
                ruled, _ = run_job(flaky)
                own, _ = run_job('echo "${queue_var}"', job_queue_name="{other_queue}", resubmit=0)
                with open(output[0], "w") as f:
                    f.write(ruled + own)

        refused.txt :
            cluster: {bad_options}
            python:
                from rulerun.cluster import run_job
                run_job("true")
                open(output[0], "w").close()
        """}


def check_python_rule_cluster_lines(root: Path, proc, queue: str, other_queue: str, refusal: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert (root / "placed.txt").read_text() == f"{queue} placed\n{other_queue}\n", proc.stderr
    assert (root / "attempts").read_text() == "x\nx\n"          # retries: 1 resubmitted it once
    report = _report_of(proc.stderr, "refused.txt")
    assert refusal in report, report                             # its cluster: options were used
    assert not (root / "refused.txt").exists()


@sge
def test_cluster_and_retries_on_a_python_rule_apply_to_its_run_job_calls(tmp_path):
    root = write(tmp_path, python_rule_pipefile("test.q", "-l h_rt=0:5:0", "QUEUE", "JOB_NAME",
                                                "all.q", "-l nosuchres=1"))
    proc = rulerun(root, "-k")
    check_python_rule_cluster_lines(root, proc, "test.q", "all.q", "Grid Engine refused the job")


# ------------------------------------------------------------------------------ no DRMAA needed

CLUSTER_PIPELINE = {
    "Pipefile": """\
        task all : b.txt

        a.txt : in.txt
            cluster: -l h_vmem=1G
            shell: tr a-z A-Z < {input} > {output}

        b.txt : a.txt
            queue: test.q
            shell: cat {input} {input} > {output}

        local.txt :
            shell: echo "${{RULERUN_TLS_REEXEC:-}}" > {output}
        """,
    "in.txt": "abc\n",
}


def _no_drmaa(tmp_path: Path) -> Path:
    """A PYTHONPATH folder in which `import drmaa` fails, as where it isn't installed."""
    folder = tmp_path / "no-drmaa"
    write(folder, {"drmaa.py": 'raise ImportError("drmaa is hidden for this test")\n'})
    return folder


def _restart_log(tmp_path: Path) -> tuple[Path, Path]:
    """A PYTHONPATH folder whose sitecustomize logs every interpreter started after rulerun's
    restart (RULERUN_TLS_REEXEC set), and that log."""
    folder, log = tmp_path / "site", tmp_path / "restarts.log"
    write(folder, {"sitecustomize.py": f"""\
        import os, sys
        if os.environ.get("RULERUN_TLS_REEXEC"):
            with open({str(log)!r}, "a") as f:
                f.write(repr(sys.argv) + " " + os.environ.get("GLIBC_TUNABLES", "") + "\\n")
        """})
    return folder, log


def test_local_and_touch_need_no_drmaa(tmp_path):
    hidden = _no_drmaa(tmp_path)
    local = write(tmp_path / "local", CLUSTER_PIPELINE)
    ok(rulerun(local, "--local", pythonpath=[hidden], drop=("DRMAA_LIBRARY_PATH",)))
    assert (local / "b.txt").read_text() == "ABC\nABC\n"

    touched = write(tmp_path / "touch", CLUSTER_PIPELINE)
    ok(rulerun(touched, "--touch", pythonpath=[hidden], drop=("DRMAA_LIBRARY_PATH",)))
    assert (touched / "a.txt").exists() and (touched / "b.txt").read_text() == ""
    # and the touched files count as made: nothing to do, still without DRMAA
    assert "nothing to do" in ok(rulerun(touched, pythonpath=[hidden], drop=("DRMAA_LIBRARY_PATH",))).stdout


def test_no_restart_and_no_drmaa_for_runs_that_submit_nothing(tmp_path):
    site, log = _restart_log(tmp_path)
    root = write(tmp_path / "p", CLUSTER_PIPELINE)
    path = [site, _no_drmaa(tmp_path)]
    env = {"DRMAA_LIBRARY_PATH": "/nonexistent/libdrmaa.so"}
    for args in (["-n"], ["--graph"], ["--list"], ["--local", "-B"], ["--touch"], ["local.txt"]):
        ok(rulerun(root, *args, pythonpath=path, extra=env))
    assert not log.exists(), log.read_text()
    assert (root / "local.txt").read_text() == "\n"      # a local-only target: no restart
    assert "nothing to do" in ok(rulerun(root, pythonpath=path, extra=env)).stdout   # up to date


def test_a_run_that_submits_restarts_once_before_loading_drmaa(tmp_path):
    site, log = _restart_log(tmp_path)
    root = write(tmp_path / "p", {**CLUSTER_PIPELINE, "Pipefile": CLUSTER_PIPELINE["Pipefile"]
                                  .replace("task all : b.txt", "task all : local.txt b.txt")})
    sub = root / "sub"
    sub.mkdir()
    # from another directory with -C: the restart must start from the same place
    proc = rulerun(sub, "-C", "..", "-j", "1", pythonpath=[site, _no_drmaa(tmp_path)],
                   extra={"DRMAA_LIBRARY_PATH": "/nonexistent/libdrmaa.so"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rulerun: the Python package 'drmaa' is not installed"), proc.stderr
    assert "--local" in proc.stderr and "Traceback" not in proc.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and "-C" in lines[0] and "optional_static_tls=8192" in lines[0], lines
    assert not (root / "local.txt").exists()     # set-up errors come before any job starts
    assert not (root / "a.txt").exists()


def test_missing_drmaa_package_is_a_clear_error(tmp_path):
    root = write(tmp_path, CLUSTER_PIPELINE)
    proc = rulerun(root, pythonpath=[_no_drmaa(tmp_path)], drop=("DRMAA_LIBRARY_PATH",))
    assert proc.returncode == 2
    assert proc.stderr == ("rulerun: the Python package 'drmaa' is not installed\n"
                           "hint: pip install 'rulerun[cluster]', or run with --local\n")


@sge
def test_set_up_errors_exit_2_with_a_hint_and_start_nothing(tmp_path):
    root = write(tmp_path, {**CLUSTER_PIPELINE, "Pipefile": CLUSTER_PIPELINE["Pipefile"]
                            .replace("task all : b.txt", "task all : local.txt b.txt")})
    cases = {
        "no library path": (dict(drop=("DRMAA_LIBRARY_PATH",)), "DRMAA_LIBRARY_PATH"),
        "TLS": (dict(extra={"RULERUN_TLS_REEXEC": "1"}), "GLIBC_TUNABLES=glibc.rtld.optional_static_tls"),
        "scheduler down": (dict(extra={"SGE_QMASTER_PORT": "1"}), "scheduler unreachable"),
        "no cell": (dict(extra={"SGE_CELL": "nosuchcell"}), "scheduler unreachable"),
    }
    for case, (env, expected) in cases.items():
        proc = rulerun(root, "-j", "1", **env)
        assert proc.returncode == 2, (case, proc.stderr)
        assert proc.stderr.startswith("rulerun: ") and expected in proc.stderr, (case, proc.stderr)
        assert "hint:" in proc.stderr and "--local" in proc.stderr, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, (case, proc.stderr)
        assert not (root / "local.txt").exists() and not (root / "a.txt").exists(), case
    assert not (root / ".rulerun" / "cluster").exists() or not any((root / ".rulerun" / "cluster").iterdir())


# ------------------------------------------------------------------------------ the example

def _example(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".rulerun", "counts", "words",
                                                                   "*.txt.tmp"))
    for made in ("totals.txt", "checksums.txt", "report.txt"):
        (root / made).unlink(missing_ok=True)
    return root


def _expected_counts(root: Path) -> str:
    return "".join(f"{p.stem} {len(p.read_text().split())}\n"
                   for p in sorted((root / "chapters").glob("*.txt")))


def test_example_runs_locally_without_drmaa(tmp_path):
    root = _example(tmp_path, "local")
    ok(rulerun(root, "--local", "-j", "4", pythonpath=[_no_drmaa(tmp_path)],
               drop=("DRMAA_LIBRARY_PATH",)))
    report = (root / "report.txt").read_text()
    assert report.startswith("== words per chapter\n" + _expected_counts(root))
    assert "== commonest in storm\nthe 9\n" in report
    assert "  chapters/harbour.txt\n" in report and "== checksums" in report


@sge
def test_example_on_the_cluster_matches_local(tmp_path):
    local, cluster = _example(tmp_path, "local"), _example(tmp_path, "cluster")
    ok(rulerun(local, "--local", "-j", "4"))
    ok(rulerun(cluster, "-j", "8"))
    products = ("counts", "words", "totals.txt", "checksums.txt", "report.txt")
    assert tree(cluster, *products) == tree(local, *products)
    assert len(tree(cluster, *products)) == 9


# ------------------------------------------------------------------------------ restart

@sge
def test_a_restart_after_kill_9_does_not_resubmit(tmp_path):
    """docs/guarantees.md: a restart does not resubmit (Grid Engine: followed with qstat/qacct)."""
    root = write(tmp_path, {"Pipefile": """\
        task all : s/1 s/2

        s/% :
            cluster:
            shell: echo "$JOB_ID" >> ids; sleep 4; echo "$JOB_ID {stem}" > {output}
        """})
    ids = root / "ids"
    first = subprocess.Popen([sys.executable, "-m", "rulerun"], cwd=root, env=environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ids.read_text().split() if ids.exists() else []) < 2:
        time.sleep(0.2)
    first.kill()
    first.wait(10)
    started = ids.read_text().split()
    assert len(started) == 2
    dry = ok(rulerun(root, "-n"))
    assert all(f"waiting for cluster job {i} from an earlier run" in dry.stdout for i in started), dry.stdout
    ok(rulerun(root))
    assert ids.read_text().split() == started           # nothing was submitted twice
    made = sorted((root / "s" / n).read_text().split()[0] for n in ("1", "2"))
    assert made == sorted(started)
    assert not any((root / ".rulerun" / "cluster").iterdir())   # the ended jobs' files pruned


@sge
def test_a_jobs_time_in_the_queue_is_recorded_and_drawn_in_the_report(tmp_path):
    from tests.test_report import queue_times

    name = f"held_{os.getpid()}_{int(time.time())}.txt"    # the job's name: the cell is shared
    root = write(tmp_path, {"Pipefile": f"""\
        {name} :
            cluster: -h
            shell: touch {{output}}
        """})
    run = subprocess.Popen([sys.executable, "-m", "rulerun"], cwd=root, env=environment(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["qstat", "-j", name], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.2)
        time.sleep(3)                                      # held 3 s from its submission on
        subprocess.run(["qrls", name], capture_output=True, check=True, timeout=30)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    recorded, drawn = queue_times(root)
    assert len(recorded) == 1 and recorded[0] >= 3, recorded
    assert drawn == [pytest.approx(recorded[0], abs=0.01)]


@sge
def test_a_failed_jobs_files_stay_until_the_next_run_prunes_them(tmp_path):
    from tests.test_cluster_slurm import failed_files_stay_until_pruned

    failed_files_stay_until_pruned(tmp_path, rulerun)


@sge
def test_a_job_over_its_time_limit_fails_with_grid_engines_reason(tmp_path):
    root = write(tmp_path, {"Pipefile": """\
        slow.txt :
            cluster: -l h_rt=0:0:2
            shell: echo started > {output}; sleep 60; echo finished >> {output}
        """})
    proc = rulerun(root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    report = _report_of(proc.stderr, "slow.txt")
    assert re.search(r"cluster job: \d+\n", report), report
    assert "killed by SIGKILL: qmaster enforced h_rt, h_cpu, or h_vmem limit (qacct: failed 37)" in report
    assert not (root / "slow.txt").exists()                                   # never looks finished
    assert (root / ".rulerun" / "failed" / "slow.txt").read_text() == "started\n"   # set aside
