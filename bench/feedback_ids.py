"""What feedback costs ``tela serve`` per request: signing the request id and remembering it.

With ``feedback_log`` set, every request id is signed (keyed BLAKE2s over the id and its issue time,
:func:`tela_core.serve.feedback.sign_id`) and remembered in the process's bounded map
(:meth:`tela_core.serve.feedback.Feedback.issued`). This times, in one process, the request id as
``tela serve`` makes it without feedback (the baseline), signed, and signed plus remembered, and the
memory of ``feedback_ids`` remembered ids (tracemalloc)::

    nice -n 10 .venv/bin/python bench/feedback_ids.py [--n 200000]
"""

from __future__ import annotations

import argparse
import time
import timeit
import tracemalloc
from types import SimpleNamespace
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="ids per timing (best of 5)")
    ap.add_argument("--ids", type=int, default=50_000, help="ids remembered for the memory figure")
    args = ap.parse_args()

    from tela_core.routing.router import Decision
    from tela_core.serve import feedback, proxy
    from tela_core.serve.config import ServeConfig

    config = ServeConfig(feedback_log="/dev/null", feedback_ids=args.ids)
    server: Any = SimpleNamespace(metrics=None)
    decision = Decision(
        w=0.3, model="small", threshold=0.5, expected=None, router_version="0123456789ab", version_name="v3"
    )

    def best(fn: Any) -> float:
        return min(timeit.repeat(fn, number=args.n, repeat=5)) / args.n

    feedback._KEY.clear()
    base = best(proxy._next_id)
    fb = feedback.Feedback(config, server)  # takes a key: ids are signed from here on
    signed = best(proxy._next_id)

    def issue() -> None:
        fb.issued(proxy._next_id(), "len", decision, "small", 200)

    remembered = best(issue)
    fb.close()

    fb2 = feedback.Feedback(config, server)
    tracemalloc.start()
    for _ in range(args.ids):
        fb2.issued(proxy._next_id(), "len", decision, "small", 200)
    used, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    fb2.close()

    print(f"request id, no feedback (baseline): {base * 1e6:7.2f} us")
    print(
        f"signed:                             {signed * 1e6:7.2f} us  ({signed / base:.2f}x, "
        f"+{(signed - base) * 1e6:.2f} us)"
    )
    print(
        f"signed and remembered:              {remembered * 1e6:7.2f} us  ({remembered / base:.2f}x, "
        f"+{(remembered - base) * 1e6:.2f} us)"
    )
    print(f"{args.ids:,} ids remembered: {used / 1e6:.1f} MB ({used / args.ids:.0f} bytes each)")
    print(f"({time.strftime('%Y-%m-%d')}, n={args.n:,}, best of 5)")


if __name__ == "__main__":
    main()
