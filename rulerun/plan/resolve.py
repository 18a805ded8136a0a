"""Work out the jobs backwards from the requested targets.

Rule choice follows PIPEFILE.md "Choosing a rule for a target": a literal output wins; among
pattern rules only those whose inputs exist or can be made count; the most specific (shortest
stem / wildcard values) wins; a remaining tie is an error. Globs in inputs expand over files
that exist and files that rules can make from them. A split rule (glob outputs) makes the
graph dynamic: whatever depends on its outputs is resolved after it ran (`expand`).
"""

from __future__ import annotations

import contextlib
import difflib
import gc
from dataclasses import dataclass, field
from typing import Callable, Iterable

from rulerun.errors import AmbiguousRuleError, CycleError, NoRuleError
from rulerun.plan.view import DiskView, normalise
from rulerun.plan.graph import Job, JobGraph, JobKind, topological
from rulerun.lang.model import Pipefile, Rule
from rulerun.lang.patterns import (OneFile, Pattern, compile_pattern, glob_regex, globs_may_overlap, is_glob,
                                   match_with_globs, pattern_for_one_job, plain_file, specificity)
from rulerun.lang.patterns import unescape_literal
from rulerun.lang.pathexpr import InputFunction
from rulerun.lang.constraints import merged, refusal


DEEPEST_CHAIN = 5000  # jobs in one chain of dependencies that resolution follows


@dataclass
class Unmakeable:
    """Why `path` can't be made: `why` reads after "no rule to make 'path'"."""

    path: str
    why: str = ""
    cycle: list[str] | None = None


@dataclass
class Pending:
    """`path` (or a glob) can only be resolved after these split jobs ran."""

    splits: set[Job] = field(default_factory=set)
    via: set[str] = field(default_factory=set)


Resolution = Job | None | Unmakeable | Pending  # None: an existing file no rule makes (a source)


class RuleIndex:
    """Rules found by what they make: literal outputs by path, pattern outputs by their
    literal suffix (one dict lookup per distinct suffix length), split rules, tasks, names."""

    def __init__(self, rules: Iterable[Rule], wildcards: dict | None = None):
        self.wildcards = wildcards or {}  # top-level `wildcard NAME = "REGEX"`
        self.constrained: list[tuple[Rule, Pattern]] = []  # the same patterns without constraints
        self.literal: dict[str, list[Rule]] = {}
        self.by_suffix: dict[str, list[tuple[Rule, Pattern]]] = {}
        self.patterns: list[tuple[Rule, Pattern]] = []
        self.splits: list[tuple[Rule, str]] = []  # (rule, glob): {name} wildcards written as '*'
        self.split_patterns: dict[int, list[Pattern]] = {}  # a split rule's glob outputs, with their wildcards
        self.tasks: dict[str, Rule] = {}
        self.names: dict[str, Rule] = {}
        self.inputs: dict[int, tuple[Pattern, ...]] = {}
        self.outputs: dict[int, tuple[Pattern, ...]] = {}
        self.split_rules: set[int] = set()
        self.functions: dict[int, dict[int, object]] = {}  # rule index -> {input position: PathPattern}
        self.named_rules: set[int] = set()  # rules with a named input (NAME=PATH)
        for rule in rules:
            self._add(rule)
        self.suffix_lengths = sorted({len(s) for s in self.by_suffix})

    def _add(self, rule: Rule) -> None:
        self.names.setdefault(rule.name, rule)
        self.inputs[rule.index] = tuple(_input_pattern(normalise(i.text)) for i in rule.inputs)
        self.outputs[rule.index] = tuple(self._output_pattern(rule, o.text) for o in rule.outputs)
        functions = {position: i for position, i in enumerate(rule.inputs) if i.exprs}
        if functions:
            self.functions[rule.index] = functions
        if any(i.name for i in rule.inputs):
            self.named_rules.add(rule.index)
        if rule.is_task:
            self.tasks[rule.name] = rule
            return
        for out in rule.outputs:
            text = normalise(out.text)
            if is_glob(text):
                split = compile_pattern(text)
                self.splits.append((rule, split.as_glob()))
                self.split_patterns.setdefault(rule.index, []).append(split)
                self.split_rules.add(rule.index)
            elif (pattern := self._output_pattern(rule, out.text)).is_literal:
                self.literal.setdefault(pattern.expand({}), []).append(rule)
            else:
                self.by_suffix.setdefault(pattern.suffix, []).append((rule, pattern))
                self.patterns.append((rule, pattern))
                if pattern.constraints:
                    self.constrained.append((rule, compile_pattern(text)))

    def _output_pattern(self, rule: Rule, text: str) -> Pattern:
        """An output pattern with its wildcard constraints: the rule's own, else the top level's."""
        plain = compile_pattern(normalise(text))
        if not (rule.constraints or self.wildcards) or not plain.names:
            return plain
        return compile_pattern(normalise(text), merged(rule.constraints, self.wildcards, plain.names))

    def refused(self, path: str) -> str | None:
        """Why a pattern rule whose output matches `path` but for a constraint can't make it."""
        for rule, plain in self.constrained:
            values = plain.match(path)
            if values is not None:
                pattern = self._output_pattern(rule, plain.text)
                why = refusal(values, pattern.constraints)
                if why:
                    return f"rule '{rule.name}' ({rule.loc}) matches, but {why}"
        return None

    def candidates(self, path: str) -> list[tuple[Rule, dict[str, str]]]:
        """Pattern rules whose output matches `path`, with the wildcard values, most specific first."""
        found: list[tuple[Rule, dict[str, str]]] = []
        by_suffix = self.by_suffix
        size = len(path)
        for length in self.suffix_lengths:
            for rule, pattern in by_suffix.get(path[size - length:] if length else "", ()):
                values = pattern.match(path)
                if values is not None and all(rule is not r for r, _ in found):
                    found.append((rule, values))
        if len(found) > 1:
            found.sort(key=lambda c: (specificity(c[1]), c[0].index))
        return found


