"""The layer-normalised LSTM's norms compiled for float32 (Ba et al. 2016, section 3.1).

The reference (:mod:`lstmkit.nn.cells.lstm`, ``layer_norm=True``) defines the cell::

    z  = LN(W_ih x; g_ih, b_ih) + LN(W_hh h; g_hh, b_hh)      (N, 4H), then the gates
    m  = o * tanh(LN(c'; g_c, b_c))                            (the carried c' is not)

with LN(a; g, b) = g * a_hat + b, a_hat = (a - mean(a)) * rstd, rstd = 1 / sqrt(var(a) +
eps), mean and var over a row's 4H (or H) entries. The fused loops of
:mod:`lstmkit.kernels.lstm` run it where each row of 4H gates is in one place (the loops
over rows, not the loops split by cells): the cell's bit LAYER_NORM tells
:func:`lstmkit.kernels.lstm_cell.cell_forward` to stop at c' and o, and
:func:`lstmkit.kernels.lstm_cell.cell_backward` to take m's share of dc from the loop,
which computes both here:

* before the loop, the input's norm over all T*N rows at once (:func:`affine_rows`);
* at each step, the recurrent product's norm (:func:`affine_row`) and c's
  (:func:`cell_row`), and back (:func:`cell_backward_row`, :func:`normalise_backward_row`);
* after the loop back, the input norm's backward over all rows and the gains' and shifts'
  gradients (:func:`backward_after_loop`).

The sigmoid's scale 1/2 (see :mod:`lstmkit.kernels.lstm_cell`) is folded into the forward's
gains and shifts (:func:`forward_gains`), not into the weights. The tape keeps each norm's
a_hat and rstd (:class:`Norms`); the backward of y = g a_hat + b is
da = rstd (dy g - mean(dy g) - a_hat mean(dy g a_hat)).

(numba's on-disk cache keys a function on its own file only, and the loops of
:mod:`lstmkit.kernels.compiled` inline the row functions here: :mod:`lstmkit.kernels.numba_cache`
clears the cache when any kernel source changes.)
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from lstmkit.kernels.lstm_cell import NO_OUTPUT_ACTIVATION, tanh
from lstmkit.kernels.sequence import empty

_f32 = np.float32
_EPS = _f32(1e-5)  # torch.nn.LayerNorm's default, as the reference's LN_EPS
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy", inline="always")


class Norms(NamedTuple):
    """One direction's norms over time, kept by the forward for the backward."""

    x_hat: np.ndarray  # (T, N, 4H) the normalised W_ih x
    rstd_x: np.ndarray  # (T, N) its 1 / sqrt(var + eps)
    h_hat: np.ndarray  # (T, N, 4H) the normalised W_hh h
    rstd_h: np.ndarray  # (T, N)
    c_hat: np.ndarray  # (T, N, H) the normalised new c
    rstd_c: np.ndarray  # (T, N)

    def fields(self) -> dict[str, np.ndarray]:
        """As the reference cell's cache names them, (T, N, .) each (rstd (T, N, 1))."""
        return {"ln_x": self.x_hat, "ln_h": self.h_hat, "ln_c": self.c_hat,
                "rstd_x": self.rstd_x[..., None], "rstd_h": self.rstd_h[..., None],
                "rstd_c": self.rstd_c[..., None]}  # fmt: skip


class Gains(NamedTuple):
    """The norms' gains and shifts as a loop takes them (shifts zero without biases)."""

    g_h: np.ndarray  # (4H,) g_hh (times the gates' scale in the forward)
    b_h: np.ndarray  # (4H,) b_hh (likewise)
    g_c: np.ndarray  # (H,)
    b_c: np.ndarray  # (H,)


def empty_norms(T: int, N: int, H: int, workspace: dict[str, np.ndarray] | None) -> Norms:
    """A tape's norms, (T, N, .) float32 arrays reused from ``workspace`` where it has them."""
    shapes = {"x_hat": (T, N, 4 * H), "rstd_x": (T, N), "h_hat": (T, N, 4 * H),
              "rstd_h": (T, N), "c_hat": (T, N, H), "rstd_c": (T, N)}  # fmt: skip
    return Norms(*(empty(workspace, "ln_" + name, s, _f32) for name, s in shapes.items()))


def _shift(p: dict[str, np.ndarray], name: str, size: int) -> np.ndarray:
    return p[name] if name in p else np.zeros(size, _f32)


