"""Completion-only loss that projects through the LM head only where there is something to learn.

A router example is ~300 prompt tokens followed by a 2–3 token completion (``[[k]]``, blank line,
EOS). Loss on the completion alone means logits are needed at those few positions only; the
LM head (hidden × vocabulary, 49k words for SmolLM2) is skipped everywhere else by passing the
positions as ``logits_to_keep``. TRL's fused head scores every position on CPU, and it reads
``lm_head.weight`` directly, which bypasses PEFT's trainable score-token rows; going through the
model's own forward keeps every wrapper (PEFT, DeepSpeed, DDP) in the path.
"""

from __future__ import annotations

from typing import Any

__all__ = ["completion_loss", "sft_trainer_class"]


def completion_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, Any]:
    """(loss, outputs): next-token cross-entropy over label positions that are not -100.

    The loss is a sum divided by ``num_items_in_batch`` when given (the Trainer's count across
    gradient accumulation), else a mean, as the models' own loss does.
    """
    import torch.nn.functional as F

    labels = inputs["labels"]
    shifted = labels[:, 1:]
    keep = (shifted != -100).any(dim=0).nonzero().flatten()
    kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    kwargs["use_cache"] = False
    outputs = model(**kwargs, logits_to_keep=keep)
    logits = outputs.logits
    target = shifted[:, keep].to(logits.device)
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum"
    )
    if num_items_in_batch is not None:
        loss = loss / num_items_in_batch
    else:
        loss = loss / (target != -100).sum().clamp(min=1)
    return loss, outputs


def sft_trainer_class() -> type:
    """``trl.SFTTrainer`` with :func:`completion_loss` as its loss."""
    from trl import SFTTrainer

    class CompletionSFTTrainer(SFTTrainer):
        """SFTTrainer whose loss projects through the LM head only at completion positions."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            loss, outputs = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return CompletionSFTTrainer
