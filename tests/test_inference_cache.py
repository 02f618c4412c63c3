"""Inference sees the live weights: whatever a layer prepares or reuses between calls (the
fused kernels' scaled, transposed weights in reused workspace arrays), the next call after
an in-place update, ``load_state_dict`` or an optimiser's step uses the new weights.

The oracle is a second layer, built fresh, given the same weights by ``load_state_dict``
and run once: it has nothing kept from an earlier call. Both run the same kernels, so the
results must agree bit for bit; each test also checks that the weights' change changed y
(so that it can fail).
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.nn.optim import SGD

# (cell, N): one sequence (the compiled whole-sequence loops) and a small batch
Layer = lk.LSTM | lk.GRU | lk.RNN
CASES = [(cell, N) for cell in ("LSTM", "GRU", "RNN") for N in (1, 6)]
I, H, T = 5, 8, 7


def _layer(cell: str, seed: int) -> Layer:
    layer = getattr(lk, cell)(I, H, seed=seed)
    layer.eval()
    return layer


def _x(N: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((T, N, I)).astype(np.float32)


def _fresh_output(layer: Layer, x: np.ndarray) -> np.ndarray:
    """y of a new layer holding ``layer``'s weights, run for the first time."""
    oracle = _layer(type(layer).__name__, seed=99)
    oracle.load_state_dict(layer.state_dict())
    return oracle(x, inference=True)[0]


@pytest.mark.parametrize(("cell", "N"), CASES)
def test_in_place_update_is_seen(cell, N):
    layer, x = _layer(cell, 0), _x(N)
    before = layer(x, inference=True)[0]  # fills whatever is reused
    for w in layer.parameters().values():
        w *= np.float32(0.75)  # in place, as an optimiser does
    after = layer(x, inference=True)[0]
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _fresh_output(layer, x))


@pytest.mark.parametrize(("cell", "N"), CASES)
def test_load_state_dict_is_seen(cell, N):
    layer, other, x = _layer(cell, 0), _layer(cell, 1), _x(N)
    before = layer(x, inference=True)[0]
    layer.load_state_dict(other.state_dict())
    after = layer(x, inference=True)[0]
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, other(x, inference=True)[0])


@pytest.mark.parametrize(("cell", "N"), CASES)
def test_optimiser_step_is_seen(cell, N):
    layer, x = _layer(cell, 0), _x(N)
    before = layer(x, inference=True)[0]
    layer.train()
    y, _ = layer(x)
    layer.backward(np.ones_like(y))
    SGD(layer._params, layer.grads, lr=0.1).step()
    layer.eval()
    after = layer(x, inference=True)[0]
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _fresh_output(layer, x))
