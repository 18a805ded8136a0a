"""Where rulerun keeps its own files in a project: one directory, beside the Pipefile's run."""

STATE_DIR = ".rulerun"
