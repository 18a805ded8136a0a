"""What a Pipefile says, as plain frozen data: rules, tasks, limits, variables and Python blocks.

Built by parse.py, read by every later stage; nothing here does I/O. Every piece carries the
Location it was written at, so any later stage can point at the line that caused a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from rulerun.source import Location


@dataclass(frozen=True, slots=True)
class PathPattern:
    """One whitespace-separated word of a rule header: a path, a `%`/`{name}` pattern or a glob.

    `text` is the word as the user meant it: quotes removed, escapes resolved.
    With `$(EXPR)` in it, `text` is a template (pathexpr.EXPRESSION_MARK where each stood),
    `exprs` the expressions in order and `written` the word as written.
    `name` is the NAME of a named input `NAME=PATH`.
    """

    text: str
    loc: Location
    exprs: tuple = ()
    written: str = ""
    name: str | None = None
    constraints: tuple = ()  # constraints.Constraint of each `{name,REGEX}` written in it

    @property
    def shown(self) -> str:
        """The word as a person wrote it (for names and messages)."""
        return self.written or self.text

    def expanded(self, text: str) -> "PathPattern":
        """This word with its `$(...)` evaluated: one of the paths it stands for. (What
        dataclasses.replace does, at half its cost: a `$(SAMPLES)` over 100,000 names makes
        100,000 of these as the Pipefile loads.) A new field must be copied here too."""
        return PathPattern(text, self.loc, (), self.written, self.name, self.constraints)


@dataclass(frozen=True, slots=True)
class ShellAction:
    """A `shell:` action. `script` is the command (one line) or the dedented block; `loc` is
    where the script's first character is written."""

    script: str
    loc: Location


@dataclass(frozen=True, slots=True)
class PythonAction:
    """A `python:` action: a dedented block of Python. `loc.line` is the Pipefile line of the
    block's first line, so compiling with that offset keeps tracebacks in Pipefile lines."""

    source: str
    loc: Location


Action = ShellAction | PythonAction


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule (`OUTPUTS : INPUTS` + body) or, with is_task, a `task NAME : INPUTS`.

    For a task, `outputs` holds one pattern: the task's name (not a file).
    `limit` is an int (at most N jobs of this rule) or the name of a named limit.
    `cluster` is the native specification ('' allowed) or None when the rule runs locally;
    a rule with `queue:` but no `cluster:` is a cluster rule with cluster == ''.
    `index` is the rule's position in the file (first rule is 0).
    """

    name: str
    outputs: tuple[PathPattern, ...]
    inputs: tuple[PathPattern, ...]
    action: Action | None
    loc: Location
    index: int
    is_task: bool = False
    name_given: bool = False
    limit: int | str | None = None
    cluster: str | None = None
    queue: str | None = None
    retries: int = 0
    constraints: tuple = ()  # constraints.Constraint of the `{name,REGEX}` in its outputs
    params: tuple["Param", ...] = ()
    threads: int | None = None
    threads_expression: "Param | None" = None  # `threads: $(EXPR)`, evaluated per job
    resources: tuple["Resource", ...] = ()
    log: PathPattern | None = None  # where a job's stdout and stderr go (not an output)
    # outputs written with a trailing '/' (kept without it in `outputs`): directories the job makes
    directories: frozenset[str] = frozenset()
    included: bool = False  # written in an included file: never the default target
    temp: tuple[PathPattern, ...] = ()  # outputs deleted once every job of the run reading them succeeded

    @property
    def is_cluster(self) -> bool:
        return self.cluster is not None or self.queue is not None


@dataclass(frozen=True, slots=True)
class Param:
    """`NAME = EXPRESSION` in a rule's `params:` block, evaluated once per job (lang/params.py);
    `loc` is where the expression starts."""

    name: str
    expression: str
    loc: Location


@dataclass(frozen=True, slots=True)
class Resource:
    """`NAME=AMOUNT` on a rule's `resources:` line: what each job counts against limit NAME."""

    name: str
    amount: int
    loc: Location


@dataclass(frozen=True, slots=True)
class PythonBlock:
    """A top-level `python:` block, run once before any rule, in the shared namespace."""

    source: str
    loc: Location


@dataclass(frozen=True, slots=True)
class Variable:
    """`NAME = EXPRESSION`: a Python expression evaluated in the shared namespace."""

    name: str
    expression: str
    loc: Location


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """`config PATH`: a YAML, JSON or TOML file read into the dict `config` (lang/config.py)."""

    path: str
    loc: Location


@dataclass(frozen=True, slots=True)
class Limit:
    """`limit NAME = N`: at most N running jobs across every rule that says `limit: NAME`."""

    name: str
    size: int
    loc: Location


@dataclass(frozen=True)
class Pipefile:
    """A whole loaded Pipefile. `preamble` keeps top-level Python blocks and variables in file
    order, since each may use what the ones before it defined. `text` is the file's text (for
    showing lines in errors). `known_names` are the names a shell action may use as {NAME}:
    variables, names bound at the top of Python blocks, and command-line overrides;
    `unknown_overrides` the command-line names that are no variable."""

    path: str
    text: str
    preamble: tuple[PythonBlock | Variable, ...]
    limits: Mapping[str, Limit]
    rules: tuple[Rule, ...]
    known_names: frozenset[str] = field(default_factory=frozenset)
    # Command-line NAME=VALUE names that are no variable of the Pipefile: accepted (defined as
    # strings before the preamble runs) but worth a warning from the CLI.
    unknown_overrides: frozenset[str] = field(default_factory=frozenset)
    # Every name a `$(...)` in a path reads (the no-op record trusts only fixed ones).
    path_names: frozenset[str] = field(default_factory=frozenset)
    # `wildcard NAME = "REGEX"`: by NAME, the constraint of every rule that gives none of its own
    wildcards: Mapping[str, object] = field(default_factory=dict)
    configs: tuple[ConfigFile, ...] = ()  # `config PATH` lines, in file order
    included: tuple[str, ...] = ()  # the files `include` read, in the order they were read
