"""Filenames are data: inputs and wildcard values with spaces, quotes, ';', '$(...)', backticks,
'*', a leading '-', newlines and non-ASCII, matched by globs, '%' and {name} patterns, reach
shell and Python actions intact (every output's content is checked) and are never run as shell
code (each name that tries to 'touch PWNED' must leave no PWNED behind).

The same pipeline runs on the cluster (--cluster) when RULERUN_SGE=1 (scripts/sge.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NAMES = [
    "plain",
    "with space",
    "two  spaces and\ttab",
    "single'quote",
    'double"quote',
    "semi;touch PWNED",
    "and&&touch PWNED",
    "pipe|touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "${IFS}touch${IFS}PWNED",
    "dollar$HOME",
    "star*name",
    "question?mark",
    "[bracket]",
    "-leading-dash",
    "--",
    "new\nline;touch PWNED",
    "ünïcödé-名前-😀",
    "back\\slash",
    "redirect>PWNED",
    "hash#not-a-comment",
    "percent%sign",
    "colon:name",
]

DASHED = ["-n", "--help", "-rf x", "-"]

PIPEFILE = """
%.out : in/%.txt
    shell: cat {input} > {output}; printf '[%s]' {stem} >> {output}

w/{name}.w : in/{name}.txt
    shell:
        printf '<%s>' {name} > {output}
        cat {input[0]} >> {output}

%.py : in/%.txt
    python:
        with open(output[0], "w") as out:
            out.write(open(input[0]).read() + "(" + stem + ")")

all.cat : in/*.txt
    shell: cat {input} > {output}

%.copy : %.src
    shell: cp {input} {output}

task all : *.out w/*.w *.py all.cat *.copy
"""


def make(root: Path) -> None:
    (root / "in").mkdir(parents=True)
    for name in NAMES:
        (root / "in" / f"{name}.txt").write_text(f"content of {name}\n")
    for name in DASHED:   # in the top directory: the path itself starts with '-'
        (root / f"{name}.src").write_text(f"source {name}\n")
    (root / "Pipefile").write_text(PIPEFILE)


def check(root: Path, result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    for name in NAMES:
        content = f"content of {name}\n"
        assert (root / f"{name}.out").read_text() == f"{content}[{name}]", repr(name)
        assert (root / "w" / f"{name}.w").read_text() == f"<{name}>{content}", repr(name)
        assert (root / f"{name}.py").read_text() == f"{content}({name})", repr(name)
    for name in DASHED:
        assert (root / f"{name}.copy").read_text() == f"source {name}\n", repr(name)
    expected = "".join(f"content of {name}\n" for name in sorted(NAMES, key=lambda n: f"in/{n}.txt"))
    assert (root / "all.cat").read_text() == expected
    planted = list(root.rglob("PWNED"))   # `touch PWNED` or `>PWNED` run anywhere by any job
    assert not planted, planted


def rulerun(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=root, capture_output=True, text=True,
                          env=dict(env or os.environ, PYTHONPATH=str(REPO)), timeout=300)


def test_hostile_names_are_built_right_and_never_executed(tmp_path):
    make(tmp_path)
    check(tmp_path, rulerun(tmp_path, "-j", "4", "all"))
    again = rulerun(tmp_path, "all")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    dry = rulerun(tmp_path, "-n", "-B", "all")
    assert dry.returncode == 0 and "Traceback" not in dry.stderr
    assert not (tmp_path / "PWNED").exists()


def test_hostile_names_as_targets_on_the_command_line(tmp_path):
    make(tmp_path)
    targets = [f"{name}.out" for name in NAMES]
    result = rulerun(tmp_path, "--", *targets)   # '--': what follows is no option
    assert result.returncode == 0, result.stderr[-4000:]
    for name in NAMES:
        assert (tmp_path / f"{name}.out").read_text() == f"content of {name}\n[{name}]", repr(name)
    assert not (tmp_path / "PWNED").exists()


NOT_UTF8 = """
%.out : %.txt
    shell: {{ cat {input}; echo shell; }} > {output}
%.py_out : %.txt
    python:
        open(output[0], "w").write(open(input[0]).read() + "python\\n")
%.bad : %.txt
    shell: echo half > {output}; exit 1
all : *.out *.py_out
    shell: cat {input} > {output}
task fail : *.bad
"""


def test_a_file_name_that_is_not_utf8_is_built_like_any_other(tmp_path):
    """b'caf\\xe9.txt' (Latin-1) through a glob: made, recorded in the state, quarantined and
    printed as the bytes it is, even to a strict UTF-8 terminal (was a UnicodeEncodeError that
    stopped the whole build)."""
    (tmp_path / "Pipefile").write_text(NOT_UTF8)
    os.close(os.open(os.fsencode(tmp_path) + b"/caf\xe9.txt", os.O_CREAT | os.O_WRONLY))
    (tmp_path / "ok.txt").write_text("ok\n")
    name = os.fsdecode(b"caf\xe9")

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "rulerun", *args], cwd=tmp_path, capture_output=True,
                                text=True, errors="surrogateescape", timeout=60,
                                env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8"))
        assert "Traceback" not in result.stderr, result.stderr
        return result

    built = run("all")
    assert built.returncode == 0, built.stderr
    assert (tmp_path / f"{name}.out").read_text() == "shell\n" and (tmp_path / f"{name}.py_out").read_text() == "python\n"
    assert (tmp_path / "all").read_text() == "shell\nok\nshell\npython\nok\npython\n"
    assert f"{name}.out" in built.stdout
    assert "nothing to do" in run("all").stdout
    os.utime(tmp_path / f"{name}.txt")
    assert f"because input '{name}.txt' is newer than output '{name}.out'" in run("-n", "all").stdout
    failed = run("-k", "fail")
    assert failed.returncode == 1 and f"FAILED: rule '%.bad' making {name}.bad" in failed.stderr
    assert (tmp_path / ".rulerun" / "failed" / f"{name}.bad").read_text() == "half\n"


@pytest.mark.cluster
@pytest.mark.skipif(os.environ.get("RULERUN_SGE") != "1",
                    reason="needs Grid Engine: bash scripts/sge.sh start, then RULERUN_SGE=1")
def test_hostile_names_through_the_cluster(tmp_path):
    make(tmp_path)
    pipefile = tmp_path / "Pipefile"   # proof that shell jobs ran under Grid Engine: its JOB_ID
    pipefile.write_text(PIPEFILE.replace("task all : ", "task all : where.txt ")
                        + 'where.txt :\n    shell: echo "job $JOB_ID" > {output}\n')
    check(tmp_path, rulerun(tmp_path, "--cluster", "-j", "32", "all"))
    assert (tmp_path / "where.txt").read_text().split()[1].isdigit()
