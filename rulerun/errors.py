"""The errors rulerun shows to people, each with the exit status it ends the run with.

    RulerunError (exit 2)              a mistake of the user's: rendered once by cli.main, no traceback
    ├── UsageError                     bad command line
    ├── PipefileError                  a located mistake in a Pipefile: FILE:LINE:COL, the line, a caret
    ├── ResolveError                   the jobs can't be worked out
    │   ├── NoRuleError                no rule to make a target (names the closest rule)
    │   ├── AmbiguousRuleError         two rules tie for a target
    │   ├── CycleError                 a target depends on itself (names the path)
    │   ├── SharedOutputError          two jobs would write the same file (names both rules)
    │   └── OutputPlaceError           a job would write outside the project, or into .rulerun/
    ├── StateError                     the .rulerun state is unusable and can't be rebuilt
    └── ClusterSetupError              DRMAA can't be used here (says what to do, suggests --local)

Job failures are not exceptions: they are JobResult values collected for the summary (exit 1).
"""

from __future__ import annotations

from rulerun.source import Location, render


class RulerunError(Exception):
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def show(self) -> str:
        return render(None, self.message, hint=self.hint)


class UsageError(RulerunError):
    pass


class PipefileError(RulerunError):
    """A mistake at `loc` in a Pipefile whose text is `text` (for showing the line)."""

    def __init__(self, loc: Location, message: str, text: str | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.loc = loc
        self.text = text

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}"

    def show(self) -> str:
        return render(self.loc, self.message, self.text, self.hint)


class ResolveError(RulerunError):
    pass


class NoRuleError(ResolveError):
    pass


class AmbiguousRuleError(ResolveError):
    pass


class CycleError(ResolveError):
    pass


class SharedOutputError(ResolveError):
    pass


class OutputPlaceError(ResolveError):
    pass


class StateError(RulerunError):
    pass


class ClusterSetupError(RulerunError):
    pass
