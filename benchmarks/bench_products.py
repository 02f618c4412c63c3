"""One core's float32 GFLOP/s for the matrix products inside lstmkit's time loops.

Run from the repository root::

    python benchmarks/bench_products.py

The split loops (:mod:`lstmkit.kernels.cell_split`) call NumPy's own ``cblas_sgemm`` from compiled
code through :func:`lstmkit.kernels.blas.product`. This measures, on one core, the products
they run for a few layer sizes, each in the ways the loops can run it:

* ``one call``: a single ``cblas_sgemm``;
* ``blocked``: :func:`product`, which cuts it into blocks for OpenBLAS's small-matrix kernel
  (where the right-hand matrix is at most 4 MB);
* ``transposed``: the same product computed as its transpose, the weights as the left
  matrix (``W @ h.T``), which the loops use from 8 MB of ``W_hh``
  (``Execution.transposed_from``, :mod:`lstmkit.kernels.execution`).

Like ``bench_lstm.py`` it re-runs itself without ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``
(``--keep-blas-env`` keeps them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (the same BLAS environment handling)

# (rows, inner, columns) of a step's product ``h @ W`` in one thread's share of the loop:
# forward (N, P) @ (P, 4H / 2), backward (N, 4H) @ (4H, H / 2)
SHAPES = [
    (32, 256, 512),  # forward, H = 256
    (64, 512, 1024),  # forward, H = 512
    (64, 1024, 2048),  # forward, H = 1024
    (64, 4096, 512),  # backward, H = 1024
]


def rate(loop: Any, args: tuple[Any, ...], flops: float, seconds: float = 0.5) -> float:
    """GFLOP/s of ``loop(*args, reps)`` (a compiled loop of ``reps`` products of ``flops``)
    over at least ``seconds``."""
    loop(*args, 1)
    reps, elapsed = 1, 0.0
    while elapsed < seconds:
        reps *= 2
        start = time.perf_counter()
        loop(*args, reps)
        elapsed = time.perf_counter() - start
    return flops * reps / elapsed / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = bench_lstm.parse_args_without_blas_env(parser, argv)

    import numba
    import numpy as np
    import threadpoolctl

    from lstmkit.kernels.blas import _call, product

    threadpoolctl.threadpool_limits(limits=1, user_api="blas")

    @numba.njit(nogil=True)
    def loop(a: np.ndarray, b: np.ndarray, out: np.ndarray, blocked: bool, reps: int) -> None:
        for _ in range(reps):
            if blocked:
                product(a, b, out, 0.0)
            else:
                _call(a, b, out, 0.0)

    print(f"BLAS environment: {bench_lstm.blas_env_note(args.keep_blas_env)}; one thread")
    rng = np.random.default_rng(0)
    for M, K, C in SHAPES:
        h = rng.standard_normal((M, K)).astype(np.float32)
        W = rng.standard_normal((K, C)).astype(np.float32)
        W_t, h_t = np.ascontiguousarray(W.T), np.ascontiguousarray(h.T)
        out, out_t = np.empty((M, C), np.float32), np.empty((C, M), np.float32)
        flops = 2.0 * M * K * C
        cells = {
            "one call": rate(loop, (h, W, out, False), flops),
            "blocked": rate(loop, (h, W, out, True), flops),
            "transposed": rate(loop, (W_t, h_t, out_t, True), flops),
        }
        row = ", ".join(f"{name} {g:.0f}" for name, g in cells.items())
        print(f"({M}, {K}) @ ({K}, {C}), {K * C * 4 / 2**20:.1f} MiB of weights: {row} GFLOP/s")


if __name__ == "__main__":
    main()
