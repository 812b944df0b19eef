"""The catalogue entries: six public router datasets, where they live and what they weigh.

GitHub-hosted files are pinned to the commit their checksums were computed at (``sums.py``).
Hugging Face-hosted files could not be checked from where this was written: their entries say so
(``sha256=None``: computed on the first download and recorded in the manifest, as is the commit the
hub resolved, from its ``X-Repo-Commit`` header).
"""

from __future__ import annotations

from tela_core.data.catalogue import DatasetEntry, RemoteFile
from tela_plugins.catalogue.sums import SUMS

__all__ = ["ENTRIES", "ROUTELLM_COMMIT", "LLMROUTER_COMMIT", "ROUTERARENA_COMMIT", "ROUTERBENCH_COMMIT"]

#: lm-sys/RouteLLM commit the MMLU outcome CSVs were checked at
ROUTELLM_COMMIT = "0b64fdafe049e596a3f5657c219329f24af24198"
#: ulab-uiuc/LLMRouter commit (abbreviated, as recorded where the copy was taken)
LLMROUTER_COMMIT = "4e7a796942ce"
#: RouteWorks/RouterArena commit (abbreviated, as recorded where the copy was taken)
ROUTERARENA_COMMIT = "4714a9ad73e8"
#: withmartian/routerbench (Hugging Face dataset repo) commit seen in its card's history
ROUTERBENCH_COMMIT = "bb3ff8fbd4e6d4e17c14aee632298d4a8e0f5cad"

_GH = "https://raw.githubusercontent.com"
_HF = "https://huggingface.co/datasets"


def _pinned(dataset: str, path: str, url: str) -> RemoteFile:
    sha, size = SUMS[(dataset, path)]
    return RemoteFile(path=path, url=url, sha256=sha, size=size)


def _routellm_mmlu() -> DatasetEntry:
    base = f"{_GH}/lm-sys/RouteLLM/{ROUTELLM_COMMIT}/routellm/evals/mmlu"
    files = [
        _pinned("routellm-mmlu", path, f"{base}/responses/{path}")
        for (ds, path) in sorted(SUMS)
        if ds == "routellm-mmlu" and path.endswith(".csv")
    ]
    files.append(_pinned("routellm-mmlu", "contaminated_prompts.jsonl", f"{base}/contaminated_prompts.jsonl"))
    return DatasetEntry(
        name="routellm-mmlu",
        description="RouteLLM's MMLU outcomes: 57 subject CSVs, GPT-4 Turbo vs Mixtral 8x7B right/wrong "
        "(14,042 prompts)",
        origin="https://github.com/lm-sys/RouteLLM",
        license="Apache-2.0",
        revision=ROUTELLM_COMMIT,
        files=tuple(files),
        source="routellm-csv",
        manual=(
            f"routellm/evals/mmlu/responses/mmlu_*.csv (57 files) and routellm/evals/mmlu/contaminated_prompts.jsonl "
            f"from https://github.com/lm-sys/RouteLLM/tree/{ROUTELLM_COMMIT}"
        ),
    )


def _llmrouter() -> DatasetEntry:
    base = f"{_GH}/ulab-uiuc/LLMRouter/{LLMROUTER_COMMIT}/data"
    return DatasetEntry(
        name="llmrouter",
        description="LLMRouter's RouterDC outcomes: 9 hosted models, 0/1 scores, $/M-token prices "
        "(5,608 train / 500 test)",
        origin="https://github.com/ulab-uiuc/LLMRouter",
        license="MIT",
        revision=LLMROUTER_COMMIT,
        files=(
            _pinned("llmrouter", "dcrouter_preprocessed_train.json", f"{base}/dcrouter_preprocessed/train.json"),
            _pinned("llmrouter", "dcrouter_preprocessed_test.json", f"{base}/dcrouter_preprocessed/test.json"),
            _pinned("llmrouter", "default_llm.json", f"{base}/example_data/llm_candidates/default_llm.json"),
        ),
        source="llmrouter-json",
        data="dcrouter_preprocessed_test.json",
        manual=(
            f"data/dcrouter_preprocessed/{{train,test}}.json and data/example_data/llm_candidates/default_llm.json "
            f"from https://github.com/ulab-uiuc/LLMRouter/tree/{LLMROUTER_COMMIT}"
        ),
    )


