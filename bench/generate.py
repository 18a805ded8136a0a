"""Benchmark workload generator: owns the workloads and their build files.

For each workload and size N it writes, in a fresh directory per tool, the
source files and one equivalent build file for rulerun (Pipefile), GNU make
(Makefile), Ninja (build.ninja, one explicit edge per file since Ninja has no
patterns) and Snakemake (Snakefile).  Every action is a trivial `cp` or
`touch`, the same for every tool, so what is measured is the tool itself.

It also tells `run.py` what a correct build looks like: the sources, the
outputs a full build must leave, and the outputs that depend on the one
source the "touched" phase changes.

Workloads:
  chains   N sources src/i.txt; src/i.a from src/i.txt, src/i.b from src/i.a
           (cp); a target `all` needing every .b, found by a glob over
           makeable files (rulerun), $(wildcard)+$(patsubst) (make),
           glob_wildcards+expand (Snakemake), an explicit list (Ninja).
  fanin    one output (fanin.out, by touch) from N inputs src/i.txt.
  trivial  N independent jobs: src/i.done from src/i.txt by touch.
  lua      Lua 5.4.8 from its C sources (fetched once from PyPI, see luasources.py): 33
           objects by a pattern rule, liblua.a from 32 of them, the `lua` program; N is
           the number of objects and fixed.
  startup  a ten-rule chain seed.txt -> s1.out -> ... -> s10.out, used only
           for `--version` and a dry run: the cost of starting the tool.

The Part 2 forms, rulerun only (make, Ninja and Snakemake have no such forms):
the graph of `chains`, written three ways that differ in one thing each.
  plain    the baseline: `task all : src/*.b` (a glob over makeable files) and
           named-wildcard rules `src/{sample}.b : src/{sample}.a`, ...
  expand   `task all : src/$(SAMPLES).b`, SAMPLES a literal list of the N
           sample names written into the Pipefile; the rules as in plain.
  inputfn  as expand, but every rule's input comes from a function of the
           Pipefile's, `$(a_of(wildcards.sample))`: 2N jobs, each evaluating one.
           (Its targets can't be found by a glob: a glob over makeable files
           does not see through an input function.)

Usage: python bench/generate.py WORKLOAD N TOOL DEST
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import luasources

TOOLS = ("rulerun", "make", "ninja", "snakemake")

BUILD_FILES = {
    "rulerun": "Pipefile",
    "make": "Makefile",
    "ninja": "build.ninja",
    "snakemake": "Snakefile",
}

STARTUP_RULES = 10


@dataclass(frozen=True)
class Workload:
    """A benchmark workload: its files, its phases and its four build files."""

    name: str
    sizes: tuple[int, ...]
    phases: tuple[str, ...]
    sources: Callable[[int], list[str]]
    outputs: Callable[[int], list[str]]
    touched: Callable[[int], tuple[str, list[str]]]  # (source, outputs it changes)
    writers: dict[str, Callable[[int], str]]
    populate: Callable[[Path], None] | None = None  # writes real sources; else each holds its name

    def writes_for(self, tool: str) -> bool:
        """Whether this workload has a build file for `tool` (the Part 2 forms: rulerun only)."""
        return tool in self.writers

    def build_file(self, tool: str, n: int) -> str:
        return self.writers[tool](n)


BUILD_PHASES = ("dry", "full", "noop", "touch")
STARTUP_PHASES = ("version", "dry")


# ---------------------------------------------------------------- helpers


def numbered(n: int, pattern: str) -> list[str]:
    """`pattern` with `{i}` filled in for 0..n-1."""
    return [pattern.format(i=i) for i in range(n)]


def middle(n: int) -> int:
    """The index of the source the "touched" phase changes."""
    return n // 2


def ninja_edges(rule: str, pairs: list[tuple[str, str]]) -> list[str]:
    """One explicit Ninja build edge per (output, input) pair."""
    return [f"build {out}: {rule} {inp}" for out, inp in pairs]


def ninja_phony_all(outputs: list[str]) -> list[str]:
    joined = " $\n    ".join(outputs)
    return [f"build all: phony $\n    {joined}", "default all"]


def lines(*parts: str | list[str]) -> str:
    """Join strings and lists of strings into file text, one per line."""
    out: list[str] = []
    for part in parts:
        out.extend([part] if isinstance(part, str) else part)
    return "\n".join(out) + "\n"


MAKE_PREAMBLE = [
    "MAKEFLAGS += --no-builtin-rules",
    ".SUFFIXES:",
    ".PHONY: all",
]


# ---------------------------------------------------------------- chains


def chains_outputs(n: int) -> list[str]:
    return numbered(n, "src/{i}.a") + numbered(n, "src/{i}.b")


def chains_touched(n: int) -> tuple[str, list[str]]:
    i = middle(n)
    return f"src/{i}.txt", [f"src/{i}.a", f"src/{i}.b"]


def chains_pipefile(n: int) -> str:
    return lines(
        "task all : src/*.b",
        "",
        "%.b : %.a",
        "    shell: cp {input} {output}",
        "",
        "%.a : %.txt",
        "    shell: cp {input} {output}",
    )


def chains_makefile(n: int) -> str:
    return lines(
        MAKE_PREAMBLE,
        ".SECONDARY:",  # keep the .a files: they are outputs, not intermediates
        "",
        "all: $(patsubst %.txt,%.b,$(wildcard src/*.txt))",
        "",
        "%.b: %.a",
        "\tcp $< $@",
        "",
        "%.a: %.txt",
        "\tcp $< $@",
    )


def chains_ninja(n: int) -> str:
    ids = range(n)
    return lines(
        "rule cp",
        "  command = cp $in $out",
        "",
        ninja_edges("cp", [(f"src/{i}.a", f"src/{i}.txt") for i in ids]),
        ninja_edges("cp", [(f"src/{i}.b", f"src/{i}.a") for i in ids]),
        ninja_phony_all(numbered(n, "src/{i}.b")),
    )


def chains_snakefile(n: int) -> str:
    return lines(
        'IDS = glob_wildcards("src/{i}.txt").i',
        "",
        "rule all:",
        '    input: expand("src/{i}.b", i=IDS)',
        "",
        "rule b:",
        '    input: "src/{i}.a"',
        '    output: "src/{i}.b"',
        '    shell: "cp {input} {output}"',
        "",
        "rule a:",
        '    input: "src/{i}.txt"',
        '    output: "src/{i}.a"',
        '    shell: "cp {input} {output}"',
    )


# ---------------------------------------------------------------- fan-in
# The action does not name its N inputs: a 10,000-path command line would
# exceed Linux's 128 KiB limit on one argument (`sh -c SCRIPT`).


def fanin_touched(n: int) -> tuple[str, list[str]]:
    return f"src/{middle(n)}.txt", ["fanin.out"]


def fanin_pipefile(n: int) -> str:
    return lines(
        "task all : fanin.out",
        "",
        "fanin.out : src/*.txt",
        "    shell: touch {output}",
    )


def fanin_makefile(n: int) -> str:
    return lines(
        MAKE_PREAMBLE,
        "",
        "all: fanin.out",
        "",
        "fanin.out: $(wildcard src/*.txt)",
        "\ttouch $@",
    )


def fanin_ninja(n: int) -> str:
    inputs = " $\n    ".join(numbered(n, "src/{i}.txt"))
    return lines(
        "rule touch",
        "  command = touch $out",
        "",
        f"build fanin.out: touch $\n    {inputs}",
        "build all: phony fanin.out",
        "default all",
    )


def fanin_snakefile(n: int) -> str:
    return lines(
        'IDS = glob_wildcards("src/{i}.txt").i',
        "",
        "rule all:",
        '    input: "fanin.out"',
        "",
        "rule fanin:",
        '    input: expand("src/{i}.txt", i=IDS)',
        '    output: "fanin.out"',
        '    shell: "touch {output}"',
    )


# ---------------------------------------------------------------- trivial


def trivial_touched(n: int) -> tuple[str, list[str]]:
    i = middle(n)
    return f"src/{i}.txt", [f"src/{i}.done"]


def trivial_pipefile(n: int) -> str:
    return lines(
        "task all : src/*.done",
        "",
        "%.done : %.txt",
        "    shell: touch {output}",
    )


def trivial_makefile(n: int) -> str:
    return lines(
        MAKE_PREAMBLE,
        "",
        "all: $(patsubst %.txt,%.done,$(wildcard src/*.txt))",
        "",
        "%.done: %.txt",
        "\ttouch $@",
    )


def trivial_ninja(n: int) -> str:
    return lines(
        "rule touch",
        "  command = touch $out",
        "",
        ninja_edges("touch", [(f"src/{i}.done", f"src/{i}.txt") for i in range(n)]),
        ninja_phony_all(numbered(n, "src/{i}.done")),
    )


def trivial_snakefile(n: int) -> str:
    return lines(
        'IDS = glob_wildcards("src/{i}.txt").i',
        "",
        "rule all:",
        '    input: expand("src/{i}.done", i=IDS)',
        "",
        "rule done:",
        '    input: "src/{i}.txt"',
        '    output: "src/{i}.done"',
        '    shell: "touch {output}"',
    )


# ---------------------------------------------------------------- lua
# A real compile: the interpreter of Lua 5.4.8, built as Lua's makefile builds it, with the
# same compiler flags and object lists for every tool. No header dependencies in any of the
# files: a clean build needs none, and the touched phase edits a .c file.


def lua_objects() -> list[str]:
    return [f"src/{name}.o" for name in luasources.CORE + luasources.LIBS]


def lua_outputs(n: int) -> list[str]:
    return lua_objects() + ["src/lua.o", "src/liblua.a", "src/lua"]


def lua_pipefile(n: int) -> str:
    return lines(
        f'CFLAGS = "{luasources.CFLAGS}"',
        "",
        "task all : src/lua",
        "",
        f"src/liblua.a : {' '.join(lua_objects())}",
        "    shell: ar rcs {output} {input}",
        "",
        "src/lua : src/lua.o src/liblua.a",
        f"    shell: gcc -o {{output}} {luasources.LINK}",
        "",
        "src/%.o : src/%.c",
        "    shell: gcc {CFLAGS} -c -o {output} {input}",
    )


def lua_makefile(n: int) -> str:
    return lines(
        MAKE_PREAMBLE,
        f"CFLAGS = {luasources.CFLAGS}",
        "",
        "all: src/lua",
        "",
        f"src/liblua.a: {' '.join(lua_objects())}",
        "\tar rcs $@ $^",
        "",
        "src/lua: src/lua.o src/liblua.a",
        f"\tgcc -o $@ {luasources.LINK}",
        "",
        "src/%.o: src/%.c",
        "\tgcc $(CFLAGS) -c -o $@ $<",
    )


def lua_ninja(n: int) -> str:
    objects = lua_objects() + ["src/lua.o"]
    return lines(
        f"cflags = {luasources.CFLAGS}",
        "rule cc",
        "  command = gcc $cflags -c -o $out $in",
        "rule ar",
        "  command = ar rcs $out $in",
        "rule link",
        f"  command = gcc -o $out {luasources.LINK}",
        "",
        ninja_edges("cc", [(o, o[:-2] + ".c") for o in objects]),
        f"build src/liblua.a: ar {' '.join(lua_objects())}",
        "build src/lua: link src/lua.o src/liblua.a",
        "build all: phony src/lua",
        "default all",
    )


# ---------------------------------------------------------------- startup
# A literal ten-rule chain: seed.txt -> s1.out -> ... -> s10.out.


def startup_steps(n: int) -> list[tuple[str, str]]:
    """(output, input) for each of the n rules."""
    names = ["seed.txt"] + [f"s{k}.out" for k in range(1, n + 1)]
    return [(names[k], names[k - 1]) for k in range(1, n + 1)]


def startup_outputs(n: int) -> list[str]:
    return [out for out, _ in startup_steps(n)]


def startup_pipefile(n: int) -> str:
    rules = []
    for out, inp in startup_steps(n):
        rules += ["", f"{out} : {inp}", "    shell: cp {input} {output}"]
    return lines(f"task all : s{n}.out", rules)


def startup_makefile(n: int) -> str:
    rules = []
    for out, inp in startup_steps(n):
        rules += ["", f"{out}: {inp}", "\tcp $< $@"]
    return lines(MAKE_PREAMBLE, "", f"all: s{n}.out", rules)


def startup_ninja(n: int) -> str:
    return lines(
        "rule cp",
        "  command = cp $in $out",
        "",
        ninja_edges("cp", startup_steps(n)),
        f"build all: phony s{n}.out",
        "default all",
    )


def startup_snakefile(n: int) -> str:
    rules = []
    for k, (out, inp) in enumerate(startup_steps(n), start=1):
        rules += [
            "",
            f"rule step{k}:",
            f'    input: "{inp}"',
            f'    output: "{out}"',
            '    shell: "cp {input} {output}"',
        ]
    return lines("rule all:", f'    input: "s{n}.out"', rules)


# ---------------------------------------------------------------- Part 2 forms
# The chains graph (src/i.txt -> src/i.a -> src/i.b) in three Pipefiles that differ in one
# form each, so that the ratio to `plain` is the cost of that form.

NAMED_CHAIN_ACTION = "    shell: cp {input} {output}"


def named_chain_rules(b_input: str, a_input: str) -> list[str]:
    """The two chain rules over `{sample}`, with the inputs written as given."""
    return [
        f"src/{{sample}}.b : {b_input}",
        NAMED_CHAIN_ACTION,
        "",
        f"src/{{sample}}.a : {a_input}",
        NAMED_CHAIN_ACTION,
    ]


def plain_pipefile(n: int) -> str:
    return lines("task all : src/*.b", "", named_chain_rules("src/{sample}.a", "src/{sample}.txt"))


def samples_task(n: int) -> list[str]:
    """`task all` over a literal list of the N sample names: a value that follows from the
    Pipefile's text, so the no-op record may answer for it (a list computed by code may
    change with no file changing)."""
    samples = ", ".join(f'"{i}"' for i in range(n))
    return [f"SAMPLES = [{samples}]", "", "task all : src/$(SAMPLES).b"]


def expand_pipefile(n: int) -> str:
    return lines(samples_task(n), "", named_chain_rules("src/{sample}.a", "src/{sample}.txt"))


def inputfn_pipefile(n: int) -> str:
    return lines(
        samples_task(n),
        "",
        named_chain_rules("$(a_of(wildcards.sample))", "$(txt_of(wildcards.sample))"),
        "",
        "python:",
        "    def a_of(sample):",
        '        return f"src/{sample}.a"',
        "",
        "    def txt_of(sample):",
        '        return f"src/{sample}.txt"',
    )


# ---------------------------------------------------------------- registry

FORM_BASELINE = "plain"
FORMS = {"plain": plain_pipefile, "expand": expand_pipefile, "inputfn": inputfn_pipefile}

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            name="chains",
            sizes=(1_000, 10_000, 100_000),
            phases=BUILD_PHASES,
            sources=lambda n: numbered(n, "src/{i}.txt"),
            outputs=chains_outputs,
            touched=chains_touched,
            writers={
                "rulerun": chains_pipefile,
                "make": chains_makefile,
                "ninja": chains_ninja,
                "snakemake": chains_snakefile,
            },
        ),
        Workload(
            name="fanin",
            sizes=(1_000, 10_000),
            phases=BUILD_PHASES,
            sources=lambda n: numbered(n, "src/{i}.txt"),
            outputs=lambda n: ["fanin.out"],
            touched=fanin_touched,
            writers={
                "rulerun": fanin_pipefile,
                "make": fanin_makefile,
                "ninja": fanin_ninja,
                "snakemake": fanin_snakefile,
            },
        ),
        Workload(
            name="trivial",
            sizes=(2_000,),
            phases=BUILD_PHASES,
            sources=lambda n: numbered(n, "src/{i}.txt"),
            outputs=lambda n: numbered(n, "src/{i}.done"),
            touched=trivial_touched,
            writers={
                "rulerun": trivial_pipefile,
                "make": trivial_makefile,
                "ninja": trivial_ninja,
                "snakemake": trivial_snakefile,
            },
        ),
        Workload(
            name="lua",
            sizes=(len(luasources.CORE + luasources.LIBS) + 1,),
            phases=BUILD_PHASES,
            sources=lambda n: luasources.source_names(),
            outputs=lua_outputs,
            touched=lambda n: ("src/lvm.c", ["src/lvm.o", "src/liblua.a", "src/lua"]),
            writers={"rulerun": lua_pipefile, "make": lua_makefile, "ninja": lua_ninja},
            populate=luasources.copy_sources,
        ),
        Workload(
            name="startup",
            sizes=(STARTUP_RULES,),
            phases=STARTUP_PHASES,
            sources=lambda n: ["seed.txt"],
            outputs=startup_outputs,
            touched=lambda n: ("seed.txt", startup_outputs(n)),
            writers={
                "rulerun": startup_pipefile,
                "make": startup_makefile,
                "ninja": startup_ninja,
                "snakemake": startup_snakefile,
            },
        ),
        *(
            Workload(
                name=name,
                sizes=(1_000, 10_000, 100_000),
                phases=BUILD_PHASES,
                sources=lambda n: numbered(n, "src/{i}.txt"),
                outputs=chains_outputs,
                touched=chains_touched,
                writers={"rulerun": writer},
            )
            for name, writer in FORMS.items()
        ),
    )
}


def write_sources(dest: Path, paths: list[str]) -> None:
    made_dirs: set[Path] = set()
    for rel in paths:
        path = dest / rel
        if path.parent not in made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(path.parent)
        path.write_text(rel + "\n")


def generate(workload: str, n: int, tool: str, dest: Path) -> Path:
    """Write a fresh directory `dest` with the sources and `tool`'s build file."""
    spec = WORKLOADS[workload]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if spec.populate is not None:
        spec.populate(dest)
    else:
        write_sources(dest, spec.sources(n))
    build_file = dest / BUILD_FILES[tool]
    build_file.write_text(spec.build_file(tool, n))
    return build_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("n", type=int)
    parser.add_argument("tool", choices=TOOLS)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    if not WORKLOADS[args.workload].writes_for(args.tool):
        parser.error(f"{args.workload} has no build file for {args.tool} "
                     f"(only {', '.join(WORKLOADS[args.workload].writers)})")
    print(generate(args.workload, args.n, args.tool, args.dest))


if __name__ == "__main__":
    main()
