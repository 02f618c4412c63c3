"""What a call of lstmkit's fused LSTM costs besides its time steps, and a step's cost.

Run from the repository root::

    python benchmarks/bench_overhead.py

* hand-off: :func:`lstmkit.kernels.parallel.run` of two compiled parts of ~15 us each, against
  the same two parts in turn on the calling thread (2 threads);
* per call and per step: an inference call (``inference=True``) at T = 5 and T = 405;
  a step costs the difference / 400 and a call its T = 5 time less five steps;
* ``inference=True`` against a recording forward (which keeps the tape for backward) at
  T = 100, the two alternating.

Medians of repeated calls; like ``bench_lstm.py`` it re-runs itself without
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` (``--keep-blas-env`` keeps them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (the same BLAS environment handling)

SHAPES = [(1, 32, 64), (16, 64, 128), (32, 128, 256)]  # (N, I, H)


def median_us(fn: Callable[[], Any], seconds: float = 0.5) -> float:
    """Median microseconds of fn() over at least 20 calls and ``seconds``."""
    for _ in range(5):
        fn()
    times: list[float] = []
    while len(times) < 20 or sum(times) < seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def alternating(
    first: Callable[[], Any], second: Callable[[], Any], seconds: float = 1.0
) -> tuple[float, float]:
    """Median microseconds of first() and second(), called in turn (same conditions)."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    while len(times[0]) < 20 or sum(times[0]) + sum(times[1]) < seconds:
        for fn, out in zip((first, second), times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1e6, statistics.median(times[1]) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = bench_lstm.parse_args_without_blas_env(parser, argv)

    import numba
    import numpy as np

    import lstmkit as lk
    from lstmkit.kernels import parallel

    print(f"BLAS environment: {bench_lstm.blas_env_note(args.keep_blas_env)}")
    print(f"threads: {bench_lstm.set_threads(2)['num_threads']}")

    @numba.njit(nogil=True)
    def spin(n: int) -> float:
        total = 0.0
        for i in range(n):
            total += i * 0.5
        return total

    def part(_: int) -> None:
        spin(20_000)

    alone = median_us(lambda: part(0))
    in_turn = median_us(lambda: (part(0), part(1)))
    handed = median_us(lambda: parallel.run(part, [0, 1], one_blas_thread=True))
    print(
        f"hand-off: one part {alone:.1f} us; two in turn {in_turn:.1f} us; "
        f"two on two threads (parallel.run) {handed:.1f} us"
    )
    for N, I, H in SHAPES:
        layer = lk.LSTM(I, H, seed=0)
        rng = np.random.default_rng(1)
        times = {}
        for T in (5, 405):
            x = rng.standard_normal((T, N, I)).astype(np.float32)
            times[T] = median_us(partial(layer, x, inference=True))
        step = (times[405] - times[5]) / 400
        x = rng.standard_normal((100, N, I)).astype(np.float32)
        recording, inference = alternating(partial(layer, x), partial(layer, x, inference=True))
        print(
            f"inference (N, I, H) = ({N}, {I}, {H}): {step:.1f} us a step, "
            f"{times[5] - 5 * step:.0f} us a call besides its steps; T = 100: "
            f"{inference / 1e3:.2f} ms, recording the tape {recording / 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
