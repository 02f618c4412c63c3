"""The compiled kernels' results do not depend on where their arrays lie in memory.

LLVM compiles a loop twice, vectorised and scalar, and picks one at run time by checking
that the arrays the loop writes do not overlap the ones it reads (within a vector's
reach). Which one runs thus depends on the addresses of the arrays, and fresh arrays lie
anywhere: the two versions must give the same bits. They did not where fastmath let LLVM
divide by a reciprocal estimate in the vectorised version only (``tanh``'s p / q), and the
automatic forecaster's one-series roll-outs differed in 6 of 819 repeated fits, moving a
validation score in the 9th digit (docs/forecasting.md, "Bit for bit"). The oracle here
is the scalar code: ``tanh`` called on one value at a time, and the cell loop with its
output placed where the check fails.
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels import compiled
from lstmkit.kernels.lstm_cell import gate_constants, tanh


@numba.njit(fastmath=True)
def _tanh_all(x, out):  # a loop LLVM vectorises (x and out: separate arrays)
    for j in range(x.shape[0]):
        out[j] = tanh(x[j])


def test_tanh_vectorised_equals_scalar() -> None:
    x = np.random.default_rng(0).uniform(-8.0, 8.0, 4096).astype(np.float32)
    vectorised = np.empty_like(x)
    _tanh_all(x, vectorised)
    scalar = np.array([tanh(v) for v in x], np.float32)
    differ = np.flatnonzero(vectorised.view(np.int32) != scalar.view(np.int32))
    assert differ.size == 0, f"{differ.size} of {x.size} differ, e.g. tanh({x[differ[0]]!r})"


def test_cell_loop_does_not_depend_on_addresses() -> None:
    """The plain cell's step (N = 1, H = 4, as the forecaster's roll-out) with c written
    right after c_prev in one buffer (the overlap check fails: the scalar loop) and into
    a separate array (the vectorised loop): the same c, tanh(c) and h."""
    H, rows = 4, 2000
    k = gate_constants(H)
    rng = np.random.default_rng(1)
    e = np.empty(0, np.float32)
    peep = (e,) * 6
    buffer = np.empty(2 * H, np.float32)
    cp_near, c_near = buffer[:H].reshape(1, H), buffer[H:].reshape(1, H)
    c_far = np.empty((1, H), np.float32)
    differ = 0
    for _ in range(rows):
        z = rng.uniform(-4.0, 4.0, (1, 4 * H)).astype(np.float32)
        cp = rng.uniform(-3.0, 3.0, (1, H)).astype(np.float32)
        out = []
        for c_prev, c in ((cp_near, c_near), (cp.copy(), c_far)):
            c_prev[:] = cp
            tanh_c, m = np.empty((1, H), np.float32), np.empty((1, H), np.float32)
            compiled._cells_forward_plain(z.copy(), k.alpha, k.beta, peep, c_prev, c, tanh_c, m)
            out.append(np.concatenate([c, tanh_c, m]).view(np.int32).copy())
        differ += int(np.any(out[0] != out[1]))
    assert differ == 0, f"{differ} of {rows} steps differ between the two placements"