class Resolver:
    """Builds jobs on demand. `split_is_stale(job)` says whether a split job must run again even
    though files matching its outputs exist (its inputs or action changed, or -B)."""

    def __init__(self, pipefile: Pipefile, fs: DiskView | None = None,
                 split_is_stale: Callable[[Job], bool] = lambda job: False, namespace: dict | None = None):
        self.pipefile = pipefile
        self.namespace = namespace or {}  # what input functions, `$(...)` with wildcards, read
        self.fs = fs or DiskView()
        self.index = RuleIndex(pipefile.rules, dict(pipefile.wildcards))
        self.split_is_stale = split_is_stale
        self._made: dict[str, Resolution] = {}
        self._jobs: dict[int, dict[str, Job]] = {}  # by rule index, then first output (or name)
        self._split_jobs: dict[int, Job] = {}
        self._splits_ran: set[Job] = set()
        self._globs: dict[str, tuple[list[str], Pending]] = {}
        self._globs_used: set[str] = set()  # outlives _globs, which split_finished clears
        self.uncountable: dict[tuple[str | None, int], Rule] = {}  # see _outputs_from_inputs
        self._in_progress: dict[str, int] = {}
        self._path_stack: list[str] = []
        self._rule_stack: list[int] = []
        self._glob_stack: set[tuple[int, str]] = set()
        self._next_id = 0
        self._values: dict[str, dict[str, dict[str, str]]] = {}  # see _one_value
        self._input_functions: dict[int, dict[int, InputFunction]] = {}  # rule index -> {position: ...}

    # ------------------------------------------------------------------ targets

    def default_target(self) -> str | None:
        """The first rule or task in the file that has no pattern in its outputs."""
        for rule in self.pipefile.rules:
            if rule.included:  # an included file's rules are never the default
                continue
            if rule.is_task:
                return rule.name
            texts = [o.text for o in rule.outputs]
            if not any(compile_pattern(t).names or is_glob(t) for t in texts):
                return normalise(unescape_literal(texts[0]))
        return None

    def resolve_targets(self, targets: list[str]) -> JobGraph:
        """The graph for `targets`. Raises NoRuleError, AmbiguousRuleError or CycleError."""
        with _long_lived():
            roots = [self._target_job(target) for target in targets]
            return JobGraph(targets=roots, jobs=topological(roots))

    def settle(self) -> None:
        """The graph is whole (no job waits on a split rule, none is one): forget the answer for
        each path and the jobs by rule, which only growing the graph reads (about 35 MB at
        200,000 jobs). The globs' answers stay: `-n` asks about them again."""
        self._made = {}
        self._jobs = {}
        self._values = {}

    def _target_job(self, target: str) -> Job:
        if target in self.index.tasks:
            return self._require(target, None)
        rule = self.index.names.get(target)
        if rule is not None and target not in self.index.literal and not self.fs.exists(target):
            return self._rule_target(rule)
        return self._require(normalise(target), None)

    def _require(self, path: str, needed_by: Job | None) -> Job:
        """A job that brings `path` up to date; a placeholder job when a split must run first."""
        found = self._resolve(path)
        if isinstance(found, Job):
            return found
        if isinstance(found, Pending):
            return self._placeholder([("target", path, 0)], found)
        if found is None:
            return self._source_job(path)
        raise self._unmakeable_error(found, needed_by)

    def _source_job(self, path: str) -> Job:
        """A requested target that is a source file: nothing to do, but the graph needs a node."""
        return self._new_job(None, [], [path], {}, kind=JobKind.FILE, target=path)

    def _rule_target(self, rule: Rule) -> Job:
        """Every output `rule` can make: a placeholder job depending on each of them."""
        outputs, pending = self._rule_outputs(rule)
        made = [j for j in (self._resolve(p) for p in outputs) if isinstance(j, Job) and j.rule is rule]
        if pending.splits:
            return self._placeholder([("rule", rule.name, 0)], pending)
        holder = self._new_job(None, [], [], {}, kind=JobKind.RULE_NAME, target=rule.name)
        holder.deps = _unique(made)
        return holder

    def _placeholder(self, items: list[tuple[str, str, int]], pending: Pending) -> Job:
        job = self._new_job(None, [], [], {}, kind=JobKind.AFTER_SPLIT, target=items[0][1])
        job.pending = list(items)
        job.after = set(pending.splits)
        job.via_rules = set(pending.via)
        job.deps = sorted(pending.splits, key=lambda j: j.id)
        return job

    # ------------------------------------------------------------------ one path

    def _resolve(self, path: str) -> Resolution:
        if path in self._made:
            return self._made[path]
        if path in self._in_progress:
            start = self._path_stack.index(path)
            return Unmakeable(path, "it depends on itself", cycle=self._path_stack[start:] + [path])
        self._in_progress[path] = len(self._path_stack)
        self._path_stack.append(path)
        try:
            found = self._choose(path)
        finally:
            self._path_stack.pop()
            del self._in_progress[path]
        if not (isinstance(found, Unmakeable) and found.cycle) and not isinstance(found, Pending):
            self._made[path] = found
        return found

    def _choose(self, path: str) -> Resolution:
        if path in self.index.tasks:
            return self._task_job(self.index.tasks[path])
        literal = self.index.literal.get(path)
        if literal:
            return self._literal_job(path, literal)
        chosen = self._choose_pattern(path)
        if chosen is not None and not isinstance(chosen, Unmakeable):
            return chosen
        split = self._split_for(path)
        if split is not None:
            return split
        if self.fs.exists(path):
            return None
        return chosen or Unmakeable(path, self.index.refused(path) or "")

    def _task_job(self, rule: Rule) -> Resolution:
        return self._build_job(rule, {}, strict=True)

    def _literal_job(self, path: str, rules: list[Rule]) -> Resolution:
        if len(rules) > 1:
            a, b = rules[0], rules[1]
            raise AmbiguousRuleError(
                f"two rules make '{path}': '{a.name}' ({a.loc}) and '{b.name}' ({b.loc})",
                hint="give the file one rule")
        return self._build_job(rules[0], {}, strict=True)

    def _choose_pattern(self, path: str) -> Resolution:
        """The most specific pattern rule that can make `path`; Unmakeable with the closest miss."""
        candidates = self.index.candidates(path)
        if not candidates:  # most paths of a large graph are sources: build nothing for them
            return None
        closest: Unmakeable | None = None
        pending = Pending()
        level: list[tuple[Rule, Job]] = []
        level_key = None
        single = len(candidates) == 1  # the usual case: no level to compare
        for rule, values in candidates:
            if rule.index in self._rule_stack:
                continue  # a pattern rule is used at most once in a chain (as in make)
            key = None if single else specificity(values)
            if level and key != level_key:
                break
            found = self._build_job(rule, values, strict=False, path=path)
            if isinstance(found, Job):
                level.append((rule, found))
                level_key = key
            elif isinstance(found, Pending):
                pending.splits |= found.splits
                pending.via |= found.via | {rule.name}
            elif closest is None or (found.cycle and not closest.cycle):
                closest = found
        if len(level) > 1:
            (a, _), (b, _) = level[0], level[1]
            raise AmbiguousRuleError(
                f"'{path}' can be made by rule '{a.name}' ({a.loc}) and rule '{b.name}' ({b.loc}), "
                "equally specific", hint="make one pattern more specific, or give the file a literal rule")
        if level:
            return self._register(level[0][1])
        if pending.splits:
            return pending
        return closest

    # ------------------------------------------------------------------ jobs

    def _build_job(self, rule: Rule, values: dict[str, str], strict: bool, path: str | None = None) -> Resolution:
        """A job of `rule` with wildcard `values`, its inputs resolved. strict (literal rules and
        tasks): a missing input is an error; otherwise it makes the candidate drop out. `path`:
        the output it is built for, whose string the job keeps (one string per path in a graph
        of 200,000 jobs, not one per mention)."""
        outputs = [] if rule.is_task else [o.expand(values) for o in self.index.outputs[rule.index]]
        if path is not None:
            outputs = [path if output == path else output for output in outputs]
        jobs = self._jobs.setdefault(rule.index, {})
        key = outputs[0] if outputs else rule.name
        if key in jobs:
            return jobs[key]
        job = self._new_job(rule, outputs, [], values)
        self._rule_stack.append(rule.index)
        try:
            failure = self._resolve_inputs(job, strict)
        finally:
            self._rule_stack.pop()
        if failure is not None:
            return failure
        if strict:
            self._register(job)
        return job

    def _register(self, job: Job) -> Job:
        return self._jobs.setdefault(job.rule.index, {}).setdefault(job.outputs[0] if job.outputs else job.rule.name, job)

    def _resolve_inputs(self, job: Job, strict: bool) -> Unmakeable | Pending | None:
        """Fill job.inputs and job.deps; return why it can't be made, or Pending when every
        input is known except some that wait on a split that is not optional."""
        deps: list[Job] = []
        for position, pattern in self._input_patterns(job):
            if pattern.is_glob:
                text = pattern.expand_as_glob(job.values)
                paths, pending = self.expand_glob(text)
                if pending.splits:
                    _wait(job, ("glob", text, position), pending)
                    deps.extend(pending.splits)
                    continue
                paths = _not_its_own(job, paths)
            else:
                paths = [pattern.expand(job.values)]
            for path in paths:
                found = self._resolve(path)
                if isinstance(found, Job):
                    deps.append(found)
                elif isinstance(found, Pending):
                    if job.rule.is_task or strict:
                        _wait(job, ("input", path, position), found)
                        deps.extend(found.splits)
                        continue
                    return found
                elif isinstance(found, Unmakeable):
                    miss = self._miss(job, path, found)
                    if strict:
                        raise self._unmakeable_error(found, job)
                    return miss
                job.inputs.append(path)
                if job.rule.index in self.index.named_rules:
                    _name_input(job, position, path)
        job.deps = _unique(deps)
        return None

    def _input_patterns(self, job: Job) -> Iterable[tuple[int, Pattern]]:
        """(position, pattern) of each input of `job`'s rule: an input function gives as many
        patterns as its value has elements (none for an empty one), all at its position."""
        functions = self.index.functions.get(job.rule.index)
        if not functions:  # most rules: no generator in the loop that runs once per job
            return enumerate(self.index.inputs[job.rule.index])
        prepared = self._input_functions.get(job.rule.index)
        if prepared is None:
            prepared = self._input_functions[job.rule.index] = {
                position: InputFunction(written, self.pipefile.text, self.namespace)
                for position, written in functions.items()}
        patterns = []
        target = job.outputs[0] if job.outputs else job.name
        for position, pattern in enumerate(self.index.inputs[job.rule.index]):
            function = prepared.get(position)
            if function is None:
                patterns.append((position, pattern))
                continue
            for text in function.paths(job.values, target):
                patterns.append((position, pattern_for_one_job(normalise(text))))
        return patterns

    def _miss(self, job: Job, path: str, found: Unmakeable) -> Unmakeable:
        target = job.outputs[0] if job.outputs else job.name
        matched = f"rule '{job.rule.name}' ({job.rule.loc}) matches, but its input '{path}'"
        if found.cycle:
            why = f"{matched} depends on itself"
        elif found.why:
            why = f"{matched} can't be made: {found.why}"
        else:
            why = f"{matched} is missing and no rule makes it"
        return Unmakeable(target, why, cycle=found.cycle)

    def _new_job(self, rule: Rule | None, outputs: list[str], inputs: list[str], values: dict[str, str],
                 kind: JobKind = JobKind.RULE, target: str = "") -> Job:
        self._next_id += 1
        split = rule is not None and rule.index in self.index.split_rules
        if len(values) == 1 and not split:
            values = self._one_value(values)
        return Job(self._next_id, rule, outputs, inputs, values, is_split=split, kind=kind, target=target)

    def _one_value(self, values: dict[str, str]) -> dict[str, str]:
        """One dict for every job with the same single wildcard value (a chain's jobs share their
        stem): a dict is 184 bytes, most of what a job's values cost. No one changes a job's
        values."""
        ((name, value),) = values.items()
        by_value = self._values.get(name)
        if by_value is None:
            by_value = self._values[name] = {}
        return by_value.setdefault(value, values)

    # ------------------------------------------------------------------ split rules

    def _split_job(self, rule: Rule, values: dict[str, str] | None = None) -> Job:
        """The split job of `rule` for these wildcard values (one per set of values)."""
        values = values or {}
        key = (rule.index, tuple(sorted(values.items())))
        job = self._split_jobs.get(key)
        if job is None:
            job = self._new_job(rule, [], [], dict(values))
            self._split_jobs[key] = job
            self._rule_stack.append(rule.index)
            try:
                self._resolve_inputs(job, strict=True)
            finally:
                self._rule_stack.pop()
            job.outputs = self._split_outputs(job)
        return job

    def _split_outputs(self, job: Job) -> list[str]:
        found: set[str] = set()
        for glob in split_globs(job):
            found.update(self.fs.matching(glob))
        return sorted(found)

    def _split_values_from_inputs(self, rule: Rule) -> list[dict[str, str]]:
        """Every set of values `rule`'s split jobs can have, from the files (existing or makeable)
        of its primary input: a glob wider than one split job's (`chunks/*/part_*` for
        `chunks/{sample}/part_* : raw/{sample}.txt`) waits for each of them."""
        if rule.index in self._rule_stack:
            return []
        every: list[dict[str, str]] = []
        for pattern in self.index.split_patterns.get(rule.index, ())[:1]:
            primary = _primary_input(rule, pattern)
            if primary is None:
                continue
            paths, _ = self.expand_glob(primary.as_glob())
            match = match_with_globs if primary.is_glob else Pattern.match
            for path in paths:
                values = match(primary, path)
                if values is not None:
                    found = {name: values[name] for name in pattern.names}
                    if found not in every:
                        every.append(found)
        return every

    def _split_values(self, rule: Rule, path_or_glob: str) -> dict[str, str] | None:
        """The wildcard values of `rule`'s split job whose glob covers `path_or_glob` (a path, or
        a glob of the same shape, `chunks/A/part_*`); {} for a split rule with no wildcards."""
        for pattern in self.index.split_patterns.get(rule.index, ()):
            if not pattern.names:
                return {}
            values = match_with_globs(pattern, path_or_glob)
            if values is not None and not any(is_glob(value) for value in values.values()):
                return values  # (a value that is itself a glob, `*`, stands for several jobs)
        return None

    def split_pending(self, job: Job) -> bool:
        """Must this split job run before its outputs are known?"""
        if job in self._splits_ran:
            return False
        return not job.outputs or self.split_is_stale(job)

    def _split_for(self, path: str) -> Resolution:
        """The split job whose glob covers `path`, or Pending when it has yet to run."""
        for rule, glob in self.index.splits:
            if not glob_regex(glob).fullmatch(path) or rule.index in self._rule_stack:
                continue
            values = self._split_values(rule, path)
            if values is None:
                continue
            job = self._split_job(rule, values)
            if self.split_pending(job):
                return Pending({job}, {rule.name})
            if path in job.outputs:
                return job
        return None

    # ------------------------------------------------------------------ globs

    def expand_glob(self, glob: str) -> tuple[list[str], Pending]:
        """Files matching `glob` that exist or that rules can make, sorted; and the split jobs
        that must run before the answer is complete."""
        self._globs_used.add(glob)
        if glob in self._globs:
            return self._globs[glob]
        regex = glob_regex(glob)
        found = {path for path in self.fs.matching(glob) if not self._left_by_old_split(path)}
        pending = Pending()
        candidates: set[str] = set()
        for rule, pattern in self.index.patterns:
            if (rule.index, glob) in self._glob_stack or rule.index in self._rule_stack:
                continue
            self._glob_stack.add((rule.index, glob))
            try:
                made, waiting = self._outputs_from_inputs(rule, pattern, glob)
            finally:
                self._glob_stack.discard((rule.index, glob))
            candidates.update(p for p in made if regex.fullmatch(p))
            if waiting.splits:
                pending.splits |= waiting.splits
                pending.via |= waiting.via | {rule.name}
        for rule, split_glob in self.index.splits:
            if globs_may_overlap(split_glob, glob):
                values = self._split_values(rule, glob)
                every = [values] if values is not None else self._split_values_from_inputs(rule)
                for job in (self._split_job(rule, v) for v in every):
                    if self.split_pending(job):
                        pending.splits.add(job)
                        pending.via.add(rule.name)
        for path in sorted(candidates - found):
            if isinstance(self._resolve(path), Job):
                found.add(path)
        result = (sorted(found), pending)
        self._globs[glob] = result
        return result

    def _left_by_old_split(self, path: str) -> bool:
        """Was `path` made from an output of an earlier run of a split rule that this run's
        outputs no longer include? Such a file must not leak into a glob."""
        if not self.index.splits:
            return False
        for rule, values in self.index.candidates(path):
            for pattern in rule.inputs:
                if pattern.exprs:
                    continue  # an input function: its files are no rule's primary input
                source = normalise(compile_pattern(pattern.text).expand(values))
                if not self.fs.exists(source) and any(glob_regex(g).fullmatch(source) for _, g in self.index.splits):
                    return True
        return False

    def globs_used(self) -> list[str]:
        """Every glob expanded so far, sorted, including those only asked about to find what
        rules can make (`*.c` behind `*.o`): the directories watch mode must watch."""
        return sorted(self._globs_used)

    def _outputs_from_inputs(self, rule: Rule, out: Pattern, glob: str | None) -> tuple[set[str], Pending]:
        """Outputs of `rule` (through output pattern `out`) that its primary input's existing or
        makeable files give, narrowed to `glob` where the two can be lined up; in no order."""
        primary = _primary_input(rule, out)
        if primary is None:
            if rule.index in self.index.functions and (glob is None or globs_may_overlap(out.as_glob(), glob)):
                # its inputs come from a function of the wildcards, which can't be run backwards:
                # the answer counts only files that exist, and must not pass for the whole one
                self.uncountable.setdefault((glob, rule.index), rule)
            return set(), Pending()
        query = _input_query(out, primary, glob)
        if query is None:
            return set(), Pending()
        paths, pending = self.expand_glob(query)
        match = match_with_globs if primary.is_glob else Pattern.match
        found = set(paths)
        made = set()
        for path in paths:
            values = match(primary, path)
            if values is None or _made_here(out, primary, path, found):
                continue
            made.add(normalise(out.expand(values)))  # (a value `out` has no wildcard for goes unused)
        return made, pending

    def _rule_outputs(self, rule: Rule) -> tuple[list[str], Pending]:
        """Every output `rule` can make from files that exist or can be made, sorted."""
        outputs: list[str] = []
        pending = Pending()
        for pattern in self.index.outputs[rule.index]:
            if pattern.is_literal:
                outputs.append(pattern.text)
                continue
            made, waiting = self._outputs_from_inputs(rule, pattern, None)
            outputs.extend(made)
            pending.splits |= waiting.splits
            pending.via |= waiting.via
        return sorted(set(outputs)), pending

    # ------------------------------------------------------------------ growing the graph

    def split_failed(self, job: Job) -> None:
        """A split job failed or was interrupted: its outputs are what it left matching its
        globs (its old ones were set aside before it ran), so that they are set aside in turn
        rather than taken, by the next run, for the outputs of a split that worked."""
        self._outputs_as_left(job)

    def split_finished(self, job: Job) -> None:
        """A split job ran: its outputs are now whatever matches its globs; forget what was
        decided from the old directory contents."""
        self._outputs_as_left(job)
        self._splits_ran.add(job)
        self._made = {p: r for p, r in self._made.items() if isinstance(r, Job)}

    def _outputs_as_left(self, job: Job) -> None:
        """A split job ended: its outputs are what its globs match on a fresh look."""
        self.fs.forget_all()
        job.outputs = self._split_outputs(job)
        self._globs.clear()

    def expand(self, job: Job) -> list[Job]:
        """Resolve `job`'s pending inputs (every split it waited on has run). Returns the new
        jobs it now needs, deps before dependents; job.deps and job.inputs are updated."""
        with _long_lived():
            return self._expand(job)

    def _expand(self, job: Job) -> list[Job]:
        items, job.pending, job.after = job.pending, [], set()
        new_deps: list[Job] = []
        for kind, text, position in items:
            if kind == "target":
                found = self._resolve(text)
                if found is not None:
                    new_deps.append(self._require(text, None))
            elif kind == "rule":
                new_deps.append(self._rule_target(self.index.names[text]))
            else:
                paths, pending = self.expand_glob(text) if kind == "glob" else ([text], Pending())
                if pending.splits:
                    _wait(job, (kind, text, position), pending)
                    new_deps.extend(pending.splits)
                    continue
                new_deps.extend(self._input_producers(job, _not_its_own(job, paths), position))
        job.deps = _unique(job.deps + new_deps)
        return topological(new_deps)

    def _input_producers(self, job: Job, paths: list[str], position: int = -1) -> list[Job]:
        producers = []
        for path in paths:
            found = self._resolve(path)
            if isinstance(found, Unmakeable):
                raise self._unmakeable_error(found, job)
            if isinstance(found, Pending):
                producers.append(self._placeholder([("target", path, 0)], found))
            elif isinstance(found, Job):
                producers.append(found)
            job.inputs.append(path)
            _name_input(job, position, path)
        return producers

    # ------------------------------------------------------------------ errors

    def _unmakeable_error(self, found: Unmakeable, needed_by: Job | None) -> Exception:
        if found.cycle:
            from rulerun.plan.cycle import describe

            return CycleError(describe(found.cycle, self.index),
                              hint="a rule's input must not be made, directly or not, from its output")
        message = f"no rule to make '{found.path}'"
        if needed_by is not None and needed_by.kind is JobKind.RULE:
            what = f"task '{needed_by.name}'" if needed_by.is_task else f"'{needed_by.outputs[0]}'" \
                if needed_by.outputs else f"'{needed_by.name}'"
            message += f", needed by {what} (rule '{needed_by.rule.name}', {needed_by.rule.loc})"
        hint = f"closest: {found.why}" if found.why else self._did_you_mean(found.path)
        return NoRuleError(message, hint=hint)

    def _did_you_mean(self, path: str) -> str | None:
        known = list(self.index.literal) + list(self.index.tasks) + list(self.index.names)
        close = difflib.get_close_matches(path, known, n=1)
        return f"did you mean '{close[0]}'?" if close else None


