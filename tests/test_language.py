"""Part 2 forms of the Pipefile end to end, through the CLI in a separate process: `$(EXPR)` in
paths, input functions and named inputs."""

from __future__ import annotations

import os

from tests.conftest import BLIND_GLOB

EXAMPLE = """
SAMPLES = ["A", "B", "C"]
BUILD = "build"

task all : calls/$(SAMPLES).vcf plots/$(SAMPLES)_$(["a", "b"]).png $(BUILD)/x.o

$(BUILD)/%.o : src/%.c
    shell: cp {input} {output}

calls/{sample}.vcf : genome.fa $(fastqs_of(wildcards.sample))
    shell: cat {input} > {output}

plots/{s}_{k}.png : calls/{s}.vcf
    shell: echo {k} > {output}

raw/%.fq :
    shell: echo {stem} > {output}

python:
    def fastqs_of(sample):
        return [f"raw/{sample}_{i}.fq" for i in (1, 2)]
"""


def test_the_documented_example_runs(project):
    project.write("Pipefile", EXAMPLE)
    project.write("src/x.c", "int x;\n")
    project.write("genome.fa", ">g\n")
    done = project.run("all")
    assert done.returncode == 0, done.stderr
    assert project.read("calls/B.vcf") == ">g\nB_1\nB_2\n"
    assert sorted(os.listdir(project.root / "plots")) == [f"{s}_{k}.png" for s in "ABC" for k in "ab"]
    assert project.read("build/x.o") == "int x;\n"
    again = project.run("all", "-n")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_an_input_function_is_asked_again_on_every_run_not_answered_by_the_record(project):
    project.write("Pipefile", """
        task all : out/a.txt
        out/{s}.txt : $(inputs_of(wildcards.s))
            shell: cat {input} > {output}
        python:
            import json
            def inputs_of(s):
                return json.load(open("list.json"))
        """)
    project.write("list.json", '["x.txt"]')
    project.write("x.txt", "x\n")
    project.write("y.txt", "y\n")
    assert project.run("all").returncode == 0
    assert project.run("all").stdout.strip().endswith("up to date")
    assert not project.exists(".rulerun/uptodate")  # what it reads can change with no file it names changing
    project.write("list.json", '["x.txt", "y.txt"]')
    dry = project.run("all", "-n")
    assert "rule out/{s}.txt: out/a.txt" in dry.stdout
    assert project.run("all").returncode == 0
    assert project.read("out/a.txt") == "x\ny\n"


def test_plain_values_in_paths_keep_the_no_op_record(project):
    project.write("Pipefile", """
        NAMES = ["a", "b"]
        task all : out/$(NAMES).txt
        out/{s}.txt :
            shell: echo {s} > {output}
        """)
    assert project.run("all").returncode == 0
    assert project.exists(".rulerun/uptodate")


def test_literal_special_characters_and_dollars_in_paths(project):
    project.write("Pipefile", """
        task all : out/$(NAME).txt cost_$$5.txt
        out/$(NAME).txt :
            shell: echo made > {output}
        cost_$$5.txt :
            shell: echo five > {output}
        NAME = "50% {odd} *?"
        """)
    done = project.run("all")
    assert done.returncode == 0, done.stderr
    assert project.read("out/50% {odd} *?.txt") == "made\n"
    assert project.read("cost_$5.txt") == "five\n"


def test_errors_in_expressions_exit_2_with_their_location(project):
    project.write("Pipefile", """
        o/{s}.txt : $(TABLE[wildcards.s])
            shell: touch {output}
        TABLE = {"a": "in.txt"}
        """)
    failed = project.run("o/b.txt")
    assert failed.returncode == 2
    assert failed.stderr.startswith("Pipefile:2:15: error in $(TABLE[wildcards.s]) for 'o/b.txt': KeyError: 'b'")
    assert "Traceback" not in failed.stderr


