"""The score cache resumes a killed scoring pass: finished chunks are kept, only the rest is scored."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tela_core.components import Scores
from tela_core.eval.score_cache import score_prompts

PROMPTS = [f"question number {i} " + "word " * (i % 7) for i in range(10)]


class CountingScorer:
    """w from the prompt's length; records every prompt it was asked to score; can crash after N calls."""

    name = "counting"
    options = None

    def __init__(self, crash_after: int | None = None) -> None:
        self.seen: list[str] = []
        self.calls = 0
        self.crash_after = crash_after

    def score(self, prompts: list[str]) -> Scores:
        if self.crash_after is not None and self.calls == self.crash_after:
            raise KeyboardInterrupt  # as if the process were stopped mid-pass
        self.calls += 1
        self.seen += prompts
        w = np.array([len(p) / 100.0 for p in prompts])
        return Scores(w=w, probs=np.stack([w, 1 - w, w, 1 - w, w], axis=1))


def test_a_stopped_pass_resumes_from_its_finished_chunks(tmp_path: Path) -> None:
    want, _ = score_prompts(CountingScorer(), PROMPTS, progress=False)
    crashing = CountingScorer(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        score_prompts(crashing, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=3, progress=False)
    assert crashing.seen == PROMPTS[:6]
    again = CountingScorer()
    got, info = score_prompts(again, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=3, progress=False)
    assert again.seen == PROMPTS[6:]  # only the missing chunks ran
    assert info["resumed"] == 6 and not info["cached"]
    assert np.array_equal(got.w, want.w) and np.array_equal(got.probs, want.probs)
    assert not list(tmp_path.glob("*.chunks"))  # cleaned once the whole entry is written
    third = CountingScorer()
    hit, info = score_prompts(third, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=3, progress=False)
    assert info["cached"] and third.seen == [] and np.array_equal(hit.w, want.w)


def test_a_damaged_chunk_is_scored_again(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        score_prompts(
            CountingScorer(crash_after=2), PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=3, progress=False
        )
    (chunk,) = [p for p in next(tmp_path.glob("*.chunks")).iterdir() if p.name.startswith("000000003")]
    chunk.write_bytes(b"not an npz")
    again = CountingScorer()
    score_prompts(again, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=3, progress=False)
    assert again.seen == PROMPTS[3:]


def test_sigkill_mid_pass_then_rerun(tmp_path: Path) -> None:
    """A real SIGKILL in the middle of scoring: the rerun scores only what the killed run had not."""
    script = tmp_path / "score.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_score_cache import CountingScorer, PROMPTS
        from tela_core.eval.score_cache import score_prompts

        class Killed(CountingScorer):
            def score(self, prompts):
                if self.calls == int(sys.argv[1]):
                    os.kill(os.getpid(), signal.SIGKILL)
                out = super().score(prompts)
                with open({str(tmp_path / "seen.txt")!r}, "a") as fh:
                    fh.write("".join(p + "\\n" for p in prompts))
                return out

        score_prompts(Killed(), PROMPTS, router_id="r", cache_dir={str(tmp_path / "cache")!r}, chunk_size=2,
                      progress=False)
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.run([sys.executable, str(script), "3"], env=env, capture_output=True, text=True)
    assert first.returncode == -9, first.stderr
    assert (tmp_path / "seen.txt").read_text().splitlines() == PROMPTS[:6]
    (tmp_path / "seen.txt").unlink()
    second = subprocess.run([sys.executable, str(script), "99"], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "seen.txt").read_text().splitlines() == PROMPTS[6:]


def test_launched_ranks_load_the_router_with_the_callers_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the ranks load the router (trust remote code, batch size) is the caller's argument, not
    read back from attributes set on the scorer (issue 27: no hidden inputs)."""
    from tela_core.components import LoadContext
    from tela_core.eval import score_cache
    from tela_core.eval.parallel import ScoreLaunch

    told: dict[str, object] = {}

    def fake_ranks(router_dir: Path, prompts: list[str], launch: ScoreLaunch, **kw: object) -> object:
        told.update(kw)
        return Scores(w=np.zeros(len(prompts))), {"cached": False}

    monkeypatch.setattr(score_cache, "score_in_ranks", fake_ranks)
    context = LoadContext(trust_remote_code=True, batch_size=4)
    launch = ScoreLaunch(processes=2)
    scores, _ = score_prompts(
        CountingScorer(), PROMPTS, progress=False, launch=launch, router_dir=tmp_path, context=context
    )
    assert len(scores.w) == len(PROMPTS)
    assert (told["trust_remote_code"], told["score_batch_size"]) == (True, 4)


class QualityScorer(CountingScorer):
    """An N-model family: each model's predicted quality from ``predict_models``, which its
    ``score`` does not fill (as a family may), so a pass that asks for it must call it."""

    models = ("small", "mid", "big")

    def predict_models(self, prompts: list[str]) -> np.ndarray:
        self.predicted = getattr(self, "predicted", 0) + len(prompts)
        n = np.array([len(p) / 100.0 for p in prompts])
        return np.stack([n, 0.5 * np.ones_like(n), 1 - n], axis=1)


def test_each_models_quality_is_cached_and_an_entry_without_it_scored_again(tmp_path: Path) -> None:
    first = QualityScorer()
    want, info = score_prompts(
        first, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=4, progress=False, quality=True
    )
    assert want.models == QualityScorer.models and want.quality.shape == (10, 3) and not info["cached"]
    again = QualityScorer()
    hit, info = score_prompts(
        again, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=4, progress=False, quality=True
    )
    assert info["cached"] and again.seen == [] and getattr(again, "predicted", 0) == 0  # nothing scored again
    assert hit.models == want.models and np.array_equal(hit.quality, want.quality) and np.array_equal(hit.w, want.w)

    # an entry written before the cache kept quality (w and probs only): read as it is by a two-model
    # use, scored again (not misread as having no quality) by an N-model one, and rewritten with it
    (entry,) = tmp_path.glob("*.npz")
    np.savez(entry, w=want.w, probs=want.probs)
    two, info = score_prompts(QualityScorer(), PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=4, progress=False)
    assert info["cached"] and two.quality is None and np.array_equal(two.w, want.w)
    third = QualityScorer()
    got, info = score_prompts(
        third, PROMPTS, router_id="r", cache_dir=tmp_path, chunk_size=4, progress=False, quality=True
    )
    assert not info["cached"] and third.predicted == 10 and np.array_equal(got.quality, want.quality)
    with np.load(entry) as z:
        assert list(z["models"]) == list(QualityScorer.models) and np.array_equal(z["quality"], want.quality)