@contextlib.contextmanager
def _long_lived():
    """Build objects that live for the whole run without Python's cyclic GC watching.

    The collector rescans every live container each time the old generation grows by a
    quarter: a graph of 200,000 jobs (a million jobs, lists and dicts, none of them garbage)
    was scanned again and again, ~45% of resolution time. Collection is paused while the graph
    is built, and what exists then is moved to the permanent generation (gc.freeze), so later
    collections, during the decisions and the run, skip it. The previous freeze is undone
    first: an earlier graph (watch mode builds one per change) can still be collected."""
    gc.unfreeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _wait(job: Job, item: tuple[str, str, int], pending: Pending) -> None:
    """`job` can't know `item` until `pending`'s split jobs ran."""
    job.pending = [*job.pending, item]
    job.after = set(job.after) | pending.splits
    job.via_rules = set(job.via_rules) | pending.via


def split_globs(job: Job) -> list[str]:
    """The globs a split job's outputs are found by: its rule's, with its wildcard values."""
    return [compile_pattern(normalise(out.text)).expand_as_glob(job.values) for out in job.rule.outputs]


def _name_input(job: Job, position: int, path: str) -> None:
    """`path`, found for input `position` of the job's rule, under that input's name if it has one."""
    if job.rule is None or not 0 <= position < len(job.rule.inputs):
        return
    name = job.rule.inputs[position].name
    if name is not None:
        if job.named is None:
            job.named = {}
        job.named.setdefault(name, []).append(path)


