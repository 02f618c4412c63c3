"""CPU time per streaming step, one thread each: ``layer.step`` vs torch's cell vs ONNX Runtime.

Run from the repository root (issue 17's streaming target, docs/performance.md)::

    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_streaming.py

One sequence (N = 1), I = H, the state carried from step to step, 200 steps per loop; for
LSTM, GRU and RNN at H = 64, 256, 512 against ``torch.nn.LSTMCell`` / ``GRUCell`` /
``RNNCell`` (the same weights) and ONNX Runtime running the layer on a one-step sequence.
Each runtime on one thread (numba's through the environment, torch's and ORT's set here);
CPU time (``time.process_time``), the best of 7 loops, the three taking turns. The ratios:
lstmkit / torch's cell (the target: <= 0.5) and lstmkit / ORT (<= 1.0).
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

SIZES = (64, 256, 512)
STEPS = 200


def cpu_us(runs: dict[str, Callable[[], object]], steps: int) -> dict[str, float]:
    """Per runtime, the best of 7 loops (``steps`` steps each), CPU microseconds per step;
    the runtimes take turns, so that a change of the machine's load reaches all of them."""
    best = dict.fromkeys(runs, float("inf"))
    for fn in runs.values():
        fn()
    for _ in range(7):
        for name, fn in runs.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], (time.process_time() - start) / steps * 1e6)
    return best


def row(cell: str, H: int) -> str:
    """One size's line: the three runtimes' times per step and the two ratios."""
    layer = getattr(lk, cell)(H, H, seed=0)
    layer.eval()
    module = getattr(torch.nn, cell + "Cell")(H, H).eval()
    module.load_state_dict({k[: -len("_l0")]: torch.from_numpy(v)
                            for k, v in layer.state_dict().items()})  # fmt: skip
    xs = np.random.default_rng(1).standard_normal((STEPS, 1, H)).astype(np.float32)
    xts = torch.from_numpy(xs)
    session = bench_lstm._onnx_session(layer, 1)
    lstm = cell == "LSTM"

    def ours() -> None:
        state = None
        for t in range(STEPS):
            _, state = layer.step(xs[t], state)

    def theirs() -> None:
        with torch.no_grad():
            state = None
            for t in range(STEPS):
                state = module(xts[t], state)

    def ort() -> None:
        h = c = np.zeros((1, 1, H), np.float32)
        for t in range(STEPS):
            if lstm:
                _, h, c = session.run(None, {"x": xs[t : t + 1], "h0": h, "c0": c})
            else:
                _, h = session.run(None, {"x": xs[t : t + 1], "h0": h})

    us = cpu_us({"lstmkit": ours, "torch": theirs, "ort": ort}, STEPS)
    return (f"{cell} H={H}: lstmkit {us['lstmkit']:.1f} us, torch {cell}Cell {us['torch']:.1f}, "
            f"ORT {us['ort']:.1f}; lstmkit / torch = {us['lstmkit'] / us['torch']:.2f}, "
            f"lstmkit / ORT = {us['lstmkit'] / us['ort']:.2f}")  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    cells = sys.argv[1:] or ["LSTM", "GRU", "RNN"]
    for cell in cells:
        for H in SIZES:
            print(row(cell, H), flush=True)


if __name__ == "__main__":
    main()
