"""What the vector cache costs a process that embeds the same texts again (a zoo, an ensemble, an eval
after a run): each call of :func:`tela_core.models.vector_cache.cached_vectors` looked every text up
among all the cached vectors, reading every shard from disk each time. A process now keeps the
shards it has read (a shard is written once and never changed) and reads only new ones.

The cache is built in a temporary folder as tela writes it (shards of 1,024 vectors), sized like
the MMLU cache of the default embedder (21,504 vectors of 256 floats). The arms run interleaved in
one process, each call asking for ``--texts`` of the cached texts:

- **cold**: the shards read again on every call (what every call did before; the baseline);
- **kept**: the process's shards kept between calls (tela now).

    nice -n 10 .venv/bin/python bench/vector_cache_reads.py [--calls 20] [--texts 3056]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=21_504, help="vectors in the cache")
    ap.add_argument("--dim", type=int, default=256, help="floats per vector")
    ap.add_argument("--texts", type=int, default=3_056, help="texts asked for in each call")
    ap.add_argument("--calls", type=int, default=20, help="calls per arm")
    args = ap.parse_args()

    import numpy as np

    from tela_core.models import vector_cache as vc

    texts = [f"cached prompt number {i}" for i in range(args.vectors)]
    rng = np.random.default_rng(0)

    def compute(new: list[str], report: object) -> np.ndarray:
        return rng.random((len(new), args.dim), dtype=np.float32)

    quiet = {"progress": lambda *_: None}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "vectors"
        vc.cached_vectors(texts, folder, "bench", compute, **quiet)  # the cache, written as tela writes it
        asked = texts[: args.texts]
        first = vc.cached_vectors(asked, folder, "bench", compute, **quiet)
        times: dict[str, list[float]] = {"cold": [], "kept": []}
        for _ in range(args.calls):
            for arm in ("cold", "kept"):
                if arm == "cold":
                    vc._READ_SHARDS.clear()  # as before: nothing kept from the last call
                t0 = time.perf_counter()
                got = vc.cached_vectors(asked, folder, "bench", compute, **quiet)
                times[arm].append(time.perf_counter() - t0)
                assert np.array_equal(got, first)  # the same vectors either way
                if arm == "cold":
                    vc.cached_vectors(asked, folder, "bench", compute, **quiet)  # refill for "kept"
        shards = len(list(folder.glob("shard-*.npz")))
    cold, kept = statistics.median(times["cold"]), statistics.median(times["kept"])
    print(f"{args.vectors:,} cached vectors in {shards} shards, {args.texts:,} texts a call, {args.calls} calls an arm")
    print(f"cold (every shard read again): median {cold * 1000:.1f} ms a call")
    print(f"kept (shards read once):       median {kept * 1000:.1f} ms a call")
    print(f"kept / cold: {kept / cold:.3f}x  ({cold / kept:.1f}x faster)")


if __name__ == "__main__":
    main()
