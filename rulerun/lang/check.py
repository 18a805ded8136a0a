"""Load-time checks of a parsed Pipefile: what the grammar can't see (names, limits, wildcards,
shell substitutions, embedded Python), each reported as a PipefileError at the exact column."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Iterable, Mapping

from rulerun.errors import PipefileError
from rulerun.lang.confine import place_problem
from rulerun.lang.model import PathPattern, Pipefile, PythonAction, PythonBlock, Rule, ShellAction, Variable
from rulerun.lang.namespace import bound_names, compile_block, compile_preamble_item
from rulerun.lang.patterns import STEM, is_glob, split_glob, wildcard_names
from rulerun.lang.pathexpr import JOB_NAMES, free_names, names_in_paths, written_index
from rulerun.source import Location, source_line
from rulerun.lang.template import INDEXABLE, Reference, TemplateError, parse_shell_template

JOB_OWN = ("threads",)  # a job's own values a shell action may name bare (lang/params.py)

RESERVED_WILDCARDS = ("input", "output", "stem")
OUTPUT_PLACE_HINT = ("a rule writes only below the directory rulerun runs in, outside .rulerun/ "
                     "(a failed job's outputs are moved to .rulerun/failed/)")
_BRACE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}|[{}]")
_CONSTRAINT_OPENING = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*),")
_STAR_IMPORT = re.compile(r"^\s*from\s+\S+\s+import\s+\*", re.MULTILINE)
# A named input is read as an attribute of a list (`input.ref`): a list's own names can't be used.
_LIST_NAMES = frozenset(name for name in dir(list) if not name.startswith("_"))


def check_pipefile(pipefile: Pipefile, overrides: Mapping[str, str],
                   limit_sizes: Mapping[str, int] | None = None) -> Pipefile:
    """`pipefile` with known_names and unknown_overrides filled in, once every check passed.
    Raises PipefileError for the first mistake: the preamble's Python, then rule by rule.
    `limit_sizes`: the limits' sizes for this run (the file's, as --limit changed them); None
    checks no resource amount (a worker process loading what the run already checked)."""
    variables = {item.name for item in pipefile.preamble if isinstance(item, Variable)}
    known = set(variables) | set(overrides)
    for item in pipefile.preamble:
        compile_preamble_item(item, pipefile.text)
        if isinstance(item, PythonBlock):
            known |= bound_names(item.source)
    checker = _RuleChecker(pipefile, frozenset(known))
    checker.star_imports = any(isinstance(item, PythonBlock) and _STAR_IMPORT.search(item.source)
                               for item in pipefile.preamble)
    checker.limit_names = None if limit_sizes is None else set(limit_sizes)
    for rule in pipefile.rules:
        checker.check(rule)
    if limit_sizes is not None:
        for rule in pipefile.rules:
            refuse_unfitting_amounts(pipefile, rule, limit_sizes)
    return replace(pipefile, known_names=frozenset(known),
                   unknown_overrides=frozenset(set(overrides) - variables),
                   path_names=frozenset(names_in_paths(pipefile.rules)))


class _RuleChecker:
    def __init__(self, pipefile: Pipefile, known: frozenset[str]):
        self.pipefile = pipefile
        self.text = pipefile.text
        self.known = known
        self.named: dict[str, Rule] = {}
        self.star_imports = False  # a `from M import *` binds names no check can list
        # the limits this run has (the file's and --limit's); None: any name (already checked)
        self.limit_names: set[str] | None = set(pipefile.limits)

    def error(self, loc: Location, message: str, hint: str | None = None) -> PipefileError:
        return PipefileError(loc, message, self.text, hint)

    def check(self, rule: Rule) -> None:
        self.check_name(rule)
        self.check_input_constraints(rule)  # before the braces check, which would only say '{' is wrong
        for pattern in rule.outputs + rule.inputs:
            self.check_pattern(rule, pattern)
        if rule.is_task:
            self.check_task_name(rule)
        else:
            self.check_repeated_outputs(rule)
            self.check_output_places(rule)
        self.check_outputs(rule)
        self.check_inputs(rule)
        self.check_limit(rule)
        self.check_expressions(rule)
        self.check_input_names(rule)
        self.check_log(rule)
        self.check_temp(rule)
        self.check_action(rule)

    # ---- names and limits

    def check_name(self, rule: Rule) -> None:
        """Names must be unique, except that rules left with their default name (the first
        output, e.g. two '%.o' rules for .c and .cc sources) may share it."""
        other = self.named.setdefault(rule.name, rule)
        if other is rule:
            return
        if rule.name_given or other.name_given or rule.is_task or other.is_task:
            raise self.error(rule.loc, f"the name '{rule.name}' is used twice: {self.what(other).split()[0]} "
                                       f"at line {other.loc.line} and {self.what(rule).split()[0]} at line {rule.loc.line}",
                             hint="give one of them another name" + ("" if rule.is_task else " with 'name: NAME'"))

    def check_limit(self, rule: Rule) -> None:
        if not isinstance(rule.limit, str) or rule.limit in self.pipefile.limits:
            return
        if self.limit_names is None or rule.limit in self.limit_names:  # defined by --limit
            return
        close = _close(rule.limit, list(self.pipefile.limits), n=1)
        if close:
            hint = f"did you mean '{close[0]}'?"
        else:
            hint = f"define it at the top level: 'limit {rule.limit} = N'"
        raise self.error(self.body_value_location(rule, "limit"),
                         f"unknown limit '{rule.limit}' in {self.what(rule)}", hint)

    def check_log(self, rule: Rule) -> None:
        """A log is one file per job: named from the outputs' wildcards, no glob, no output."""
        log = rule.log
        if log is None:
            return
        defined = set(wildcard_names(rule.outputs[0].text)) if not rule.is_task else set()
        for name in wildcard_names(log.text):
            if name not in defined:
                token = "'%'" if name == STEM else f"'{{{name}}}'"
                raise self.error(self.wildcard_location(log, name),
                                 f"{token} in log '{log.text}' is not in the outputs of {self.what(rule)}",
                                 "a log is named from the wildcards of the rule's outputs")
        if is_glob(log.text):
            raise self.error(log.loc, f"log '{log.text}' of {self.what(rule)} is a glob", "a log is one file per job")
        if os.path.normpath(log.text) in {os.path.normpath(o.text) for o in rule.outputs}:
            raise self.error(log.loc, f"log '{log.text}' of {self.what(rule)} is also one of its outputs",
                             "a log is not an output: a missing log runs nothing again; name another file")
        problem = place_problem(log.text) if not wildcard_names(log.text) else None
        if problem:
            raise self.error(log.loc, f"log '{log.text}' of {self.what(rule)} is {problem}", OUTPUT_PLACE_HINT)

    def check_temp(self, rule: Rule) -> None:
        """Each temp: path is one of the rule's outputs, written as in the header."""
        outputs = {os.path.normpath(o.text) for o in rule.outputs}
        for pattern in rule.temp:
            if rule.is_task or os.path.normpath(pattern.text) not in outputs:
                shown = " ".join(o.text for o in rule.outputs)
                raise self.error(pattern.loc, f"temp '{pattern.text}' is not an output of {self.what(rule)}",
                                 f"temp: names some of the rule's outputs, written as in its header ({shown})"
                                 if not rule.is_task else "a task has no outputs to delete")

    def body_value_location(self, rule: Rule, key: str) -> Location:
        """Where the value of body line `key:` of `rule` is written."""
        end = rule.action.loc.line if rule.action else len(self.text.split("\n")) + 1
        for number in range(rule.loc.line + 1, end):
            line = source_line(self.text, number) or ""
            if line[:1] not in (" ", "") and not line.startswith("#"):
                break
            found = re.match(rf"\s+{key}\s*:\s*", line)
            if found:
                return Location(rule.loc.file, number, found.end() + 1)
        return rule.loc

    # ---- patterns

    def check_pattern(self, rule: Rule, pattern: PathPattern) -> None:
        text = pattern.text
        if text.count("%") > 1:
            second = text.index("%", text.index("%") + 1)
            raise self.error(self.pattern_location(pattern, second),
                             f"more than one '%' in '{text}'", "a pattern has at most one '%' (the stem)")
        for match in _BRACE.finditer(text):
            if match.group() in ("{", "}"):
                raise self.error(self.pattern_location(pattern, match.start()),
                                 f"'{match.group()}' is not part of a wildcard in '{text}'",
                                 "a wildcard is written {NAME}: letters, digits and '_'")
            if match.group()[1:-1] in RESERVED_WILDCARDS:
                raise self.error(self.pattern_location(pattern, match.start()),
                                 f"'{match.group()}' can't be a wildcard's name",
                                 "input, output and stem are reserved; name the wildcard otherwise")

    def check_task_name(self, rule: Rule) -> None:
        (name,) = rule.outputs
        if wildcard_names(name.text) or is_glob(name.text):
            raise self.error(name.loc, f"a task's name can't be a pattern: '{name.text}'",
                             "a task is one named target; use a rule for a pattern")

    def check_outputs(self, rule: Rule) -> None:
        globs = [p for p in rule.outputs if is_glob(p.text)]
        first = rule.outputs[0]
        if globs:
            for pattern in rule.outputs:
                if STEM in wildcard_names(pattern.text):  # {name} is fine: a split job per set of values
                    raise self.error(self.wildcard_location(pattern, STEM),
                                     f"a split rule's outputs can't use '%': '{pattern.text}'",
                                     f"'{globs[0].text}' makes this a split rule, whose outputs are the "
                                     "files matching the glob after it ran; name the part with {name}")
        names = set(wildcard_names(first.text))
        for pattern in rule.outputs[1:]:
            if set(wildcard_names(pattern.text)) != names:
                raise self.error(pattern.loc, f"the outputs of {self.what(rule)} don't use the same wildcards: "
                                              f"'{first.text}' and '{pattern.text}'",
                                 "every output of a rule must name every wildcard, so each job knows all its outputs")

    def check_repeated_outputs(self, rule: Rule) -> None:
        """Each output once: a job writes a file once, and its outputs key its state."""
        seen: dict[str, PathPattern] = {}
        for pattern in rule.outputs:
            first = seen.setdefault(os.path.normpath(pattern.text), pattern)
            if first is pattern:
                continue
            same = f"'{pattern.text}'" + ("" if first.text == pattern.text else f" (the same file as '{first.text}')")
            raise self.error(pattern.loc, f"output {same} is listed twice in {self.what(rule)} "
                                          f"(first at column {first.loc.col})", "list each output once")

    def check_output_places(self, rule: Rule) -> None:
        """A literal output, and the directory a split rule's glob looks in, lie below the project
        directory and outside .rulerun/ (see lang.confine); outputs made from wildcard values
        are checked once the values are known (plan.conflicts)."""
        for pattern in rule.outputs:
            if wildcard_names(pattern.text):
                continue
            if is_glob(pattern.text):  # its files lie in the glob's directory, which may be the project's
                head = split_glob(os.path.normpath(pattern.text))[0]
                problem = place_problem(os.path.join(head, "file")) if head else None
            else:
                problem = place_problem(pattern.text)
            if problem:
                raise self.error(pattern.loc, f"output '{pattern.text}' of {self.what(rule)} is {problem}",
                                 OUTPUT_PLACE_HINT)

    def check_inputs(self, rule: Rule) -> None:
        defined = set(wildcard_names(rule.outputs[0].text))
        for pattern in rule.inputs:
            for name in wildcard_names(pattern.text):
                if name in defined:
                    continue
                loc = self.wildcard_location(pattern, name)
                if name == STEM:
                    raise self.error(loc, f"'%' in input '{pattern.text}', but no output of {self.what(rule)} has '%'",
                                     "an input's '%' stands for the outputs' stem")
                raise self.error(loc, f"wildcard '{{{name}}}' in input '{pattern.text}' is not in the outputs "
                                      f"of {self.what(rule)}", "an input's wildcards take their values from the outputs")

    def pattern_location(self, pattern: PathPattern, index: int) -> Location:
        """The Pipefile column of character `index` of `pattern.text` (quotes and escapes counted)."""
        if pattern.written:  # a template: count in the word as written
            index = written_index(pattern.written, index)
        line = source_line(self.text, pattern.loc.line) or ""
        start = pattern.loc.col - 1
        if line[start:start + 1] != '"':
            return Location(pattern.loc.file, pattern.loc.line, pattern.loc.col + index)
        raw, seen = start + 1, 0
        while seen < index and raw < len(line):
            raw += 2 if line[raw] == "\\" else 1
            seen += 1
        return Location(pattern.loc.file, pattern.loc.line, raw + 1)

    def wildcard_location(self, pattern: PathPattern, name: str) -> Location:
        token = "%" if name == STEM else "{" + name + "}"
        return self.pattern_location(pattern, pattern.text.index(token))

    def first_wildcard_location(self, pattern: PathPattern) -> Location:
        return self.wildcard_location(pattern, wildcard_names(pattern.text)[0])

    # ---- $(EXPR) in paths and named inputs

    def check_expressions(self, rule: Rule) -> None:
        """Each `$(EXPR)` compiles, and reads only names the namespace will have (a name it
        binds itself, a builtin, and in a rule's inputs `wildcards` and `stem`)."""
        import builtins

        inputs = {id(pattern) for pattern in rule.inputs}
        for pattern in rule.outputs + rule.inputs:
            in_inputs = id(pattern) in inputs
            is_input = in_inputs and not rule.is_task  # evaluated per job: wildcards and stem allowed
            allowed = self.known | set(dir(builtins)) | (JOB_NAMES if is_input else set())
            for expression in pattern.exprs:
                compile_block(expression.source, expression.loc, "eval", self.text)
                if rule.is_task and pattern is rule.outputs[0]:
                    raise self.error(expression.loc, f"a task's name can't use $(...): '{pattern.shown}'",
                                     "a task is one named target; use a rule for a computed path")
                for name, offset in free_names(expression.source):
                    if name not in allowed and not self.star_imports:
                        self.refuse_unknown_name(rule, expression, name, offset, allowed, in_inputs)

    def refuse_unknown_name(self, rule: Rule, expression, name: str, offset: int, allowed: set[str],
                            in_inputs: bool) -> None:
        loc = Location(expression.loc.file, expression.loc.line, expression.loc.col + offset)
        where = "an input" if in_inputs else "an output"
        if name in JOB_NAMES:
            hint = ("only a rule's inputs are evaluated for each job" if not rule.is_task
                    else "a task has no wildcards")
            raise self.error(loc, f"'{name}' in $({expression.source.strip()}) in {where} of {self.what(rule)}", hint)
        close = _close(name, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else \
            "$(...) may use top-level variables and names a python: block binds"
        raise self.error(loc, f"unknown name '{name}' in $({expression.source.strip()}) in {where} "
                              f"of {self.what(rule)}", hint)

    def check_input_names(self, rule: Rule) -> None:
        """Each input name once in a rule, and none a list's own attribute (`input.count`)."""
        seen: dict[str, PathPattern] = {}
        for pattern in rule.inputs:
            if pattern.name is None:
                continue
            start = Location(pattern.loc.file, pattern.loc.line, pattern.loc.col - len(pattern.name) - 1)
            if pattern.name in _LIST_NAMES or pattern.name in INDEXABLE:
                raise self.error(start, f"an input can't be named '{pattern.name}' in {self.what(rule)}",
                                 "that is a name of the input list itself; choose another")
            first = seen.setdefault(pattern.name, pattern)
            if first is not pattern:
                raise self.error(start, f"input name '{pattern.name}' given twice in {self.what(rule)} "
                                        f"(first at column {first.loc.col - len(pattern.name) - 1})",
                                 "one name stands for one path; a glob or $(...) gives several")

    def check_input_constraints(self, rule: Rule) -> None:
        """`{name,REGEX}` constrains what a rule makes: it belongs in an output."""
        for pattern in rule.inputs:
            found = _CONSTRAINT_OPENING.search(pattern.text)
            if found:
                raise self.error(self.pattern_location(pattern, found.start()),
                                 f"wildcard constraint in input '{pattern.shown}' of {self.what(rule)}",
                                 f"write it in an output ({{{found.group(1)},REGEX}}) and {{{found.group(1)}}} here")

    # ---- actions

    def check_action(self, rule: Rule) -> None:
        if rule.action is None:
            if not rule.is_task:
                raise self.error(rule.loc, f"rule '{rule.name}' has no action",
                                 "end its body with 'shell:' or 'python:' (only a task may have no action)")
        elif isinstance(rule.action, PythonAction):
            compile_block(rule.action.source, rule.action.loc, "exec", self.text)
        else:
            self.check_shell(rule, rule.action)

    def check_shell(self, rule: Rule, action: ShellAction) -> None:
        try:
            pieces = parse_shell_template(action.script)
        except TemplateError as exc:
            raise self.error(script_location(self.text, action, exc.offset),
                             f"{exc.message} in the shell action of {self.what(rule)}",
                             "write {{ and }} for a literal brace (e.g. awk '{{print $1}}')") from None
        wildcards = set(wildcard_names(rule.outputs[0].text)) if not rule.is_task else set()
        for piece in pieces:
            if isinstance(piece, Reference):
                self.check_reference(rule, action, piece, wildcards)

    def check_reference(self, rule: Rule, action: ShellAction, ref: Reference, wildcards: set[str]) -> None:
        loc = script_location(self.text, action, ref.offset)
        if ref.attr is not None and ref.key == "input":
            return self.check_named_reference(rule, ref, loc)
        if ref.attr is not None:
            return self.check_dotted_reference(rule, ref, loc)
        if ref.index is not None and ref.key not in INDEXABLE:
            raise self.error(loc, f"'{ref.text}' in the shell action of {self.what(rule)}: "
                                  "only input and output take an index")
        if ref.key in INDEXABLE or ref.key in wildcards or ref.key in self.known or ref.key in JOB_OWN:
            return
        if ref.key == "log" and rule.log is not None:
            return
        if ref.key == "log":
            raise self.error(loc, f"'{{log}}' in the shell action of {self.what(rule)}, which has no 'log:'",
                             "name the job's log file with 'log: PATH' in the rule's body")
        if ref.key == STEM:
            raise self.error(loc, f"'{{stem}}' in the shell action of {self.what(rule)}, whose outputs have no '%'")
        candidates = sorted(set(INDEXABLE) | wildcards | self.known)
        close = _close(ref.key, candidates, n=1)
        hint = f"did you mean '{{{close[0]}}}'?" if close else _valid_names_hint(wildcards)
        raise self.error(loc, f"unknown name '{ref.text}' in the shell action of {self.what(rule)}", hint)

    def check_named_reference(self, rule: Rule, ref: Reference, loc: Location) -> None:
        """`{input.NAME}` names a named input of the rule."""
        names = [p.name for p in rule.inputs if p.name]
        if ref.attr in names:
            return
        close = _close(ref.attr, names, n=1)
        hint = f"did you mean '{{input.{close[0]}}}'?" if close else \
            ("its named inputs are " + ", ".join(sorted(set(names))) if names
             else "name an input in the rule's header: NAME=PATH")
        raise self.error(loc, f"no input named '{ref.attr}' in {self.what(rule)}", hint)

    def check_dotted_reference(self, rule: Rule, ref: Reference, loc: Location) -> None:
        """{params.NAME} and {resources.NAME} name one of the rule's own."""
        own = {"params": [p.name for p in rule.params], "resources": [r.name for r in rule.resources]}
        if ref.key not in own:
            raise self.error(loc, f"'{ref.text}' in the shell action of {self.what(rule)}: "
                                  "only input, params and resources take '.NAME'")
        if ref.attr in own[ref.key]:
            return
        close = _close(ref.attr, own[ref.key], n=1)
        line = "params:" if ref.key == "params" else "resources:"
        hint = f"did you mean '{{{ref.key}.{close[0]}}}'?" if close else \
            f"give it in the rule's '{line}'" + (f" (it has {', '.join(own[ref.key])})" if own[ref.key] else "")
        raise self.error(loc, f"unknown name '{ref.text}' in the shell action of {self.what(rule)}", hint)

    @staticmethod
    def what(rule: Rule) -> str:
        return f"{'task' if rule.is_task else 'rule'} '{rule.name}'"


def refuse_unfitting_amounts(pipefile: Pipefile, rule: Rule, sizes: Mapping[str, int]) -> None:
    """A job asking more of a limit than the limit's size could never start: said before anything runs."""
    for resource in rule.resources:
        size = sizes.get(resource.name)
        if size is not None and resource.amount > size:
            what = f"{'task' if rule.is_task else 'rule'} '{rule.name}'"
            raise PipefileError(resource.loc, f"{what} asks for {resource.amount} of limit '{resource.name}', "
                                              f"which is {size} in all: its jobs could never start",
                                pipefile.text, hint=f"ask for at most {size}, or raise the limit "
                                                    f"(--limit {resource.name}=N for one run)")


def _valid_names_hint(wildcards: Iterable[str]) -> str:
    names = ["{input}", "{output}", "{input[N]}", "{output[N]}"] + [f"{{{name}}}" for name in sorted(wildcards)]
    return ("a shell action can use " + ", ".join(names)
            + ", top-level variables and Python names; write {{ and }} for a literal brace")


def script_location(text: str, action: ShellAction, offset: int) -> Location:
    """The Pipefile line and column of character `offset` of a shell action's script.

    The script's first line starts at `action.loc`; every later line of a block is a suffix of
    its Pipefile line (only its indentation was taken off), which gives its column."""
    before = action.script[:offset]
    index = before.count("\n")
    in_line = len(before) - (before.rfind("\n") + 1)
    if index == 0:
        return Location(action.loc.file, action.loc.line, action.loc.col + in_line)
    number = action.loc.line + index
    script_line = action.script.split("\n")[index]
    pipefile_line = source_line(text, number) or script_line
    return Location(action.loc.file, number, len(pipefile_line) - len(script_line) + in_line + 1)


def _close(word: str, candidates: Iterable[str], n: int = 1) -> list[str]:
    import difflib  # only on the error path: it's slow to import

    return difflib.get_close_matches(word, list(candidates), n=n)


_MAKE_HABIT = re.compile(r"(?<!\$)\$([<@^])")
_MAKE_MEANING = {"<": ("the first input", "{input[0]}"), "@": ("the output", "{output}"),
                 "^": ("all inputs", "{input}")}


def make_habits(pipefile: Pipefile) -> list[str]:
    """Warnings for make's automatic variables in shell actions. Hints, not errors: bash runs
    them (`$<` and `$^` as literal text, `$@` as "all arguments", which a shell function in a
    script may mean), but most often `$@` was meant as make's output."""
    found = []
    for rule in pipefile.rules:
        if not isinstance(rule.action, ShellAction):
            continue
        for match in _MAKE_HABIT.finditer(rule.action.script):
            what, instead = _MAKE_MEANING[match.group(1)]
            loc = script_location(pipefile.text, rule.action, match.start())
            found.append(f"{loc}: '{match.group(0)}' in the shell action of rule '{rule.name}' is make's name "
                         f"for {what}; here write {instead} (in bash '{match.group(0)}' is "
                         + ("all of a function's arguments)" if match.group(1) == "@" else "just text)"))
    return found
