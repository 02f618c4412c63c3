"""The LSTM cell compiled for float32: the one copy of its equations in the fused kernel.

The reference (:mod:`lstmkit.nn.cells.lstm`) is the readable definition; this is the same
step in the form the compiled loops need, called by all of them (the whole-sequence loops
and the per-step kernel of :mod:`lstmkit.kernels.compiled`, the loops split by cells of
:mod:`lstmkit.kernels.cell_split`, the streaming step).

All four gates go through one ``tanh``: with ``sigmoid(z) = 0.5 * tanh(z / 2) + 0.5`` (the
formula of the reference's sigmoid), every gate is

    a = alpha * tanh(scale * z) + beta          per column of the (N, 4H) pre-activation

with (scale, alpha, beta) = (1/2, 1/2, 1/2) for i, f, o and (1, 1, 0) for g; without a
forget gate f's alpha is 0 and its beta 1, so f = 1 exactly (the constants:
:func:`gate_constants`). ``scale`` is folded into the weights and
biases by the caller (a power of two, so the products round exactly as before), which
leaves one ``tanh`` and one multiply-add per element.

Each function works on row ``n`` of (N, ·) arrays and the cells ``c0:c1`` of a layer (a
thread of the split loops owns a block of cells; the other loops pass 0:H). Passing whole
2-D arrays and the row, rather than 1-D row views, measured 15-30% faster (the row views
kept LLVM from vectorising as well; see docs/performance.md).

``tanh`` here is not libm's (numba's scalar ``tanh`` does not vectorise, ~10x slower than
NumPy's SIMD ufunc) but a rational approximation built from multiply, add, divide and
clamp only, which LLVM vectorises: Eigen's ``ptanh_float``, accurate to a few float32 ulp.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np

# The options of the cell that change its equations, as bits of ``GateConstants.flags``
# (Greff et al. 2017's CIFG, NIAF, NOAF; NIG, NFG and NOG are constants, below):
COUPLED = 1  # f = 1 - i
NO_INPUT_ACTIVATION = 2  # g = z_g (no tanh)
NO_OUTPUT_ACTIVATION = 4  # m = o * c (no tanh)
PEEPHOLES = 8  # i, f see c_prev and o sees c through diagonal weights (Gers & Schmidhuber)
# Ba et al. 2016's layer norm: the cell stops at c and o, the loop normalises around it
# (tanh_c, m and m's share of dc: lstmkit.kernels.layer_norm; whole rows of gates only)
LAYER_NORM = 128
CELL_BITS = 15 | LAYER_NORM  # the cell's own bits; the loops' bits below act on their states
# The recurrent regularisers (Gal & Ghahramani 2016; Krueger et al. 2017), which act on the
# loop's states around the cell, as bits of the loops' flags (never passed to the cells):
H_DROPOUT = 16  # the h entering W_hh times a per-sequence mask (variational dropout)
ZONEOUT_H = 32  # h leaving a step: k h_prev + (1 - k) h_cell (k: 0/1, or the rate in eval)
ZONEOUT_C = 64  # c leaving a step: k c_prev + (1 - k) c_cell
# and how the loops over rows of lstmkit.kernels.compiled compute their matrix products:
BLAS_PRODUCTS = 256  # by cblas_sgemm called from the loop (lstmkit.kernels.blas), not their own


class GateConstants(NamedTuple):
    """Per-column constants of the (N, 4H) gate block (see the module doc):
    gate = alpha * tanh(scale * z) + beta; and the cell's option bits."""

    scale: np.ndarray  # (4H,) folded into W_ih, W_hh and the biases
    alpha: np.ndarray  # (4H,)
    beta: np.ndarray  # (4H,)
    flags: int  # COUPLED | NO_INPUT_ACTIVATION | NO_OUTPUT_ACTIVATION | PEEPHOLES | LAYER_NORM


