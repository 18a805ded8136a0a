"""The local executor's choice of how to run a shell command."""

from __future__ import annotations

import pytest

from rulerun.executors.local import command_line


@pytest.mark.parametrize("script, direct", [
    ("touch out.txt", ["touch", "out.txt"]),
    ("cp 'a b' 'c;d'", ["cp", "a b", "c;d"]),
])
def test_simple_commands_run_without_a_shell(script, direct):
    assert command_line(script) == direct


@pytest.mark.parametrize("script", [
    "echo hi > a", "cd build", "A=1 env", "touch $HOME", "ls *.c", "true && false", "a\nb",
    "no-such-program-here x", "exit 3", "set -x", "touch `id`", "cat <in",
])
def test_anything_for_the_shell_goes_through_sh(script):
    assert command_line(script) == ["/bin/sh", "-e", "-c", script]
