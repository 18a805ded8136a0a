"""Fuzzing the Pipefile language: every text either loads (parse, load-time checks, and the
preamble's Python run by build_namespace) or raises a PipefileError naming the file, a line
inside it and a column. Never another exception, never a hang (each case has 5 s).

Two generators: mutations of real Pipefiles (examples/*/Pipefile and the seed pipeline:
characters deleted, duplicated, inserted — tabs, colons, braces, quotes, newlines —, lines
re-indented, swapped or doubled) and grammar-aware generation of whole Pipefiles (variables,
limits, python blocks, rules and tasks with bodies, shell templates), lightly mutated too.

A few hundred cases per generator in the normal run; RULERUN_FUZZ_LONG=1 runs 10,000 each.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulerun.errors import PipefileError
from rulerun.lang.namespace import build_namespace
from rulerun.lang.parse import load_pipefile

REPO = Path(__file__).resolve().parent.parent
LONG = os.environ.get("RULERUN_FUZZ_LONG") == "1"
CASES = 10_000 if LONG else 300
CASE_SECONDS = 5

EXTRA_SEEDS = [
    """\
limit net = 2
X = [1, 2, 3]  # a list
python:
    def helper(x):
        return x * 2

out/{sample}_{lane}.bam : raw/{sample}/{lane}.fq "ref genome.fa"
    name: align
    limit: net
    cluster: -l h_vmem=1G  # options
    queue: all.q
    retries: 2
    shell:
        echo {sample} {lane} {input[0]} > {output}
        awk '{{print $1}}' {input[1]} >> {output}

%.txt : %.in
    limit: 3
    python:
        if True:
            open(output[0], "w").write(stem)

task all : out/a_1.bam x.txt
    shell: echo done
task clean :
""",
    "a : b\r\n    shell: touch a\r\n",
    "python:\n    x = {'a': 1}\n\ny = x['a'] + 1\n",
]


EXAMPLES = sorted((REPO / "examples").glob("*/Pipefile"))


def seeds() -> list[str]:
    found = [path.read_text() for path in EXAMPLES]
    assert len(found) >= 3, "the example Pipefiles are missing"
    return found + EXTRA_SEEDS


SEEDS = seeds()
INSERTS = ["\t", ":", " :", "{", "}", "{{", "}}", '"', "'", "\\", " ", "    ", "        ", "\n", "\n\n", "\r\n",
           "#", "%", "*", "?", "[", "]", "=", "==", "(", ")", "-", "0", "-1", "x", "{input}", "{output[9]}",
           "{stem}", "{nope}", "shell:", "python:", "task ", "limit ", "name:", "limit:", "retries:", "queue:",
           "cluster:", "é", "\u00a0", "\x00", "\x0c", "\ufeff", "\u2028", "😀", '"unterminated', "\\\"", "\n    ",
           "\n  ", "\n\t"]


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout(f"a case took more than {CASE_SECONDS} s")


def check_text(text: str, tmp_dir: Path) -> None:
    """The property: loads (and its Python runs) or is a well-located PipefileError."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    cwd = os.getcwd()
    os.chdir(tmp_dir)   # the preamble's Python (glob.glob …) looks at an empty directory
    try:
        pipefile = load_pipefile("Pipefile", text)
        build_namespace(pipefile, {})
    except PipefileError as exc:
        lines = max(1, len(text.replace("\r\n", "\n").split("\n")))
        assert exc.loc.file == "Pipefile", exc.loc
        assert 1 <= exc.loc.line <= lines, (exc.loc, lines)
        assert exc.loc.col >= 1, f"no column: {exc.show()}"
        shown = exc.show()
        assert shown.startswith(f"Pipefile:{exc.loc.line}:{exc.loc.col}: ")
        assert "Token(" not in shown and "_NL" not in shown and "$END" not in shown, shown
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)


# ------------------------------------------------------------------ mutation

@st.composite
def mutation(draw, text: str) -> str:
    size = len(text)
    kind = draw(st.sampled_from(["delete", "duplicate", "insert", "indent", "swap", "double_line", "truncate"]))
    at = draw(st.integers(0, size))
    if kind == "delete":
        return text[:at] + text[at + draw(st.integers(1, 8)):]
    if kind == "duplicate":
        end = min(size, at + draw(st.integers(1, 30)))
        return text[:end] + text[at:end] + text[end:]
    if kind == "insert":
        piece = draw(st.sampled_from(INSERTS) | st.text(max_size=3))
        return text[:at] + piece + text[at:]
    if kind == "truncate":
        return text[:at]
    lines = text.split("\n")
    index = draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "indent":
        change = draw(st.sampled_from([-4, -2, -1, 1, 2, 4, 8]))
        line = lines[index]
        lines[index] = " " * change + line if change > 0 else line[-change:] if line[:-change].isspace() else line.lstrip()
    elif kind == "swap":
        other = draw(st.integers(0, max(0, len(lines) - 1)))
        lines[index], lines[other] = lines[other], lines[index]
    else:
        lines.insert(index, lines[index])
    return "\n".join(lines)


@st.composite
def mutated(draw, base=None) -> str:
    text = draw(st.sampled_from(SEEDS)) if base is None else base
    for _ in range(draw(st.integers(1, 6))):
        text = draw(mutation(text))
    return text


# ------------------------------------------------------------------ generation