@functools.lru_cache(maxsize=64)
def gate_constants(
    H: int,
    forget_gate: bool = True,
    input_gate: bool = True,
    output_gate: bool = True,
    coupled_gates: bool = False,
    input_activation: bool = True,
    output_activation: bool = True,
    peepholes: bool = False,
    layer_norm: bool = False,
    recurrent_dropout: float = 0.0,
    zoneout_c: float = 0.0,
    zoneout_h: float = 0.0,
) -> GateConstants:
    """The float32 constants of an H-cell layer, kept from call to call (building them took
    ~10 us, a tenth of a whole small forward); not to be written to. (Not flagged read-only:
    numba types a read-only array argument in Python, ~1.5 us each, measured on the
    streaming step.) (scale, alpha, beta) = (1/2, 1/2, 1/2) for i, f, o
    (``sigmoid(z) = tanh(z / 2) / 2 + 1 / 2``) and (1, 1, 0) for g. A gate switched off
    (Greff et al.'s NIG, NFG, NOG) has alpha 0 and beta 1: it is 1 exactly, and its
    derivative from its output, a (1 - a), is 0. The regularisers' rates change nothing
    here (their masks act in the loops): taken so that a cell's options pass as they are."""

    def per_gate(i: float, f: float, g: float, o: float) -> np.ndarray:
        return np.repeat(np.array([i, f, g, o], dtype=np.float32), H)

    def on(gate: bool) -> tuple[float, float]:  # (alpha, beta) of a sigmoid gate
        return (0.5, 0.5) if gate else (0.0, 1.0)

    (i_a, i_b), (f_a, f_b), (o_a, o_b) = on(input_gate), on(forget_gate), on(output_gate)
    flags = (COUPLED if coupled_gates else 0) | (0 if input_activation else NO_INPUT_ACTIVATION)
    flags |= (0 if output_activation else NO_OUTPUT_ACTIVATION) | (PEEPHOLES if peepholes else 0)
    flags |= LAYER_NORM if layer_norm else 0
    return GateConstants(
        scale=per_gate(0.5, 0.5, 1.0, 0.5),
        alpha=per_gate(i_a, f_a, 1.0, o_a),
        beta=per_gate(i_b, f_b, 0.0, o_b),
        flags=flags,
    )


_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
# the row functions are inlined into each loop (numba's IR inlining): as calls, with the
# option bits and peephole weights as arguments, a (16, 100, 64, 128) inference measured
# ~15% slower than with the code in the loop
_inline = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy", inline="always")

# Eigen's generic_fast_tanh_float: tanh(x) = x * P(x^2) / Q(x^2) on |x| <= 7.905..., where
# float32's tanh rounds to +-1.
_CLAMP = _f32(7.90531110763549805)
_A1, _A3, _A5 = _f32(4.89352455891786e-03), _f32(6.37261928875436e-04), _f32(1.48572235717979e-05)
_A7, _A9 = _f32(5.12229709037114e-08), _f32(-8.60467152213735e-11)
_A11, _A13 = _f32(2.00018790482477e-13), _f32(-2.76076847742355e-16)
_B0, _B2 = _f32(4.89352518554385e-03), _f32(2.26843463243900e-03)
_B4, _B6 = _f32(1.18534705686654e-04), _f32(1.19825839466702e-06)


# tanh divides without fastmath's "arcp" (allow reciprocal): with it, LLVM computes a
# vectorised loop's p / q as an estimate of 1 / q refined once (vrcpps + a Newton step) but
# the same loop's scalar version with a true division (vdivss), which differ in the last
# bit now and then; which version runs is chosen at run time by LLVM's check that the
# loop's arrays do not overlap, which depends on where they lie in memory. So a result
# depended on the addresses of fresh arrays (docs/forecasting.md, "Bit for bit").
_exact_division = numba.njit(
    cache=True,
    fastmath={"nnan", "ninf", "nsz", "contract", "afn", "reassoc"},
    nogil=True,
    error_model="numpy",
)


