"""The LSTM variants' behaviour beyond their equations (tests/test_variants_oracle.py) and
gradients (tests/test_gradcheck.py): the masks of recurrent dropout and zoneout (the same
at every step, per step, the expectation in evaluation, reproducible from the seed),
streaming, state dicts, refusals (torch, the fused kernel, contradictory options).

Run: .venv/bin/python -m pytest tests/test_variants.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk

GATE_VARIANTS = [
    dict(peepholes=True),
    dict(coupled_gates=True),
    dict(input_gate=False),
    dict(output_gate=False),
    dict(input_activation=False),
    dict(output_activation=False),
    dict(layer_norm=True),
    dict(gate_recurrence=True),
    dict(peepholes=True, layer_norm=True, coupled_gates=True),
]
ALL_VARIANTS = GATE_VARIANTS + [dict(recurrent_dropout=0.3), dict(zoneout=(0.2, 0.4))]


def _ids(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items())


def _x(T: int = 6, N: int = 3, I: int = 4, seed: int = 0, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((T, N, I)).astype(dtype)


# ---- recurrent dropout: one mask per sequence, the same at every step -------------------------


def test_recurrent_dropout_masks_are_the_same_at_every_step():
    p = 0.5
    layer = lk.LSTM(4, 6, num_layers=2, bidirectional=True, dtype=np.float64, seed=1,
                    recurrent_dropout=p)  # fmt: skip
    x = _x(T=7, N=40)
    y, _ = layer(x)
    dx, _ = layer.backward(np.ones_like(y))
    masks, acts = layer.masks(), layer.activations()
    assert sorted(masks) == ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]
    for sfx, m in masks.items():
        I = 4 if sfx.startswith("_l0") else 12
        assert m["x_mask"].shape == (40, I) and m["h_mask"].shape == (40, 6)
        for mask in (m["x_mask"], m["h_mask"]):  # inverted dropout: 0 or 1 / (1 - p)
            assert set(np.unique(mask)) == {0.0, 1.0 / (1.0 - p)}
            assert 0.3 < np.mean(mask == 0) < 0.7
        # the h entering W_hh is zero in the dropped units at every step, scaled elsewhere
        h_prev = acts[sfx]["h_prev"]  # (T, N, P): the masked h the cell saw
        dropped = m["h_mask"] == 0
        assert np.all(h_prev[:, dropped] == 0.0)
        after_first = h_prev[:-1] if sfx.endswith("reverse") else h_prev[1:]  # h_0 = 0
        assert np.all(after_first[:, ~dropped] != 0.0)
    # the input's entries dropped by both directions get no gradient, at every step
    both = (masks["_l0"]["x_mask"] == 0) & (masks["_l0_reverse"]["x_mask"] == 0)
    assert both.any() and np.all(dx[:, both] == 0.0)
    assert not np.array_equal(masks["_l0"]["x_mask"], masks["_l0_reverse"]["x_mask"])


def test_recurrent_dropout_is_off_in_evaluation():
    kwargs = dict(num_layers=2, bidirectional=True, dtype=np.float64, seed=2)
    layer = lk.LSTM(4, 5, recurrent_dropout=0.4, **kwargs)
    plain = lk.LSTM(4, 5, **kwargs)
    x = _x()
    layer.eval()
    y, state = layer(x)
    y_plain, state_plain = plain(x)
    assert np.array_equal(y, y_plain)
    assert all(np.array_equal(a, b) for a, b in zip(state, state_plain))
    assert all(m == {} for m in layer.masks().values())
    assert not np.allclose(layer.train()(x)[0], y_plain)


# ---- zoneout: per-step masks, the expectation in evaluation ---------------------------------


def test_zoneout_keeps_previous_values_where_the_mask_says():
    zc, zh = 0.3, 0.6
    layer = lk.LSTM(3, 8, dtype=np.float64, seed=3, zoneout=(zc, zh))
    x = _x(T=30, N=20, I=3)
    layer(x)
    m = layer.masks()["_l0"]
    acts = layer.activations()["_l0"]
    assert m["zoneout_c"].shape == (30, 20, 8) and m["zoneout_h"].shape == (30, 20, 8)
    assert abs(m["zoneout_c"].mean() - zc) < 0.05 and abs(m["zoneout_h"].mean() - zh) < 0.05
    assert not np.array_equal(m["zoneout_c"][0], m["zoneout_c"][1])  # a new mask each step
    for state, key in (("c_prev", "zoneout_c"), ("h_prev", "zoneout_h")):
        s = acts[state]  # the state entering each step: s[t + 1] left step t
        kept = m[key][:-1] == 1.0
        assert np.array_equal(s[1:][kept], s[:-1][kept])
        assert np.all(s[1:][~kept] != s[:-1][~kept])


def test_zoneout_evaluation_is_the_expectation_and_deterministic():
    zc, zh = 0.25, 0.5
    layer = lk.LSTM(3, 5, dtype=np.float64, seed=4, zoneout_c=zc, zoneout_h=zh).eval()
    plain = lk.LSTM(3, 5, dtype=np.float64, seed=4)
    x = _x(T=5, N=2, I=3)
    state = _x(T=1, N=2, I=5, seed=9), _x(T=1, N=2, I=5, seed=10)
    y, (h_n, c_n) = layer(x, state)
    rng_before = layer._rng.bit_generator.state
    assert np.array_equal(layer(x, state)[0], y)  # no randomness in evaluation
    assert layer._rng.bit_generator.state == rng_before
    # by hand, with the plain cell's step: s_t = z * s_{t-1} + (1 - z) * new
    h, c = state
    for t in range(5):
        _, (h_new, c_new) = plain(x[t : t + 1], (h, c))
        h, c = zh * h + (1 - zh) * h_new, zc * c + (1 - zc) * c_new
        np.testing.assert_allclose(y[t], h[0], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h_n, h, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(c_n, c, rtol=1e-14, atol=1e-15)


def test_zoneout_argument_forms():
    assert lk.LSTM(2, 3, zoneout=0.1).options.zoneout_c == 0.1
    o = lk.LSTM(2, 3, zoneout=(0.1, 0.2)).options
    assert (o.zoneout_c, o.zoneout_h) == (0.1, 0.2)
    with pytest.raises(ValueError, match="either zoneout or zoneout_c"):
        lk.LSTM(2, 3, zoneout=0.1, zoneout_h=0.2)
    for bad in (dict(zoneout_c=1.0), dict(zoneout_h=-0.1), dict(recurrent_dropout=1.5)):
        with pytest.raises(ValueError, match="expected a probability in"):
            lk.LSTM(2, 3, **bad)


# ---- reproducibility -----------------------------------------------------------------------


@pytest.mark.parametrize("options", [dict(recurrent_dropout=0.3), dict(zoneout=(0.2, 0.4)),
                                     dict(recurrent_dropout=0.2, zoneout=0.3, dropout=0.5)],
                         ids=_ids)  # fmt: skip
def test_masks_reproducible_from_the_seed(options):
    make = lambda: lk.LSTM(4, 5, num_layers=2, bidirectional=True, seed=7, **options)  # noqa: E731
    a, b = make(), make()
    x = _x(dtype=np.float32)
    y_a, y_b = a(x)[0], b(x)[0]
    assert np.array_equal(y_a, y_b)
    for sfx, m in a.masks().items():
        assert all(np.array_equal(v, b.masks()[sfx][k]) for k, v in m.items())
    state = a._rng.bit_generator.state
    y_a2 = a(x)[0]  # the generator advanced: new masks
    assert not np.array_equal(y_a, y_a2)
    a._rng.bit_generator.state = state  # restored (as Model.set_rng_state does): same again
    assert np.array_equal(a(x)[0], y_a2)


# ---- streaming, state dicts, layouts ---------------------------------------------------------


@pytest.mark.parametrize("options", ALL_VARIANTS, ids=_ids)
def test_step_equals_forward_in_evaluation(options):
    layer = lk.LSTM(3, 5, num_layers=2, proj_size=2, dtype=np.float64, seed=5, **options)
    layer.train()  # step always runs as in evaluation
    x = _x(T=6, N=2, I=3)
    y_eval, state_eval = layer.eval()(x)
    layer.train()
    state = None
    for t in range(6):
        y_t, state = layer.step(x[t], state)
        np.testing.assert_allclose(y_t, y_eval[t], rtol=1e-13, atol=1e-14)
    for a, b in zip(state, state_eval):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("options", GATE_VARIANTS, ids=_ids)
def test_state_dict_round_trip(options):
    kwargs = dict(num_layers=2, bidirectional=True, proj_size=2, **options)
    a = lk.LSTM(3, 4, seed=1, **kwargs)
    b = lk.LSTM(3, 4, seed=2, **kwargs)
    x = _x(dtype=np.float32, I=3)
    assert not np.array_equal(a(x)[0], b(x)[0])
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a(x)[0], b(x)[0])
    if options.get("peepholes") or options.get("layer_norm"):
        with pytest.raises(ValueError, match="unexpected keys"):
            lk.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2).load_state_dict(
                a.state_dict()
            )


def test_parameter_names_and_shapes():
    layer = lk.LSTM(3, 4, num_layers=2, bidirectional=True, peepholes=True, layer_norm=True)
    shapes = {k: v.shape for k, v in layer.state_dict().items()}
    for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        for name in ("weight_ci", "weight_cf", "weight_co", "weight_ln_c", "bias_ln_c"):
            assert shapes[name + sfx] == (4,)
        assert shapes["weight_ln_ih" + sfx] == shapes["weight_ln_hh" + sfx] == (16,)
        assert shapes["bias_ih" + sfx] == (16,)  # torch's biases, the norms' shifts
    p = layer.parameters()
    assert np.all(p["weight_ln_ih_l0"] == 1) and np.all(p["bias_ln_c_l1_reverse"] == 0)
    no_bias = lk.LSTM(3, 4, layer_norm=True, bias=False).state_dict()
    assert sorted(no_bias) == ["weight_hh_l0", "weight_ih_l0", "weight_ln_c_l0",
                               "weight_ln_hh_l0", "weight_ln_ih_l0"]  # fmt: skip


@pytest.mark.parametrize("options", ALL_VARIANTS, ids=_ids)
def test_layouts_agree(options):
    """batch_first, unbatched and per-sequence lengths on a variant: the same numbers."""
    kwargs = dict(num_layers=2, bidirectional=True, dtype=np.float64, **options)
    tm = lk.LSTM(3, 4, seed=6, **kwargs).eval()
    bf = lk.LSTM(3, 4, seed=6, batch_first=True, **kwargs).eval()
    x = _x(T=5, N=3, I=3)
    y, state = tm(x, lengths=[5, 2, 4])
    y_bf, state_bf = bf(x.transpose(1, 0, 2), lengths=[5, 2, 4])
    np.testing.assert_array_equal(y_bf.transpose(1, 0, 2), y)
    assert all(np.array_equal(a, b) for a, b in zip(state, state_bf))
    y1, state1 = tm(x[:2, 1])  # the second sequence alone, unbatched, its own length
    np.testing.assert_allclose(y1, y[:2, 1], rtol=1e-13, atol=1e-15)
    assert len(state1) == len(state) == 2 + bool(options.get("gate_recurrence"))
    for a, b in zip(state1, state):
        np.testing.assert_allclose(a, b[:, 1], rtol=1e-13, atol=1e-15)
    assert np.all(y[2:, 1] == 0.0)


def test_gate_recurrence_state_is_the_last_gates():
    """With FGR the state is (h, c, a), a (L*D, N, 3H) the last step's [i, f, o]."""
    layer = lk.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=2, gate_recurrence=True)
    x = _x(T=5, N=2, I=3)
    y, (h, c, a) = layer(x)
    assert a.shape == (2, 2, 12)
    acts = layer.activations()
    for k, sfx in enumerate(("_l0", "_l1")):
        last = np.concatenate([acts[sfx][g][-1] for g in "ifo"], axis=1)
        np.testing.assert_array_equal(a[k], last)
    # carried over: two chunks give the one run
    y1, s1 = layer(x[:2])
    y2, s2 = layer(x[2:], s1)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(s2[2], a, rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError, match=r"expected a tuple \(h, c, a\)"):
        layer(x, (h, c))


