"""The resolver: rule choice, globs over makeable files, split rules, cycles, ambiguity, missing inputs."""

from __future__ import annotations

import pytest

from rulerun.errors import AmbiguousRuleError, CycleError, NoRuleError


def labels(graph):
    return [job.label for job in graph.jobs if job.rule is not None]


def test_pattern_chain_resolves_backwards(project):
    project.write("a.c")
    graph = project.resolver("""
        %.o : %.c
            shell: cc -c {input} -o {output}
        prog : a.o
            shell: cc {input} -o {output}
        """).resolve_targets(["prog"])
    assert labels(graph) == ["%.o a.o", "prog prog"]
    assert graph.jobs[-1].inputs == ["a.o"]


def test_stem_may_span_directories(project):
    project.write("lib/x.c")
    graph = project.resolver("""
        %.o : %.c
            shell: touch {output}
        """).resolve_targets(["lib/x.o"])
    assert graph.jobs[0].stem == "lib/x"
    assert graph.jobs[0].inputs == ["lib/x.c"]


def test_named_wildcards(project):
    project.write("raw/s1/L2.fastq")
    graph = project.resolver("""
        out/{sample}_{lane}.bam : raw/{sample}/{lane}.fastq
            shell: touch {output}
        """).resolve_targets(["out/s1_L2.bam"])
    job = graph.jobs[0]
    assert job.wildcards == {"sample": "s1", "lane": "L2"}
    assert job.inputs == ["raw/s1/L2.fastq"]


def test_literal_output_wins_over_pattern(project):
    project.write("x.c")
    project.write("special.src")
    graph = project.resolver("""
        %.o : %.c
            shell: cc {input}
        x.o : special.src
            name: special
            shell: cp {input} {output}
        """).resolve_targets(["x.o"])
    assert graph.jobs[-1].rule.name == "special"


def test_candidate_whose_input_cannot_be_made_drops_out(project):
    project.write("a.y")
    graph = project.resolver("""
        %.c : %.x
            name: from_x
            shell: touch {output}
        %.c : %.y
            name: from_y
            shell: touch {output}
        """).resolve_targets(["a.c"])
    assert graph.jobs[-1].rule.name == "from_y"


def test_most_specific_pattern_wins(project):
    project.write("lib/a.c")
    graph = project.resolver("""
        %.o : %.c
            name: generic
            shell: touch {output}
        lib/%.o : lib/%.c
            name: lib
            shell: touch {output}
        """).resolve_targets(["lib/a.o"])
    assert graph.jobs[-1].rule.name == "lib"
    assert graph.jobs[-1].stem == "a"


def test_real_tie_names_both_rules_and_lines(project):
    project.write("a.c")
    resolver = project.resolver("""
        %.o : %.c
            name: one
            shell: touch {output}
        %.o : %.c
            name: two
            shell: touch {output}
        """)
    with pytest.raises(AmbiguousRuleError) as err:
        resolver.resolve_targets(["a.o"])
    assert "'one' (Pipefile:2:1)" in err.value.message and "'two' (Pipefile:5:1)" in err.value.message


def test_no_rule_names_target_and_closest_rule_and_missing_input(project):
    resolver = project.resolver("""
        %.o : %.c
            name: compile
            shell: touch {output}
        """)
    with pytest.raises(NoRuleError) as err:
        resolver.resolve_targets(["a.o"])
    assert err.value.message == "no rule to make 'a.o'"
    assert "rule 'compile' (Pipefile:2:1) matches, but its input 'a.c' is missing" in err.value.hint


def test_missing_input_of_literal_rule_names_target_and_rule(project):
    resolver = project.resolver("""
        prog : main.o
            name: link
            shell: touch {output}
        """)
    with pytest.raises(NoRuleError) as err:
        resolver.resolve_targets(["prog"])
    assert "no rule to make 'main.o', needed by 'prog' (rule 'link', Pipefile:2:1)" == err.value.message


def test_cycle_is_reported_with_its_path(project):
    resolver = project.resolver("""
        a : b
            shell: touch {output}
        b : c
            shell: touch {output}
        c : a
            shell: touch {output}
        """)
    with pytest.raises(CycleError) as err:
        resolver.resolve_targets(["a"])
    assert "a -> b -> c -> a" in err.value.message


