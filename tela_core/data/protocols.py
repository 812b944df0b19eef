"""Evaluation protocols: which records a router may train (and calibrate) on, and which it is judged on.

``mmlu-heldout`` is the protocol of ``docs/metrics.md``: evaluate on the 15 held-out MMLU
subjects (:data:`tela_core.data.sampling.MMLU_HELDOUT_SUBJECTS`) and train, tune and calibrate on the
other 42, never on a random split of the same subjects (that number flatters the router). The 5
prompts RouteLLM found too close to its own training data (``contaminated_prompts.jsonl``, field
``eval_prompt``) are dropped from evaluation; a copy ships with tela
(``tela_core/data/mmlu_contaminated_prompts.jsonl``, Apache-2.0, see its ``ATTRIBUTION.md``), so the
protocol holds for converted data too, not only for the CSV folder that carries the file.
On RouteLLM's data this leaves 3,056 evaluation prompts. Training records whose question text
also appears among the evaluation prompts (MMLU repeats some questions across subjects) are
dropped from the training side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tela_core.data.records import Record, iter_jsonl
from tela_core.data.sampling import MMLU_HELDOUT_SUBJECTS, group_split
from tela_core.infra.errors import InputError, TelaError

__all__ = ["PROTOCOLS", "names", "split", "mmlu_heldout", "contaminated_prompts"]

CONTAMINATED_FILE = "mmlu_contaminated_prompts.jsonl"


def contaminated_prompts(path: Path | None = None) -> frozenset[str]:
    """The ``eval_prompt`` texts of a RouteLLM ``contaminated_prompts.jsonl`` (default: the bundled copy)."""
    if path is None:
        path = Path(__file__).parent / CONTAMINATED_FILE
    out: set[str] = set()
    for line, obj in iter_jsonl(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("eval_prompt"), str):
            raise InputError(path, line, 'expected an object with an "eval_prompt" string')
        out.add(obj["eval_prompt"])
    return frozenset(out)


def mmlu_heldout(records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """(train, eval) for the MMLU held-out-subject protocol (module doc).

    Raises :class:`TelaError` when no record belongs to a held-out subject (not MMLU data, or
    data whose ``group`` is not the subject).
    """
    train, evals = group_split(records, MMLU_HELDOUT_SUBJECTS)
    if not evals:
        groups = sorted({r.group for r in records if r.group is not None})
        shown = ", ".join(groups[:8]) + (", …" if len(groups) > 8 else "") if groups else "none"
        raise TelaError(
            "protocol mmlu-heldout: no record belongs to a held-out MMLU subject "
            f"({', '.join(MMLU_HELDOUT_SUBJECTS[:3])}, …); groups in the data: {shown}"
        )
    bad = contaminated_prompts()
    evals = [r for r in evals if r.prompt not in bad]
    # MMLU repeats some questions across subjects (78 clinical_knowledge questions reappear in
    # college_medicine): a router must not train on a question it is then judged on.
    seen = {r.prompt for r in evals}
    return [r for r in train if r.prompt not in seen], evals


#: protocol name -> function (records -> (train, eval))
PROTOCOLS: dict[str, Callable[[Sequence[Record]], tuple[list[Record], list[Record]]]] = {
    "mmlu-heldout": mmlu_heldout,
}


def names() -> list[str]:
    """The protocol names ``--protocol`` accepts."""
    return sorted(PROTOCOLS)


def split(protocol: str, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """(train, eval) records under the named protocol."""
    try:
        fn = PROTOCOLS[protocol]
    except KeyError:
        raise TelaError(f"unknown protocol {protocol!r}; known: {', '.join(names())}") from None
    return fn(records)
