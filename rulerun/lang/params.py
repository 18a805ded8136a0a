"""A job's own values (PIPEFILE.md Part 2 "Per-job values", "Threads and resources"): its
`params:` evaluated with what the job is, its threads and its resources.

    job_values(rule, ..., namespace)  ->  JobValues(params, threads, resources)

The signature (plan/signature.py) and the JobSpec (run/spec.py) read the same values: params
are fingerprinted there, substituted into shell actions and sent to Python actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from rulerun.errors import PipefileError
from rulerun.lang.model import Param, Rule


class Attributes(dict):
    """Values by key and by attribute: params['rg'] or params.rg (also resources.mem_mb)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no value named '{name}'") from None

    def __reduce__(self):  # pickled as what it is, for the worker process
        return (Attributes, (dict(self),))


@dataclass(frozen=True)
class JobValues:
    """What one job of a rule is given besides its files: `threads` as the rule asks (the run
    loop caps it at -j), every `resources:` amount by name, and its params' values."""

    threads: int = 1
    resources: Mapping[str, int] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)


def job_values(rule: Rule, inputs: Sequence[str], outputs: Sequence[str], wildcards: Mapping[str, str],
               stem: str | None, namespace: Mapping[str, Any], text: str | None = None) -> JobValues:
    """The values of one job of `rule`. Raises PipefileError at a param's expression when it
    raises (naming the job's first output), so no job starts with a value that could not be made."""
    threads = rule.threads or 1
    resources = Attributes({r.name: r.amount for r in rule.resources})
    if not rule.params and rule.threads_expression is None:
        return JobValues(threads, resources)
    scope = dict(namespace)
    scope.update(input=list(inputs), output=list(outputs), wildcards=Attributes(wildcards), stem=stem,
                 resources=resources)
    if rule.threads_expression is not None:
        threads = _threads(_evaluate(rule.threads_expression, scope, rule, outputs, text),
                           rule.threads_expression, rule, outputs, text)
    scope["threads"] = threads
    params = Attributes()
    for param in rule.params:
        params[param.name] = _evaluate(param, scope, rule, outputs, text)
    return JobValues(threads, resources, params)


def _threads(value: Any, param: Param, rule: Rule, outputs: Sequence[str], text: str | None) -> int:
    """`threads: $(EXPR)`'s value: a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        job = f" for '{outputs[0]}'" if outputs else ""
        raise PipefileError(param.loc, f"threads of rule '{rule.name}'{job} must be a whole number of "
                                       f"at least 1, not {value!r}", text,
                            hint="threads: $(EXPR) is evaluated for each job; int(...) makes a number of it")
    return value


def _evaluate(param: Param, scope: dict, rule: Rule, outputs: Sequence[str], text: str | None) -> Any:
    from rulerun.lang.namespace import compile_block

    # parenthesised: an expression written over several lines is one expression
    code = compile_block("(" + param.expression + ")", _before(param), "eval", text)
    try:
        return eval(code, scope)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the Pipefile's mistake, said at its line
        job = f" for '{outputs[0]}'" if outputs else ""
        what = "threads" if param.name == "threads" and param is rule.threads_expression else f"param '{param.name}'"
        raise PipefileError(param.loc, f"{what} of rule '{rule.name}'{job} raised "
                                       f"{type(exc).__name__}: {exc}", text,
                            hint="a param is evaluated for each job, with wildcards, stem, input, output, "
                                 "threads, resources and the top-level names") from None


def _before(param: Param):
    """Where the '(' put in front of the expression would be written."""
    from rulerun.source import Location

    return Location(param.loc.file, param.loc.line, max(param.loc.col - 1, 1))
