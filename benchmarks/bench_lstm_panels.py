"""The LSTM's lean inference at few rows: the panel loop against the loop it replaced, and
one call split into its parts (docs/performance.md, "LSTM inference, round 4").

Run from the repository root, one thread (CPU time; the minimum and the 10th percentile of
many short loops, the two loops alternating in one process, so that the load of a shared
machine reaches both alike)::

    NUMBA_NUM_THREADS=1 nice -n 19 python benchmarks/bench_lstm_panels.py [N,T,I,H ...]

``lstm_inference.PANEL_ROWS = 0`` sends every size to the earlier loop
(``compiled._forward_sequence_plain``, the general path's), which gives the same bits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

import lstmkit as lk
from lstmkit.kernels import kept, lstm_inference, panels

ROUNDS, CALLS = 100, 8


def spread(times: list[float]) -> str:
    v = np.sort(times)
    return f"min {v[0]:7.1f}  p10 {v[len(v) // 10]:7.1f} us"


def alternate(fns: dict[str, Callable[[], object]], before: dict[str, Callable[[], None]]) -> None:
    """Each fn in turn, ROUNDS times CALLS calls (``before[name]()`` first: the setting)."""
    res: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            before.get(name, lambda: None)()
            fn()
            start = time.process_time_ns()
            for _ in range(CALLS):
                fn()
            res[name].append((time.process_time_ns() - start) / CALLS / 1000)
    for name, times in res.items():
        print(f"  {name:22s} {spread(times)}")


def shape(N: int, T: int, I: int, H: int) -> None:
    layer = lk.LSTM(I, H, seed=0)
    layer.eval()
    x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
    layer(x, inference=True)
    print(f"(N, T, I, H) = {(N, T, I, H)}: layer(x, inference=True)")

    def rows(n: int) -> Callable[[], None]:
        return lambda: setattr(lstm_inference, "PANEL_ROWS", n)

    call = lambda: layer(x, inference=True)  # noqa: E731
    alternate({"earlier loop": call, "panel loop": call},
              {"earlier loop": rows(0), "panel loop": rows(64)})  # fmt: skip
    lstm_inference.PANEL_ROWS = 64
    if not panels.fits(H):
        return
    w = layer.__dict__["_inferrer_kept"][1].args[1][0]
    space: dict[str, np.ndarray] = {}
    h0 = np.zeros((N, H), np.float32)
    c0, h_n, c_n = h0.copy(), h0.copy(), h0.copy()
    lstm_inference._layer_panels(w, x, h0, c0, h_n, c_n, space)
    gates, hy = space["gates"], np.zeros((T + 1, N, H), np.float32)
    W_ih_seen, W_ih_t = kept.kept_transpose(space, "W_ih_panels", w.W_ih, w.order)
    W_hh_seen, W_panels = lstm_inference._packed(w, space)
    x2 = x.reshape(T * N, I)
    args = (x2, w.W_ih, w.W_hh, w.b_ih, w.b_hh, w.alpha_p, w.beta_p, W_ih_seen, W_ih_t,
            W_hh_seen, W_panels, gates, hy, c0, h_n, c_n)  # fmt: skip
    order = panels.columns(H)
    constants = (*lstm_inference._scale_in_order(w.b_ih, w.b_hh, order), w.alpha_p, w.beta_p)
    z = gates.reshape(T, N, H // panels.CELLS, panels.PANEL)
    c_ring = np.zeros((2, N, H), np.float32)
    print("  parts of a call (panel loop):")
    alternate(
        {
            "whole call": call,
            "compiled call": lambda: lstm_inference._run_panels(*args),
            "projection": lambda: kept.project_in_order(
                x2, w.W_ih, order, W_ih_seen, W_ih_t, gates.reshape(T * N, 4 * H)
            ),
            "loop": lambda: lstm_inference._loop_panels(
                z, hy, c_ring, W_panels, constants, h_n, c_n
            ),
        },
        {},
    )


def main() -> None:
    sizes = [tuple(int(v) for v in a.split(",")) for a in sys.argv[1:]] or [(1, 100, 32, 64)]
    for N, T, I, H in sizes:
        shape(N, T, I, H)


if __name__ == "__main__":
    main()
