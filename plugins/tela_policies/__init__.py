"""Builtin plugin tela_policies (being built)."""
