"""What `tela run` tells a backend: the TrainJob a third-party backend receives."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tela_core import Backend, Formatted, Formatter, hookimpl
from tela_core.data import sample_path
from tela_core.testkit.helpers import build_tiny_router, registered_plugin, run_cli

SEEN: dict[str, Any] = {}


class RecordingBackend(Backend):
    """Records the job, then writes a (tiny, untrained) score-token router so the run completes."""

    name = "test-recording"
    description = "records its TrainJob"

    def train(self, job: Any) -> Path:
        SEEN.update(job.config)
        tmp = job.output_dir.parent / (job.output_dir.name + "-tiny")
        build_tiny_router(tmp)
        for f in tmp.iterdir():
            if f.is_file() and f.name not in ("tela.json", "policy.json"):
                shutil.copy2(f, job.output_dir / f.name)
        return job.output_dir


class PrefixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = Field("Q: ", description="text put before the question")


class PrefixFormatter(Formatter):
    """The user's question after a prefix; the assistant's score as the completion."""

    name = "test-prefix"
    Options = PrefixOptions

    def format(self, messages: Any, tokenizer: Any = None) -> Formatted:
        user = [m["content"] for m in messages if m["role"] == "user"][-1]
        done = [m["content"] for m in messages if m["role"] == "assistant"]
        return Formatted(prompt=self.options.prefix + user + "\n", completion=done[-1] if done else "")


class Plugin:
    @hookimpl
    def tela_register_backends(self, register: Any) -> None:
        register(RecordingBackend)

    @hookimpl
    def tela_register_formatters(self, register: Any) -> None:
        register(PrefixFormatter)


def test_the_job_names_the_family_and_the_formatter_options(tmp_path: Path, tiny_model: Path) -> None:
    """A backend learns which family's artifact to write and how the rows were formatted."""
    SEEN.clear()
    with registered_plugin(Plugin(), "recording"):
        res = run_cli(
            "run",
            "--data",
            str(sample_path()),
            "--backend",
            "test-recording",
            "--model",
            str(tiny_model),
            "--output",
            str(tmp_path / "r"),
            "--sample",
            "16",
            "--eval-fraction",
            "0",
            "--formatter",
            "test-prefix",
            "--set",
            "formatter.prefix=Question-",
        )
    assert res.exit_code == 0, res.output
    assert SEEN["family"] == "score-token"
    assert SEEN["formatter_options"] == {"prefix": "Question-"}