def _input_pattern(text: str) -> "Pattern | OneFile":
    """An input as the resolver reads it: a plain path as a OneFile, which costs no Pattern
    (a task over `$(SAMPLES)` names 100,000 of them, and their Patterns were a fifth of a
    one-file rebuild's time), anything else compiled as usual."""
    return plain_file(text) or compile_pattern(text)


def _primary_input(rule: Rule, out: Pattern) -> Pattern | None:
    """The first input pattern that uses every wildcard of `out`: the one whose files decide
    which outputs the rule can make. A plain pattern is preferred; a glob with the wildcards
    (`summary_{s}.txt : data/{s}/*.csv`) serves when there is none: the wildcard values then come
    from the files its glob finds."""
    needed = set(out.names)
    inputs = [compile_pattern(normalise(pattern.text)) for pattern in rule.inputs if not pattern.exprs]
    fitting = [pattern for pattern in inputs if needed <= set(pattern.names)]
    plain = [pattern for pattern in fitting if not pattern.is_glob]
    return (plain or fitting or [None])[0]


def _not_its_own(job: Job, paths: list[str]) -> list[str]:
    """A job's own outputs never count among the files its input glob finds (`site/index.html
    : site/*.html` reads the other pages, not itself: else the second run is a cycle)."""
    if not job.outputs:
        return paths
    own = set(job.outputs)
    return [path for path in paths if path not in own]


