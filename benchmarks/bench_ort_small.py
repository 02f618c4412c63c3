"""CPU time per whole-sequence inference, one thread each: lstmkit vs torch vs ONNX Runtime.

Run from the repository root (issue 17's measure, docs/performance.md)::

    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_ort_small.py

Each runtime on one thread (numba's through the environment, torch's and ORT's set here);
CPU time (``time.process_time``), the best of 3 loops: on a loaded machine, wall time
counts the other processes' turns, CPU time much less so.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (its ONNX session: _onnx_session)

import lstmkit as lk  # noqa: E402

SHAPES = [(1, 100, 32, 64), (16, 100, 64, 128), (32, 100, 128, 256)]  # (N, T, I, H)


def cpu_us(fn: Callable[[], object], n: int) -> float:
    """The best of 3 loops of n calls, CPU microseconds per call (after n/10 warm-up calls)."""
    for _ in range(max(n // 10, 3)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def row(cell: str, N: int, T: int, I: int, H: int) -> str:
    """One shape's line: the three runtimes' times and best peer / lstmkit."""
    layer = getattr(lk, cell)(I, H, seed=0)
    layer.eval()
    module = getattr(torch.nn, cell)(I, H).eval()
    x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
    session = bench_lstm._onnx_session(layer, 1)
    zeros = np.zeros((1, N, H), np.float32)
    feeds = {"x": x, "h0": zeros, "c0": zeros} if cell == "LSTM" else {"x": x, "h0": zeros}
    n = 300 if N == 1 else (60 if H <= 128 else 15)
    ours = cpu_us(lambda: layer(x, inference=True), n)
    with torch.no_grad():
        x_t = torch.from_numpy(x)
        theirs = cpu_us(lambda: module(x_t), n)
    ort = cpu_us(lambda: session.run(None, feeds), n)
    ratio = min(theirs, ort) / ours
    return (f"{cell} {(N, T, I, H)}: lstmkit {ours:.0f} us, torch {theirs:.0f}, ORT {ort:.0f}; "
            f"best peer / lstmkit = {ratio:.2f}")  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    for cell in ("LSTM", "GRU", "RNN"):
        for N, T, I, H in SHAPES:
            print(row(cell, N, T, I, H), flush=True)


if __name__ == "__main__":
    main()
