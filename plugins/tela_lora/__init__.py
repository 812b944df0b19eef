"""Builtin plugin tela_lora (being built)."""
