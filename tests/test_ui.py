"""What a person sees on a terminal: one status line rewritten in place, colour unless NO_COLOR;
and on a pipe: plain lines, no escape codes."""

from __future__ import annotations

import os
import pty
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


def run_in_pty(project, *args, env=None):
    """Run the CLI with stdout and stderr on a pseudo-terminal; return everything it wrote."""
    leader, follower = pty.openpty()
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
    assert "\r\x1b[K[0/3] %.out a.out" in screen and "\r\x1b[K[3/3]" in screen
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
    assert result.stdout.splitlines()[:3] == ["[1/3] %.out a.out", "[2/3] %.out b.out", "[3/3] %.out c.out"]
    assert "\x1b" not in result.stdout + result.stderr
