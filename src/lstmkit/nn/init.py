"""Initialisation schemes beyond torch's default U(-1/sqrt(H), 1/sqrt(H)).

Each function changes a layer's parameters in place and returns the layer, so
they compose: ``lk.init.chrono_(lk.init.orthogonal_(lk.LSTM(8, 64)), T_max=200)``.
Randomness comes from the ``rng`` argument (a seed or a Generator), never global.

For the LSTM, torch's two bias vectors are summed by the cell, so a target
total bias is written into ``bias_ih`` and ``bias_hh`` is zeroed for those rows.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from lstmkit.nn.cells import LSTMCell

Layer = TypeVar("Layer", bound=Any)


def _gate_rows(layer: Any, gate: int) -> slice:
    H = layer.hidden_size
    return slice(gate * H, (gate + 1) * H)


def _lstm_biases(layer: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(layer.cell, LSTMCell):
        raise TypeError(f"expected an LSTM, got {type(layer).__name__}")
    if not layer.bias:
        raise ValueError("this initialisation sets biases, but the layer has bias=False")
    params = layer.parameters()
    return [
        (params[name], params[name.replace("bias_ih", "bias_hh")])
        for name in params
        if name.startswith("bias_ih")
    ]


def orthogonal_(layer: Layer, rng: int | np.random.Generator | None = None) -> Layer:
    """Make each gate's block of every recurrent matrix W_hh (G*H, P) orthogonal."""
    rng = np.random.default_rng(rng)
    G, H = layer.cell.num_gates, layer.hidden_size
    for name, w in layer.parameters().items():
        if name.startswith("weight_hh"):
            for gate in range(G):
                a = rng.standard_normal((H, w.shape[1]))
                u, _, vt = np.linalg.svd(a, full_matrices=False)
                w[gate * H : (gate + 1) * H] = u @ vt
    return layer


def forget_bias_(layer: Layer, value: float = 1.0) -> Layer:
    """Set the forget gate's total bias to ``value`` (Gers et al. 2000; Jozefowicz et al. 2015)."""
    f = _gate_rows(layer, 1)
    for b_ih, b_hh in _lstm_biases(layer):
        b_ih[f] = value
        b_hh[f] = 0.0
    return layer


def chrono_(layer: Layer, T_max: float, rng: int | np.random.Generator | None = None) -> Layer:
    """Chrono initialisation (Tallec & Ollivier 2018) for dependencies up to ``T_max`` steps.

    b_f ~ log(U[1, T_max - 1]) and b_i = -b_f, so the forget gate's characteristic
    time scales spread over [1, T_max].
    """
    if T_max <= 2:
        raise ValueError(f"T_max: expected > 2, got {T_max}")
    rng = np.random.default_rng(rng)
    i, f = _gate_rows(layer, 0), _gate_rows(layer, 1)
    for b_ih, b_hh in _lstm_biases(layer):
        b_f = np.log(rng.uniform(1.0, T_max - 1.0, size=layer.hidden_size))
        b_ih[f], b_hh[f] = b_f, 0.0
        b_ih[i], b_hh[i] = -b_f, 0.0
    return layer