def forward_gains(
    p: dict[str, np.ndarray], scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Gains]:
    """(g_ih, b_ih) and the loop's :class:`Gains`, g_ih, b_ih, g_hh, b_hh times the gates'
    scale (4H,) (a power of two: exact), as float32 contiguous arrays."""
    GH = scale.shape[0]
    g_x = np.ascontiguousarray(p["ln_ih_g"] * scale, _f32)
    b_x = np.ascontiguousarray(_shift(p, "ln_ih_b", GH) * scale, _f32)
    g_h = np.ascontiguousarray(p["ln_hh_g"] * scale, _f32)
    b_h = np.ascontiguousarray(_shift(p, "ln_hh_b", GH) * scale, _f32)
    g_c = np.ascontiguousarray(p["ln_c_g"], _f32)
    b_c = np.ascontiguousarray(_shift(p, "ln_c_b", GH // 4), _f32)
    return g_x, b_x, Gains(g_h, b_h, g_c, b_c)


def backward_gains(p: dict[str, np.ndarray]) -> Gains:
    """The gains as the backward takes them (as they are; the shifts are not needed)."""
    g_h, g_c = (np.ascontiguousarray(p[name], _f32) for name in ("ln_hh_g", "ln_c_g"))
    return Gains(g_h, np.empty(0, _f32), g_c, np.empty(0, _f32))


NO_NORMS = (np.empty((0, 0, 0), _f32), np.empty((0, 0), _f32)) * 3  # a Norms of nothing
NO_GAINS = (np.empty(0, _f32),) * 4


# ---- one row ------------------------------------------------------------------------------


@_inline
def normalise_row(a, a_hat, rstd, n):
    """Row n of a (M, K): a_hat[n] = (a[n] - mean) * rstd[n], rstd[n] = 1 / sqrt(var + eps)
    (two passes: the variance from the centred values)."""
    K = a.shape[1]
    total = _f32(0.0)
    for j in range(K):
        total += a[n, j]
    mean = total / _f32(K)
    var = _f32(0.0)
    for j in range(K):
        d = a[n, j] - mean
        var += d * d
    r = _f32(1.0) / np.sqrt(var / _f32(K) + _EPS)
    rstd[n] = r
    for j in range(K):
        a_hat[n, j] = (a[n, j] - mean) * r


@_inline
def affine_row(a, gain, shift, a_hat, rstd, n):
    """Row n: a[n] = gain * LN(a[n]) + shift, in place; a_hat[n] and rstd[n] kept."""
    normalise_row(a, a_hat, rstd, n)
    for j in range(a.shape[1]):
        a[n, j] = gain[j] * a_hat[n, j] + shift[j]


@_inline
def cell_row(c, gates, gain, shift, flags, c_hat, rstd, tanh_c, m, n):
    """Row n, after the cell (c (N, H) the new c, gates (N, 4H) holding o):

        tanh_c = tanh(gain * LN(c) + shift)     (no tanh with NO_OUTPUT_ACTIVATION)
        m      = o * tanh_c

    c_hat[n], rstd[n] kept."""
    H = c.shape[1]
    normalise_row(c, c_hat, rstd, n)
    if flags & NO_OUTPUT_ACTIVATION:
        for j in range(H):
            tanh_c[n, j] = gain[j] * c_hat[n, j] + shift[j]
    else:
        for j in range(H):
            tanh_c[n, j] = tanh(gain[j] * c_hat[n, j] + shift[j])
    for j in range(H):
        m[n, j] = gates[n, 3 * H + j] * tanh_c[n, j]


@_inline
def normalise_backward_row(dy, gain, a_hat, rstd, da, n, add=False):
    """Row n, back through y = gain * a_hat + shift: da[n] = rstd (dy' - mean(dy') - a_hat
    mean(dy' a_hat)), dy' = gain * dy[n] (the gain's and shift's gradients: the caller's);
    ``add``: da[n] += that instead."""
    K = dy.shape[1]
    s1 = _f32(0.0)
    s2 = _f32(0.0)
    for j in range(K):
        d = dy[n, j] * gain[j]
        s1 += d
        s2 += d * a_hat[n, j]
    s1 /= _f32(K)
    s2 /= _f32(K)
    r = rstd[n]
    for j in range(K):
        v = r * (dy[n, j] * gain[j] - s1 - a_hat[n, j] * s2)
        da[n, j] = da[n, j] + v if add else v


@_inline
def cell_backward_row(dm, keep, gates, tanh_c, gain, c_hat, rstd, flags, d_out, dc, n):
    """Row n, back through :func:`cell_row`: d_out[n] = dL/d(gain * LN(c) + shift) =
    keep dm o (1 - tanh_c^2) (keep dm o with NO_OUTPUT_ACTIVATION), kept for the gain's
    gradient; dc[n] += its share through the norm (none with one cell, whose norm is 0).
    keep: 0 on a padded step (nothing)."""
    H = dc.shape[1]
    one = _f32(1.0)
    if flags & NO_OUTPUT_ACTIVATION:
        for j in range(H):
            d_out[n, j] = keep * dm[n, j] * gates[n, 3 * H + j]
    else:
        for j in range(H):
            t = tanh_c[n, j]
            d_out[n, j] = keep * dm[n, j] * gates[n, 3 * H + j] * (one - t * t)
    if H == 1:  # LN(c) is its shift: no share, exactly (as rounding would not cancel)
        return
    normalise_backward_row(d_out, gain, c_hat, rstd, dc, n, True)


# ---- every row (the loop that calls BLAS per step, and the work before and after loops) --


@_jit
def affine_rows(a, gain, shift, a_hat, rstd):
    """Every row of a (M, K): :func:`affine_row`."""
    for n in range(a.shape[0]):
        affine_row(a, gain, shift, a_hat, rstd, n)


@_jit
def cell_rows(c, gates, gain, shift, flags, c_hat, rstd, tanh_c, m):
    """Every row: :func:`cell_row`."""
    for n in range(c.shape[0]):
        cell_row(c, gates, gain, shift, flags, c_hat, rstd, tanh_c, m, n)


@_jit
def normalise_backward_rows(dy, gain, a_hat, rstd, da):
    """Every row: :func:`normalise_backward_row` (da may be dy: each row is read first)."""
    for n in range(dy.shape[0]):
        normalise_backward_row(dy, gain, a_hat, rstd, da, n)


@_jit
def cell_backward_rows(dm, valid, gates, tanh_c, gain, c_hat, rstd, flags, d_out, dc):
    """Every row: :func:`cell_backward_row`; valid (N,) uint8, 1 on a valid step."""
    for n in range(dc.shape[0]):
        keep = _f32(valid[n])
        cell_backward_row(dm, keep, gates, tanh_c, gain, c_hat, rstd, flags, d_out, dc, n)


def project_input(gates: np.ndarray, p: dict[str, np.ndarray], scale: np.ndarray,
                  norms: Norms) -> Gains:  # fmt: skip
    """gates (T, N, 4H) holding W_ih x in, the scaled LN(W_ih x; g_ih, b_ih) out (x_hat,
    rstd_x kept in ``norms``); returns the recurrent and cell norms' gains for the loop."""
    T, N, GH = gates.shape
    g_x, b_x, gains = forward_gains(p, scale)
    rows = (gates.reshape(T * N, GH), g_x, b_x)
    affine_rows(*rows, norms.x_hat.reshape(T * N, GH), norms.rstd_x.reshape(T * N))
    return gains


def backward_after_loop(
    p: dict[str, np.ndarray], norms: Norms, dz: np.ndarray, d_c: np.ndarray,
    grads: dict[str, np.ndarray],
) -> None:  # fmt: skip
    """After the loop back: adds the gains' and shifts' gradients into ``grads`` from dz
    (T, N, 4H), dL/dz for z = LN(W_ih x) + LN(W_hh h), and d_c (T, N, H), dL/d of c's norm's
    output; then turns dz into dL/d(W_ih x) in place. One pass over the rows
    (:func:`input_norm_backward_rows`, :func:`gain_sums`), sums in float64."""
    T, N, GH = dz.shape
    rows = T * N
    sums = np.zeros((3, GH)), np.zeros((2, GH // 4))  # (dg_ih, dg_hh, db) and (dg_c, db_c)
    g_x = np.ascontiguousarray(p["ln_ih_g"], _f32)
    input_norm_backward_rows(dz.reshape(rows, GH), g_x, norms.x_hat.reshape(rows, GH),
                             norms.rstd_x.reshape(rows), norms.h_hat.reshape(rows, GH),
                             sums[0])  # fmt: skip
    gain_sums(d_c.reshape(rows, GH // 4), norms.c_hat.reshape(rows, GH // 4), sums[1])
    (dg_x, dg_h, db), (dg_c, db_c) = sums
    grads["ln_ih_g"] += dg_x
    grads["ln_hh_g"] += dg_h
    grads["ln_c_g"] += dg_c
    if "ln_ih_b" in grads:
        grads["ln_ih_b"] += db
        grads["ln_hh_b"] += db
        grads["ln_c_b"] += db_c


@_inline
def _gain_sums_row(dy, a_hat, dg, db, n):
    """Row n: dg += dy[n] a_hat[n], db += dy[n] (float64 sums (K,))."""
    for j in range(dy.shape[1]):
        d = dy[n, j]
        dg[j] += np.float64(d * a_hat[n, j])
        db[j] += np.float64(d)


@_jit
def gain_sums(dy, a_hat, out):
    """out (2, K) float64 += (sum over rows of dy a_hat, sum of dy), for dy, a_hat (M, K):
    a norm's gain's and shift's gradients."""
    for n in range(dy.shape[0]):
        _gain_sums_row(dy, a_hat, out[0], out[1], n)


@_jit
def input_norm_backward_rows(dz, g_x, x_hat, rstd_x, h_hat, out):
    """Every row n of dz (M, 4H), while it is in cache: out (3, 4H) float64 += the sums
    over rows of dz x_hat, dz h_hat and dz (the gains' and the shifts' gradients of both
    norms of z = LN(W_ih x) + LN(W_hh h)), then dz[n] = dL/d(W_ih x)[n], back through the
    input's norm (:func:`normalise_backward_row`, in place)."""
    for n in range(dz.shape[0]):
        _gain_sums_row(dz, x_hat, out[0], out[2], n)
        for j in range(dz.shape[1]):
            out[1, j] += np.float64(dz[n, j] * h_hat[n, j])
        normalise_backward_row(dz, g_x, x_hat, rstd_x, dz, n)
