"""`python -m rulerun`: the same as the `rulerun` command."""

from rulerun.cli import entry

entry()
