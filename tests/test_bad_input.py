"""Every bad input gets a clear error naming what was expected and what came.

Nothing is silently broadcast, cast between float types, or accepted with NaN/inf.

Run: .venv/bin/python -m pytest tests/test_bad_input.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk

T, N, I, H = 5, 2, 3, 4
F64 = np.float64


def _lstm(**kw):
    return lk.LSTM(I, H, num_layers=2, dtype=F64, seed=0, **kw)


def _gru(**kw):
    return lk.GRU(I, H, num_layers=2, dtype=F64, seed=0, **kw)


def _x(*shape):
    return np.random.default_rng(0).standard_normal(shape or (T, N, I))


def _state(n=N, LD=2, P=H):
    return np.zeros((LD, n, P)), np.zeros((LD, n, H))


def _nan_at(arr, value=np.nan):
    arr = arr.copy()
    arr.flat[arr.size // 2] = value
    return arr


def _after_forward(layer, x=None, lengths=None):
    layer(_x() if x is None else x, None, lengths)
    return layer


# (id, call, exception, regex the message must match)
FORWARD_CASES = [
    ("x-rank1", lambda: _lstm()(_x(I)), ValueError, r"x: expected shape .*got \(3,\)"),
    ("x-rank4", lambda: _lstm()(_x(1, T, N, I)), ValueError, r"x: expected shape .*\(1, 5, 2, 3\)"),
    ("x-features", lambda: _lstm()(_x(T, N, I + 1)), ValueError, r"I = 3, got \(5, 2, 4\)"),
    ("x-features-unbatched", lambda: _lstm()(_x(T, I + 1)), ValueError, r"I = 3, got \(5, 4\)"),
    ("x-no-steps", lambda: _lstm()(_x(0, N, I)), ValueError, "at least one time step"),
    ("x-no-sequences", lambda: _lstm()(_x(T, 0, I)), ValueError, "at least one"),
    (
        "x-float32-into-f64",
        lambda: _lstm()(_x().astype(np.float32)),
        TypeError,
        "x: expected dtype float64, got float32",
    ),
    (
        "x-float64-into-f32",
        lambda: lk.LSTM(I, H)(_x()),
        TypeError,
        "x: expected dtype float32, got float64",
    ),
    ("x-strings", lambda: _lstm()(np.full((T, N, I), "a")), TypeError, "x: expected a numeric"),
    ("x-nan", lambda: _lstm()(_nan_at(_x())), ValueError, "x: expected finite values, got nan"),
    ("x-inf", lambda: _gru()(_nan_at(_x(), np.inf)), ValueError, "x: expected finite values"),
    (
        "h0-wrong-size",
        lambda: _lstm()(_x(), (np.zeros((2, N, H + 1)), _state()[1])),
        ValueError,
        r"state\[h\]: expected shape \(2, 2, 4\), got \(2, 2, 5\)",
    ),
    (
        "h0-no-broadcast-N",
        lambda: _lstm()(_x(3, 3, I), _state(n=1)),
        ValueError,
        r"state\[h\]: expected shape \(2, 3, 4\), got \(2, 1, 4\)",
    ),
    (
        "h0-no-broadcast-layers",
        lambda: _gru()(_x(3, 3, I), np.zeros((1, 1, H))),
        ValueError,
        r"state: expected shape \(2, 3, 4\), got \(1, 1, 4\)",
    ),
    (
        "h0-wrong-layers",
        lambda: _lstm()(_x(), _state(LD=1)),
        ValueError,
        r"state\[h\]: expected shape \(2, 2, 4\), got \(1, 2, 4\)",
    ),
    (
        "h0-rank2-for-batched",
        lambda: _gru()(_x(), np.zeros((2, H))),
        ValueError,
        r"state: expected shape \(2, 2, 4\), got \(2, 4\)",
    ),
    (
        "h0-batched-for-unbatched",
        lambda: _gru()(_x(T, I), np.zeros((2, 1, H))),
        ValueError,
        r"state: expected shape \(2, 4\), got \(2, 1, 4\)",
    ),
    (
        "c0-wrong-size",
        lambda: _lstm()(_x(), (_state()[0], np.zeros((2, N, H - 1)))),
        ValueError,
        r"state\[c\]: expected shape \(2, 2, 4\), got \(2, 2, 3\)",
    ),
    (
        "c0-proj-size-instead-of-H",
        lambda: _lstm(proj_size=2)(_x(), _state(P=2)[:1] * 2),
        ValueError,
        r"state\[c\]: expected shape \(2, 2, 4\), got \(2, 2, 2\)",
    ),
    (
        "h0-H-instead-of-proj",
        lambda: _lstm(proj_size=2)(_x(), _state()),
        ValueError,
        r"state\[h\]: expected shape \(2, 2, 2\), got \(2, 2, 4\)",
    ),
    (
        "lstm-state-not-tuple",
        lambda: _lstm()(_x(), _state()[0]),
        ValueError,
        r"state: expected a tuple \(h, c\)",
    ),
    (
        "lstm-state-3-parts",
        lambda: _lstm()(_x(), (*_state(), _state()[0])),
        ValueError,
        r"state: expected a tuple \(h, c\)",
    ),
    (
        "h0-float32",
        lambda: _lstm()(_x(), tuple(s.astype(np.float32) for s in _state())),
        TypeError,
        r"state\[h\]: expected dtype float64, got float32",
    ),
    (
        "h0-nan",
        lambda: _lstm()(_x(), (_nan_at(_state()[0]), _state()[1])),
        ValueError,
        r"state\[h\]: expected finite values",
    ),
    (
        "c0-inf",
        lambda: _lstm()(_x(), (_state()[0], _nan_at(_state()[1], -np.inf))),
        ValueError,
        r"state\[c\]: expected finite values, got -inf",
    ),
    (
        "gru-h0-nan",
        lambda: _gru()(_x(), _nan_at(_state()[0])),
        ValueError,
        "state: expected finite values",
    ),
    (
        "lengths-zero",
        lambda: _lstm()(_x(), None, [0, 3]),
        ValueError,
        r"lengths: expected every length in 1\.\.5 .*got min 0",
    ),
    (
        "lengths-too-long",
        lambda: _lstm()(_x(), None, [6, 3]),
        ValueError,
        r"lengths: expected every length in 1\.\.5 .*max 6",
    ),
    ("lengths-negative", lambda: _gru()(_x(), None, [-1, 3]), ValueError, "lengths: expected"),
    (
        "lengths-count",
        lambda: _lstm()(_x(), None, [3, 3, 3]),
        ValueError,
        r"lengths: expected 2 lengths .*got shape \(3,\)",
    ),
    ("lengths-scalar", lambda: _lstm()(_x(), None, 3), ValueError, "lengths: expected 2 lengths"),
    (
        "lengths-2d",
        lambda: _lstm()(_x(), None, [[3, 3]]),
        ValueError,
        r"lengths: expected 2 lengths .*got shape \(1, 2\)",
    ),
    (
        "lengths-fractional",
        lambda: _lstm()(_x(), None, [2.5, 3]),
        TypeError,
        "lengths: expected integers, got dtype float64",
    ),
    (
        "lengths-nan",
        lambda: _lstm()(_x(), None, [np.nan, 3]),
        TypeError,
        "lengths: expected integers",
    ),
    (
        "lengths-strings",
        lambda: _lstm()(_x(), None, ["2", "3"]),
        TypeError,
        "lengths: expected integers",
    ),
]


BACKWARD_CASES = [
    (
        "backward-before-forward",
        lambda: _lstm().backward(_x(T, N, H)),
        RuntimeError,
        "backward: call forward first",
    ),
    (
        "dy-shape",
        lambda: _after_forward(_lstm()).backward(_x(T, N, H + 1)),
        ValueError,
        r"dy: expected shape \(5, 2, 4\), got \(5, 2, 5\)",
    ),
    (
        "dy-rank",
        lambda: _after_forward(_lstm()).backward(_x(T, H)),
        ValueError,
        r"dy: expected shape \(5, 2, 4\), got \(5, 4\)",
    ),
    (
        "dy-no-broadcast",
        lambda: _after_forward(_lstm()).backward(_x(T, 1, H)),
        ValueError,
        r"dy: expected shape \(5, 2, 4\), got \(5, 1, 4\)",
    ),
    (
        "dy-batch-first-layout",
        lambda: _after_forward(_lstm(batch_first=True), _x(N, T, I)).backward(_x(T, N, H)),
        ValueError,
        r"dy: expected shape \(2, 5, 4\), got \(5, 2, 4\)",
    ),
    (
        "dy-unbatched",
        lambda: _after_forward(_gru(), _x(T, I)).backward(_x(T, 1, H)),
        ValueError,
        r"dy: expected shape \(5, 4\), got \(5, 1, 4\)",
    ),
    (
        "dy-bidirectional-width",
        lambda: _after_forward(_gru(bidirectional=True)).backward(_x(T, N, H)),
        ValueError,
        r"dy: expected shape \(5, 2, 8\), got \(5, 2, 4\)",
    ),
    (
        "dy-float32",
        lambda: _after_forward(_lstm()).backward(_x(T, N, H).astype(np.float32)),
        TypeError,
        "dy: expected dtype float64, got float32",
    ),
    (
        "dy-nan",
        lambda: _after_forward(_lstm()).backward(_nan_at(_x(T, N, H))),
        ValueError,
        "dy: expected finite values, got nan",
    ),
    (
        "dy-inf",
        lambda: _after_forward(_gru()).backward(_nan_at(_x(T, N, H), np.inf)),
        ValueError,
        "dy: expected finite values, got inf",
    ),
    (
        "dstate-h-shape",
        lambda: _after_forward(_lstm()).backward(_x(T, N, H), (np.zeros((2, 1, H)), _state()[1])),
        ValueError,
        r"dstate\[h\]: expected shape \(2, 2, 4\), got \(2, 1, 4\)",
    ),
    (
        "dstate-c-shape",
        lambda: _after_forward(_lstm()).backward(_x(T, N, H), (_state()[0], np.zeros((2, N)))),
        ValueError,
        r"dstate\[c\]: expected shape \(2, 2, 4\), got \(2, 2\)",
    ),
    (
        "dstate-not-tuple",
        lambda: _after_forward(_lstm()).backward(_x(T, N, H), _state()[0]),
        ValueError,
        r"dstate: expected a tuple \(h, c\)",
    ),
    (
        "dstate-gru-shape",
        lambda: _after_forward(_gru()).backward(_x(T, N, H), np.zeros((1, N, H))),
        ValueError,
        r"dstate: expected shape \(2, 2, 4\), got \(1, 2, 4\)",
    ),
    (
        "dstate-nan",
        lambda: _after_forward(_lstm()).backward(_x(T, N, H), (_state()[0], _nan_at(_state()[1]))),
        ValueError,
        r"dstate\[c\]: expected finite values",
    ),
    (
        "dstate-float32",
        lambda: _after_forward(_gru()).backward(_x(T, N, H), np.zeros((2, N, H), np.float32)),
        TypeError,
        "dstate: expected dtype float64, got float32",
    ),
]


def _sd_without(key):
    sd = _lstm().state_dict()
    del sd[key]
    return sd


def _sd_with(**entries):
    sd = _lstm().state_dict()
    sd.update(entries)
    return sd


STATE_DICT_CASES = [
    (
        "missing",
        lambda: _lstm().load_state_dict(_sd_without("bias_hh_l1")),
        ValueError,
        r"missing keys \['bias_hh_l1'\]",
    ),
    (
        "unexpected",
        lambda: _lstm().load_state_dict(_sd_with(weight_hr_l0=np.zeros((2, H)))),
        ValueError,
        r"unexpected keys \['weight_hr_l0'\]",
    ),
    (
        "wrong-shape",
        lambda: _lstm().load_state_dict(_sd_with(weight_hh_l1=np.zeros((4 * H, 3)))),
        ValueError,
        r"weight_hh_l1: expected shape \(16, 4\), got \(16, 3\)",
    ),
    (
        "transposed",
        lambda: _lstm().load_state_dict(_sd_with(weight_ih_l0=np.zeros((I, 4 * H)))),
        ValueError,
        r"weight_ih_l0: expected shape \(16, 3\), got \(3, 16\)",
    ),
    (
        "nan",
        lambda: _lstm().load_state_dict(_sd_with(bias_ih_l0=_nan_at(np.zeros(4 * H)))),
        ValueError,
        "bias_ih_l0: expected finite values",
    ),
    (
        "strings",
        lambda: _lstm().load_state_dict(_sd_with(bias_ih_l0=np.full(4 * H, "x"))),
        TypeError,
        "bias_ih_l0: expected numbers",
    ),
    (
        "gru-into-lstm",
        lambda: _lstm().load_state_dict(_gru().state_dict()),
        ValueError,
        "weight_ih_l0: expected shape",
    ),
    (
        "no-bias-into-bias",
        lambda: _lstm().load_state_dict(_lstm(bias=False).state_dict()),
        ValueError,
        r"missing keys \['bias_ih_l0', 'bias_hh_l0', 'bias_ih_l1', 'bias_hh_l1'\]",
    ),
]


CONSTRUCTOR_CASES = [
    ("hidden-0", lambda: lk.LSTM(3, 0), ValueError, "hidden_size: expected an integer >= 1, got 0"),
    ("hidden-float", lambda: lk.GRU(3, 2.5), ValueError, "hidden_size: expected an integer"),
    ("hidden-bool", lambda: lk.RNN(3, True), ValueError, "hidden_size: expected an integer"),
    ("input-0", lambda: lk.RNN(0, 4), ValueError, "input_size: expected an integer >= 1, got 0"),
    ("layers-0", lambda: lk.GRU(3, 4, num_layers=0), ValueError, "num_layers: expected"),
    (
        "dropout-1.5",
        lambda: lk.LSTM(3, 4, 2, dropout=1.5),
        ValueError,
        r"dropout: expected a probability in \[0, 1\), got 1.5",
    ),
    ("dropout-1", lambda: lk.GRU(3, 4, 2, dropout=1.0), ValueError, "dropout: expected"),
    ("dropout-negative", lambda: lk.RNN(3, 4, 2, dropout=-0.1), ValueError, "dropout: expected"),
    (
        "proj-equal-hidden",
        lambda: lk.LSTM(3, 4, proj_size=4),
        ValueError,
        r"proj_size: expected < hidden_size \(4\), got 4",
    ),
    ("proj-above-hidden", lambda: lk.LSTM(3, 4, proj_size=9), ValueError, "proj_size: expected <"),
    ("proj-negative", lambda: lk.LSTM(3, 4, proj_size=-1), ValueError, "proj_size: expected"),
    (
        "nonlinearity",
        lambda: lk.RNN(3, 4, nonlinearity="foo"),
        ValueError,
        r"nonlinearity: expected 'tanh' or 'relu', got 'foo'",
    ),
    (
        "dtype-int",
        lambda: lk.LSTM(3, 4, dtype=np.int32),
        TypeError,
        "dtype: expected float32 or float64, got int32",
    ),
    ("dtype-half", lambda: lk.GRU(3, 4, dtype=np.float16), TypeError, "got float16"),
]


STEP_CASES = [
    (
        "step-bidirectional",
        lambda: lk.LSTM(I, H, bidirectional=True).step(np.zeros(I, "f4")),
        ValueError,
        "bidirectional",
    ),
    (
        "step-x-size",
        lambda: _lstm().step(_x(N, I + 1)),
        ValueError,
        r"x_t: expected shape \(N, 3\) or \(3,\), got \(2, 4\)",
    ),
    ("step-x-rank", lambda: _lstm().step(_x(T, N, I)), ValueError, r"x_t: expected shape"),
    ("step-x-nan", lambda: _gru().step(_nan_at(_x(N, I))), ValueError, "x_t: expected finite"),
    (
        "step-x-float32",
        lambda: _gru().step(_x(N, I).astype(np.float32)),
        TypeError,
        "x_t: expected dtype float64",
    ),
    (
        "step-state-no-broadcast",
        lambda: _lstm().step(_x(3, I), _state(n=1)),
        ValueError,
        r"state\[h\]: expected shape \(2, 3, 4\), got \(2, 1, 4\)",
    ),
    (
        "step-state-nan",
        lambda: _gru().step(_x(N, I), _nan_at(_state()[0])),
        ValueError,
        "state: expected finite",
    ),
]


ALL_CASES = FORWARD_CASES + BACKWARD_CASES + STATE_DICT_CASES + CONSTRUCTOR_CASES + STEP_CASES


@pytest.mark.parametrize(
    "call, exc, match", [c[1:] for c in ALL_CASES], ids=[c[0] for c in ALL_CASES]
)
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_failed_load_leaves_the_layer_unchanged():
    """Validation happens before any copy: a bad entry late in the dict changes nothing."""
    layer = _lstm()
    before = layer.state_dict()
    sd = {k: v + 1.0 for k, v in before.items()}
    sd["bias_hh_l1"] = np.zeros(3)  # the last key is wrong
    with pytest.raises(ValueError, match="bias_hh_l1"):
        layer.load_state_dict(sd)
    for k, v in layer.state_dict().items():
        assert np.array_equal(v, before[k]), k


def test_valid_edge_inputs_are_accepted():
    """The checks do not reject legitimate input: these must all run."""
    layer = _lstm()
    y, _ = layer(_x(), None, np.array([5.0, 1.0]))  # integer-valued floats are lengths
    y_int, _ = layer(_x(), None, [5, 1])
    assert np.array_equal(y, y_int)
    y_list, _ = layer(_x().tolist())  # nested lists are arrays
    assert np.array_equal(y_list, layer(_x())[0])
    y_int_x, _ = layer(np.ones((T, N, I), dtype=np.int64))  # integers are exact in float
    assert np.array_equal(y_int_x, layer(np.ones((T, N, I)))[0])
    layer(_x(1, 1, I))  # T = 1, N = 1
    layer.backward(np.zeros((1, 1, H)))
    lk.LSTM(3, 4, num_layers=2, dropout=0.999)  # any probability below 1


def test_errors_do_not_break_the_recorded_forward():
    """A rejected backward leaves the tape intact: a correct call afterwards works."""
    layer = _after_forward(_lstm())
    with pytest.raises(ValueError):
        layer.backward(_x(T, N, H + 1))
    dx, _ = layer.backward(_x(T, N, H))
    assert dx.shape == (T, N, I)
