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


# The lean entry (kernels/inference.py: the plain LSTM, the GRU, the RNN) against the
# general path, which runs where the lean one does not apply (lengths given: the same loop,
# every step valid), bit for bit; and its refusals, which leave the general path to validate.

LEAN_CASES = [(1, {}), (6, {}), (3, {"num_layers": 2}), (2, {"batch_first": True}),
              (4, {"bias": False})]  # fmt: skip


def _random_state(layer: Layer, N: int) -> object:
    """A random state of ``layer`` for N sequences, as forward takes it."""
    rng = np.random.default_rng(2)
    parts = [rng.standard_normal(s.shape).astype(np.float32) for s in _as_tuple(layer, N)]
    return tuple(parts) if len(parts) > 1 else parts[0]


def _as_tuple(layer: Layer, N: int) -> tuple[np.ndarray, ...]:
    zero = layer.zero_state(N)
    return zero if isinstance(zero, tuple) else (zero,)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "RNN_relu"])
@pytest.mark.parametrize(("N", "kwargs"), LEAN_CASES)
def test_lean_inference_equals_the_general_path(cell, N, kwargs):
    if cell == "RNN_relu":
        layer = lk.RNN(I, H, nonlinearity="relu", seed=3, **kwargs)
    else:
        layer = getattr(lk, cell)(I, H, seed=3, **kwargs)
    layer.eval()
    x = _x(N).transpose(1, 0, 2).copy() if kwargs.get("batch_first") else _x(N)
    x_tm = x.transpose(1, 0, 2) if kwargs.get("batch_first") else x
    for s in (None, _random_state(layer, N)):
        y, state = layer(x, s, inference=True)
        lean = layer.__dict__["_inferrer_kept"][1]
        assert lean(x_tm, s, [{} for _ in range(layer.num_layers)]) is not None  # it applies
        y_ref, state_ref = layer(x, s, lengths=[T] * N, inference=True)
        np.testing.assert_array_equal(y, y_ref)
        for part, ref in zip(_parts(state), _parts(state_ref), strict=True):
            np.testing.assert_array_equal(part, ref)


def _parts(state: object) -> tuple[np.ndarray, ...]:
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize(
    ("cell", "inputs", "execution"),
    [
        ("GRU", I, lk.Execution(small_h=0)),  # BLAS in the loop (on one thread)
        ("RNN", I, lk.Execution(small_h=0)),
        ("GRU", 130, lk.Execution()),  # I > blas.BLOCK_INNER: the projection by NumPy
        ("LSTM", 130, lk.Execution()),
    ],
)
def test_lean_inference_on_its_other_branches(cell, inputs, execution):
    """Where the h cells' loop calls BLAS for its products, and where the projection is
    NumPy's GEMM rather than the compiled call's: the general path's bits there too."""
    layer = getattr(lk, cell)(inputs, H, seed=4)
    layer.eval()
    layer.execution = execution
    x = np.random.default_rng(1).standard_normal((T, 3, inputs)).astype(np.float32)
    y, state = layer(x, inference=True)
    assert layer.__dict__["_inferrer_kept"][1](x, None, [{}]) is not None  # it applies
    y_ref, state_ref = layer(x, lengths=[T] * 3, inference=True)
    np.testing.assert_array_equal(y, y_ref)
    for part, ref in zip(_parts(state), _parts(state_ref), strict=True):
        np.testing.assert_array_equal(part, ref)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_lean_inference_refuses_what_the_general_path_validates(cell):
    layer = _layer(cell, 0)
    x = _x(2)
    bad = x.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValueError, match="x"):
        layer(bad, inference=True)
    wrong = tuple(np.zeros((1, 3, H), np.float32) for _ in _as_tuple(layer, 3))
    with pytest.raises(ValueError, match="state"):
        layer(x, wrong if len(wrong) > 1 else wrong[0], inference=True)
    with pytest.raises(TypeError, match="float64"):
        layer(x.astype(np.float64), inference=True)
    nan_state = tuple(np.full(s.shape, np.nan, np.float32) for s in _as_tuple(layer, 2))
    with pytest.raises(ValueError, match="state"):
        layer(x, nan_state if len(nan_state) > 1 else nan_state[0], inference=True)


@pytest.mark.parametrize("own", [False, True])
@pytest.mark.parametrize("name", ["weight_ih_l0", "weight_hh_l0"])
def test_split_loops_see_an_in_place_update(name, own):
    """The loops split by cells keep their weight columns between inference calls
    (kernels/lstm.py ``_kept_columns``): one changed weight is seen at the next call, also
    where each thread projects x before its loop (``own``)."""
    layer = _layer("LSTM", 0)
    # the split loops at this small size (own: the per-thread projection too)
    layer.execution = lk.Execution(split_from=0, project_in_loop_inference=0 if own else 2**20)
    x = _x(6)
    before = layer(x, inference=True)[0]
    assert np.array_equal(layer(x, inference=True)[0], before)  # kept, and the same
    layer.parameters()[name][5, 1] += np.float32(0.5)
    after = layer(x, inference=True)[0]
    assert not np.array_equal(after, before)
    oracle = _layer("LSTM", 99)
    oracle.execution = layer.execution
    oracle.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(after, oracle(x, inference=True)[0])


# The LSTM's loop at few rows with W_hh in panels (kernels/panels.py, lstm_inference.py's
# _loop_panels: H a multiple of panels.CELLS): the general path's bits, and its kept
# weights (the panels, W_ih in the panels' column order) renewed when the weights change.

PANEL_H = 16


PANEL_CASES = [(1, {}), (2, {}), (3, {"num_layers": 2}), (1, {"bias": False}),
               (5, {"batch_first": True})]  # fmt: skip


@pytest.mark.parametrize(("N", "kwargs"), PANEL_CASES)
def test_panel_loop_equals_the_general_path(N, kwargs):
    layer = lk.LSTM(I, PANEL_H, seed=5, **kwargs)
    layer.eval()
    x = _x(N).transpose(1, 0, 2).copy() if kwargs.get("batch_first") else _x(N)
    for s in (None, _random_state(layer, N)):
        y, state = layer(x, s, inference=True)
        y_ref, state_ref = layer(x, s, lengths=[T] * N, inference=True)
        np.testing.assert_array_equal(y, y_ref)
        for part, ref in zip(state, state_ref, strict=True):
            np.testing.assert_array_equal(part, ref)
    spaces = layer._free_workspaces[-1]
    assert all("W_hh_panels" in space for space in spaces)  # the panel loop ran


@pytest.mark.parametrize("name", ["weight_ih_l0", "weight_hh_l0", "bias_hh_l0"])
def test_panel_loop_sees_an_in_place_update(name):
    layer = lk.LSTM(I, PANEL_H, seed=6)
    layer.eval()
    x = _x(1)
    before = layer(x, inference=True)[0]
    assert np.array_equal(layer(x, inference=True)[0], before)  # kept, and the same
    w = layer.parameters()[name]
    w[(5, 1) if w.ndim == 2 else 5] += np.float32(0.5)
    after = layer(x, inference=True)[0]
    assert not np.array_equal(after, before)
    oracle = lk.LSTM(I, PANEL_H, seed=99)
    oracle.eval()
    oracle.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(after, oracle(x, inference=True)[0])
