"""Builtin plugin tela_deepspeed (being built)."""
