"""How a layer runs: the reference time loop or a fused kernel, directions in turn or at once.

The layer (:mod:`lstmkit.nn.recurrent`) owns the computation and calls here with its
:class:`lstmkit.kernels.execution.Execution`; this module applies those choices:

* which implementation runs a layer-direction: the reference, :func:`lstmkit.nn.time_loop.forward`
  over the layer's cell (the equations), or the cell's fused kernel, a plug-in with the same
  signatures proven equal to it (:func:`fused_kernel`: :mod:`lstmkit.kernels.lstm` for the
  LSTM, :mod:`lstmkit.kernels.h_loop` for the GRU and the RNN), the cell's options passed
  as the kernel's flags (:func:`_options`);
* whether a bidirectional layer's two directions run concurrently, one thread each: they
  are independent sequences, so each thread runs its whole direction on all of the batch's
  rows (measured 14% faster than splitting each direction's batch on a 2-layer
  bidirectional (N, T, I, H) = (16, 100, 128, 256) training step).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from lstmkit import kernels
from lstmkit.kernels import parallel
from lstmkit.kernels.execution import Execution
from lstmkit.nn import time_loop
from lstmkit.nn.cells import LSTMCell, RNNCell
from lstmkit.nn.cells.base import Cell, Params, State

Workspace = dict[str, np.ndarray]


def fused_kernel(cell: Cell, dtype: np.dtype, ex: Execution) -> Any:
    """The fused kernel module that runs ``cell`` under ``ex``, or None for the reference.

    Raises ValueError where ``ex.impl == "fused"`` asks for a kernel that does not apply."""
    if ex.impl == "reference":
        return None
    variants = cell.variants if isinstance(cell, LSTMCell) else ()  # not in the kernel yet
    if not variants and kernels.available(dtype):
        return _kernel(type(cell))
    if ex.impl == "fused":
        why = f"does not cover the LSTM options {', '.join(variants)}" if variants else ""
        raise ValueError(
            f"impl='fused' {why or 'needs float32 and numba'} (got a {type(cell).__name__} in "
            f"{np.dtype(dtype).name}); use impl='auto' or 'reference'"
        )
    return None


@functools.cache
def _kernel(cell_type: type) -> Any:
    """The kernel module of a cell class, imported on first use (it compiles with numba):
    :mod:`lstmkit.kernels.lstm` for the LSTM, :mod:`lstmkit.kernels.h_loop` for the GRU and
    the RNN."""
    if cell_type is LSTMCell:
        from lstmkit.kernels import lstm

        return lstm
    from lstmkit.kernels import h_loop

    return h_loop


@functools.cache
def _streaming() -> Any:
    """:mod:`lstmkit.kernels.streaming`, imported on first use."""
    from lstmkit.kernels import streaming

    return streaming


@functools.cache
def _lean() -> Any:
    """:mod:`lstmkit.kernels.inference`, imported on first use."""
    from lstmkit.kernels import inference

    return inference


def _options(cell: Cell) -> dict[str, Any]:
    """The cell's options a kernel takes as flags."""
    if isinstance(cell, LSTMCell):
        return cell.kernel_options
    return {"kind": cell.nonlinearity if isinstance(cell, RNNCell) else "gru"}


def _strided(cell: Cell, p: Params, mask: np.ndarray | None) -> bool:
    """Whether the fused kernel runs this layer on strided columns of the directions' joint
    output and gradient: torch's LSTM only (no variant, lengths or projection). numba
    compiles each loop once more for every other mix of strided and contiguous arrays
    (~10 s each, for the less used forms), so their arrays are copied instead."""
    return isinstance(cell, LSTMCell) and cell.plain and mask is None and "W_hr" not in p


