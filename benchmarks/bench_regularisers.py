"""The recurrent regularisers' training cost on the fused kernel, against the plain LSTM:
variational recurrent dropout, zoneout, and both, at the issue's shapes.

Run from the repository root, on one thread (the timings of a shared machine drift; the
four layers run interleaved in one process, many rounds, and the minimum of each is kept)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/bench_regularisers.py --rounds 25

Each call is a training step of one layer in training mode (the masks drawn from the
layer's generator, forward, backward with dy = 1): what a training loop pays. Printed per
layer: the minimum time, its ratio to the plain layer's minimum, and (paired) the median
over rounds of the ratio to the plain layer's time in the same round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SHAPES = [(32, 100, 128, 256), (64, 100, 256, 512)]
LAYERS = {
    "plain": {},
    "recurrent_dropout=0.25": {"recurrent_dropout": 0.25},
    "zoneout=(0.1, 0.05)": {"zoneout": (0.1, 0.05)},
    "both": {"recurrent_dropout": 0.25, "zoneout": (0.1, 0.05)},
}


def _step(layer: Any, x: np.ndarray) -> Callable[[], None]:
    def run() -> None:
        layer.zero_grad()
        y, _ = layer(x)
        layer.backward(np.ones_like(y))

    return run


def run(shapes: list[tuple[int, int, int, int]], rounds: int, threads: int) -> list[str]:
    import lstmkit as lk

    lines = []
    for N, T, I, H in shapes:
        x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
        fns = {}
        for name, options in LAYERS.items():
            layer = lk.LSTM(I, H, seed=0, **options)
            layer.execution = lk.Execution(threads=threads)
            fns[name] = _step(layer, x)
        for fn in fns.values():  # compile and warm up
            fn()
            fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        best = {name: min(ts) for name, ts in times.items()}
        plain = times["plain"]
        paired = {  # each round's time over the plain layer's in the same round
            name: statistics.median(t / p for t, p in zip(ts, plain, strict=True))
            for name, ts in times.items()
        }
        line = f"(N, T, I, H) = ({N}, {T}, {I}, {H}), {rounds} rounds: " + ", ".join(
            f"{name} {1e3 * t:.1f} ms x{t / best['plain']:.3f} (paired x{paired[name]:.3f})"
            for name, t in best.items()
        )
        lines.append(line)
        print(line, flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a small shape, 2 rounds")
    args = parser.parse_args(argv)
    shapes = [(8, 20, 16, 32)] if args.quick else SHAPES
    run(shapes, 2 if args.quick else args.rounds, args.threads)


if __name__ == "__main__":
    main(sys.argv[1:])
