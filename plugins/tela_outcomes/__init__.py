"""Builtin plugin tela_outcomes (being built)."""