def forward_directions(
    cell: Cell,
    params: list[Params],
    x: np.ndarray,
    states: list[State],
    mask: np.ndarray | None,
    ex: Execution,
    workspaces: list[Workspace] | None = None,
    keep_tape: bool = True,
    joined: np.ndarray | None = None,
) -> list[tuple[np.ndarray, State, Any]]:
    """Each direction d of one layer (``reverse = d == 1``) over x (T, N, I) from
    ``states[d]``: [(y (T, N, P), final state, tape or None)]. ``workspaces``: one per
    direction, kept by the caller (see :func:`lstmkit.kernels.lstm.forward`).

    ``joined`` (T + 2, N, D*P) or None: the layer's output is then ``joined[1:T + 1]``,
    each direction's y in its columns. The LSTM's fused kernel writes y there itself (its
    tape's h_prev is ``joined`` shifted by a step:
    :func:`lstmkit.kernels.sequence.outputs_and_inputs`), which saves a (T, N, D*P) copy of
    every layer's output; the other paths' y is copied in."""
    D = len(params)
    kernel = fused_kernel(cell, x.dtype, ex)
    spaces = workspaces or [{} for _ in range(D)]
    concurrent = kernel is not None and _concurrent(params, x.shape, ex)
    inner = ex.with_threads(1) if concurrent else ex
    out: list[Any] = [None] * D
    into = joined is not None and kernel is not None and _strided(cell, params[0], mask)

    def one(d: int) -> None:
        P = states[d][0].shape[1]
        columns = None if joined is None else joined[:, :, d * P : (d + 1) * P]  # (T + 2, N, P)
        if kernel is None:
            y, final, tape = time_loop.forward(cell, params[d], x, states[d], mask, d == 1)
            out[d] = (y, final, tape if keep_tape else None)
        else:
            args = (params[d], x, states[d], mask, d == 1)
            kw = {"out": columns} if into else {}
            out[d] = kernel.forward(*args, **_options(cell), ex=inner, workspace=spaces[d],
                                    keep_tape=keep_tape, **kw)  # fmt: skip
        if columns is not None and not into:
            columns[1:-1] = out[d][0]

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
    ex: Execution,
    workspaces: list[Workspace] | None = None,
) -> list[tuple[np.ndarray, State]]:
    """The backward of :func:`forward_directions`, by the implementation that made each
    tape: [(dx (T, N, I), the initial state's gradient)]; adds into ``grads``."""
    D = len(params)
    fused = not isinstance(tapes[0], time_loop.Tape)  # made by the fused kernel
    kernel = fused_kernel(cell, tapes[0].x.dtype, ex) if fused else None  # as the forward
    spaces = workspaces or [{} for _ in range(D)]
    concurrent = fused and _concurrent(params, tapes[0].x.shape, ex)
    inner = ex.with_threads(1) if concurrent else ex
    out: list[Any] = [None] * D
    if D > 1 and kernel is not None and not _strided(cell, params[0], tapes[0].mask):
        dys = [np.ascontiguousarray(dy) for dy in dys]  # (see _strided)

    def one(d: int) -> None:
        args = (params[d], tapes[d], dys[d], dstates[d], grads[d], records[d])
        if kernel is not None:
            out[d] = kernel.backward(*args, ex=inner, workspace=spaces[d])
        else:
            out[d] = time_loop.backward(cell, *args)

    _each(one, D, concurrent)
    return out


def _concurrent(params: list[Params], shape: tuple[int, ...], ex: Execution) -> bool:
    """Whether a fused layer's two directions run at once, one thread each (threads for
    BLAS, enough work)."""
    T, N, _ = shape
    return (
        len(params) == 2
        and parallel.can_split_blas(ex)
        and T * N * params[0]["W_hh"].size >= ex.min_work
    )


def _each(fn: Callable[[int], None], D: int, concurrent: bool) -> None:
    """fn(d) for each direction: one thread each when ``concurrent``, else in turn."""
    if concurrent:
        parallel.run(fn, range(D))
    else:
        for d in range(D):
            fn(d)


def stepper(cell: Cell, params: list[Params], dtype: np.dtype, ex: Execution) -> Any:
    """The streaming step of a stack of one-direction layers on the fused kernel, prepared
    from their live weights: a function (x_t, state) -> (y_t, new state), or None where an
    input does not apply (the layer then runs its reference step); None without a fused
    kernel."""
    kernel = fused_kernel(cell, dtype, ex)
    if kernel is None or (isinstance(cell, LSTMCell) and cell.options.layer_norm):
        return None  # (the layer-normalised step: the reference's, not in the streaming kernel)
    steps = _streaming() if isinstance(cell, LSTMCell) else kernel
    return steps.prepare(params, ex, **_options(cell))


def inferrer(cell: Cell, params: list[Params], dtype: np.dtype, ex: Execution) -> Any:
    """The lean whole-sequence inference of a stack of one-direction layers of the plain
    LSTM cell, the GRU or the RNN (:mod:`lstmkit.kernels.inference`), prepared from their
    live weights: a function (x, state, workspaces) -> (y, final state) or None (see its
    ``infer``); None where it does not apply (the reference, another dtype, any LSTM
    option)."""
    if isinstance(cell, LSTMCell) and cell.options.changed():
        return None
    if ex.impl == "reference" or not kernels.available(dtype):
        return None
    kind = "lstm" if isinstance(cell, LSTMCell) else _options(cell)["kind"]
    return _lean().prepare(params, ex, kind)
