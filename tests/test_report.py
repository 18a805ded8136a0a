"""`rulerun --report FILE.html` (issue 16, item 5): one self-contained page of the last run,
checked in a real browser (headless Chromium, installed by .ci/run): its script runs without
an error and draws every part, and its screenshot is a picture, not a blank page."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib

import pytest

PIPEFILE = """
%.count : %.txt
    shell: sleep 0.1; wc -w < {input} > {output}
%.sq : %.count
    shell: echo squaring {input}; [ {input} != c.count ] || {{ echo "no c allowed" >&2; exit 3; }}; cat {input} > {output}
summary : a.sq b.sq c.sq
    python:
        open(output[0], "w").write("done")
task all : summary
"""


@pytest.fixture
def reported(project):
    project.write("Pipefile", PIPEFILE)
    for name in "abc":
        project.write(f"{name}.txt", f"{name} {name}\n")
    assert project.run("-k", "-j", "2", "all").returncode == 1
    result = project.run("--report", "report.html")
    assert result.returncode == 0, result.stderr
    assert "report of the last run (6 job(s)) written to report.html" in result.stdout
    return project


def test_report_is_self_contained_and_carries_the_runs_facts(reported):
    page = reported.read("report.html")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "@import" not in page and "<link" not in page
    for fact in ('"status": "failed"', '"reason": "exit status 3"', "no c allowed", '"slot": 1', '"%.sq"'):
        assert fact in page


def test_report_without_a_run_is_a_clear_error(project):
    result = project.run("--report", "r.html")
    assert result.returncode == 2 and "no run recorded here yet" in result.stderr and "Traceback" not in result.stderr


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    return found


def _browser(project, *args: str) -> subprocess.CompletedProcess:
    return browser(project.root, *args)


def browser(root, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ROOT/report.html (the cluster tests check their queue times with it)."""
    # --no-sandbox: CI runs as root; a profile of its own: other browsers may run at once
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={root / '.chromium'}", *args, (root / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_in_a_browser_without_script_errors(reported):
    dom = _browser(reported, "--dump-dom").stdout
    assert 'data-rendered="yes"' in dom, dom[-2000:]
    assert not re.search(r"data-error=", dom)  # window.onerror writes any error there
    assert '<div id="errors" hidden=""></div>' in dom
    assert dom.count('class="job"') == 6 and 'data-status="failed"' in dom
    assert "Failures (1)" in dom and "no c allowed" in dom and "exit status 3" in dom


def test_report_screenshot_is_a_picture(reported):
    shot = reported.root / "shot.png"
    _browser(reported, "--window-size=1280,900", f"--screenshot={shot}")
    width, height, pixels = _png(shot.read_bytes())
    assert (width, height) == (1280, 900)
    assert len(set(pixels[i:i + 3] for i in range(0, len(pixels), 997 * 3))) > 12  # many colours, not blank


def _png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the (still filtered) pixel bytes of a PNG: enough to see it is no blank."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_a_cluster_jobs_queue_time_is_drawn_when_known(project):
    from rulerun.report import render, report_data
    from rulerun.store.history import JobRow

    rows = [JobRow(1, "count", "count a.count", 0, 1.0, 2.0, "ok", "shell", "wc", "log", "", "4711", 0.5)]
    project.write("report.html", render(report_data({"began": 0, "ended": 2.5, "outcome": "ok"}, rows)))
    dom = _browser(project, "--dump-dom").stdout
    assert 'data-rendered="yes"' in dom and "queued 500 ms" in dom and "cluster job 4711" in dom


def queue_times(root) -> tuple[list[float], list[float]]:
    """The queue times of ROOT's last run: as the state database recorded them, and as its report
    draws them in Chromium (seconds; the cluster tests' check of a real scheduler's figures)."""
    import os
    import sqlite3
    import sys

    from tests.conftest import REPO

    with sqlite3.connect(root / ".rulerun" / "state.db") as db:
        recorded = [q for (q,) in db.execute("SELECT queued FROM last_run_jobs ORDER BY id")]
    made = subprocess.run([sys.executable, "-m", "rulerun", "--report", "report.html"], cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    dom = browser(root, "--dump-dom").stdout
    assert 'data-rendered="yes"' in dom and not re.search(r"data-error=", dom), dom[-2000:]
    drawn = [float(n) / (1000 if unit == "ms" else 1) for n, unit in re.findall(r"queued ([\d.]+) (ms|s)\b", dom)]
    return recorded, drawn