def test_pattern_cycle_is_reported(project):
    resolver = project.resolver("""
        %.a : %.b
            shell: touch {output}
        %.b : %.a
            shell: touch {output}
        """)
    with pytest.raises(CycleError) as err:
        resolver.resolve_targets(["x.a"])
    assert "x.a -> x.b -> x.a" in err.value.message


def test_pattern_rule_used_once_per_chain_stops_infinite_chains(project):
    project.write("data.txt")
    graph = project.resolver("""
        %.gz : %
            shell: gzip -k {input}
        """).resolve_targets(["data.txt.gz"])
    assert labels(graph) == ["%.gz data.txt.gz"]


def test_glob_counts_files_that_rules_can_make(project):
    for name in ("b.c", "a.c"):
        project.write(name)
    graph = project.resolver("""
        %.o : %.c
            shell: touch {output}
        report : *.o
            shell: cat {input} > {output}
        """).resolve_targets(["report"])
    assert graph.jobs[-1].inputs == ["a.o", "b.o"]
    assert labels(graph) == ["%.o a.o", "%.o b.o", "report report"]


def test_glob_over_makeable_files_through_a_chain_and_directories(project):
    for i in (2, 1, 10):
        project.write(f"src/{i}.txt")
    project.write("src/other.dat")
    graph = project.resolver("""
        %.a : %.txt
            shell: cp {input} {output}
        %.b : %.a
            shell: cp {input} {output}
        task all : src/*.b
        """).resolve_targets(["all"])
    assert graph.targets[0].inputs == ["src/1.b", "src/10.b", "src/2.b"]
    assert len([j for j in graph.jobs if j.rule and not j.rule.is_task]) == 6


def test_glob_mixes_existing_and_makeable_and_is_sorted(project):
    project.write("z.o")
    project.write("a.c")
    graph = project.resolver("""
        %.o : %.c
            shell: touch {output}
        task all : *.o
        """).resolve_targets(["all"])
    assert graph.targets[0].inputs == ["a.o", "z.o"]


def test_task_and_default_target(project):
    resolver = project.resolver("""
        %.o : %.c
            shell: touch {output}
        task build : x
        x :
            shell: touch x
        """)
    assert resolver.default_target() == "build"
    graph = resolver.resolve_targets(["build"])
    assert graph.targets[0].is_task and graph.targets[0].deps[0].outputs == ["x"]


def test_default_target_skips_pattern_rules(project):
    resolver = project.resolver("""
        %.o : %.c
            shell: touch {output}
        prog : a.o
            shell: touch prog
        """)
    assert resolver.default_target() == "prog"


def test_rule_name_as_target_means_every_output_it_can_make(project):
    for name in ("a.c", "b.c"):
        project.write(name)
    graph = project.resolver("""
        %.o : %.c
            name: compile
            shell: touch {output}
        """).resolve_targets(["compile"])
    assert sorted(j.outputs[0] for j in graph.jobs if j.rule) == ["a.o", "b.o"]


SPLIT = """
    chunks/*.txt : big.txt
        name: split
        shell: cd chunks && split -l 1 ../{input} c_ && for f in c_??; do mv $f $f.txt; done
    %.count : %.txt
        shell: wc -l < {input} > {output}
    total : chunks/*.count
        shell: cat {input} > {output}
    """


def test_split_rule_defers_what_depends_on_it(project):
    project.write("big.txt", "a\nb\n")
    graph = project.resolver(SPLIT).resolve_targets(["total"])
    total = graph.jobs[-1]
    assert total.pending and {j.rule.name for j in total.after} == {"split"}
    assert total.inputs == []
    split = next(j for j in graph.jobs if j.rule and j.rule.name == "split")
    assert split.outputs == [] and split.inputs == ["big.txt"]


