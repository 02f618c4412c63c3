"""Streaming: one time step of a stack of LSTM layers on a compiled kernel.

The layer prepares a stepper once per execution (:func:`prepare`: which compiled step runs
each layer, with which of its live weights and gate constants) and calls it at every step;
the stepper returns None whenever it does not apply (inputs that are not float32 arrays of
the expected shapes, or not finite), and the layer then takes its reference path, which
also does the validation and raises the errors. Per call, the Python work is a few checks
and one compiled call per layer. The kernels read the live weights (a module's arrays are
updated in place, never replaced), so an optimiser's update is seen at the next step.
Large layers (from ``ex.parallel_weights`` floats: beyond ~1 MB, a core's L2, a step is
bound by one core's bandwidth) split the weight rows across numba's threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from lstmkit.kernels import compiled, parallel
from lstmkit.kernels.execution import Execution
from lstmkit.kernels.lstm_cell import gate_constants

Stepper = Callable[[Any, Any], "tuple[np.ndarray, Any] | None"]
# (kernel, its arguments after (x, h, c, h_out, c_out)) for each layer
Layers = tuple[tuple[Callable[..., None], tuple[Any, ...]], ...]


def prepare(params: list[dict[str, np.ndarray]], ex: Execution, **options: Any) -> Stepper:
    """The step of L stacked layers (one direction), ``params[k]`` the k-th layer's
    ``{"W_ih", "W_hh", "b_ih", "b_hh", "W_hr", "w_ci", "w_cf", "w_co"}`` (float32; biases,
    ``W_hr`` and the peepholes optional), ``options`` the gate constants' keywords and the
    regularisers' rates (a step is evaluation: no recurrent dropout, zoneout's expectation
    ``z s_prev + (1 - z) s``): a function (x_t, state) -> (y_t, (h, c)) or None (see
    :func:`step`)."""
    if options.get("layer_norm"):
        raise ValueError("the streaming step has no layer norm: expected layer_norm=False")
    P, H = params[0]["W_hh"].shape[1], params[0]["W_hh"].shape[0] // 4
    no_bias, no_proj = np.empty(0, np.float32), np.empty((0, H), np.float32)
    zones = (np.float32(options.pop("zoneout_h", 0.0)), np.float32(options.pop("zoneout_c", 0.0)))
    options.pop("recurrent_dropout", None)  # off in evaluation
    g = gate_constants(H, **options)
    layers: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
    for p in params:
        W_ih, W_hh = p["W_ih"], p["W_hh"]
        biases = (p.get("b_ih", no_bias), p.get("b_hh", no_bias))
        weights = (W_ih, W_hh, *biases, p.get("W_hr", no_proj), g.scale, g.alpha, g.beta)
        big = W_ih.size + W_hh.size >= ex.parallel_weights
        threads = parallel.most_threads(ex) if big else 1
        if threads == 1 and not g.flags:
            layers.append((compiled.step_plain, weights))
            continue
        peep = tuple(p.get(name, no_bias) for name in ("w_ci", "w_cf", "w_co"))
        if threads > 1:
            layers.append((compiled.step_parallel, (*weights, g.flags, *peep, threads)))
        else:
            layers.append((compiled.step, (*weights, g.flags, *peep)))
    zoned = zones if zones[0] or zones[1] else None
    return functools.partial(step, tuple(layers), params[0]["W_ih"].shape[1], P, H, zoned)


def _as_batch(state: Any, shape: tuple[int, ...], unbatched: bool) -> np.ndarray | None:
    ok = isinstance(state, np.ndarray) and state.dtype == np.float32 and state.shape == shape
    if not ok:
        return None
    return state[:, None, :] if unbatched else state


def step(
    layers: Layers,
    I: int,
    P: int,
    H: int,
    zones: tuple[np.float32, np.float32] | None,
    x_t: Any,
    state: Any,
) -> tuple[np.ndarray, Any] | None:
    """One step of the prepared ``layers``: x_t (N, I) or (I,), state (h (L, N, P),
    c (L, N, H)) or None -> (y_t, (h, c)), or None where the fast path does not apply.
    ``zones``: zoneout's rates (z_h, z_c), each layer's new state then
    ``z s_prev + (1 - z) s``, or None."""
    if not isinstance(x_t, np.ndarray) or x_t.dtype != np.float32:
        return None
    if x_t.ndim not in (1, 2) or x_t.shape[-1] != I:
        return None
    if x_t.ndim == 2 and x_t.shape[0] == 0:  # no sequence: the layer's check refuses it
        return None
    unbatched = x_t.ndim == 1
    x = x_t[None, :] if unbatched else x_t
    N, L = x.shape[0], len(layers)
    lead = (L,) if unbatched else (L, N)
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    if state is None:
        h0, c0 = np.zeros((L, N, P), np.float32), np.zeros((L, N, H), np.float32)
    elif isinstance(state, tuple | list) and len(state) == 2:
        h0 = _as_batch(state[0], (*lead, P), unbatched)
        c0 = _as_batch(state[1], (*lead, H), unbatched)
    if h0 is None or c0 is None or not compiled.all_finite(x, h0, c0):
        return None
    h_n, c_n = np.empty((L, N, P), np.float32), np.empty((L, N, H), np.float32)
    for k, (kernel, weights) in enumerate(layers):
        kernel(x, h0[k], c0[k], h_n[k], c_n[k], *weights)
        if zones is not None:
            for s_prev, s_new, z in ((h0[k], h_n[k], zones[0]), (c0[k], c_n[k], zones[1])):
                if z:
                    np.add(z * s_prev, (np.float32(1.0) - z) * s_new, out=s_new)
        x = h_n[k]
    y = x[0].copy() if unbatched else x.copy()
    if unbatched:
        return y, (h_n[:, 0, :], c_n[:, 0, :])
    return y, (h_n, c_n)
