"""The seed's prompt texts: RouteLLM's causal-LLM router system prompt, word for word, and the
user template. Outcome sources build seed-format records from these."""

from __future__ import annotations

from tela_core.infra.errors import TelaError

__all__ = [
    "SYSTEM_PROMPT",
    "USER_TEMPLATE",
    "SCORE_TOKENS",
    "user_content",
    "label_text",
    "split_score_token",
    "score_token_ids",
]

SYSTEM_PROMPT = (
    "[Instruction]\nBased on the question provided below, predict the score an expert evaluator would give "
    "to an AI assistant's response, considering its helpfulness, relevance, adherence to facts, depth, creativity, "
    "and detail. Your prediction should infer the level of proficiency needed to address the question effectively. "
    "Use a scale from 1 to 5, where a higher score indicates a higher anticipated quality of response. Provide your "
    'prediction as: "[[predicted rating]]".\n\n'
    "Score criteria:\n"
    "- **4-5**: The AI assistant can produce a very strong answer, showing deep understanding, creativity, detailed "
    "insight, and high relevance.\n"
    "- **3**: The AI assistant can provide an adequate answer with moderate detail, relevance, and factual accuracy.\n"
    "- **1-2**: The AI assistant will struggle to produce a strong answer due to the question's difficulty, "
    "vagueness, or the assistant's limitations.\n"
)

USER_TEMPLATE = "[Question]\n{question}\n\nPrediction:\n"

#: The five score tokens, added to the tokenizer as special tokens; index i is score i + 1.
SCORE_TOKENS: tuple[str, ...] = ("[[1]]", "[[2]]", "[[3]]", "[[4]]", "[[5]]")


def user_content(question: str) -> str:
    """The seed's user message for ``question``."""
    return USER_TEMPLATE.format(question=question)


def label_text(label: int) -> str:
    """The assistant message for score ``label`` (1..5): ``[[label]]``."""
    if isinstance(label, bool) or not isinstance(label, int) or not 1 <= label <= 5:
        raise ValueError(f"a score label is an integer 1..5, got {label!r}")
    return SCORE_TOKENS[label - 1]


def split_score_token(tokenizer: object) -> tuple[list[int], str | None]:
    """The single token id of each ``[[k]]`` under ``tokenizer``, and the first score token it
    splits into several tokens (None when all five are single tokens; the ids are then complete)."""
    ids: list[int] = []
    for tok in SCORE_TOKENS:
        enc = tokenizer(tok, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        if len(enc) != 1:
            return ids, f"{tok!r} into {len(enc)} tokens"
        ids.append(int(enc[0]))
    return ids, None


def score_token_ids(tokenizer: object, where: str = "") -> list[int]:
    """The id of each ``[[k]]`` under ``tokenizer``; a :class:`~tela_core.infra.errors.TelaError` naming
    ``where`` if one is missing or split into several tokens (training and scoring read them alike)."""
    ids, split = split_score_token(tokenizer)
    if split:
        raise TelaError(
            f"{where or 'tokenizer'}: not a score-token router: its tokenizer splits {split} "
            "(a score-token artifact has [[1]]..[[5]] as single special tokens; train one with `tela run`)"
        )
    return ids