def test_split_rule_expansion_after_it_ran(project):
    project.write("big.txt", "a\nb\n")
    resolver = project.resolver(SPLIT)
    graph = resolver.resolve_targets(["total"])
    split = next(j for j in graph.jobs if j.rule and j.rule.name == "split")
    project.write("chunks/c_aa.txt")
    project.write("chunks/c_ab.txt")
    resolver.split_finished(split)
    total = graph.jobs[-1]
    new = resolver.expand(total)
    assert [j.outputs for j in new if j is not split] == [["chunks/c_aa.count"], ["chunks/c_ab.count"]]
    assert total.inputs == ["chunks/c_aa.count", "chunks/c_ab.count"] and not total.pending
    assert all(split in j.deps for j in new if j is not split)


def test_split_rule_with_outputs_present_and_fresh_resolves_now(project):
    project.write("big.txt")
    project.write("chunks/c_aa.txt")
    graph = project.resolver(SPLIT).resolve_targets(["total"])
    total = graph.jobs[-1]
    assert not total.pending and total.inputs == ["chunks/c_aa.count"]


def test_stale_split_rule_ignores_its_old_outputs(project):
    from rulerun.plan.view import DiskView
    from rulerun.plan.resolve import Resolver

    project.write("big.txt")
    project.write("chunks/old.txt")
    resolver = Resolver(project.pipefile(SPLIT), DiskView(), split_is_stale=lambda job: True)
    total = resolver.resolve_targets(["total"]).jobs[-1]
    assert total.pending and total.inputs == []


def test_seed_pipeline_is_deferred_behind_its_split_rule(project):
    from tests.conftest import REPO

    project.write("Pipefile", (REPO / "examples/seed/Pipefile").read_text())
    from rulerun.plan.view import DiskView
    from rulerun.lang.parse import load_pipefile
    from rulerun.plan.resolve import Resolver

    graph = Resolver(load_pipefile("Pipefile"), DiskView()).resolve_targets(["all"])
    all_job = graph.targets[0]
    assert all_job.pending
    assert {"stage2", "stage1_small", "stage1_big"} <= all_job.via_rules


def test_files_derived_from_an_old_split_output_do_not_leak_into_globs(project):
    project.write("big.txt")
    project.write("chunks/c_aa.txt")
    project.write("chunks/c_aa.count")
    project.write("chunks/c_zz.count")     # made from chunks/c_zz.txt, which the split no longer makes
    total = project.resolver(SPLIT).resolve_targets(["total"]).jobs[-1]
    assert total.inputs == ["chunks/c_aa.count"]


# ---------------------------------------------------------------- globs (issue: trust, item 4)


def test_a_glob_over_outputs_of_a_rule_whose_input_is_a_glob(project):
    project.write("data/x/1.csv")
    project.write("data/x/2.csv")
    project.write("data/y/1.csv")
    graph = project.resolver("""\
        report.txt : summary_*.txt
            shell: cat {input} > {output}
        summary_{s}.txt : data/{s}/*.csv
            shell: cat {input} > {output}
        """).resolve_targets(["report.txt"])
    report = graph.jobs[-1]
    assert report.inputs == ["summary_x.txt", "summary_y.txt"]
    assert {d.outputs[0]: d.inputs for d in report.deps} == {
        "summary_x.txt": ["data/x/1.csv", "data/x/2.csv"], "summary_y.txt": ["data/y/1.csv"]}


def test_a_pattern_rule_is_not_applied_twice_through_a_glob(project):
    project.write("a.txt")
    project.write("b.txt")
    text = """\
        all.txt : *.post.txt
            shell: cat {input} > {output}
        {x}.post.txt : {x}.txt
            shell: cp {input} {output}
        """
    assert project.resolver(text).resolve_targets(["all.txt"]).jobs[-1].inputs == ["a.post.txt", "b.post.txt"]
    project.write("a.post.txt")  # as the first build leaves it: the second finds the same
    assert project.resolver(text).resolve_targets(["all.txt"]).jobs[-1].inputs == ["a.post.txt", "b.post.txt"]


def test_a_glob_that_overlaps_a_split_rules_glob_waits_for_it(project):
    graph = project.resolver("""\
        all.txt : parts/*b.txt
            shell: cat {input} > {output}
        parts/a*.txt :
            shell: mkdir -p parts && echo 1 > parts/a1b.txt && echo 2 > parts/a2c.txt
        """).resolve_targets(["all.txt"])
    consumer = graph.jobs[-1]
    assert consumer.pending and {s.rule.name for s in consumer.after} == {"parts/a*.txt"}


