"""Judging: what ``tela judge`` computes about judges themselves, apart from calling them.

- ``agreement``: raw agreement, Cohen's kappa (quadratic-weighted for 1..5 labels) and the confusion
  matrix between two judges, so a user knows whether a cheap judge can be trusted
  (``from tela_core.judging.agreement import agreement``).

The judge component (:class:`tela_core.components.Judge`) and its hook live with the other kinds;
the builtin judges are a plugin (``tela_plugins.judges``). Everything here is pure: no I/O, no network.
"""
