"""Whole-sequence LSTM inference at medium and large shapes: lstmkit vs torch vs ONNX Runtime.

Run from the repository root (issue 17's measure, docs/performance.md, "Inference at
medium and large shapes")::

    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_infer_large.py          # CPU time
    nice -n 19 python benchmarks/bench_infer_large.py --threads 2 --wall --rounds 5

One thread (the default; numba's through the environment, torch's, ORT's and NumPy's BLAS
set here): CPU time per call (``time.process_time``), which a shared machine disturbs
less than wall time. ``--threads 2 --wall``: wall time, the best of ``--rounds``
interleaved rounds (lstmkit, torch, ORT, lstmkit, ...). ``--shapes 2,3``: only those rows
(0-based). OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are unset as by ``bench_lstm.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (environment handling, its ONNX session)

# (N, T, I, H, num_layers, bidirectional)
SHAPES = [
    (16, 100, 64, 128, 1, False),
    (32, 100, 128, 256, 1, False),
    (64, 100, 256, 512, 1, False),
    (64, 50, 1024, 1024, 1, False),
    (16, 100, 128, 256, 2, True),
]


def timed(fn: Callable[[], object], n: int, wall: bool) -> float:
    """One loop of n calls: milliseconds per call (CPU time, or wall time with ``wall``)."""
    clock = time.perf_counter if wall else time.process_time
    start = clock()
    for _ in range(n):
        fn()
    return (clock() - start) / n * 1e3


def row(shape: tuple[int, int, int, int, int, bool], threads: int, wall: bool,
        rounds: int) -> str:  # fmt: skip
    """One shape's line: each runtime's best loop (ms per call) and best peer / lstmkit."""
    import numpy as np
    import torch

    import lstmkit as lk

    N, T, I, H, L, bi = shape
    layer = lk.LSTM(I, H, num_layers=L, bidirectional=bi, seed=0)
    layer.eval()
    module = torch.nn.LSTM(I, H, num_layers=L, bidirectional=bi).eval()
    x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
    session = bench_lstm._onnx_session(layer, threads)
    zeros = np.zeros((L * (2 if bi else 1), N, H), np.float32)
    feeds = {"x": x, "h0": zeros, "c0": zeros}
    x_t = torch.from_numpy(x)

    def run_torch() -> None:
        with torch.no_grad():
            module(x_t)

    fns = {
        "lstmkit": lambda: layer(x, inference=True),
        "torch": run_torch,
        "ORT": lambda: session.run(None, feeds),
    }
    flops = 2 * T * N * 4 * H * (I + H) * (2 if bi else 1) * L  # first layer's I for all: rough
    n = max(2, int(0.4e9 / max(flops, 1)))  # ~0.4 GFLOP per loop
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():  # warm-up (compilation, workspaces)
        timed(fn, 2, wall)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(fn, n, wall))
    ours = best["lstmkit"]
    ratio = min(best["torch"], best["ORT"]) / ours
    label = f"{N},{T},{I},{H}" + (f" {L} layers bidir." if bi else "")
    return (f"infer {label}: lstmkit {ours:.2f} ms, torch {best['torch']:.2f}, "
            f"ORT {best['ORT']:.2f}; best peer / lstmkit = {ratio:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="", help="comma-separated row indices")
    args = bench_lstm.parse_args_without_blas_env(parser, argv)
    bench_lstm.set_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    picked = [int(s) for s in args.shapes.split(",") if s] or range(len(SHAPES))
    clock = "wall" if args.wall else "CPU"
    print(f"threads {args.threads}, {clock} time, best of {args.rounds} rounds; "
          f"BLAS env {bench_lstm.blas_env_note(args.keep_blas_env)}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    for i in picked:
        print(row(SHAPES[i], args.threads, args.wall, args.rounds), flush=True)


if __name__ == "__main__":
    main()