def test_repr_names_the_options():
    r = repr(lk.LSTM(2, 3, peepholes=True, zoneout_h=0.1, forget_gate=False))
    assert "peepholes=True" in r and "zoneout_h=0.1" in r and "forget_gate=False" in r
    assert repr(lk.LSTM(2, 3)) == "LSTM(2, 3)"


# ---- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", ALL_VARIANTS, ids=_ids)
def test_to_torch_refuses(options):
    with pytest.raises(ValueError, match="to_torch: torch.nn.LSTM has no such option.*cannot"):
        lk.LSTM(2, 3, **options).to_torch()


IN_KERNEL = lk.nn.cells.lstm.LSTMOptions.IN_KERNEL  # the options the fused kernel covers


def _in_kernel(options: dict) -> bool:
    names = {"zoneout_c", "zoneout_h"} if "zoneout" in options else set()
    return names | (set(options) - {"zoneout"}) <= set(IN_KERNEL)


@pytest.mark.parametrize("options", [o for o in ALL_VARIANTS if not _in_kernel(o)], ids=_ids)
def test_fused_kernel_refuses_and_auto_runs_the_reference(options):
    x = _x(dtype=np.float32, I=2)
    layer = lk.LSTM(2, 3, seed=0, **options).eval()
    with pytest.raises(ValueError, match="impl='fused' does not cover the LSTM options"):
        layer(x, execution=lk.Execution(impl="fused"))
    y_auto, _ = layer(x)  # auto: the reference runs it
    y_ref, _ = layer(x, execution=lk.Execution(impl="reference"))
    assert np.array_equal(y_auto, y_ref)
    assert layer.step(x[0])[0].dtype == np.float32