def test_a_rules_own_output_never_counts_in_its_input_glob(project):
    project.write("site/a.html")
    project.write("site/b.html")
    text = """\
        site/index.html : site/*.html
            shell: ls {input} > {output}
        """
    assert project.resolver(text).resolve_targets(["site/index.html"]).jobs[-1].inputs == ["site/a.html", "site/b.html"]
    project.write("site/index.html")  # the second run: no cycle, the same inputs
    assert project.resolver(text).resolve_targets(["site/index.html"]).jobs[-1].inputs == ["site/a.html", "site/b.html"]


# ------------------------------------------------------------------ $(EXPR) in paths

def resolver_with_namespace(project, text: str):
    """A resolver as app.load and make_plan build it: `$(...)` expanded with the namespace."""
    from rulerun.lang.namespace import build_namespace
    from rulerun.lang.pathexpr import expand_pipefile
    from rulerun.plan.resolve import Resolver
    from rulerun.plan.view import DiskView

    pipefile = project.pipefile(text)
    namespace = build_namespace(pipefile)
    return Resolver(expand_pipefile(pipefile, namespace), DiskView(), namespace=namespace)


def test_expressions_expand_in_order_first_varying_slowest_with_names_defined_later(project):
    graph = resolver_with_namespace(project, """
        task all : plots/$(SAMPLES)_$(["a", "b"]).png $(EMPTY).txt
        plots/{s}_{k}.png :
            shell: touch {output}
        SAMPLES = ("B", "A")
        EMPTY = []
        """).resolve_targets(["all"])
    assert graph.jobs[-1].inputs == ["plots/B_a.png", "plots/B_b.png", "plots/A_a.png", "plots/A_b.png"]


def test_expression_in_an_output_pattern(project):
    project.write("src/x.c")
    graph = resolver_with_namespace(project, """
        BUILD = "build"
        $(BUILD)/%.o : src/%.c
            shell: cc -c {input} -o {output}
        """).resolve_targets(["build/x.o"])
    assert [(job.outputs, job.inputs, job.stem) for job in graph.jobs] == [(["build/x.o"], ["src/x.c"], "x")]


def test_inserted_values_are_literal_never_wildcards_or_globs(project):
    project.write("in/a%{b}*?[c].txt")
    project.write("in/axxxx.txt")
    graph = resolver_with_namespace(project, """
        task all : out/$(NAME).txt
        out/{n}.txt : in/{n}.txt
            shell: cp {input} {output}
        out/$(NAME).txt : in/$(NAME).txt
            shell: cp {input} {output}
        NAME = "a%{b}*?[c]"
        """).resolve_targets(["all"])
    (job,) = [job for job in graph.jobs if not job.is_task]
    assert job.rule.index == 2  # the literal rule wins: its output is no pattern
    assert (job.outputs, job.inputs) == (["out/a%{b}*?[c].txt"], ["in/a%{b}*?[c].txt"])


def test_input_function_is_evaluated_per_job_with_wildcards_and_stem(project):
    graph = resolver_with_namespace(project, """
        python:
            calls = []
            def fastqs_of(sample):
                calls.append(sample)
                return [f"raw/{sample}_{i}.fq" for i in (2, 1)]
        mapped/{sample}.bam : genome.fa $(fastqs_of(wildcards.sample)) $(stem_of(stem))
            shell: touch {output}
        task all : mapped/A.bam mapped/B.bam
        raw/%.fq :
            shell: touch {output}
        genome.fa :
            shell: touch {output}
        stem_of = lambda s: [] if s is None else [s]
        """).resolve_targets(["all"])
    jobs = {tuple(job.outputs): job for job in graph.jobs}
    assert jobs[("mapped/A.bam",)].inputs == ["genome.fa", "raw/A_2.fq", "raw/A_1.fq"]
    assert jobs[("mapped/B.bam",)].inputs == ["genome.fa", "raw/B_2.fq", "raw/B_1.fq"]


