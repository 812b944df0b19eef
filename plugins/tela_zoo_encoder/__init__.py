"""Builtin plugin tela_zoo_encoder (being built)."""
