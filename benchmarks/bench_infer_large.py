"""Whole-sequence inference at medium and large shapes: lstmkit vs torch vs ONNX Runtime.

Run from the repository root (issue 17's measure, docs/performance.md, "Inference at
medium and large shapes")::

    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_infer_large.py          # CPU time
    nice -n 19 python benchmarks/bench_infer_large.py --threads 2 --wall --rounds 5

One thread (the default; numba's through the environment, torch's, ORT's and NumPy's BLAS
set here): CPU time per call (``time.process_time``), which a shared machine disturbs
less than wall time. ``--threads 2 --wall``: wall time, the best of ``--rounds``
interleaved rounds (lstmkit, torch, ORT, lstmkit, ...). ``--shapes 2,3``: only those rows
(0-based). ``--no-torch``: lstmkit and ONNX Runtime only
(torch 0 in the line). ``--cell GRU`` (or RNN): that layer instead of the LSTM (with ``--profile``:
:func:`profile_h`). ``--profile`` (one thread): where a call's time goes, the loop's parts timed
alone (:func:`profile`). OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are unset as by ``bench_lstm.py``.
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
        rounds: int, cell: str = "LSTM", torch_too: bool = True) -> str:  # fmt: skip
    """One shape's line: each runtime's best loop (ms per call) and best peer / lstmkit."""
    import numpy as np
    import torch

    import lstmkit as lk

    N, T, I, H, L, bi = shape
    layer = getattr(lk, cell)(I, H, num_layers=L, bidirectional=bi, seed=0)
    layer.eval()
    module = getattr(torch.nn, cell)(I, H, num_layers=L, bidirectional=bi).eval()
    x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
    session = bench_lstm._onnx_session(layer, threads)
    zeros = np.zeros((L * (2 if bi else 1), N, H), np.float32)
    feeds = {"x": x, "h0": zeros, "c0": zeros} if cell == "LSTM" else {"x": x, "h0": zeros}
    x_t = torch.from_numpy(x)

    def run_torch() -> None:
        with torch.no_grad():
            module(x_t)

    fns = {
        "lstmkit": lambda: layer(x, inference=True),
        "torch": run_torch,
        "ORT": lambda: session.run(None, feeds),
    }
    G = bench_lstm.GATES[cell]
    flops = 2 * T * N * G * H * (I + H) * (2 if bi else 1) * L  # first layer's I for all: rough
    n = max(2, int(0.4e9 / max(flops, 1)))  # ~0.4 GFLOP per loop
    if not torch_too:
        del fns["torch"]
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():  # warm-up (compilation, workspaces)
        timed(fn, 2, wall)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(fn, n, wall))
    ours = best["lstmkit"]
    ratio = min(best.get("torch", float("inf")), best["ORT"]) / ours
    label = f"{cell} {N},{T},{I},{H}" + (f" {L} layers bidir." if bi else "")
    return (f"infer {label}: lstmkit {ours:.2f} ms, torch {best.get('torch', 0):.2f}, "
            f"ORT {best['ORT']:.2f}; best peer / lstmkit = {ratio:.2f}")  # fmt: skip


def profile(shape: tuple[int, int, int, int, int, bool]) -> str:
    """One thread, CPU time per call: the whole inference of one layer-direction, then its
    parts alone as the split loop runs them (``blas.product`` per step, from compiled
    code): the input and recurrent products step by step, the input projection as one
    GEMM, and the pointwise cell (the recording one, ``_cells_forward_plain``, and the
    inference one, ``_cells_infer``) on (N, 4H) pre-activations."""
    import numba
    import numpy as np

    import lstmkit as lk
    from lstmkit.kernels import cell_split
    from lstmkit.kernels.blas import product
    from lstmkit.kernels.lstm_cell import _NO_PEEPHOLES, gate_constants

    @numba.njit(nogil=True)
    def products(x, W_x, h, W_h, a, inputs):  # T steps of the loop's products
        for t in range(x.shape[0]):
            if inputs:
                product(x[t], W_x, a, 0.0)
            product(h, W_h, a, 1.0)

    @numba.njit(nogil=True)
    def cells(T, a, cols, z, c, c_out, h, valid, tc, infer):  # T steps of the cell
        H = c.shape[1]
        for _ in range(T):
            if infer:
                cell_split._cells_infer(a, cols[3], cols[4], c, h, valid, c_out, h, 0, H)
            else:
                cell_split._cells_forward_plain(a, cols, z, c, h, valid, c_out, h, tc, h, h,
                                                0, H)  # fmt: skip

    N, T, I, H, _, _ = shape
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = rng.standard_normal((T, N, I)).astype(f32)
    W_x = (0.05 * rng.standard_normal((I, 4 * H))).astype(f32)
    W_h = (0.05 * rng.standard_normal((H, 4 * H))).astype(f32)
    h, a = rng.standard_normal((N, H)).astype(f32), rng.standard_normal((N, 4 * H)).astype(f32)
    z, c, c_out, tc = np.empty((N, 4 * H), f32), h.copy(), h.copy(), h.copy()
    k = gate_constants(H)
    cols = (W_x[:0], W_h[:0], np.zeros(4 * H, f32), k.alpha, k.beta, 0, _NO_PEEPHOLES)
    valid, gates = np.ones(N, np.uint8), np.empty((T * N, 4 * H), f32)
    layer = lk.LSTM(I, H, seed=0)
    layer.eval()
    n = max(2, int(2e9 / (2 * T * N * 4 * H * (I + H))))
    ms = {
        "whole": lambda: layer(x, inference=True),
        "products in the loop": lambda: products(x, W_x, h, W_h, a, True),
        "recurrent products": lambda: products(x, W_x, h, W_h, a, False),
        "input GEMM": lambda: np.matmul(x.reshape(T * N, I), W_x, out=gates),
        "cell, recording": lambda: cells(T, a, cols, z, c, c_out, h, valid, tc, False),
        "cell, inference": lambda: cells(T, a, cols, z, c, c_out, h, valid, tc, True),
    }
    out = {name: min(timed(fn, n, False) for _ in range(3)) for name, fn in ms.items()}
    flops = {"whole": I + H, "products in the loop": I + H, "recurrent products": H,
             "input GEMM": I}  # fmt: skip
    parts = [f"{name} {t:.2f} ms" + (f" ({2 * T * N * 4 * H * flops[name] / t / 1e6:.0f} GF/s)"
             if name in flops else "") for name, t in out.items()]  # fmt: skip
    return f"profile {N},{T},{I},{H}: " + "; ".join(parts)


def profile_h(shape: tuple[int, int, int, int, int, bool], cell: str) -> str:
    """One thread, CPU time per call, the GRU's or RNN's inference of one layer: the whole
    call, then its products alone, each in both loops' ways: the general loop's (the input
    projection as one GEMM, then per step ``h @ W_hh.T`` as one BLAS call) and the split
    loop's (:mod:`lstmkit.kernels.h_split`: per step and gate ``W[rows] @ x_t.T`` and
    ``W[rows] @ h.T``, the weights as the left matrix, :func:`blas.product`); GFLOP/s of
    each, and the bytes of weights each step streams."""
    import numba
    import numpy as np

    import lstmkit as lk
    from lstmkit.kernels.blas import product

    @numba.njit(nogil=True)
    def general(h, W_hh_t, hw, T):  # the general loop's recurrent products
        for _ in range(T):
            product(h, W_hh_t, hw, 1.0)

    @numba.njit(nogil=True)
    def split(W, v, out, T, G):  # the split loop's products of W (G*H, K) by v (K, N)
        H, N = W.shape[0] // G, v.shape[1]
        for _ in range(T):
            for q in range(G):
                product(W[q * H : (q + 1) * H], v, out[:, q * N : (q + 1) * N], 1.0)

    N, T, I, H, _, _ = shape
    G = bench_lstm.GATES[cell]
    rng = np.random.default_rng(0)
    f32 = np.float32
    layer = getattr(lk, cell)(I, H, seed=0)
    layer.eval()
    W_ih, W_hh = layer.parameters()["weight_ih_l0"], layer.parameters()["weight_hh_l0"]
    x = rng.standard_normal((T, N, I)).astype(f32)
    h, hw = rng.standard_normal((N, H)).astype(f32), np.zeros((N, G * H), f32)
    x_t, h_t = rng.standard_normal((I, N)).astype(f32), rng.standard_normal((H, N)).astype(f32)
    out, gates = np.zeros((H, G * N), f32), np.empty((T * N, G * H), f32)
    W_hh_t = np.ascontiguousarray(W_hh.T)
    n = max(2, int(2e9 / (2 * T * N * G * H * (I + H))))
    ms = {
        "whole": lambda: layer(x, inference=True),
        "input GEMM": lambda: np.matmul(x.reshape(T * N, I), W_ih.T, out=gates),
        "recurrent, h @ W_hh.T": lambda: general(h, W_hh_t, hw, T),
        "input, W_ih @ x.T": lambda: split(W_ih, x_t, out, T, G),
        "recurrent, W_hh @ h.T": lambda: split(W_hh, h_t, out, T, G),
    }
    out_ms = {name: min(timed(fn, n, False) for _ in range(3)) for name, fn in ms.items()}
    k = {"whole": I + H, "input GEMM": I, "recurrent, h @ W_hh.T": H, "input, W_ih @ x.T": I,
         "recurrent, W_hh @ h.T": H}  # fmt: skip
    parts = [f"{name} {t:.1f} ms ({2 * T * N * G * H * k[name] / t / 1e6:.0f} GF/s)"
             for name, t in out_ms.items()]  # fmt: skip
    streamed = (W_ih.nbytes + W_hh.nbytes) / 2**20
    return (f"profile {cell} {N},{T},{I},{H}: " + "; ".join(parts)
            + f"; weights {streamed:.0f} MB read per step by the split loop")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="", help="comma-separated row indices")
    parser.add_argument("--profile", action="store_true", help="one thread: the loop's parts")
    parser.add_argument("--cell", default="LSTM", choices=bench_lstm.CELLS)
    parser.add_argument("--no-torch", action="store_true", help="lstmkit and ORT only")
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
        if args.profile and args.cell != "LSTM":
            print(profile_h(SHAPES[i], args.cell), flush=True)
        elif args.profile:
            print(profile(SHAPES[i]), flush=True)
        else:
            print(row(SHAPES[i], args.threads, args.wall, args.rounds, args.cell,
                      not args.no_torch), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
