"""A fused LSTM time loop that gives the same results as :mod:`lstmkit.nn.time_loop`, faster.

A layer picks its implementation with its ``impl`` attribute:

* ``"reference"``: :mod:`lstmkit.nn.time_loop` with the plain cells, the readable definition;
* ``"fused"``: this package; configurations it does not cover raise ``ValueError``;
* ``"auto"`` (the default): this package where it applies, else the reference.

The fused path covers the LSTM (every option the layer has: lengths, ``proj_size``,
``forget_gate``, both directions; layers and dropout stay in the layer's loop). GRU and RNN
layers always run the reference. The modules:

* :mod:`lstmkit.kernels.lstm`: the loop over time, forward and backward (what is fused, and why);
* :mod:`lstmkit.kernels.pointwise`: the pointwise gate math of one step, in NumPy;
* :mod:`lstmkit.kernels.compiled`: the same compiled for float32, whole-sequence loops and the
  streaming step (used when numba is installed: ``pip install lstmkit[fast]``);
* :mod:`lstmkit.kernels.cell_split`: float32 whole-sequence loops that split each step's work by
  cells across threads, on NumPy's BLAS (:mod:`lstmkit.kernels.blas`) with one wait per step
  (:mod:`lstmkit.kernels.sync`);
* :mod:`lstmkit.kernels.parallel`: how work is split across threads;
* :mod:`lstmkit.kernels.streaming`: ``layer.step`` on the compiled kernel.

float64 runs NumPy's kernels (exact ufuncs), so it equals the reference to ~1e-15; float32
with numba equals it to float32 rounding (a test proves both, forward and backward).

``forward`` and ``backward`` have the signatures of :func:`lstmkit.nn.time_loop.forward` and
:func:`lstmkit.nn.time_loop.backward`; ``backward`` accepts the tape of either implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lstmkit.kernels import lstm, parallel, streaming
from lstmkit.kernels.lstm import FusedTape, Workspace
from lstmkit.nn import time_loop
from lstmkit.nn.cells import LSTMCell
from lstmkit.nn.cells.base import Cell, Params, State

IMPLS = ("auto", "reference", "fused")

__all__ = [
    "IMPLS",
    "FusedTape",
    "applies",
    "backward",
    "backward_directions",
    "forward",
    "forward_directions",
    "step",
]


def applies(cell: Cell, impl: str) -> bool:
    """Whether ``impl`` selects the fused path for ``cell`` (raises if it cannot)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
    if impl == "reference":
        return False
    covered = isinstance(cell, LSTMCell)
    if impl == "fused" and not covered:
        raise ValueError(
            f"impl='fused' covers the LSTM only, got a {type(cell).__name__}; "
            "use impl='auto' or 'reference'"
        )
    return covered


def forward(
    cell: Cell,
    p: Params,
    x: np.ndarray,
    state: State,
    mask: np.ndarray | None = None,
    reverse: bool = False,
    impl: str = "auto",
    workspace: Workspace | None = None,
    threads: int | None = None,
    keep_tape: bool = True,
) -> tuple[np.ndarray, State, Any]:
    """:func:`lstmkit.nn.time_loop.forward`, fused where ``impl`` allows (``workspace``,
    ``threads``, ``keep_tape``: see :func:`lstmkit.kernels.lstm.forward`; without the tape,
    the third result is None)."""
    if applies(cell, impl):
        assert isinstance(cell, LSTMCell)
        return lstm.forward(
            *(p, x, state, mask, reverse, cell.forget_gate),
            threads=threads,
            workspace=workspace,
            keep_tape=keep_tape,
        )
    y, final, tape = time_loop.forward(cell, p, x, state, mask, reverse)
    return y, final, tape if keep_tape else None


def backward(
    cell: Cell,
    p: Params,
    tape: Any,
    dy: np.ndarray,
    dstate: State,
    grads: Params,
    record: list[np.ndarray] | None = None,
    workspace: Workspace | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, State]:
    """:func:`lstmkit.nn.time_loop.backward` for a tape from either implementation."""
    if isinstance(tape, FusedTape):
        return lstm.backward(
            p, tape, dy, dstate, grads, record, threads=threads, workspace=workspace
        )
    return time_loop.backward(cell, p, tape, dy, dstate, grads, record)


def _concurrent(cell: Cell, impl: str, params: list[Params], x: np.ndarray) -> bool:
    """Whether a layer's two directions run at once, one thread each (fused float32 or
    float64, threads for BLAS, enough work): they are independent sequences, so each thread
    runs its whole direction with no synchronisation, on all of the batch's rows."""
    T, N, _ = x.shape
    return (
        len(params) == 2
        and applies(cell, impl)
        and parallel.can_split_blas()
        and T * N * params[0]["W_hh"].size >= parallel.MIN_WORK
    )


def forward_directions(
    cell: Cell,
    params: list[Params],
    x: np.ndarray,
    states: list[State],
    mask: np.ndarray | None = None,
    impl: str = "auto",
    workspaces: list[Workspace] | None = None,
    keep_tape: bool = True,
) -> list[tuple[np.ndarray, State, Any]]:
    """:func:`forward` for each direction d of one layer (``reverse = d == 1``), on the same
    input; two fused directions run concurrently (see ``_concurrent``). ``workspaces``: one
    per direction, kept by the caller (see :func:`lstmkit.kernels.lstm.forward`)."""
    D = len(params)
    spaces = workspaces or [{} for _ in range(D)]
    concurrent = _concurrent(cell, impl, params, x)
    out: list[Any] = [None] * D

    def one(d: int) -> None:
        threads = 1 if concurrent else None
        args = (params[d], x, states[d], mask, d == 1, impl, spaces[d], threads, keep_tape)
        out[d] = forward(cell, *args)

    _each(one, D, concurrent)
    return out


def backward_directions(
    cell: Cell,
    params: list[Params],
    tapes: list[Any],
    dys: list[np.ndarray],
    dstates: list[State],
    grads: list[Params],
    records: list[list[np.ndarray] | None],
    workspaces: list[Workspace] | None = None,
) -> list[tuple[np.ndarray, State]]:
    """:func:`backward` for each direction of one layer; concurrently as the forward ran."""
    D = len(params)
    spaces = workspaces or [{} for _ in range(D)]
    both_fused = all(isinstance(tape, FusedTape) for tape in tapes)
    concurrent = both_fused and _concurrent(cell, "fused", params, tapes[0].x)
    out: list[Any] = [None] * D

    def one(d: int) -> None:
        threads = 1 if concurrent else None
        args = (params[d], tapes[d], dys[d], dstates[d], grads[d], records[d], spaces[d], threads)
        out[d] = backward(cell, *args)

    _each(one, D, concurrent)
    return out


def _each(fn: Callable[[int], None], D: int, concurrent: bool) -> None:
    """fn(d) for each direction: one thread each when ``concurrent``, else in turn."""
    if concurrent:
        parallel.run(fn, range(D))
    else:
        for d in range(D):
            fn(d)


def step(layer: Any, x_t: Any, state: Any) -> tuple[np.ndarray, Any] | None:
    """The layer's ``step`` on the fused kernel, or None where it does not apply."""
    return streaming.step(layer, x_t, state)