NAME = st.sampled_from(["a", "b", "x1", "sample", "lane", "net", "all", "out", "CC", "input", "stem", "task", "limit"])
PATH = st.sampled_from(["a.txt", "%.o", "src/%.c", "out/{sample}.bam", "raw/{sample}/{lane}.fq", "*.o", "b?.c",
                        "[ab].x", '"my file.txt"', '"q\\"uote"', "{x}{y}", "%.%", "{input}", "}", "{", "a:b", "-x",
                        "dir/", "é.txt", "{sample}_%"])
SHELL = st.sampled_from(["touch {output}", "cp {input} {output}", "echo {input[0]} > {output[0]}", "echo {stem}",
                         "echo {sample} {lane}", "echo {CC} {X}", "awk '{{print $1}}' {input}", "echo {", "echo }",
                         "echo {nope}", "echo {input[x]}", "echo {x[0]}", "exit 1", "cat <<EOF\nline\nEOF"])
PYTHON = st.sampled_from(["x = 1", "import os", "def f(a):\n    return a", "open(output[0], 'w').close()",
                          "if x:\n    pass", "for i in range(3):\n    print(i)", "y = (", "return 1", "import nope_module",
                          "1/0", "raise SystemExit(3)", "class C:\n    pass", "x = [i for i in range(3)]", "  indented",
                          "lambda: (yield)", "del undefined_name"])
INDENT = st.sampled_from(["    ", "  ", "        ", "\t", " "])
EXPRESSION = st.sampled_from(['"cc"', "1 + 2", "[1, 2]", "(", "undefined", "x", "'#not a comment'  # comment",
                              "1 if True else 2", '"a" "b"', "1 = 2", ""])


@st.composite
def block(draw, source_strategy) -> str:
    indent = draw(INDENT)
    lines = []
    for source in draw(st.lists(source_strategy, min_size=1, max_size=3)):
        lines.extend(indent + line for line in source.split("\n"))
    return "\n".join(lines)


@st.composite
def body(draw) -> str:
    indent = draw(INDENT)
    lines = []
    for key in draw(st.lists(st.sampled_from(["name", "limit", "limit_n", "cluster", "queue", "retries", "bogus"]),
                             max_size=3)):
        value = {"name": draw(NAME), "limit": draw(NAME), "limit_n": str(draw(st.integers(-1, 5))),
                 "cluster": "-l h_vmem=1G", "queue": "all.q", "retries": str(draw(st.integers(-1, 3))),
                 "bogus": "x"}[key]
        lines.append(f"{indent}{key.replace('_n', '')}: {value}")
    action = draw(st.sampled_from(["shell_line", "shell_block", "python", "none"]))
    if action == "shell_line":
        lines.append(f"{indent}shell: {draw(SHELL).split(chr(10))[0]}")
    elif action == "shell_block":
        lines.append(f"{indent}shell:\n" + "\n".join(indent + "    " + line for line in draw(SHELL).split("\n")))
    elif action == "python":
        lines.append(f"{indent}python:\n" + "\n".join(indent + "    " + line for line in draw(PYTHON).split("\n")))
    return "\n".join(lines)


@st.composite
def item(draw) -> str:
    kind = draw(st.sampled_from(["rule", "rule", "rule", "task", "variable", "limit", "python", "comment", "blank"]))
    if kind == "rule":
        outputs = " ".join(draw(st.lists(PATH, min_size=1, max_size=3)))
        inputs = " ".join(draw(st.lists(PATH, max_size=3)))
        return f"{outputs} : {inputs}\n{draw(body())}"
    if kind == "task":
        inputs = " ".join(draw(st.lists(PATH, max_size=3)))
        rest = draw(body()) if draw(st.booleans()) else ""
        return f"task {draw(NAME)} : {inputs}\n{rest}"
    if kind == "variable":
        return f"{draw(NAME)} = {draw(EXPRESSION)}"
    if kind == "limit":
        return f"limit {draw(NAME)} = {draw(st.integers(-1, 5))}"
    if kind == "python":
        return "python:\n" + draw(block(PYTHON))
    if kind == "comment":
        return "# " + draw(st.text(max_size=10)).replace("\n", " ")
    return ""


@st.composite
def generated(draw) -> str:
    text = "\n".join(draw(st.lists(item(), min_size=1, max_size=6))) + draw(st.sampled_from(["\n", "", "\n\n"]))
    if draw(st.booleans()):
        text = draw(mutated(base=text))
    return text


FUZZ = settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(text=mutated())
def test_mutated_pipefiles_load_or_fail_with_a_located_error(text, tmp_path_factory):
    check_text(text, _scratch(tmp_path_factory))


@FUZZ
@given(text=generated())
def test_generated_pipefiles_load_or_fail_with_a_located_error(text, tmp_path_factory):
    check_text(text, _scratch(tmp_path_factory))


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_seed_loads(index, tmp_path, monkeypatch):
    """The seeds themselves are valid Pipefiles: the mutations start from sound ground (an
    example's in its own directory, where the files it reads, a config, are)."""
    monkeypatch.chdir(EXAMPLES[index].parent if index < len(EXAMPLES) else tmp_path)
    pipefile = load_pipefile("Pipefile", SEEDS[index])
    assert pipefile.rules or pipefile.preamble
    build_namespace(pipefile, {})


_SCRATCH: list[Path] = []


def _scratch(factory) -> Path:
    if not _SCRATCH:
        _SCRATCH.append(factory.mktemp("fuzz"))
    return _SCRATCH[0]
