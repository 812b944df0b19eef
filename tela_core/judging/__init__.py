"""Judging collected answers, the whole of it: what ``tela judge`` does, for a script too.

- :mod:`.plan`: :func:`plan_judging` reads the answers, picks the pair, makes the judges and pairs
  each with the judge model it calls (endpoint, prices), and builds each judge's tasks (sampled,
  the same prompts for both judges): a :class:`JudgePlan`. Nothing is called or written.
- :mod:`.job`: :class:`JudgeJob` runs a plan in a locked output folder, resuming what an earlier run
  judged, within a budget; :func:`judge_answers` is plan and run in one call.
- :mod:`.run`: the engine: a judge's requests through the paid-call engine, replies read (and asked
  again when unreadable), judgements journalled, records made from them.
- :mod:`.agreement`: raw agreement, Cohen's kappa and the confusion matrix between two judges, so a
  user knows whether a cheap judge can be trusted (pure: no I/O, no network).

The judge component (:class:`tela_core.components.Judge`) and its hook live with the other kinds;
the builtin judges are a plugin (``tela_plugins.judges``).
"""

from tela_core.collect.endpoints import CallSettings

from .job import JudgeJob, judge_answers
from .plan import JudgePlan, plan_judging

__all__ = ["CallSettings", "JudgeJob", "JudgePlan", "judge_answers", "plan_judging"]
