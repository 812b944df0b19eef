"""Builtin plugin tela_score_token (being built)."""
