"""What a person sees on a terminal: one status line rewritten in place, colour unless NO_COLOR;
and on a pipe: plain lines, no escape codes."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import termios
import subprocess
import sys

from tests.conftest import REPO

PIPEFILE = """
%.out : %.in
    shell: cp {input} {output}
task all : a.out b.out c.out
bad :
    shell: echo oops >&2; exit 4
"""


def run_in_pty(project, *args, env=None, columns=None):
    """Run the CLI with stdout and stderr on a pseudo-terminal (`columns` wide); return
    everything it wrote."""
    leader, follower = pty.openpty()
    if columns:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    full_env = dict(os.environ, PYTHONPATH=str(REPO), TERM="xterm")
    full_env.pop("NO_COLOR", None)
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "rulerun", *args], cwd=project.root, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=full_env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode()


def setup(project):
    project.write("Pipefile", PIPEFILE)
    for name in "abc":
        project.write(f"{name}.in", name)


def test_terminal_gets_one_status_line_rewritten_in_place(project):
    setup(project)
    code, screen = run_in_pty(project, "-j", "1", "all")
    assert code == 0
    assert "\r\x1b[K[0/3] a.out" in screen and "\r\x1b[K[3/3]" in screen  # a pattern rule: the file alone
    assert "[1/3] %.out a.out\r\n" not in screen.replace("\x1b[K", "")  # not one line per job
    assert "\x1b[32m" in screen  # the closing line in colour


def test_terminal_failure_in_red_and_no_color_turns_it_off(project):
    setup(project)
    code, screen = run_in_pty(project, "bad")
    assert code == 1 and "\x1b[31m" in screen and "FAILED: rule 'bad'" in screen
    code, screen = run_in_pty(project, "bad", env={"NO_COLOR": "1"})
    assert code == 1 and "FAILED: rule 'bad'" in screen and "\x1b[31m" not in screen


def test_pipe_gets_plain_lines(project):
    setup(project)
    result = project.run("-j", "1", "all")
    assert result.stdout.splitlines()[:3] == ["[1/3] a.out", "[2/3] b.out", "[3/3] c.out"]
    assert "\x1b" not in result.stdout + result.stderr


# ---------------------------------------------------------------------- what jobs print (issue 16)

PRINTING = """
python:
    GREETING = "hello"
%.count : %.txt
    shell: for i in 1 2 3; do echo "{input} line $i"; sleep 0.05; done; wc -w < {input} > {output}
long.out :
    shell: seq 1 100; touch {output}
py.out : a.count
    python:
        print(GREETING, "from python")
        open(output[0], "w").write("x")
task all : a.count b.count py.out
"""


def printing(project):
    project.write("Pipefile", PRINTING)
    project.write("a.txt", "a b\n")
    project.write("b.txt", "c\n")


def test_what_a_job_prints_is_shown_whole_when_it_ends(project):
    printing(project)
    result = project.run("-j", "2", "all")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # run side by side, each job's lines come together, under its own [n/t] line
    for name in "ab":
        block = f"] {name}.count\n{name}.txt line 1\n{name}.txt line 2\n{name}.txt line 3\n"
        assert block in out
    assert "] py.out\nhello from python\n" in out


def test_a_long_output_shows_its_last_lines_and_where_the_rest_is(project):
    printing(project)
    out = project.run("long.out").stdout
    assert "100\n" in out and "\n1\n" not in out
    assert "earlier line(s) in .rulerun/logs/long.out/" in out


def test_quiet_shows_no_job_output(project):
    printing(project)
    result = project.run("-q", "all")
    assert result.returncode == 0 and result.stdout == ""


def test_terminal_clears_the_status_line_before_a_jobs_output(project):
    printing(project)
    code, screen = run_in_pty(project, "-j", "1", "py.out")
    assert code == 0
    assert "\r\x1b[K[2/2] py.out\r\nhello from python\r\n" in screen


def test_dry_run_verbose_prints_each_jobs_command_or_python_block(project):
    printing(project)
    out = project.run("-n", "-v", "all").stdout
    assert '    $ for i in 1 2 3; do echo "a.txt line $i"; sleep 0.05; done; wc -w < a.txt > a.count' in out
    assert "    python: the block at Pipefile:10:9" in out
    assert "$ " not in project.run("-n", "all").stdout


def test_touch_says_what_it_touched(project):
    printing(project)
    result = project.run("--touch", "all")
    assert result.returncode == 0
    assert {"touch a.count", "touch b.count", "touch py.out"} <= set(result.stdout.splitlines())
    assert project.read("py.out") == ""  # touched, not made


# ---------------------------------------------------------------------- the status line (issue 16)

SLOW = """
%.count : %.txt
    shell: sleep 0.3; wc -w < {input} > {output}
task all : a_rather_long_directory_name_for_a_narrow_terminal/storm.count b.count c.count
"""


def status_lines(screen: str) -> list[str]:
    """Every state the status line went through."""
    return [part for part in re.split(r"\r\x1b\[K|\r\n", screen) if part.startswith("[")]


def slow(project):
    project.write("Pipefile", SLOW)
    project.write("a_rather_long_directory_name_for_a_narrow_terminal/storm.txt", "a b\n")
    project.write("b.txt", "b\n")
    project.write("c.txt", "c\n")


def test_status_line_counts_running_and_queued_apart(project):
    slow(project)
    code, screen = run_in_pty(project, "-j", "2", "all", columns=200)
    assert code == 0
    assert any(re.search(r"\] b\.count  2 running, 1 queued, ", line) for line in status_lines(screen)), screen


def test_status_line_has_an_eta_once_an_earlier_run_timed_the_jobs(project):
    slow(project)
    code, screen = run_in_pty(project, "-j", "1", "all", columns=200)
    assert code == 0 and "ETA" not in screen  # nothing known yet: no guess
    code, screen = run_in_pty(project, "-B", "-j", "1", "all", columns=200)
    assert code == 0
    etas = [float(m) for m in re.findall(r"ETA (\d+\.\d)s", screen)]
    assert etas and 0.5 <= etas[0] <= 6, screen  # three jobs of 0.3 s one at a time (a loaded machine: slower)


def test_narrow_terminal_keeps_the_file_name_visible(project):
    slow(project)
    code, screen = run_in_pty(project, "-j", "1", "all", columns=32)
    assert code == 0
    lines = status_lines(screen)
    assert any(line.endswith("storm.count") for line in lines), lines
    assert all(len(line) <= 31 for line in lines if "done in" not in line), lines
