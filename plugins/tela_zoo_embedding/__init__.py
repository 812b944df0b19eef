"""Builtin plugin tela_zoo_embedding (being built)."""
