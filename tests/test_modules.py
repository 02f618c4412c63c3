"""Embedding, Linear, Dropout and the Model container against torch (float64) and finite
differences; the shared module interface; the container's names and live-array semantics."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.nn.feedforward import Dropout, Embedding, Linear
from lstmkit.nn.model import Model
from lstmkit.nn.recurrent import LSTM

torch = pytest.importorskip("torch")


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---- Linear -------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_backward_match_torch(bias):
    rng = np.random.default_rng(0)
    lin = Linear(5, 7, bias=bias, dtype=np.float64, seed=1)
    ref = torch.nn.Linear(5, 7, bias=bias, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})
    x = rng.standard_normal((3, 4, 5))
    dout = rng.standard_normal((3, 4, 7))

    y = lin(x)
    dx = lin.backward(dout)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(dout))

    assert y.shape == (3, 4, 7)
    assert rel_err(y, yt.detach().numpy()) < 1e-13
    assert rel_err(dx, xt.grad.numpy()) < 1e-13
    assert rel_err(lin.grads["weight"], ref.weight.grad.numpy()) < 1e-13
    if bias:
        assert rel_err(lin.grads["bias"], ref.bias.grad.numpy()) < 1e-13
    assert list(lin.state_dict()) == list(ref.state_dict())


def test_linear_init_is_torch_uniform_bound():
    lin = Linear(16, 300, seed=0)
    k = 1 / np.sqrt(16)
    for w in lin.parameters().values():
        assert w.dtype == np.float32
        assert np.abs(w).max() <= k
        assert np.abs(w).max() > 0.95 * k  # fills the range, not a narrower one


def test_linear_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    lin = Linear(4, 3, dtype=np.float64, seed=2)
    x = rng.standard_normal((2, 5, 4))
    R = rng.standard_normal((2, 5, 3))

    def loss():
        return float(np.sum(lin(x) * R))

    loss()
    dx = lin.backward(R)
    eps = 1e-6
    for target, analytic in [(x, dx), (lin.parameters()["weight"], lin.grads["weight"])]:
        numeric = np.zeros_like(target)
        for idx in np.ndindex(target.shape):
            old = target[idx]
            target[idx] = old + eps
            up = loss()
            target[idx] = old - eps
            down = loss()
            target[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        assert rel_err(analytic, numeric) < 1e-8


def test_linear_validates_input():
    lin = Linear(4, 3)
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 4\), got \(2, 5\)"):
        lin(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="float32"):
        lin(np.zeros((2, 4), np.float64))
    with pytest.raises(RuntimeError, match="forward first"):
        Linear(4, 3).backward(np.zeros((1, 3), np.float32))
    lin(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3\)"):
        lin.backward(np.zeros((2, 4), np.float32))


# ---- Embedding ----------------------------------------------------------------------


def test_embedding_matches_torch_with_repeated_ids():
    rng = np.random.default_rng(3)
    emb = Embedding(6, 4, dtype=np.float64, seed=0)
    ref = torch.nn.Embedding(6, 4, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in emb.state_dict().items()})
    ids = np.array([[0, 5, 5], [2, 0, 5]])  # repeats must accumulate
    dout = rng.standard_normal((2, 3, 4))

    out = emb(ids)
    assert emb.backward(dout) is None
    out_t = ref(torch.from_numpy(ids))
    out_t.backward(torch.from_numpy(dout))

    assert out.shape == (2, 3, 4)
    assert rel_err(out, out_t.detach().numpy()) == 0
    assert rel_err(emb.grads["weight"], ref.weight.grad.numpy()) < 1e-14
    assert np.all(emb.grads["weight"][[1, 3, 4]] == 0)


@pytest.mark.parametrize("contiguous", [True, False])
def test_embedding_backward_adds_rows_in_order_bit_for_bit(contiguous):
    """float32: every repeated id's rows are added one after the other, in the order of the
    ids, onto what the gradient held (the sums a plain loop gives, to the last bit)."""
    rng = np.random.default_rng(4)
    emb = Embedding(7, 5, seed=0)
    ids = rng.integers(0, 7, (40, 3)).astype(np.uint8)  # each id ~17 times
    scales = 10.0 ** rng.integers(-3, 4, 5)  # rows of different magnitudes round differently
    dout = (rng.standard_normal((40, 3, 5)) * scales).astype(np.float32)
    start = rng.standard_normal((7, 5)).astype(np.float32)
    if not contiguous:  # a gradient that is a strided view (the fallback path)
        emb.grads["weight"] = np.zeros((5, 7), np.float32).T
    emb.grads["weight"][...] = start
    emb(ids)
    emb.backward(dout)
    expected = start.copy()
    for i, row in zip(ids.reshape(-1), dout.reshape(-1, 5)):
        expected[i] = expected[i] + row  # float32 + float32, one row at a time
    assert np.array_equal(emb.grads["weight"], expected)


def test_embedding_init_is_standard_normal_and_ids_any_shape():
    emb = Embedding(1000, 50, seed=1)
    w = emb.parameters()["weight"]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    assert emb(np.int32(7)).shape == (50,)
    assert emb(np.zeros((2, 3, 4), np.uint8)).shape == (2, 3, 4, 50)


def test_embedding_rejects_bad_ids():
    emb = Embedding(10, 3)
    with pytest.raises(ValueError, match=r"\[0, 10\).*got 10"):
        emb(np.array([1, 10]))
    with pytest.raises(ValueError, match=r"\[0, 10\).*got -1"):
        emb(np.array([-1, 2]))
    with pytest.raises(TypeError, match="integer"):
        emb(np.array([1.0, 2.0]))


# ---- Dropout ------------------------------------------------------------------------


def test_dropout_scales_masks_and_backward_reuses_mask():
    x = np.random.default_rng(0).standard_normal((200, 300)) + 3.0  # no zeros
    drop = Dropout(0.3, seed=5)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-15)
    dout = np.random.default_rng(1).standard_normal(x.shape)
    dx = drop.backward(dout)
    np.testing.assert_array_equal(dx == 0, ~kept)
    np.testing.assert_allclose(dx[kept], dout[kept] / 0.7, rtol=1e-15)
    # an equivalent torch computation with the same mask gives the same gradient
    mask_t = torch.from_numpy(kept.astype(np.float64))
    xt = torch.from_numpy(x).requires_grad_()
    (xt * mask_t / 0.7).backward(torch.from_numpy(dout))
    assert rel_err(dx, xt.grad.numpy()) < 1e-15


def test_dropout_reproducible_eval_identity_and_rng_state():
    x = np.ones((4, 50), np.float32)
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    np.testing.assert_array_equal(a(x), b(x))
    state = a.rng_state()
    first = a(x)
    assert not np.array_equal(first, a(x))  # a new mask each call
    a.set_rng_state(state)
    np.testing.assert_array_equal(a(x), first)
    assert a(x).dtype == np.float32
    a.eval()
    assert a(x) is x and np.array_equal(a.backward(x), x)
    assert Dropout(0.0, seed=0)(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


# ---- the shared interface -----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [lambda: Linear(3, 2, seed=0), lambda: Embedding(5, 2, seed=0), lambda: Dropout(0.1)],
    ids=["Linear", "Embedding", "Dropout"],
)
def test_module_interface(make):
    m = make()
    params = m.parameters()
    assert list(m.grads) == list(params)
    assert m.train() is m and m.training and m.eval() is m and not m.training
    sd = m.state_dict()
    for name, w in params.items():
        assert sd[name] is not w and np.array_equal(sd[name], w)
        m.grads[name] += 1
        w += 1  # live: in-place change is the module's change
        assert np.array_equal(m.parameters()[name], sd[name] + 1)
    m.zero_grad()
    assert all(not g.any() for g in m.grads.values())
    live = {k: v for k, v in params.items()}
    m.load_state_dict(sd)
    for name in params:
        assert m.parameters()[name] is live[name]  # loaded in place
        assert np.array_equal(live[name], sd[name])
    assert repr(m).startswith(type(m).__name__ + "(")


def test_load_state_dict_strict_messages():
    lin = Linear(3, 2, seed=0)
    sd = lin.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['bias'\].*unexpected keys \['b'\]"):
        lin.load_state_dict({"weight": sd["weight"], "b": sd["bias"]})
    with pytest.raises(ValueError, match=r"weight: expected shape \(2, 3\), got \(3, 2\)"):
        lin.load_state_dict({"weight": sd["weight"].T, "bias": sd["bias"]})
    before = lin.state_dict()
    with pytest.raises(ValueError, match="weight: expected shape"):  # nothing loaded
        lin.load_state_dict({"weight": np.zeros((1, 1)), "bias": np.zeros(2)}, strict=False)
    assert np.array_equal(lin.parameters()["bias"], before["bias"])
    lin.load_state_dict({"bias": np.zeros(2), "other": 1}, strict=False)
    assert not lin.parameters()["bias"].any()
    assert np.array_equal(lin.parameters()["weight"], before["weight"])


def test_grads_accumulate_until_zero_grad():
    lin = Linear(3, 2, dtype=np.float64, seed=0)
    x, d = np.ones((4, 3)), np.ones((4, 2))
    lin(x)
    lin.backward(d)
    once = lin.grads["weight"].copy()
    lin(x)
    lin.backward(d)
    np.testing.assert_allclose(lin.grads["weight"], 2 * once)
    lin.zero_grad()
    assert not lin.grads["weight"].any()


# ---- Model container ----------------------------------------------------------------


class CharLM(Model):
    def __init__(self, V, E, H, layers=1, p=0.0, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.embed = self.add("embed", Embedding(V, E, dtype=np.float64, seed=rng))
        self.lstm = self.add("lstm", LSTM(E, H, layers, dtype=np.float64, seed=rng))
        self.drop = self.add("drop", Dropout(p, seed=rng))
        self.head = self.add("head", Linear(H, V, dtype=np.float64, seed=rng))

    def forward(self, ids, state=None):
        y, state = self.lstm(self.embed(ids), state)  # (T, N, H)
        return self.head(self.drop(y)), state  # (T, N, V)

    def backward(self, dlogits):
        dy = self.drop.backward(self.head.backward(dlogits))
        dx, _ = self.lstm.backward(dy)
        self.embed.backward(dx)


class TorchCharLM(torch.nn.Module):
    def __init__(self, V, E, H, layers):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E, dtype=torch.float64)
        self.lstm = torch.nn.LSTM(E, H, layers, dtype=torch.float64)
        self.head = torch.nn.Linear(H, V, dtype=torch.float64)

    def forward(self, ids):
        return self.head(self.lstm(self.embed(ids))[0])


def test_model_names_order_and_torch_parity():
    model = CharLM(11, 4, 6, layers=2, seed=3)
    ref = TorchCharLM(11, 4, 6, 2)
    names = list(model.parameters())
    assert names == list(ref.state_dict())  # same dotted names, same order as torch
    assert names[:3] == ["embed.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0"]
    assert names[-2:] == ["head.weight", "head.bias"]
    assert list(model.grads) == names == list(model.state_dict())
    assert model.num_parameters() == sum(p.numel() for p in ref.parameters())
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})

    ids = np.random.default_rng(0).integers(0, 11, size=(7, 3))
    dlogits = np.random.default_rng(1).standard_normal((7, 3, 11))
    logits, _ = model(ids)
    model.backward(dlogits)
    out = ref(torch.from_numpy(ids))
    out.backward(torch.from_numpy(dlogits))

    assert rel_err(logits, out.detach().numpy()) < 1e-12
    torch_grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    for name, g in model.grads.items():
        assert rel_err(g, torch_grads[name]) < 1e-10, name


def test_model_arrays_are_live():
    model = CharLM(5, 3, 4, seed=0)
    params, grads = model.parameters(), model.grads
    assert params["head.bias"] is model.head.parameters()["bias"]
    assert params["lstm.weight_hh_l0"] is model.lstm.parameters()["weight_hh_l0"]
    assert grads["embed.weight"] is model.embed.grads["weight"]
    params["head.bias"] -= 1.0  # what an optimizer does
    assert np.array_equal(model.head.parameters()["bias"], params["head.bias"])
    model(np.zeros((2, 1), np.int64))
    model.backward(np.ones((2, 1, 5)))
    assert model.head.grads["bias"].any() and grads["head.bias"] is model.head.grads["bias"]
    model.zero_grad()
    assert all(not g.any() for g in model.grads.values())


def test_model_state_dict_round_trip_and_strict_loading():
    a, b = CharLM(5, 3, 4, seed=0), CharLM(5, 3, 4, seed=1)
    live = b.parameters()
    b.load_state_dict(a.state_dict())
    for name, w in a.parameters().items():
        assert np.array_equal(b.parameters()[name], w) and b.parameters()[name] is live[name]
    sd = a.state_dict()
    sd["head.bias"][0] += 1
    assert not np.array_equal(sd["head.bias"], a.parameters()["head.bias"])  # copies

    before = b.state_dict()
    bad = dict(sd)
    bad.pop("lstm.weight_ih_l0")
    with pytest.raises(ValueError, match=r"missing keys \['lstm.weight_ih_l0'\]"):
        b.load_state_dict(bad)
    bad = dict(sd, **{"lstm.weight_hh_l0": np.zeros((16, 5))})
    with pytest.raises(ValueError, match=r"lstm.weight_hh_l0: expected shape \(16, 4\)"):
        b.load_state_dict(bad)
    bad = dict(sd, **{"head.bias": np.full(5, np.nan)})  # the last child: checked up front
    with pytest.raises(ValueError, match=r"head.bias: expected finite values"):
        b.load_state_dict(bad)
    for name, w in b.parameters().items():  # a refused load changes nothing
        assert np.array_equal(w, before[name])

    b.load_state_dict({"head.bias": np.zeros(5), "junk": 0}, strict=False)
    assert not b.head.parameters()["bias"].any()
    assert np.array_equal(b.parameters()["embed.weight"], before["embed.weight"])


def test_model_modes_rng_state_registration_and_repr():
    model = CharLM(5, 3, 4, p=0.5, seed=0)
    assert model.eval() is model
    assert not any(c.training for c in model.children.values())
    model.train()
    assert all(c.training for c in model.children.values())

    ids = np.zeros((3, 2), np.int64)
    state = model.rng_state()
    assert set(state) == {"lstm", "drop"}
    first, _ = model(ids)
    model.set_rng_state(state)
    again, _ = model(ids)
    np.testing.assert_array_equal(first, again)
    import json

    model.set_rng_state(json.loads(json.dumps(state)))  # JSON-able

    with pytest.raises(ValueError, match="already registered"):
        model.add("head", Linear(2, 2))
    with pytest.raises(ValueError, match="identifier"):
        model.add("a.b", Linear(2, 2))
    with pytest.raises(ValueError, match="hide"):
        model.add("parameters", Linear(2, 2))
    with pytest.raises(TypeError, match="without"):
        model.add("x", object())

    class Pair(Model):
        def __init__(self):
            super().__init__()
            self.children = {"b": Linear(2, 3, seed=0), "a": Linear(3, 1, seed=1)}

    pair = Pair()
    assert list(pair.parameters()) == ["b.weight", "b.bias", "a.weight", "a.bias"]
    assert pair.b is pair.children["b"]
    assert repr(pair) == "Pair(\n  (b): Linear(2, 3)\n  (a): Linear(3, 1)\n)"

    class Outer(Model):
        def __init__(self):
            super().__init__()
            self.add("inner", Pair())

    outer = Outer()
    assert list(outer.parameters())[0] == "inner.b.weight"
    outer.load_state_dict(outer.state_dict())


def test_parameters_are_updated_in_place_never_replaced() -> None:
    layer = LSTM(3, 4, seed=0)
    model = Model()
    model.add("lstm", layer)
    for params, name in (
        (layer.parameters(), "weight_hh_l0"),
        (model.parameters(), "lstm.weight_hh_l0"),
    ):
        live = params[name]
        params[name] *= 2.0  # in place: the same array is assigned back
        assert params[name] is live
        with pytest.raises(TypeError, match="updated in place, not replaced"):
            params[name] = live.copy()
        assert params[name] is live
