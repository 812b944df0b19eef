"""Builtin plugin ``formatters``: the seed's "role-prefix" text format, and "chat-template", the
tokenizer's chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tela_core import Formatted, Formatter, Message, TelaError, hookimpl


class RolePrefixFormatter(Formatter):
    """``ROLE:\\ncontent\\n\\n`` per message, byte for byte the seed's ``concat_messages``.

    The completion is the assistant's score message and its trailing blank line; the prompt ends
    with ``ASSISTANT:\\n`` so that inference sees exactly the text training saw before the score.
    (The seed's inference script omits ``ASSISTANT:\\n``: a train/serve skew tela removes.)
    """

    name = "role-prefix"
    description = "the seed's text: ROLE:\\ncontent\\n\\n per message (byte-identical)"

    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        msgs = list(messages)
        completion = ""
        if msgs and msgs[-1]["role"] == "assistant":
            completion = f"{msgs[-1]['content']}\n\n"
            msgs = msgs[:-1]
        prompt = "".join(f"{m['role'].upper()}:\n{m['content']}\n\n" for m in msgs) + "ASSISTANT:\n"
        return Formatted(prompt=prompt, completion=completion)


class ChatTemplateFormatter(Formatter):
    """The base model's own chat template (``tokenizer.apply_chat_template``)."""

    name = "chat-template"
    description = "the tokenizer's chat template, generation prompt for inference"

    def format(self, messages: Sequence[Message], tokenizer: Any = None) -> Formatted:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise TelaError("formatter 'chat-template' needs a tokenizer that has a chat template")
        msgs = list(messages)
        completion = ""
        if msgs and msgs[-1]["role"] == "assistant":
            answer = msgs[-1]["content"]
            msgs = msgs[:-1]
            prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            full = tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
            if not full.startswith(prompt):
                raise TelaError("chat template does not extend the generation prompt; use role-prefix")
            completion = full[len(prompt) :]
            return Formatted(prompt=prompt, completion=completion)
        prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return Formatted(prompt=prompt, completion=completion)


@hookimpl
def tela_register_formatters(register):
    register(RolePrefixFormatter)
    register(ChatTemplateFormatter)
