"""The Pipefile grammar, shipped as package data (rulerun.grammar in an install)."""