def test_the_written_part_of_an_input_function_may_glob_but_its_value_never_does(project):
    project.write("data/A/1.csv")
    project.write("data/A/2.csv")
    project.write("data/A/{s}*.csv")
    graph = resolver_with_namespace(project, """
        sum/{s}.txt : data/$(wildcards.s.upper())/*.csv data/A/$("{s}*.csv")
            shell: cat {input} > {output}
        """).resolve_targets(["sum/a.txt"])
    assert graph.jobs[-1].inputs == ["data/A/1.csv", "data/A/2.csv", "data/A/{s}*.csv", "data/A/{s}*.csv"]


def test_an_exception_in_an_input_function_names_the_jobs_target(project):
    from rulerun.errors import PipefileError

    resolver = resolver_with_namespace(project, """
        o/{s}.txt : $(TABLE[wildcards.s])
            shell: touch {output}
        TABLE = {"a": "in.txt"}
        """)
    with pytest.raises(PipefileError) as caught:
        resolver.resolve_targets(["o/b.txt"])
    assert caught.value.message == "error in $(TABLE[wildcards.s]) for 'o/b.txt': KeyError: 'b'"
    assert (caught.value.loc.line, caught.value.loc.col) == (2, 15)


# ------------------------------------------------------------------ named inputs

def test_named_inputs_keep_their_paths_in_order_and_positions_count_every_input(project):
    project.write("raw/A_2.csv")
    project.write("raw/A_1.csv")
    project.write("genome.fa")
    graph = resolver_with_namespace(project, """
        out/{s}.txt : ref=genome.fa tables=raw/{s}_*.csv extra=$(["x", "y"]) fn=$(wildcards.s + ".fq")
            shell: cat {input.tables} > {output}
        x y A.fq :
            shell: touch {output}
        """).resolve_targets(["out/A.txt"])
    job = graph.jobs[-1]
    assert job.inputs == ["genome.fa", "raw/A_1.csv", "raw/A_2.csv", "x", "y", "A.fq"]
    assert job.named == {"ref": ["genome.fa"], "tables": ["raw/A_1.csv", "raw/A_2.csv"], "extra": ["x", "y"],
                         "fn": ["A.fq"]}


def test_named_input_behind_a_split_rule_is_named_once_the_split_ran(project):
    from rulerun.plan.graph import JobKind

    resolver = resolver_with_namespace(project, """
        task all : sum.txt
        parts/*.txt :
            shell: touch parts/a.txt parts/b.txt
        sum.txt : head=README parts=parts/*.txt
            shell: cat {input.parts} > {output}
        README :
            shell: touch {output}
        """)
    graph = resolver.resolve_targets(["all"])
    (split,) = [job for job in graph.jobs if job.is_split]
    project.write("parts/a.txt")
    project.write("parts/b.txt")
    resolver.split_finished(split)
    (summary,) = [job for job in graph.jobs if job.kind is JobKind.RULE and job.outputs == ["sum.txt"]]
    resolver.expand(summary)
    assert summary.inputs == ["README", "parts/a.txt", "parts/b.txt"]
    assert summary.named == {"head": ["README"], "parts": ["parts/a.txt", "parts/b.txt"]}


# ------------------------------------------------------------------ wildcard constraints

def test_a_constraint_that_refuses_a_target_drops_the_rule_out_of_rule_choice(project):
    project.write("raw/AB.txt")
    project.write("raw/ab.txt")
    resolver = project.resolver("""
        out/{s,[A-Z]+}.txt : raw/{s}.txt
            name: upper
            shell: cp {input} {output}
        out/{s}.txt : raw/{s}.txt
            name: any
            shell: cp {input} {output}
        """)
    assert [job.rule.name for job in resolver.resolve_targets(["out/ab.txt"]).jobs] == ["any"]
    with pytest.raises(AmbiguousRuleError):  # both match: equally specific
        resolver.resolve_targets(["out/AB.txt"])


