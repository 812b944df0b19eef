"""Builtin plugin tela_zoo_baselines (being built)."""
