"""rulerun: a Make-like pipeline runner. Only the version lives here, so `rulerun --version` stays fast."""

__version__ = "0.1.0"


def _console() -> None:
    """The `rulerun` command: `--version` answers before anything else is imported."""
    import sys

    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(f"rulerun {__version__}\n")
        return
    from rulerun.cli import entry

    entry()