def test_top_level_constraint_applies_where_a_rule_gives_none_and_a_rules_own_wins(project):
    resolver = project.resolver("""
        a/{n}.txt :
            shell: touch {output}
        b/{n,[a-z]+}.txt :
            shell: touch {output}
        wildcard n = r"\\d+"
        """)
    assert resolver.resolve_targets(["a/12.txt", "b/xy.txt"]).jobs[0].values == {"n": "12"}
    with pytest.raises(NoRuleError) as caught:
        resolver.resolve_targets(["a/x1.txt"])
    assert caught.value.hint == "closest: rule 'a/{n}.txt' (Pipefile:2:1) matches, but its constraint {n,\\d+} refuses 'x1'"
    with pytest.raises(NoRuleError):
        resolver.resolve_targets(["b/12.txt"])


def test_a_constraint_that_matches_slashes_lets_the_value_span_directories(project):
    graph = project.resolver("""
        deep/{p,.+}.out : src/{p}.in
            shell: touch {output}
        flat/{p}.out : src/{p}.in
            shell: touch {output}
        src/{p,.+}.in :
            shell: touch {output}
        """).resolve_targets(["deep/a/b/c.out"])
    assert [(job.outputs, job.values) for job in graph.jobs] == [
        (["src/a/b/c.in"], {"p": "a/b/c"}), (["deep/a/b/c.out"], {"p": "a/b/c"})]
    with pytest.raises(NoRuleError):
        project.resolver("flat/{p}.out :\n    shell: touch {output}\n").resolve_targets(["flat/a/b.out"])


# ------------------------------------------------------------------ split rules with wildcards

SPLIT_PER_SAMPLE = """
    task all : counts/A.txt counts/B.txt
    chunks/{sample}/part_* : raw/{sample}.txt
        shell: split {input}
    counts/{sample}.txt : chunks/{sample}/part_*
        shell: cat {input} > {output}
    """


def test_a_split_rule_with_wildcards_is_one_split_job_per_set_of_values(project):
    project.write("raw/A.txt")
    project.write("raw/B.txt")
    graph = project.resolver(SPLIT_PER_SAMPLE).resolve_targets(["all"])
    splits = [job for job in graph.jobs if job.is_split]
    assert [(job.values, job.inputs, job.outputs) for job in splits] == [
        ({"sample": "A"}, ["raw/A.txt"], []), ({"sample": "B"}, ["raw/B.txt"], [])]
    waiting = {job.outputs[0]: job.after for job in graph.jobs if job.pending}
    assert waiting == {"counts/A.txt": {splits[0]}, "counts/B.txt": {splits[1]}}


def test_what_reads_a_split_jobs_glob_is_resolved_after_that_job_ran(project):
    project.write("raw/A.txt")
    project.write("raw/B.txt")
    resolver = project.resolver(SPLIT_PER_SAMPLE)
    graph = resolver.resolve_targets(["all"])
    split_a = next(job for job in graph.jobs if job.is_split and job.values == {"sample": "A"})
    project.write("chunks/A/part_2")
    project.write("chunks/A/part_1")
    project.write("chunks/B/part_9")  # not yet B's: its split job has not run
    resolver.split_finished(split_a)
    assert split_a.outputs == ["chunks/A/part_1", "chunks/A/part_2"]
    count_a = next(job for job in graph.jobs if job.outputs == ["counts/A.txt"])
    resolver.expand(count_a)
    assert count_a.inputs == ["chunks/A/part_1", "chunks/A/part_2"] and split_a in count_a.deps


def test_split_jobs_with_files_already_there_know_their_outputs(project):
    project.write("raw/A.txt")
    project.write("chunks/A/part_1")
    graph = project.resolver(SPLIT_PER_SAMPLE).resolve_targets(["counts/A.txt"])
    assert [(job.is_split, job.outputs) for job in graph.jobs] == [
        (True, ["chunks/A/part_1"]), (False, ["counts/A.txt"])]
    assert graph.jobs[-1].inputs == ["chunks/A/part_1"]


def test_a_glob_over_every_split_job_waits_for_each_one_its_inputs_give(project):
    project.write("raw/A.txt")
    project.write("raw/B.txt")
    graph = project.resolver(SPLIT_PER_SAMPLE.rstrip(" ") + "    task every : chunks/*/part_*\n").resolve_targets(["every"])
    (every,) = [job for job in graph.jobs if job.is_task]
    assert sorted(job.values["sample"] for job in every.after) == ["A", "B"]
