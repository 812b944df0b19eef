"""Rebuild the bundled MMLU samples from RouteLLM's outcome CSVs, deterministically.

    python -m tela_core.data.make_sample "$(tela data get routellm-mmlu)"

Steps: read every ``mmlu_<subject>.csv`` with the ``routellm-csv`` source (which drops the 5
prompts of ``contaminated_prompts.jsonl`` and labels each prompt from the Mixtral/GPT-4 outcomes:
Mixtral right -> 5, only GPT-4 right -> 1, both wrong -> 3); keep the first occurrence of each
prompt; split by subject into the 42 training subjects and the 15 held-out ones
(:data:`tela_core.data.sampling.MMLU_HELDOUT_SUBJECTS`), dropping from the held-out pool any prompt that
also occurs in a training subject (78 questions appear in both clinical_knowledge and
college_medicine); draw 400 training and 300 held-out records with
:func:`tela_core.data.sampling.subsample` (seed 42); write them as seed-format JSONL with outcomes,
subject and id.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tela_core.data.sampling import MMLU_HELDOUT_SUBJECTS, subsample
from tela_core.infra.io import write_jsonl
from tela_core.plugins.discovery import get_registry

TRAIN_N = 400
HELDOUT_N = 300


def build(src_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write both samples into ``out_dir``; return how many records each got."""
    source = get_registry().create("source", "routellm-csv")
    seen: set[str] = set()
    records = []
    for r in source.records(src_dir):
        if r.prompt not in seen:
            seen.add(r.prompt)
            records.append(r)
    held = set(MMLU_HELDOUT_SUBJECTS)
    train_pool = [r for r in records if r.group not in held]
    train_prompts = {r.prompt for r in train_pool}
    heldout_pool = [r for r in records if r.group in held and r.prompt not in train_prompts]
    out = {}
    for name, pool, n in (
        ("mmlu_sample.jsonl", train_pool, TRAIN_N),
        ("mmlu_heldout_sample.jsonl", heldout_pool, HELDOUT_N),
    ):
        out[name] = write_jsonl(out_dir / name, (r.to_json() for r in subsample(pool, n, seed=42)))
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        src = Path(sys.argv[1])
    else:  # the folder `tela data get routellm-mmlu` fetched
        from tela_core.data.download import dataset_dir

        src = dataset_dir("routellm-mmlu")
    print(build(src, Path(__file__).parent))
