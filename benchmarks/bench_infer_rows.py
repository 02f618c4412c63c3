"""LSTM inference at the middle shapes: the batch split (kernels/lstm_row_split.py) against
the cell split it replaces, and ONNX Runtime, interleaved in one process.

Run from the repository root (docs/performance.md, "LSTM inference, round 5")::

    nice -n 19 python benchmarks/bench_infer_rows.py --threads 2 --rounds 9        # wall time
    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_infer_rows.py --threads 1  # CPU time
    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_infer_rows.py --profile  # CPU time

Each round times a loop of each variant in turn, a different one first in each round (ORT's
threads spin on for a while after a call, slowing whatever runs next): ``rows`` (the default
code), ``cells`` (``lstm_row_split.WEIGHTS_UP_TO = 0``: the general path's split loops, the
code before the row split, the same bits) and ``ORT`` (ONNX Runtime on as many intra-op
threads); the line
gives the median and the best of the rounds, ms per call, and the load average. Wall time
on two threads is disturbed by anything else running: read the load beside it (one thread:
CPU time, less so).
``--rows 0,1``: only those shapes (0-based). ``--profile``: one thread, CPU time, where the
row loop's time goes on one thread's share (N/2 rows), against the whole call on one
thread: the products alone, the cell alone. OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are unset
as by ``bench_lstm.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (environment handling, its ONNX session)
from bench_infer_large import timed  # noqa: E402

SHAPES = [(16, 100, 64, 128), (32, 100, 128, 256), (64, 100, 256, 512)]  # (N, T, I, H)


def row(shape: tuple[int, int, int, int], threads: int, rounds: int) -> str:
    """One shape: rows, cells and ORT interleaved on ``threads`` threads: wall time, CPU time
    on one thread."""
    import numpy as np

    import lstmkit as lk
    from lstmkit.kernels import lstm_row_split

    N, T, I, H = shape
    layer = lk.LSTM(I, H, seed=0)
    layer.eval()
    x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
    session = bench_lstm._onnx_session(layer, threads)
    zeros = np.zeros((1, N, H), np.float32)
    feeds = {"x": x, "h0": zeros, "c0": zeros}
    limit = lstm_row_split.WEIGHTS_UP_TO
    ex = lk.Execution(threads=threads)

    def ours(up_to: int) -> Callable[[], object]:
        def call() -> object:
            lstm_row_split.WEIGHTS_UP_TO = up_to
            return layer(x, inference=True, execution=ex)

        return call

    fns = {"rows": ours(limit), "cells": ours(0), "ORT": lambda: session.run(None, feeds)}
    same = np.array_equal(fns["rows"]()[0], fns["cells"]()[0])  # type: ignore[index]
    n = max(3, int(0.3e9 / (2 * T * N * 4 * H * (I + H))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    wall = threads > 1
    for fn in fns.values():
        timed(fn, 2, wall)
    names = list(fns)
    for r in range(rounds):  # each variant first in turn: ORT's threads spin on after a call
        for name in names[r % 3 :] + names[: r % 3]:
            times[name].append(timed(fns[name], n, wall))
    lstm_row_split.WEIGHTS_UP_TO = limit
    applies = lstm_row_split.applies(T, N, I, H, ex)
    parts = "  ".join(
        f"{name} {statistics.median(v):.2f} (best {min(v):.2f})" for name, v in times.items()
    )
    ratio = statistics.median(times["ORT"]) / statistics.median(times["rows"])
    clock = "wall" if wall else "CPU"
    return (f"{shape} {threads}T {clock} ms, median (best) of {rounds}: {parts}; ORT / rows "
            f"{ratio:.2f}; row split applies: {applies}, same bits: {same}; load "
            f"{os.getloadavg()[0]:.1f}")  # fmt: skip


def profile(shape: tuple[int, int, int, int], rounds: int) -> str:
    """One thread, CPU time (best of ``rounds`` loops, ms per call): the whole call on one
    thread (the split loops on one block), the row loop on all N rows and on one thread's
    share (N/2), and that share's parts alone: its two products per step, its cell."""
    import numba
    import numpy as np

    import lstmkit as lk
    from lstmkit.kernels import lstm_row_split as rs
    from lstmkit.kernels.blas import product
    from lstmkit.kernels.cell_split import _cells_infer
    from lstmkit.kernels.lstm_cell import gate_constants

    @numba.njit(nogil=True)
    def products(x, W_x, h, W_h, a):  # the share's T steps of products
        for t in range(x.shape[0]):
            product(x[t], W_x, a, 0.0)
            product(h, W_h, a, 1.0)

    @numba.njit(nogil=True)
    def cells(T, a, alpha, beta, c, h, c_out, h_out):  # the share's T steps of the cell
        valid = np.ones(c.shape[0], np.uint8)
        for _ in range(T):
            _cells_infer(a, alpha, beta, c, h, valid, c_out, h_out, 0, h.shape[1])

    N, T, I, H = shape
    f32 = np.float32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, I)).astype(f32)
    W_ih = (0.1 * rng.standard_normal((4 * H, I))).astype(f32)
    W_hh = (0.1 * rng.standard_normal((4 * H, H))).astype(f32)
    b = np.zeros(4 * H, f32)
    k = gate_constants(H)
    kept = rs._kept({}, W_ih, W_hh, k.scale)
    rs._prepare(W_ih, W_hh, b, b, k.scale, kept)
    y, z = np.empty((T, N, H), f32), np.zeros((N, H), f32)
    loop_args = (x, *kept[2:], k.alpha, k.beta, y, z, z, z.copy(), z.copy())
    n2 = N // 2
    x2 = np.ascontiguousarray(x[:, :n2])
    a = 0.1 * rng.standard_normal((n2, 4 * H)).astype(f32)
    h2, c2 = z[:n2].copy(), z[:n2].copy()
    layer = lk.LSTM(I, H, seed=0)
    layer.eval()
    one = lk.Execution(threads=1)
    fns = {
        "whole call": lambda: layer(x, inference=True, execution=one),
        "row loop, N rows": lambda: rs._loop(*loop_args, 0, N),
        "row loop, N/2 rows": lambda: rs._loop(*loop_args, 0, n2),
        "N/2: products": lambda: products(x2, kept[2], h2, kept[3], a.copy()),
        "N/2: cell": lambda: cells(T, a, k.alpha, k.beta, c2, h2, c2.copy(), h2.copy()),
    }
    n = max(3, int(0.2e9 / (2 * T * N * 4 * H * (I + H))))
    for fn in fns.values():
        fn()
    best = {name: min(timed(fn, n, False) for _ in range(rounds)) for name, fn in fns.items()}
    flops = 2 * T * n2 * 4 * H * (I + H)
    gf = flops / best["N/2: products"] / 1e6
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in best.items())
    load = os.getloadavg()[0]
    return f"{shape} 1T CPU ms, best of {rounds}: {parts} ({gf:.0f} GF/s); load {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--rows", default=None, help="0-based indices of SHAPES, e.g. 0,1")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    bench_lstm._reexec_without_blas_env(sys.argv[1:])  # as bench_lstm.py runs
    shapes = SHAPES if args.rows is None else [SHAPES[int(i)] for i in args.rows.split(",")]
    for shape in shapes:
        if args.profile:
            print(profile(shape, args.rounds), flush=True)
        else:
            print(row(shape, args.threads, args.rounds), flush=True)


if __name__ == "__main__":
    main()
