"""Streaming (``step``) against the full forward, initialisation schemes, and activations().

Run: .venv/bin/python -m pytest tests/test_step_init.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import parts

import lstmkit as lk

# ---- streaming ----------------------------------------------------------------------------

STREAM_LAYERS = {
    "LSTM-L1": lambda: lk.LSTM(3, 4, dtype=np.float64, seed=0),
    "LSTM-L3-proj2": lambda: lk.LSTM(3, 4, num_layers=3, proj_size=2, dtype=np.float64, seed=1),
    "GRU-L2": lambda: lk.GRU(3, 4, num_layers=2, dtype=np.float64, seed=2),
    "RNN-L2-relu": lambda: lk.RNN(3, 4, 2, nonlinearity="relu", dtype=np.float64, seed=3),
    "RNN-L1-tanh-nobias": lambda: lk.RNN(3, 4, bias=False, dtype=np.float64, seed=4),
    "LSTM-L2-dropout-eval": lambda: lk.LSTM(3, 4, 2, dropout=0.5, dtype=np.float64, seed=5).eval(),
}


def _initial_state(layer, N, unbatched, rng):
    LD, P, H = layer.num_layers, layer.output_size, layer.hidden_size
    shape = (LD,) if unbatched else (LD, N)
    h = rng.standard_normal((*shape, P))
    return (h, rng.standard_normal((*shape, H))) if isinstance(layer, lk.LSTM) else h


@pytest.mark.parametrize("given_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("name", list(STREAM_LAYERS))
def test_step_by_step_equals_forward(name, unbatched, given_state):
    layer = STREAM_LAYERS[name]()
    rng = np.random.default_rng(0)
    T, N = 6, 3
    x = rng.standard_normal((T, 3) if unbatched else (T, N, 3))
    state0 = _initial_state(layer, N, unbatched, rng) if given_state else None
    y_full, state_full = layer(x, state0)

    state, ys = state0, []
    for t in range(T):
        y_t, state = layer.step(x[t], state)
        assert y_t.shape == y_full[t].shape
        ys.append(y_t)
    np.testing.assert_allclose(np.stack(ys), y_full, rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(state), parts(state_full)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_step_float32_keeps_dtype_and_matches_forward():
    layer = lk.LSTM(3, 5, num_layers=2, proj_size=2, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    y_full, _ = layer(x)
    state, ys = None, []
    for t in range(4):
        y_t, state = layer.step(x[t], state)
        ys.append(y_t)
    assert ys[0].dtype == np.float32 and all(s.dtype == np.float32 for s in state)
    np.testing.assert_allclose(np.stack(ys), y_full, rtol=1e-5, atol=1e-6)


def test_step_does_not_disturb_the_recorded_forward():
    layer = lk.GRU(2, 3, num_layers=2, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 3))
    layer(x)
    dx_ref, dh_ref = layer.backward(dy)
    layer(x)
    layer.step(rng.standard_normal((5, 2)))  # a different batch size in between
    dx, dh = layer.backward(dy)
    assert np.array_equal(dx, dx_ref) and np.array_equal(dh, dh_ref)


@pytest.mark.parametrize("cls", [lk.LSTM, lk.GRU, lk.RNN])
def test_step_refuses_bidirectional(cls):
    layer = cls(2, 3, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(np.zeros((1, 2), np.float32))


# ---- initialisation -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [lk.LSTM, lk.GRU, lk.RNN])
def test_default_init_is_torch_uniform(cls):
    H = 16
    layer = cls(5, H, num_layers=2, bidirectional=True, seed=0)
    k = 1 / np.sqrt(H)
    values = np.concatenate([w.ravel() for w in layer.state_dict().values()])
    assert all(w.dtype == np.float32 for w in layer.state_dict().values())
    assert np.all(np.abs(values) <= k)
    assert values.max() > 0.95 * k and values.min() < -0.95 * k  # fills the interval
    assert abs(values.mean()) < 0.05 * k
    # U(-k, k) has variance k^2 / 3
    assert abs(values.var() / (k * k / 3) - 1) < 0.1
    # every array is drawn separately (no copy between directions or gates)
    sd = layer.state_dict()
    assert not np.array_equal(sd["weight_hh_l0"], sd["weight_hh_l0_reverse"])


@pytest.mark.parametrize("cls", [lk.LSTM, lk.GRU, lk.RNN])
def test_init_is_reproducible_from_the_seed(cls):
    a, b, c = cls(3, 4, 2, seed=7), cls(3, 4, 2, seed=7), cls(3, 4, 2, seed=8)
    g = cls(3, 4, 2, seed=np.random.default_rng(7))
    for name, w in a.state_dict().items():
        assert np.array_equal(w, b.state_dict()[name]), name
        assert np.array_equal(w, g.state_dict()[name]), name
        assert not np.array_equal(w, c.state_dict()[name]), name


@pytest.mark.parametrize(
    "make",
    [
        lambda: lk.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64),
        lambda: lk.LSTM(3, 5, num_layers=2, proj_size=2, dtype=np.float64),
        lambda: lk.GRU(3, 5, num_layers=2, dtype=np.float64),
        lambda: lk.RNN(3, 5, bidirectional=True, dtype=np.float64),
    ],
    ids=["LSTM-bi", "LSTM-proj", "GRU", "RNN"],
)
def test_orthogonal_init(make):
    layer = make()
    before = layer.state_dict()
    assert lk.init.orthogonal_(layer, rng=0) is layer
    G, H = layer.cell.num_gates, layer.hidden_size
    n_checked = 0
    for name, w in layer.state_dict().items():
        if not name.startswith("weight_hh"):
            assert np.array_equal(w, before[name]), f"{name} should be untouched"
            continue
        for gate in range(G):
            q = w[gate * H : (gate + 1) * H]  # (H, P)
            small = min(q.shape)
            gram = q @ q.T if q.shape[0] == small else q.T @ q
            np.testing.assert_allclose(gram, np.eye(small), atol=1e-12, err_msg=name)
            if q.shape[0] == q.shape[1]:
                np.testing.assert_allclose(q.T @ q, np.eye(small), atol=1e-12)
            n_checked += 1
    assert n_checked >= G * 2
    again = make()
    lk.init.orthogonal_(again, rng=0)
    for name, w in layer.state_dict().items():  # same rng: the same orthogonal matrices
        if name.startswith("weight_hh"):
            assert np.array_equal(w, again.state_dict()[name])


def _total_bias(layer, suffix):
    sd = layer.state_dict()
    return sd["bias_ih" + suffix] + sd["bias_hh" + suffix]


@pytest.mark.parametrize("value", [1.0, -2.5])
def test_forget_bias(value):
    layer = lk.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    before = layer.state_dict()
    assert lk.init.forget_bias_(layer, value) is layer
    H = 4
    for suffix in ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]:
        total = _total_bias(layer, suffix)
        np.testing.assert_allclose(total[H : 2 * H], value, rtol=0, atol=1e-15)
        old = before["bias_ih" + suffix] + before["bias_hh" + suffix]
        np.testing.assert_array_equal(
            np.delete(total, np.s_[H : 2 * H]), np.delete(old, np.s_[H : 2 * H])
        )
    for name, w in layer.state_dict().items():
        if name.startswith("weight"):
            assert np.array_equal(w, before[name])


def test_chrono_init():
    T_max, H = 50, 32
    layer = lk.LSTM(3, H, num_layers=2, dtype=np.float64, seed=0)
    before = layer.state_dict()
    assert lk.init.chrono_(layer, T_max, rng=1) is layer
    for suffix in ["_l0", "_l1"]:
        total = _total_bias(layer, suffix)
        b_i, b_f = total[:H], total[H : 2 * H]
        assert np.all(b_f >= 0.0) and np.all(b_f <= np.log(T_max - 1))
        np.testing.assert_allclose(b_i, -b_f, atol=1e-15)
        assert b_f.std() > 0.3  # spread over time scales, not one constant
        old = before["bias_ih" + suffix] + before["bias_hh" + suffix]
        np.testing.assert_array_equal(total[2 * H :], old[2 * H :])  # g and o untouched
    # the forget gate's time scale 1 / (1 - sigmoid(b_f)) lies in [2, T_max]
    time_scale = 1.0 + np.exp(_total_bias(layer, "_l0")[H : 2 * H])
    assert time_scale.min() >= 2.0 - 1e-12 and time_scale.max() <= T_max + 1e-9


def test_init_is_reachable_as_lk_init():
    """``import lstmkit as lk`` alone gives lk.init (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = "import lstmkit as lk; lk.init.chrono_(lk.init.orthogonal_(lk.LSTM(2, 4)), T_max=9)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_init_refuses_what_it_cannot_do():
    with pytest.raises(TypeError, match="expected an LSTM"):
        lk.init.forget_bias_(lk.GRU(2, 3))
    with pytest.raises(ValueError, match="bias=False"):
        lk.init.chrono_(lk.LSTM(2, 3, bias=False), 10)
    with pytest.raises(ValueError, match="T_max"):
        lk.init.chrono_(lk.LSTM(2, 3), 2)


# ---- activations --------------------------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_lstm_activations_match_the_equations():
    """i, f, g, o recomputed in numpy from the weights, for every step, layer and direction."""
    layer = lk.LSTM(2, 3, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    T, N, H = 3, 2, 3
    x = rng.standard_normal((T, N, 2))
    h0, c0 = rng.standard_normal((4, N, H)), rng.standard_normal((4, N, H))
    y, _ = layer(x, (h0, c0))
    acts = layer.activations()
    assert set(acts) == {"_l0", "_l0_reverse", "_l1", "_l1_reverse"}
    sd = layer.state_dict()
    for layer_idx, inp in [(0, x), (1, None)]:
        if inp is None:  # layer 1 reads both directions of layer 0
            inp = np.concatenate([acts["_l0"]["m"], acts["_l0_reverse"]["m"]], axis=2)
        for d, sfx in enumerate([f"_l{layer_idx}", f"_l{layer_idx}_reverse"]):
            W_ih, W_hh = sd["weight_ih" + sfx], sd["weight_hh" + sfx]
            b = sd["bias_ih" + sfx] + sd["bias_hh" + sfx]
            h, c = h0[2 * layer_idx + d], c0[2 * layer_idx + d]
            for t in reversed(range(T)) if d else range(T):
                z = inp[t] @ W_ih.T + h @ W_hh.T + b
                i, f = _sigmoid(z[:, :H]), _sigmoid(z[:, H : 2 * H])
                g, o = np.tanh(z[:, 2 * H : 3 * H]), _sigmoid(z[:, 3 * H :])
                for name, want in [("i", i), ("f", f), ("g", g), ("o", o)]:
                    got = acts[sfx][name]
                    assert got.shape == (T, N, H)
                    np.testing.assert_allclose(got[t], want, rtol=1e-12, err_msg=f"{sfx} {name}")
                np.testing.assert_allclose(acts[sfx]["c_prev"][t], c, rtol=1e-12)
                np.testing.assert_allclose(acts[sfx]["h_prev"][t], h, rtol=1e-12)
                c = f * c + i * g
                h = o * np.tanh(c)
            if layer_idx == 1:
                np.testing.assert_allclose(y[:, :, d * H : (d + 1) * H][0 if d else -1], h)


def test_gru_activations_match_the_equations():
    layer = lk.GRU(2, 3, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x, h = rng.standard_normal((3, 2, 2)), rng.standard_normal((1, 2, 3))
    layer(x, h)
    acts, sd, H = layer.activations()["_l0"], layer.state_dict(), 3
    h = h[0]
    for t in range(3):
        xw = x[t] @ sd["weight_ih_l0"].T + sd["bias_ih_l0"]
        hw = h @ sd["weight_hh_l0"].T + sd["bias_hh_l0"]
        r = _sigmoid(xw[:, :H] + hw[:, :H])
        z = _sigmoid(xw[:, H : 2 * H] + hw[:, H : 2 * H])
        n = np.tanh(xw[:, 2 * H :] + r * hw[:, 2 * H :])
        for name, want in [("r", r), ("z", z), ("n", n)]:
            np.testing.assert_allclose(acts[name][t], want, rtol=1e-12, err_msg=name)
        h = (1 - z) * n + z * h


def test_activations_before_forward_raises():
    with pytest.raises(RuntimeError, match="forward first"):
        lk.LSTM(2, 3).activations()
