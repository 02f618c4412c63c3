"""A fused LSTM time loop that gives the same results as :mod:`lstmkit.sequence`, faster.

A layer picks its implementation with its ``impl`` attribute:

* ``"reference"``: :mod:`lstmkit.sequence` with the plain cells, the readable definition;
* ``"fused"``: this package; configurations it does not cover raise ``ValueError``;
* ``"auto"`` (the default): this package where it applies, else the reference.

The fused path covers the LSTM (every option the layer has: lengths, ``proj_size``,
``forget_gate``, both directions; layers and dropout stay in the layer's loop). GRU and RNN
layers always run the reference. The modules:

* :mod:`lstmkit.fast.lstm`: the loop over time, forward and backward (what is fused, and why);
* :mod:`lstmkit.fast.kernels`: the pointwise gate math of one step, in NumPy;
* :mod:`lstmkit.fast._numba`: the same compiled for float32, whole-sequence loops and the
  streaming step (used when numba is installed: ``pip install lstmkit[fast]``);
* :mod:`lstmkit.fast.parallel`: how work is split across threads;
* :mod:`lstmkit.fast.streaming`: ``layer.step`` on the compiled kernel.

float64 runs NumPy's kernels (exact ufuncs), so it equals the reference to ~1e-15; float32
with numba equals it to float32 rounding (a test proves both, forward and backward).

``forward`` and ``backward`` have the signatures of :func:`lstmkit.sequence.forward` and
:func:`lstmkit.sequence.backward`; ``backward`` accepts the tape of either implementation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit import sequence
from lstmkit.cells import LSTMCell
from lstmkit.cells.base import Cell, Params, State
from lstmkit.fast import lstm, streaming
from lstmkit.fast.lstm import FusedTape

IMPLS = ("auto", "reference", "fused")

__all__ = ["IMPLS", "FusedTape", "applies", "backward", "forward", "step"]


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
) -> tuple[np.ndarray, State, Any]:
    """:func:`lstmkit.sequence.forward`, fused where ``impl`` allows."""
    if applies(cell, impl):
        assert isinstance(cell, LSTMCell)
        return lstm.forward(p, x, state, mask, reverse, cell.forget_gate)
    return sequence.forward(cell, p, x, state, mask, reverse)


def backward(
    cell: Cell,
    p: Params,
    tape: Any,
    dy: np.ndarray,
    dstate: State,
    grads: Params,
    record: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, State]:
    """:func:`lstmkit.sequence.backward` for a tape from either implementation."""
    if isinstance(tape, FusedTape):
        return lstm.backward(p, tape, dy, dstate, grads, record)
    return sequence.backward(cell, p, tape, dy, dstate, grads, record)


def step(layer: Any, x_t: Any, state: Any) -> tuple[np.ndarray, Any] | None:
    """The layer's ``step`` on the fused kernel, or None where it does not apply."""
    return streaming.step(layer, x_t, state)