def test_contradictory_options_raise():
    with pytest.raises(ValueError, match="coupled_gates=True sets f = 1 - i"):
        lk.LSTM(2, 3, coupled_gates=True, forget_gate=False)
    with pytest.raises(ValueError, match="coupled_gates=True sets f = 1 - i"):
        lk.LSTM(2, 3, coupled_gates=True, input_gate=False)


def test_everything_off_is_the_plain_lstm():
    kwargs = dict(num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    off = dict(input_gate=True, output_gate=True, coupled_gates=False, peepholes=False,
               layer_norm=False, recurrent_dropout=0.0, zoneout=0.0)  # fmt: skip
    a, b = lk.LSTM(3, 4, **kwargs), lk.LSTM(3, 4, **kwargs, **off)
    x = _x(I=3)
    assert np.array_equal(a(x)[0], b(x)[0])
    assert a.options == b.options


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_float32_stays_float32(training):
    """Every option at once in float32: outputs, states, gradients, activations, masks."""
    options = dict(peepholes=True, layer_norm=True, gate_recurrence=True, coupled_gates=True,
                   input_activation=False, output_activation=False, recurrent_dropout=0.2,
                   zoneout=(0.1, 0.2))  # fmt: skip
    layer = lk.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=0, **options)
    layer.train(training)
    y, state = layer(_x(T=5, N=2, I=3, dtype=np.float32), lengths=[5, 3])
    dx, dstate = layer.backward(np.ones_like(y), tuple(np.ones_like(s) for s in state))
    arrays = [y, dx, *state, *dstate, *layer.grads.values()]
    arrays += [a for d in layer.activations().values() for a in d.values()]
    arrays += [a for d in layer.masks().values() for a in d.values()]
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}
    assert all(np.isfinite(a).all() for a in arrays)