def _made_here(out: Pattern, primary: Pattern, path: str, found: set[str]) -> bool:
    """Would `path`, found as an input of the rule, be made by the same rule from another file
    found (`a.post.txt` from `a.txt` for `{x}.post.txt : {x}.txt`)? A pattern rule is used once
    in a chain, so such a path gives no output (else `*.post.txt` finds `a.post.post.txt`)."""
    if primary.is_glob:
        return False
    values = out.match(path)
    return values is not None and normalise(primary.expand(values)) in found


def _input_query(out: Pattern, primary: Pattern, glob: str | None) -> str | None:
    """The glob of input files that could give outputs matching `glob`. Lines the glob up with
    the output pattern where it can (`%.o` against `build/*.o` gives stem `build/*`), else asks
    for every file the input pattern could name."""
    if glob is None:
        return primary.as_glob()
    values = out.match(glob)
    if values is not None:
        return normalise(primary.expand(values))
    if globs_may_overlap(out.as_glob(), glob):
        return primary.as_glob()
    return None


def _unique(jobs: list[Job]) -> list[Job]:
    if len(jobs) < 2:  # most jobs need one job or none
        return jobs
    seen: set[int] = set()
    result = []
    for job in jobs:
        if job.id not in seen:
            seen.add(job.id)
            result.append(job)
    return result
