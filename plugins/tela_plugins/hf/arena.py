"""``arena``: Chatbot Arena battles as strong-vs-weak preference records, the way RouteLLM builds them.

Written against ``lmsys/lmsys-arena-human-preference-55k`` (``train.csv``: ``id``, ``model_a``,
``model_b``, ``prompt``, ``response_a``, ``response_b``, ``winner_model_a``, ``winner_model_b``,
``winner_tie``; ``prompt`` is a JSON list of the user's turns). Battles of the older Arena dumps,
with one ``winner`` column (``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``), read too.

RouteLLM trains on battles between a *strong* and a *weak* model. With ``weak_model`` and
``strong_model`` set, those are the two models and only their battles count. Otherwise models are
grouped by Elo (:mod:`.elo`: Bradley-Terry fit over all battles, ``num_tiers`` tiers, tier 0 the
best) and the strong side is tier ``strong_tier``, the weak side tier ``weak_tier``. Each battle
between the two sides becomes one record whose outcomes say who won:

=========================  =====================  ======================  =====================
battle                     strong outcome         weak outcome            label (seed mapping)
=========================  =====================  ======================  =====================
strong side wins           1                      0                       1 (only strong right)
weak side wins             0                      1                       5 (weak good enough)
tie                        0.5                    0.5                     5 (weak good enough)
tie (both bad)             0                      0                       3 (both wrong)
=========================  =====================  ======================  =====================

A tie counts for the weak model, as in RouteLLM, where P(tie) + P(weak wins) is the probability
that the weak model suffices. The outcome names are the two models (pair mode) or ``tier-K``
(tier mode), so matrix factorisation and the other outcome-trained families fit them directly.
The question is the first user turn (``prompt_turn``: ``first``, ``last`` or ``all`` joined).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tela_core import Record, Source
from tela_core.data.labels import OutcomeOptions, label_for
from tela_core.data.records import seed_record
from tela_plugins.hf.load import Opened, open_split, require_columns

__all__ = ["ArenaSource", "ArenaOptions", "battle_result"]

_ONE_HOT = ("winner_model_a", "winner_model_b", "winner_tie")
_WINNERS = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": None}


class ArenaOptions(OutcomeOptions):
    split: str = "train"
    """Split to read."""
    config: str | None = None
    """Dataset config, for hub ids."""
    revision: str | None = None
    """Hub revision, for hub ids."""
    weak_model: str | None = None
    """Pick the two models: the weak one (with strong_model; default: Elo tiers)."""
    strong_model: str | None = None
    """Pick the two models: the strong one (with weak_model; default: Elo tiers)."""
    num_tiers: int = Field(10, ge=2)
    """Elo tiers the models are grouped into (RouteLLM: 10)."""
    strong_tier: int = Field(0, ge=0)
    """Tier of the strong side (0 = best rated)."""
    weak_tier: int = Field(2, ge=0)
    """Tier of the weak side."""
    prompt_turn: Literal["first", "last", "all"] = "first"
    """Which user turn(s) of a multi-turn battle is the question."""


def battle_result(row: dict[str, Any]) -> tuple[float | None, bool] | str:
    """(score of model A: 1/0/0.5, None for both-bad; True) or an error message for a bad row."""
    if "winner" in row and row.get("winner") is not None:
        w = str(row["winner"]).strip()
        if w not in _WINNERS:
            return f"winner must be one of {', '.join(_WINNERS)}, got {w!r}"
        return _WINNERS[w], True
    values = []
    for col in _ONE_HOT:
        v = row.get(col)
        if isinstance(v, str) and v.strip() in ("0", "1"):
            v = int(v)
        if isinstance(v, bool) or v not in (0, 1):
            return f"{col} must be 0 or 1, got {v!r}"
        values.append(int(v))
    if sum(values) != 1:
        return f"exactly one of {', '.join(_ONE_HOT)} must be 1, got {values}"
    return (1.0, 0.0, 0.5)[values.index(1)], True


class ArenaSource(Source):
    """Chatbot Arena battles (lmsys-arena-human-preference-55k) -> strong-vs-weak preference records."""

    name = "arena"
    description = "Chatbot Arena battles (model_a, model_b, winner): strong-vs-weak outcomes by Elo tier or model pair"
    Options = ArenaOptions
    reads_hub_ids = True

    def read(self, path: Path) -> Iterator[Record]:
        o = self.options
        opened = open_split(path, split=o.split, config=o.config, revision=o.revision)
        winner_cols = ["winner"] if "winner" in opened.columns else list(_ONE_HOT)
        require_columns(
            opened, {"model_a": "model_a", "model_b": "model_b", "prompt": "prompt", **{c: c for c in winner_cols}}
        )
        battles = self._battles(opened, winner_cols)
        strong, weak, names = self._sides(opened, battles)
        used = skipped = empty = 0
        for i, a, b, score, prompt, rid in battles:
            if a in strong and b in weak:
                s_strong = score
            elif b in strong and a in weak:
                s_strong = None if score is None else 1.0 - score
            else:
                skipped += 1
                continue
            if not prompt:
                empty += 1
                continue
            if s_strong is None:  # tie (both bad)
                outcomes = {names[0]: 0.0, names[1]: 0.0}
            else:
                outcomes = {names[0]: s_strong, names[1]: 1.0 - s_strong}
            label = label_for(outcomes[names[1]], outcomes[names[0]], o)
            used += 1
            yield seed_record(prompt, label, outcomes=outcomes, id=rid or f"{opened.split}/{i}")
        self.stats.update(
            battles=len(battles), strong_vs_weak=used, other_battles_skipped=skipped, empty_prompts_skipped=empty
        )
        if used == 0:
            raise opened.error(
                0,
                f"no battle between the strong side ({', '.join(sorted(strong))}) and the weak side "
                f"({', '.join(sorted(weak))}); pick other tiers or models",
            )

    def _battles(
        self, opened: Opened, winner_cols: list[str]
    ) -> list[tuple[int, str, str, float | None, str, str | None]]:
        cols = ["model_a", "model_b", "prompt", *winner_cols] + (["id"] if "id" in opened.columns else [])
        out = []
        for i, row in enumerate(opened.rows(cols)):
            a, b = row.get("model_a"), row.get("model_b")
            if not isinstance(a, str) or not a.strip() or not isinstance(b, str) or not b.strip():
                raise opened.error(i, f"model_a and model_b must be model names, got {a!r} and {b!r}")
            result = battle_result(row)
            if isinstance(result, str):
                raise opened.error(i, result)
            prompt = self._prompt(opened, i, row.get("prompt"))
            rid = row.get("id")
            out.append((i, a.strip(), b.strip(), result[0], prompt, None if rid is None else str(rid)))
        if not out:
            raise opened.error(0, "no battles (the split is empty)")
        return out

    def _prompt(self, opened: Opened, i: int, value: Any) -> str:
        """The question of a battle: the first/last/all user turn(s) of a JSON list (or a plain string)."""
        turns: Any = value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    turns = json.loads(text)
                except json.JSONDecodeError as e:
                    raise opened.error(
                        i, f"prompt is not a valid JSON list of turns ({e.msg} at column {e.colno})"
                    ) from None
            else:
                turns = [text]
        if isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns):  # conversation_a shape
            turns = [t.get("content") for t in turns if t.get("role") == "user"]
        if not isinstance(turns, list):
            raise opened.error(i, f"prompt must be a JSON list of turns, got {type(turns).__name__}")
        texts = [t.strip() for t in turns if isinstance(t, str) and t.strip()]
        if not texts:
            return ""  # Arena data has battles whose turns are all null: counted and skipped
        return {"first": texts[0], "last": texts[-1], "all": "\n\n".join(texts)}[self.options.prompt_turn]

    def _sides(self, opened: Opened, battles: list[Any]) -> tuple[set[str], set[str], tuple[str, str]]:
        """(strong models, weak models, (strong outcome name, weak outcome name))."""
        o = self.options
        models = sorted({b[1] for b in battles} | {b[2] for b in battles})
        if (o.weak_model is None) != (o.strong_model is None):
            raise opened.error(0, "set both weak_model and strong_model (the two models), or neither (Elo tiers)")
        if o.weak_model is not None:
            for role, m in (("weak", o.weak_model), ("strong", o.strong_model)):
                if m not in models:
                    raise opened.error(0, f"{role} model {m!r} fights no battle here; models: {', '.join(models)}")
            if o.weak_model == o.strong_model:
                raise opened.error(0, f"weak and strong model are both {o.weak_model!r}")
            self.stats = {"mode": "models"}
            return {o.strong_model}, {o.weak_model}, (o.strong_model, o.weak_model)
        from tela_plugins.hf.elo import elo_ratings, elo_tiers  # start-up: `tela --help` need not load hf.elo (~1 ms)

        ratings = elo_ratings(
            [b[1] for b in battles], [b[2] for b in battles], [0.5 if b[3] is None else b[3] for b in battles]
        )
        tiers = elo_tiers(ratings, o.num_tiers)
        n_tiers = max(tiers.values()) + 1
        for role, t in (("strong_tier", o.strong_tier), ("weak_tier", o.weak_tier)):
            if t >= n_tiers:
                raise opened.error(0, f"{role} {t}: there are only {n_tiers} tiers (0..{n_tiers - 1})")
        if o.strong_tier >= o.weak_tier:
            raise opened.error(
                0, f"strong_tier ({o.strong_tier}) must be a better (lower) tier than weak_tier ({o.weak_tier})"
            )
        strong = {m for m, t in tiers.items() if t == o.strong_tier}
        weak = {m for m, t in tiers.items() if t == o.weak_tier}
        self.stats = {
            "mode": "elo tiers",
            f"tier_{o.strong_tier}_strong": sorted(strong),
            f"tier_{o.weak_tier}_weak": sorted(weak),
            "elo": {m: round(r, 1) for m, r in ratings.items()},
        }
        return strong, weak, (f"tier-{o.strong_tier}", f"tier-{o.weak_tier}")

    def sniff(self, path: Path) -> bool:
        """A file or folder whose columns include model_a, model_b and a winner."""
        from tela_plugins.hf.sniff import columns_of  # start-up: `tela --help` need not load hf.sniff (~4 ms)

        cols = columns_of(Path(path))
        return cols is not None and {"model_a", "model_b"} <= cols and ("winner" in cols or "winner_model_a" in cols)
