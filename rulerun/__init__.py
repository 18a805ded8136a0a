"""rulerun: a Make-like pipeline runner. Only the version lives here, so `rulerun --version` stays fast."""

__version__ = "0.1.0"
