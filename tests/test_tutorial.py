"""docs/tutorial.md is run as written (issue 16, item 7): each ```pipefile block becomes the
Pipefile, each `$ ` line of a ```console block runs in bash (with `rulerun` on PATH) and must
end as its `# exits N` says (0 without one), and the lines printed under a command, as the
tutorial shows them, must be among what it printed (times aside). `rulerun --watch` is run,
fed one edit, and stopped with Ctrl-C, as the tutorial says."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from tests.conftest import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(pipefile|console)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def steps(text: str):
    """('pipefile', text) and ('run', command, exit status, lines shown) in the tutorial's order."""
    for kind, body in BLOCK.findall(text):
        if kind == "pipefile":
            yield ("pipefile", body)
            continue
        command = None
        for line in body.splitlines():
            if line.startswith("$ "):
                if command:
                    yield command
                text_, _, status = line[2:].partition("# exits ")
                command = ["run", text_.strip(), int(status or 0), []]
            elif command:
                command[3].append(line)
        if command:
            yield command


def test_every_command_of_the_tutorial_runs_as_shown(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "rulerun"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m rulerun "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "book"
    work.mkdir()
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1")
    ran = 0
    for step in steps(TUTORIAL.read_text()):
        if step[0] == "pipefile":
            (work / "Pipefile").write_text(step[1])
            continue
        _, command, status, shown = step
        if "--watch" in command:
            _watch(command, work, env)
            ran += 1
            continue
        result = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                                text=True, timeout=120)
        said = result.stdout + result.stderr
        assert result.returncode == status, f"{command}: exit {result.returncode}\n{said}"
        printed = [_timeless(line) for line in said.splitlines()]
        for line in shown:
            assert _timeless(line) in printed, f"{command}: the tutorial shows {line!r}; it printed:\n{said}"
        ran += 1
    assert ran >= 20


def _timeless(line: str) -> str:
    return re.sub(r"in \d+\.\ds", "in _s", line)


def _watch(command: str, work, env) -> None:
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        _wait_for(proc, "watching")
        time.sleep(0.3)
        (work / "chapters" / "storm.txt").write_text("the storm came in the night and stayed\n")
        _wait_for(proc, "rebuilt")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for(proc, word: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if word in line:
            return
    raise AssertionError(f"rulerun --watch never said {word!r}")


def test_building_an_example_leaves_git_clean(tmp_path):
    """README's first command builds examples/seed in the checkout: its .gitignore covers
    everything the build makes."""
    import shutil

    work = tmp_path / "seed"
    shutil.copytree(REPO / "examples" / "seed", work)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=work, check=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    built = subprocess.run([sys.executable, "-m", "rulerun", "-j", "10", "all"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=work,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