@_exact_division
def tanh(x):
    """float32 tanh, to a few ulp (Eigen's rational approximation); p / q a true division
    (the same bits in scalar and vectorised code)."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * _A13 + _A11) + _A9) + _A7) + _A5) + _A3) + _A1
    q = x2 * (x2 * (x2 * _B6 + _B4) + _B2) + _B0
    return x * p / q


@_jit
def gate(z, alpha, beta):
    """A gate from its scaled pre-activation z: i, f, o = sigmoid, g = tanh (see above)."""
    return alpha * tanh(z) + beta


_NO_PEEPHOLES = (np.empty(0, np.float32),) * 6  # never written to


def peepholes_of(p: dict[str, np.ndarray], scale: np.ndarray) -> tuple[np.ndarray, ...]:
    """The peephole weights as the loops take them: (w_ci, w_cf, w_co) times the sigmoid's
    scale (the forward adds them to scaled pre-activations), then as they are (the
    backward); (H,) each, or empty without peepholes."""
    if "w_ci" not in p:
        return _NO_PEEPHOLES
    s = scale[0]  # the sigmoid gates' scale, 1/2: exact
    w = [np.ascontiguousarray(p[name], np.float32) for name in ("w_ci", "w_cf", "w_co")]
    return (w[0] * s, w[1] * s, w[2] * s, *w)


@_inline
def peep_into_i_f(pre, S, peep, c_prev, n, c0, c1):
    """Row n, cells c0:c1: the input and forget gates see c_prev: pre[n, j] += w_ci c_prev and
    pre[n, S + j] += w_cf c_prev for the scaled pre-activations ``pre`` (the row's own z with
    S = H and c0 = 0, or a packed block with S = c1 - c0)."""
    w_ci, w_cf = peep[0], peep[1]
    for j in range(c1 - c0):
        pre[n, j] += w_ci[c0 + j] * c_prev[n, c0 + j]
    for j in range(c1 - c0):
        pre[n, S + j] += w_cf[c0 + j] * c_prev[n, c0 + j]


@_inline
def gates_in_place(z, alpha, beta, flags, n):
    """Row n of z (N, 4H), every gate: the scaled pre-activations in, i, f, g, o out (g
    left as it is with NO_INPUT_ACTIVATION; o left for :func:`cell_forward` with
    PEEPHOLES, as it sees the new c)."""
    if not flags & (NO_INPUT_ACTIVATION | PEEPHOLES):  # one loop: the plain cell's speed
        for k in range(z.shape[1]):
            z[n, k] = gate(z[n, k], alpha[k], beta[k])
        return
    H = z.shape[1] // 4
    for k in range(2 * H):
        z[n, k] = gate(z[n, k], alpha[k], beta[k])
    if not flags & NO_INPUT_ACTIVATION:
        for k in range(2 * H, 3 * H):
            z[n, k] = gate(z[n, k], alpha[k], beta[k])
    if not flags & PEEPHOLES:
        for k in range(3 * H, 4 * H):
            z[n, k] = gate(z[n, k], alpha[k], beta[k])


@_inline
def gates_packed(a, alpha, beta, flags, z, n, c0, c1):
    """Row n, cells c0:c1: z[n, q*H + c0 + j] = gate(a[n, q*C + j]) for gate q and C = c1 - c0
    cells, from a (N, 4C) their scaled pre-activations packed gate by gate (alpha, beta
    (4C,) packed alike); copied as they are: g with NO_INPUT_ACTIVATION, o with PEEPHOLES
    (:func:`cell_forward` then finishes it)."""
    H, C = z.shape[1] // 4, c1 - c0
    for q in range(4):
        zq, aq = z[n, q * H + c0 : q * H + c1], a[n, q * C : (q + 1) * C]
        alpha_q, beta_q = alpha[q * C : (q + 1) * C], beta[q * C : (q + 1) * C]
        if (q == 2 and flags & NO_INPUT_ACTIVATION) or (q == 3 and flags & PEEPHOLES):
            for j in range(C):
                zq[j] = aq[j]
        else:
            for j in range(C):
                zq[j] = gate(aq[j], alpha_q[j], beta_q[j])


@_inline
def cell_forward(z, c_prev, c_out, tanh_c, m_out, flags, peep, o_alpha, o_beta, n, c0, c1):
    """Row n, cells c0:c1, from the gates z (N, 4H) (i, f, g, o blocks) and c_prev (N, H):

        f = 1 - i                        (COUPLED; written into z)
        c = f * c_prev + i * g
        o = sigmoid(z_o + w_co * c)      (PEEPHOLES: z holds o's scaled pre-activation;
                                          o_alpha, o_beta its constants; written into z)
        m = o * tanh(c)                  (m = o * c with NO_OUTPUT_ACTIVATION)

    into c_out, tanh_c (tanh(c), or c), m_out (N, H) (with LAYER_NORM, c_out and o only:
    the loop then normalises c, :func:`lstmkit.kernels.layer_norm.cell_row`); ``peep``: see
    :func:`peepholes_of`.
    (One array written per loop: LLVM vectorises a loop only when it can check that its
    arrays do not overlap.)"""
    H = c_prev.shape[1]
    i, f = z[n, c0:c1], z[n, H + c0 : H + c1]
    g, o = z[n, 2 * H + c0 : 2 * H + c1], z[n, 3 * H + c0 : 3 * H + c1]
    cp, c, tc, m = c_prev[n, c0:c1], c_out[n, c0:c1], tanh_c[n, c0:c1], m_out[n, c0:c1]
    if not flags:  # the plain cell in one pass
        for j in range(c1 - c0):
            c_j = f[j] * cp[j] + i[j] * g[j]
            t = tanh(c_j)
            c[j] = c_j
            tc[j] = t
            m[j] = o[j] * t
        return
    if flags & COUPLED:
        for j in range(c1 - c0):
            f[j] = _f32(1.0) - i[j]
    for j in range(c1 - c0):
        c[j] = f[j] * cp[j] + i[j] * g[j]
    if flags & PEEPHOLES:
        w_co = peep[2]
        for j in range(c1 - c0):
            o[j] = gate(o[j] + w_co[c0 + j] * c[j], o_alpha, o_beta)
    if flags & LAYER_NORM:
        return
    if flags & NO_OUTPUT_ACTIVATION:
        for j in range(c1 - c0):
            tc[j] = c[j]
    else:
        for j in range(c1 - c0):
            tc[j] = tanh(c[j])
    for j in range(c1 - c0):
        m[j] = o[j] * tc[j]


@_inline
def cell_backward(
    dm, dc, keep, gates, c_prev, tanh_c, dz, dc_prev, dc_total, flags, peep, n, c0, c1
):
    """Row n, cells c0:c1, back through :func:`cell_forward` and the gates.

    dm, dc (N, C), C = c1 - c0: dL/dm and the later steps' dL/dc of those cells (column j
    for cell c0 + j); keep: 1 on a valid step, 0 on a padded one (its gates learn nothing
    and dc passes through unchanged). gates (N, 4H), c_prev, tanh_c (N, H): the forward
    step's. Out: dz (N, 4H) at those cells' gate columns, dL/d of the unscaled
    pre-activations; dc_prev (N, C); dc_total (C,) scratch. The gates' derivatives from
    their outputs: s (1 - s) for i, f, o (0 for a gate switched off, constant 1), 1 - g^2
    for g (1 without its tanh); with COUPLED, f's gradient goes to i (dL/di - dL/df) and
    f's rows get none; with PEEPHOLES, c also reaches o, and c_prev i and f, through the
    unscaled weights ``peep[3:]``; with LAYER_NORM, dc already holds m's share (through
    the norm of c, added by the loop: :func:`lstmkit.kernels.layer_norm.cell_backward_row`).
    (The peephole weights' own gradients are sums over steps and rows: the caller's, from
    dz.)"""
    H = c_prev.shape[1]
    one = _f32(1.0)
    i, f = gates[n, c0:c1], gates[n, H + c0 : H + c1]
    g, o = gates[n, 2 * H + c0 : 2 * H + c1], gates[n, 3 * H + c0 : 3 * H + c1]
    d_i, d_f = dz[n, c0:c1], dz[n, H + c0 : H + c1]
    d_g, d_o = dz[n, 2 * H + c0 : 2 * H + c1], dz[n, 3 * H + c0 : 3 * H + c1]
    cp, tc, dm_n, dc_n, dcp = c_prev[n, c0:c1], tanh_c[n, c0:c1], dm[n], dc[n], dc_prev[n]
    for j in range(c1 - c0):
        d_o[j] = keep * dm_n[j] * tc[j] * o[j] * (one - o[j])
    if flags & LAYER_NORM:  # dL/dc: m's share is in dc (the loop's, through the norm)
        for j in range(c1 - c0):
            dc_total[j] = keep * dc_n[j]
    elif flags & NO_OUTPUT_ACTIVATION:  # dL/dc: through m = o * c, plus the later steps'
        for j in range(c1 - c0):
            dc_total[j] = keep * (dm_n[j] * o[j] + dc_n[j])
    else:  # through m = o * tanh(c)
        for j in range(c1 - c0):
            dc_total[j] = keep * (dm_n[j] * o[j] * (one - tc[j] * tc[j]) + dc_n[j])
    if flags & PEEPHOLES:  # and through o = sigmoid(... + w_co c)
        w_co = peep[5]
        for j in range(c1 - c0):
            dc_total[j] += d_o[j] * w_co[c0 + j]
    if flags & COUPLED:  # f = 1 - i
        for j in range(c1 - c0):
            d_i[j] = dc_total[j] * (g[j] - cp[j]) * i[j] * (one - i[j])
        for j in range(c1 - c0):
            d_f[j] = _f32(0.0)
    else:
        for j in range(c1 - c0):
            d_i[j] = dc_total[j] * g[j] * i[j] * (one - i[j])
        for j in range(c1 - c0):
            d_f[j] = dc_total[j] * cp[j] * f[j] * (one - f[j])
    if flags & NO_INPUT_ACTIVATION:
        for j in range(c1 - c0):
            d_g[j] = dc_total[j] * i[j]
    else:
        for j in range(c1 - c0):
            d_g[j] = dc_total[j] * i[j] * (one - g[j] * g[j])
    for j in range(c1 - c0):
        dcp[j] = dc_total[j] * f[j] + (one - keep) * dc_n[j]
    if flags & PEEPHOLES:  # i and f saw c_prev
        w_ci, w_cf = peep[3], peep[4]
        for j in range(c1 - c0):
            dcp[j] += d_i[j] * w_ci[c0 + j] + d_f[j] * w_cf[c0 + j]
