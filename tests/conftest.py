"""Shared fixtures: a project directory with a Pipefile, and the CLI run in-process or as a process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project directory (the cwd) with helpers to write files and load its Pipefile."""
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path)


class Project:
    def __init__(self, root: Path):
        self.root = root

    def write(self, path: str, text: str = "") -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    def pipefile(self, text: str, name: str = "Pipefile"):
        from rulerun.lang.parse import load_pipefile

        self.write(name, text)
        return load_pipefile(name)

    def resolver(self, text: str):
        from rulerun.plan.view import DiskView
        from rulerun.plan.resolve import Resolver

        return Resolver(self.pipefile(text), DiskView())

    def run(self, *args: str, env: dict | None = None, timeout: float = 120, input: str | None = None):
        """The CLI as a separate process, as a user runs it."""
        full_env = dict(os.environ, **(env or {}))
        full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
        return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=self.root, env=full_env,
                              capture_output=True, text=True, timeout=timeout, input=input)

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def read(self, path: str) -> str:
        return (self.root / path).read_text()


# Tests with a deadline (jobs stopped within 2 s, kills timed to land mid-run, watch's debounce) and those
# of the one shared cluster run alone after the rest, which scripts/test.sh runs in parallel
# (pytest-xdist): on a loaded machine their deadlines would measure the machine.
SERIAL_MODULES = {"test_watch", "test_cluster_sge", "test_cluster_cli", "test_cluster_slurm"}
SERIAL_NAMES = re.compile(r"interrupt|sigterm|sighup|sigint|sigkill|kill_9|ctrl_c|within|second_run_waits")


# The lines serial tests run in, side by side (one test at a time within each): each cluster's,
# the kill and interrupt tests, and the rest.
LINES = {"test_cluster_sge": "grid-engine", "test_cluster_cli": "grid-engine", "test_cluster_slurm": "slurm",
         "test_reliability_crash": "crash"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SERIAL_MODULES or SERIAL_NAMES.search(item.name):
            item.add_marker(pytest.mark.serial)
            item.add_marker(pytest.mark.xdist_group(LINES.get(module, "here")))


def written_ids(directory: Path) -> set[str]:
    """The cluster job ids jobs wrote so far, one per file of `directory` (the shell makes a
    file before the job's echo writes into it: an empty one is not counted yet)."""
    return {text for text in (p.read_text().strip() for p in directory.iterdir()) if text}


# A glob over files a rule makes whose only input is an input function: it can't count them
BLIND_GLOB = """
    task all : out/*.b
        shell: cat {input} > all.txt
    out/{s}.b : $(a_of(wildcards.s))
        shell: cp {input} {output}
    python:
        def a_of(s):
            return f"src/{s}.a"
    """
