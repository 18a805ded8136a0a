"""What the jobs of a graph may write: each output path belongs to one job, and lies below the
project directory, outside .rulerun/ (lang.confine).

Two jobs declaring one file would both run, racing on it, and a failure of either would set
aside what the other made; an output such as `..` or `../proj`, reached through a wildcard value
or a target, would have a failed job's outputs take the project with them. Both are refused
before any job runs: over the whole graph once it is worked out, and again when a split
rule's expansion adds jobs, for those jobs and the split rules they waited on (their outputs
are known by then).
"""

from __future__ import annotations

from typing import Iterable

from rulerun.errors import OutputPlaceError, SharedOutputError
from rulerun.lang.confine import problem_of, project_relative
from rulerun.plan.graph import Job

HINT_PLACE = ("a rule writes only below the directory rulerun runs in, outside .rulerun/: "
              "check the target asked for, or the wildcard values that led here")
HINT_SHARED = "a file is made by one job: take it out of the outputs of one of them"


def refuse_conflicting_outputs(jobs: Iterable[Job], owners: dict[str, Job] | None = None) -> None:
    """Raise OutputPlaceError for the first output a job may not write, SharedOutputError for
    the first one two jobs declare. Tasks have no file outputs; placeholders and source
    files write nothing. `owners` (each output's job, JobGraph.owners) carries on from earlier
    calls and is added to: jobs joining a run are checked against the others without going
    over them again, which would cost the whole graph per expansion. Runs over every output
    of every build: the common path is inlined."""
    owners = {} if owners is None else owners
    for job in jobs:
        rule = job.rule
        if rule is None or rule.is_task:
            continue
        for output in job.outputs:
            if output[:1] in "./" or "/." in output or "//" in output or output[-1:] == "/":
                output = _place(output, job)  # one key for every way of writing the file
            owner = owners.setdefault(output, job)
            if owner is not job:
                first, second = sorted((owner, job), key=lambda j: (j.rule.index, j.id))  # in file order
                raise SharedOutputError(f"'{output}' is an output of two jobs: {_describe(first)} and "
                                        f"{_describe(second)}", hint=HINT_SHARED)


def _place(output: str, job: Job) -> str:
    """`output` relative to the project; OutputPlaceError when `job` may not write it."""
    relative = project_relative(output)
    problem = problem_of(relative)
    if problem:
        raise OutputPlaceError(f"'{output}', an output of {_describe(job)}, is {problem}", hint=HINT_PLACE)
    return relative


def _describe(job: Job) -> str:
    """'rule NAME (FILE:LINE:COL) making OUTPUTS', and the wildcard values that chose them."""
    values = ", ".join(f"{'%' if key == 'stem' else '{' + key + '}'} = '{value}'" for key, value in job.values.items())
    making = " ".join(job.outputs[:3]) + (f" and {len(job.outputs) - 3} more" if len(job.outputs) > 3 else "")
    return f"rule '{job.rule.name}' ({job.rule.loc}) making {making}" + (f" (with {values})" if values else "")
