"""One install gives every feature (issue 16, item 6): drmaa and watchdog are dependencies of
the package, yet a run that needs neither never imports them (start-up time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from tests.conftest import REPO

PROBE = """
import sys
sys.argv = ["rulerun", *sys.argv[1:]]
from rulerun import _console
try:
    _console()
except SystemExit:
    pass
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"drmaa", "watchdog"})
sys.stderr.write("LOADED " + " ".join(loaded) + "\\n")
"""


def test_cluster_and_watch_are_plain_dependencies_with_lower_bounds():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"]
    assert any(d.startswith("drmaa>=") for d in deps) and any(d.startswith("watchdog>=") for d in deps)


def _loaded(project, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=project.root, env=env,
                            capture_output=True, text=True, timeout=60)
    line = [l for l in result.stderr.splitlines() if l.startswith("LOADED")]
    assert line, result.stderr
    return line[0]


def test_version_and_dry_run_import_neither(project):
    project.write("Pipefile", "out : in\n    cluster:\n    shell: cp {input} {output}\n")
    project.write("in", "x\n")
    assert _loaded(project, "--version") == "LOADED "
    assert _loaded(project, "-n") == "LOADED "