def test_list_and_graph_show_expanded_paths_and_input_functions_as_written(project):
    project.write("Pipefile", EXAMPLE)
    listed = project.run("--list").stdout
    assert "calls/{sample}.vcf : genome.fa $(fastqs_of(wildcards.sample))" in listed
    assert "build/%.o : src/%.c" in listed
    assert "calls/A.vcf calls/B.vcf calls/C.vcf plots/A_a.png" in listed
    project.write("src/x.c")
    project.write("genome.fa")
    graph = project.run("--graph", "all").stdout
    assert 'label="raw/%.fq raw/C_2.fq"' in graph


def test_named_inputs_in_shell_and_python_actions(project):
    project.write("Pipefile", """
        task all : mapped/A.bam py/A.txt
        mapped/{s}.bam : ref=genome.fa reads=raw/{s}.fq tables=raw/{s}_*.csv more=$(["genome.fa"])
            shell: echo {input.ref} {input.reads} {input.tables} {input.more} "[{input[1]}]" > {output}
        py/{s}.txt : ref=genome.fa reads=raw/{s}.fq tables=raw/{s}_*.csv none=raw/*.none
            python:
                import json
                json.dump([input.ref, input.reads, input.tables, input.none, list(input), input[1]],
                          open(output[0], "w"))
        ref="a variable: a line that starts with NAME= is one"
        """)
    for name in ("genome.fa", "raw/A.fq", "raw/A_y.csv", "raw/A_x.csv"):
        project.write(name)
    done = project.run("all")
    assert done.returncode == 0, done.stderr
    assert project.read("mapped/A.bam") == "genome.fa raw/A.fq raw/A_x.csv raw/A_y.csv genome.fa [raw/A.fq]\n"
    import json
    assert json.loads(project.read("py/A.txt")) == [
        "genome.fa", "raw/A.fq", ["raw/A_x.csv", "raw/A_y.csv"], [],
        ["genome.fa", "raw/A.fq", "raw/A_x.csv", "raw/A_y.csv"], "raw/A.fq"]


def test_wildcard_constraints_choose_rules_and_say_why_none_fits(project):
    project.write("Pipefile", """
        wildcard n = r"\\d+"
        results/{sample,[A-Z][0-9]+}_{n}.txt :
            shell: echo {sample} {n} > {output}
        deep/{path,.+}.out :
            shell: mkdir -p "$(dirname {output})" && touch {output}
        """)
    done = project.run("results/A1_07.txt", "deep/x/y.out")
    assert done.returncode == 0, done.stderr
    assert project.read("results/A1_07.txt") == "A1 07\n" and project.exists("deep/x/y.out")
    refused = project.run("results/a1_07.txt")
    assert refused.returncode == 2
    assert refused.stderr == ("rulerun: no rule to make 'results/a1_07.txt'\nhint: closest: rule "
                              "'results/{sample}_{n}.txt' (Pipefile:3:1) matches, but its constraint "
                              "{sample,[A-Z][0-9]+} refuses 'a1'\n")
    listed = project.run("--list").stdout
    assert "results/{sample}_{n}.txt :  where {sample,[A-Z][0-9]+}" in listed
    assert f"{'wildcard n':<24} {{n,\\d+}}  (Pipefile:2:14)" in listed


def test_split_rule_with_wildcards_end_to_end(project):
    project.write("Pipefile", """
        task all : counts/A.txt counts/B.txt
        chunks/{sample}/part_* : raw/{sample}.txt
            shell: cd chunks/{sample} && split -l 1 ../../{input} part_
        counts/{sample}.txt : chunks/{sample}/part_*
            shell: cat {input} | wc -l | tr -d ' ' > {output}
        """)
    project.write("raw/A.txt", "a\nb\nc\n")
    project.write("raw/B.txt", "x\ny\n")
    dry = project.run("all", "-n").stdout
    assert "split rule chunks/{sample}/part_* (outputs: whatever matches chunks/A/part_*)" in dry
    assert 'label="chunks/{sample}/part_* sample=B"' in project.run("all", "--graph").stdout
    done = project.run("all")
    assert done.returncode == 0, done.stderr  # chunks/A/ and chunks/B/ were made before the split jobs ran
    assert (project.read("counts/A.txt"), project.read("counts/B.txt")) == ("3\n", "2\n")
    assert "nothing to do" in project.run("all").stdout
    project.write("raw/A.txt", "a\nb\nc\nd\n")
    dry = project.run("all", "-n").stdout
    assert "chunks/A/part_*" in dry and "chunks/B/part_*" not in dry
    assert project.run("all").returncode == 0
    assert project.read("counts/A.txt") == "4\n"




