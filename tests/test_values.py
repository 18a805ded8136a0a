"""Every value a job uses is part of what it was made from (PIPEFILE.md Part 2, "What makes a
job run again"): a changed value runs it again and `-n` says which; an unchanged one never
does, whatever the hash seed or the address a function was given."""

from __future__ import annotations

NOTHING = "nothing to do"


def runs_again(project, *args, env=None) -> bool:
    dry = project.run("-n", *args, env=env)
    assert dry.returncode == 0, dry.stderr
    result = project.run(*args, env=env)
    assert result.returncode == 0, result.stderr
    ran = NOTHING not in result.stdout
    assert ran == (NOTHING not in dry.stdout), (dry.stdout, result.stdout)  # -n and the run agree
    return ran


def test_a_name_bound_in_a_python_block_reruns_the_jobs_using_it(project):
    project.write("Pipefile", 'python:\n    FLAGS = "-O0"\nout : \n    shell: echo {FLAGS} > {output}\n')
    assert project.run("out").returncode == 0
    assert not runs_again(project, "out")
    project.write("Pipefile", 'python:\n    FLAGS = "-O2"\nout : \n    shell: echo {FLAGS} > {output}\n')
    assert "variable 'FLAGS' changed" in project.run("-n", "out").stdout
    assert runs_again(project, "out") and project.read("out") == "-O2\n"


def test_a_config_value_read_in_a_python_block_reruns_the_python_job_using_it(project):
    project.write("cfg.json", '{"rate": 1}')
    project.write("Pipefile", "python:\n    import json\n    config = json.load(open('cfg.json'))\n"
                              "out :\n    python:\n        open(output[0], 'w').write(str(config['rate']))\n")
    assert project.run("out").returncode == 0 and project.read("out") == "1"
    assert not runs_again(project, "out")
    project.write("cfg.json", '{"rate": 2}')
    dry = project.run("-n", "out")
    assert "variable 'config' changed" in dry.stdout
    assert project.run("out").returncode == 0 and project.read("out") == "2"


def test_an_unknown_override_used_by_a_job_reruns_it(project):
    project.write("Pipefile", "out :\n    shell: echo {MODE} > {output}\n")
    assert project.run("out", "MODE=fast").returncode == 0
    assert not runs_again(project, "out", "MODE=fast")
    assert runs_again(project, "out", "MODE=slow") and project.read("out") == "slow\n"


def test_functions_and_sets_are_the_same_value_in_every_run(project):
    project.write("Pipefile", """\
        python:
            def shout(text):
                return text.upper() + SUFFIX
        SUFFIX = "!"
        NAMES = {"alpha", "beta", "gamma", "delta", "epsilon"}
        LOUD = lambda text: text.upper()
        out :
            python:
                open(output[0], "w").write(shout(LOUD(" ".join(sorted(NAMES)))))
        """)
    assert project.run("out", env={"PYTHONHASHSEED": "1"}).returncode == 0
    for seed in ("2", "3", "4"):
        assert not runs_again(project, "out", env={"PYTHONHASHSEED": seed}), seed


def test_a_function_whose_code_or_reads_changed_reruns_its_jobs(project):
    text = """\
        SUFFIX = "!"
        python:
            def shout(text):
                return text.upper() + SUFFIX
        out :
            python:
                open(output[0], "w").write(shout("hi"))
        """
    project.write("Pipefile", text)
    assert project.run("out").returncode == 0 and project.read("out") == "HI!"
    project.write("Pipefile", text.replace('SUFFIX = "!"', 'SUFFIX = "?"'))
    assert runs_again(project, "out") and project.read("out") == "HI?"
    project.write("Pipefile", text.replace("text.upper()", "text.lower()"))
    assert runs_again(project, "out") and project.read("out") == "hi!"
