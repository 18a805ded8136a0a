"""Shell completion (issue 16, item 8): the bash script, loaded into a real bash, completes
options and the Pipefile's targets (tasks, named rules, plain outputs), honouring -C."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

PIPEFILE = """
%.count : %.txt
    shell: wc -w < {input} > {output}
rule totals totals.txt : a.count
    shell: cat {input} > {output}
task all : totals.txt
"""


@pytest.fixture
def shim(tmp_path_factory):
    """A `rulerun` command on PATH that runs this tree's code (the script calls `rulerun`)."""
    bin_dir = tmp_path_factory.mktemp("bin")
    command = bin_dir / "rulerun"
    command.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m rulerun "$@"\n')
    command.chmod(0o755)
    return bin_dir


def complete(project, shim, *words: str, shell="bash") -> list[str]:
    """What completing the last of `words` offers, in a bash that loaded the script."""
    line = " ".join(["rulerun", *words])
    script = ('eval "$(rulerun --completion bash)"; COMP_WORDS=(' + line + "); "
              f"COMP_CWORD={len(words)}; COMP_LINE='{line}'; _rulerun; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", script], cwd=project.root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


def test_bash_completes_targets_rule_and_task_names(project, shim):
    project.write("Pipefile", PIPEFILE)
    project.write("a.txt", "a\n")
    offered = complete(project, shim, "")
    assert {"all", "totals", "totals.txt", "a.txt", "Pipefile"} <= set(offered)
    assert "%.count" not in offered  # a pattern is no target to type
    assert complete(project, shim, "to") == ["totals", "totals.txt"]


def test_bash_completes_options_and_follows_C(project, shim):
    project.write("sub/Pipefile", PIPEFILE)
    assert "--keep-going" in complete(project, shim, "--ke")
    assert complete(project, shim, "-C", "sub", "al") == ["all"]
    assert complete(project, shim, "--completion", "z") == ["zsh"]


def test_zsh_script_is_valid_zsh(project):
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    script = project.run("--completion", "zsh").stdout
    assert subprocess.run(["zsh", "-n"], input=script, text=True).returncode == 0


def test_completion_of_an_unknown_shell_is_a_usage_error(project):
    result = project.run("--completion", "fish")
    assert result.returncode == 2 and "invalid choice" in result.stderr