def _routerarena() -> DatasetEntry:
    base = f"{_GH}/RouteWorks/RouterArena/{ROUTERARENA_COMMIT}"
    models = ("claude-3-haiku-20240307", "gemini-2.0-flash-001")
    files = [_pinned("routerarena", f"{m}.jsonl", f"{base}/cached_results/{m}.jsonl") for m in models]
    files.append(_pinned("routerarena", "cost.json", f"{base}/model_cost/cost.json"))
    return DatasetEntry(
        name="routerarena",
        description="RouterArena cached results of two models with real $ costs (809 prompts each)",
        origin="https://github.com/RouteWorks/RouterArena",
        license="Apache-2.0",
        revision=ROUTERARENA_COMMIT,
        files=tuple(files),
        source="routerarena",
        manual=(
            f"cached_results/{{{','.join(models)}}}.jsonl and model_cost/cost.json "
            f"from https://github.com/RouteWorks/RouterArena/tree/{ROUTERARENA_COMMIT}"
        ),
    )


def _routellm_judge() -> DatasetEntry:
    base = f"{_HF}/routellm/gpt4_dataset/resolve/refs%2Fconvert%2Fparquet/default"
    return DatasetEntry(
        name="routellm-judge",
        description="RouteLLM's GPT-4-judge data: prompt + GPT-4's 1-5 score of Mixtral's answer (train / validation)",
        origin="https://huggingface.co/datasets/routellm/gpt4_dataset",
        license="unstated (see its card)",
        revision=None,
        files=(
            RemoteFile(path="train.parquet", url=f"{base}/train/0000.parquet"),
            RemoteFile(path="validation.parquet", url=f"{base}/validation/0000.parquet"),
        ),
        source="routellm-judge",
        manual="the parquet files of https://huggingface.co/datasets/routellm/gpt4_dataset "
        "(train and validation split)",
        note=(
            "No license is stated on the dataset card; its prompts come from Nectar. "
            "The hub's parquet conversion branch (refs/convert/parquet) is not a pinned commit and no checksum "
            "could be verified from here; `get` records what it downloaded. The hf source also reads the "
            "hub id directly: --data routellm/gpt4_dataset."
        ),
    )


def _arena() -> DatasetEntry:
    return DatasetEntry(
        name="arena-55k",
        description="Chatbot Arena battles (lmsys-arena-human-preference-55k): model_a, model_b, winner, prompt",
        origin="https://huggingface.co/datasets/lmsys/lmsys-arena-human-preference-55k",
        license="Apache-2.0",
        revision=None,
        files=(
            RemoteFile(path="train.csv", url=f"{_HF}/lmsys/lmsys-arena-human-preference-55k/resolve/main/train.csv"),
        ),
        source="arena",
        data="train.csv",
        manual="train.csv of https://huggingface.co/datasets/lmsys/lmsys-arena-human-preference-55k",
        note="Fetched from the main branch: no commit or checksum could be verified from here; `get` records both.",
    )


def _routerbench() -> DatasetEntry:
    return DatasetEntry(
        name="routerbench",
        description="RouterBench 0-shot: 11 models' outcomes and $ costs on ~36k prompts (a pandas pickle)",
        origin="https://huggingface.co/datasets/withmartian/routerbench",
        license="unstated (see its card)",
        revision=ROUTERBENCH_COMMIT,
        files=(
            RemoteFile(
                path="routerbench_0shot.pkl",
                url=f"{_HF}/withmartian/routerbench/resolve/{ROUTERBENCH_COMMIT}/routerbench_0shot.pkl",
            ),
        ),
        source="routerbench",
        data="routerbench_0shot.pkl",
        manual="routerbench_0shot.pkl of https://huggingface.co/datasets/withmartian/routerbench",
        note=(
            "No license is stated on the dataset card (paper: arXiv:2403.12031). "
            "A pickle can run code when loaded: the routerbench source opens it only with TELA_ALLOW_PICKLE=1 "
            "(or --set source.allow_pickle=true). No checksum could be verified from here."
        ),
    )


#: every entry, in the order `tela data list` shows them
ENTRIES: tuple[DatasetEntry, ...] = (
    _routellm_mmlu(),
    _routellm_judge(),
    _arena(),
    _llmrouter(),
    _routerarena(),
    _routerbench(),
)