def test_a_glob_that_cant_see_through_an_input_function_says_so_on_every_run(project):
    # out/*.b can't be counted through an input function (it can't be run backwards): the glob
    # finds only out/x.b, which exists, and would pass for all there is to make, src/y.a too
    project.write("Pipefile", BLIND_GLOB)
    project.write("src/x.a", "x\n")
    project.write("src/y.a", "y\n")
    project.write("out/x.b", "x\n")
    for args in (("all",), ("all", "-n")):
        done = project.run(*args)
        assert done.returncode == 0, done.stderr
        assert ("the glob 'out/*.b' can't count the files rule 'out/{s}.b' (Pipefile:4:1) makes: "
                "its inputs come from an input function, which can't be run backwards") in done.stderr, (args, done.stderr)
    assert project.read("all.txt") == "x\n"


def test_a_rule_named_as_target_whose_inputs_are_input_functions_says_what_it_cant_know(project):
    project.write("Pipefile", BLIND_GLOB)
    project.write("src/x.a", "x\n")
    done = project.run("out/{s}.b")
    assert done.returncode == 0, done.stderr
    assert "rule 'out/{s}.b' (Pipefile:4:1) as a target: which files it can make is unknown" in done.stderr


def test_a_glob_over_a_rule_with_a_plain_input_beside_its_function_counts_and_stays_quiet(project):
    project.write("Pipefile", """
        task all : out/*.b
            shell: cat {input} > all.txt
        out/{s}.b : src/{s}.a $(extra_of(wildcards.s))
            shell: cat {input} > {output}
        python:
            def extra_of(s):
                return []
        """)
    project.write("src/x.a", "x\n")
    project.write("src/y.a", "y\n")
    done = project.run("all")
    assert done.returncode == 0, done.stderr
    assert "can't count" not in done.stderr
    assert project.read("all.txt") == "x\ny\n"


def test_an_input_function_never_sees_what_another_jobs_evaluation_left_in_its_scope(project):
    # Each job's $(...) is evaluated in a scope of its own: out/b.txt must come from in/b.txt,
    # though out/a.txt's evaluation stored its path with globals().setdefault first.
    project.write("Pipefile", """
        task all : out/a.txt out/b.txt
        out/{s}.txt : $(globals().setdefault("first", "in/" + wildcards.s + ".txt"))
            shell: cp {input} {output}
        """)
    project.write("in/a.txt", "a\n")
    project.write("in/b.txt", "b\n")
    done = project.run("all")
    assert done.returncode == 0, done.stderr
    assert (project.read("out/a.txt"), project.read("out/b.txt")) == ("a\n", "b\n")


def test_a_name_an_earlier_job_bound_with_walrus_is_unbound_for_the_next(project):
    # out/b.txt reads `last` before binding it: an error, not out/a.txt's input
    project.write("Pipefile", """
        task all : out/a.txt out/b.txt
        out/{s}.txt : $(last if wildcards.s == "b" else (last := "in/" + wildcards.s + ".txt"))
            shell: cp {input} {output}
        """)
    project.write("in/a.txt", "a\n")
    project.write("in/b.txt", "b\n")
    done = project.run("all")
    assert done.returncode == 2
    assert "for 'out/b.txt': NameError: name 'last' is not defined" in done.stderr, done.stderr
    assert not project.exists("out/b.txt")
