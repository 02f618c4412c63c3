"""The named structures the compiled loops take, instead of long lists of arrays.

numba passes a NamedTuple of arrays as a struct (no copy, no cost per field); the loops
unpack them on entry. Shapes: T steps, N sequences, H cells, P = size of h (H, or the
projection's size), I inputs; R = T, or 2 for the two-step rings of inference (step t at
t % 2).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Steps(NamedTuple):
    """Which step runs when, and where the sequences are padded."""

    order: np.ndarray  # (T,) int64: the time steps in the order the loop runs them
    valid: np.ndarray  # (T, N) uint8: 1 on a sequence's valid steps, 0 on padding


class Sequence(NamedTuple):
    """One direction's arrays over time: what the forward writes and the backward reads."""

    gates: np.ndarray  # (R, N, 4H): the scaled pre-activations in, the gates i, f, g, o out
    h_prev: np.ndarray  # (T, N, P): h entering each step (h_prev[order[0]] = h0)
    c_prev: np.ndarray  # (R, N, H): c entering each step
    tanh_c: np.ndarray  # (R, N, H): tanh of the step's new c
    m: np.ndarray  # (R, N, H): o * tanh(c), the projection's input (y itself without one)


class HC(NamedTuple):
    """A state (h, c), or its gradient (dh, dc)."""

    h: np.ndarray  # (N, P)
    c: np.ndarray  # (N, H)


class Recurrent(NamedTuple):
    """The recurrent weights as the loops multiply by them (scaled in the forward: see
    :mod:`lstmkit.kernels.lstm_cell`)."""

    W_hh: np.ndarray  # (4H, P)
    W_hh_t: np.ndarray  # (P, 4H): W_hh.T, contiguous
    W_hr: np.ndarray  # (P, H) the projection, or (0, H) without one
    W_hr_t: np.ndarray  # (H, P): W_hr.T, contiguous, or (0, P)


class Part(NamedTuple):
    """One thread's share of the loops of :mod:`lstmkit.kernels.cell_split`: a block of the
    layer's cells on every row, or (the loop back, and the forward in training) every
    cell of a block of rows."""

    me: int  # this thread, 0 <= me < parts
    parts: int  # the threads sharing the layer's cells (1: none to wait for)
    c0: int  # its cells: c0:c1
    c1: int
    flags: np.ndarray  # the threads' step counters (:mod:`lstmkit.kernels.sync`)
    r0: int = 0  # its rows (sequences): r0:r1 (0:N with a block of cells)
    r1: int = 0


class GateColumns(NamedTuple):
    """A thread's columns of the input and recurrent weights, bias and gate constants: the
    4C = 4 (c1 - c0) gate columns of its cells (i, f, g, o blocks), scaled."""

    W_x: np.ndarray  # (I, 4C) of W_ih.T, or (0, 4C): the input projected before the loop
    W_h: np.ndarray  # (P, 4C) of W_hh.T, or (4C, P) rows of W_hh for transposed products
    b: np.ndarray  # (4C,) b_ih + b_hh
    alpha: np.ndarray  # (4C,)
    beta: np.ndarray  # (4C,)
    flags: int  # the cell's option bits (lstm_cell.GateConstants.flags)
    peep: tuple  # the peephole weights (lstm_cell.peepholes_of), (H,) each, or empty


class Regularisers(NamedTuple):
    """The recurrent regularisers' masks as the loops read them (drawn by the layer, see
    :mod:`lstmkit.nn.time_loop`); each empty (a zero-size shape) where off. The input's
    dropout mask is applied before the loops (to x, once)."""

    h_mask: np.ndarray  # (N, P) the per-sequence mask on the h entering W_hh, or (0, 0)
    keep_h: np.ndarray  # (T, N, P) zoneout's 0/1 keep mask on h, (1, 1, P) in eval, or (0, 0, 0)
    keep_c: np.ndarray  # (T, N, H) the same on c
