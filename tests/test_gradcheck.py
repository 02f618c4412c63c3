"""Finite-difference gradient checks (float64) for LSTM, GRU and RNN.

The loss is L = sum(y * R) + sum(h_n * S) [+ sum(c_n * U)]; its centred differences
w.r.t. a random subset of entries of every parameter, of x and of each initial state
are compared with what ``backward`` returns, over the feature grid (layers, directions,
proj_size, variable lengths, batch_first, unbatched). Also: the LSTM without a forget
gate, dropout in train mode with a fixed mask, and gradient accumulation.

Run: .venv/bin/python -m pytest tests/test_gradcheck.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    KINDS,
    compare_runs,
    config_id,
    fd_check,
    lk_run,
    make_layer,
    parts,
    random_case,
    torch_run,
    torch_twin,
)

FD_TOL = 1e-6  # centred differences with eps = 1e-6 in float64 are good to ~1e-9


def _cfg(kind, num_layers=1, bidirectional=False, proj_size=0, lengths=False, **kw):
    """A tiny configuration (I=2, H=3, T=4, N=3); proj_size is ignored unless LSTM."""
    cfg = {
        "kind": kind,
        "input_size": 2,
        "hidden_size": 3,
        "num_layers": num_layers,
        "bias": True,
        "batch_first": False,
        "bidirectional": bidirectional,
        "T": 4,
        "N": 3,
        "unbatched": False,
        "lengths": lengths,
        "given_state": True,
        "given_dstate": True,
    }
    if kind == "LSTM":
        cfg["proj_size"] = proj_size
    if kind == "RNN":
        cfg["nonlinearity"] = "tanh"
    cfg.update(kw)
    if cfg["unbatched"]:
        cfg["N"] = 1
    return cfg


def _grid():
    out = []
    for kind in KINDS:
        out += [
            _cfg(kind),
            _cfg(kind, num_layers=2, batch_first=True),
            _cfg(kind, bidirectional=True, lengths=True),
            _cfg(kind, num_layers=2, bidirectional=True, lengths=True, batch_first=True),
            _cfg(kind, num_layers=2, bidirectional=True, unbatched=True),
            _cfg(kind, unbatched=True, bias=False),
        ]
    out += [
        _cfg("LSTM", proj_size=2),
        _cfg("LSTM", num_layers=2, bidirectional=True, proj_size=1, lengths=True),
        _cfg("LSTM", proj_size=2, unbatched=True, batch_first=True),
        _cfg("LSTM", num_layers=2, proj_size=2, batch_first=True, lengths=True, bias=False),
        _cfg("RNN", nonlinearity="relu"),
        _cfg("RNN", num_layers=2, bidirectional=True, lengths=True, nonlinearity="relu"),
    ]
    return [pytest.param(cfg, k, id=config_id(cfg)) for k, cfg in enumerate(out)]


def _loss_fn(layer, case):
    """L(params, x, state_0) with the case's arrays read live (FD perturbs them in place)."""

    def loss() -> float:
        y, state_n = layer(case["x"], case["state"], case["lengths"])
        total = np.sum(y * case["dy"])
        for s, ds in zip(parts(state_n), parts(case["dstate"])):
            total += np.sum(s * ds)
        return float(total)

    return loss


def _fd_errors(layer, case, rng, reset=None, max_entries=12):
    """rel err of analytic vs FD gradient for every parameter, x and each initial state."""
    loss = _loss_fn(layer, case)
    if reset is not None:  # e.g. restore the dropout generator before every forward
        inner = loss

        def loss() -> float:
            reset()
            return inner()

        reset()
    out = lk_run(layer, case)
    errs = {}
    for name, w in layer.parameters().items():
        errs[name] = fd_check(loss, w, out["grads"][name], rng, max_entries)
    errs["x"] = fd_check(loss, case["x"], out["dx"], rng, max_entries)
    for j, s in enumerate(parts(case["state"])):
        errs[f"state0[{j}]"] = fd_check(loss, s, out["dstate0"][j], rng, max_entries)
    return errs


@pytest.mark.parametrize("cfg, k", _grid())
def test_finite_differences(cfg, k):
    layer = make_layer(cfg, np.float64, seed=k)
    rng = np.random.default_rng(100 + k)
    case = random_case(layer, cfg, rng)
    if cfg["lengths"]:
        case["lengths"] = np.array([2, cfg["T"], 1])  # unsorted, full and length-1
    errs = _fd_errors(layer, case, rng)
    worst = max(errs, key=errs.get)
    assert errs[worst] <= FD_TOL, f"{worst}: rel err {errs[worst]:.3g}; all: {errs}"


def test_fd_catches_a_wrong_gradient():
    """The checker itself can fail: a gradient off by 1e-4 in one entry is reported."""
    cfg = _cfg("LSTM")
    layer = make_layer(cfg)
    case = random_case(layer, cfg, np.random.default_rng(0))
    out = lk_run(layer, case)
    wrong = out["grads"]["weight_hh_l0"].copy()
    wrong[0, 0] += 1e-4
    w = layer.parameters()["weight_hh_l0"]
    err = fd_check(_loss_fn(layer, case), w, wrong, np.random.default_rng(0), max_entries=w.size)
    assert err > 1e-5


# ---- the LSTM without a forget gate (no torch layer has it) --------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"num_layers": 2, "bidirectional": True, "lengths": True}, {"proj_size": 2}],
    ids=["plain", "L2-bi-len", "proj2"],
)
def test_no_forget_gate_finite_differences(extra):
    cfg = _cfg("LSTM", **extra)
    layer = make_layer(cfg, forget_gate=False, seed=4)
    rng = np.random.default_rng(4)
    case = random_case(layer, cfg, rng)
    if cfg["lengths"]:
        case["lengths"] = np.array([3, 4, 1])
    errs = _fd_errors(layer, case, rng)
    assert max(errs.values()) <= FD_TOL, errs

    H = layer.hidden_size
    for name, g in layer.grads.items():
        if not name.startswith("weight_hr"):
            assert np.all(g[H : 2 * H] == 0.0), f"{name}: forget rows got a gradient"
            assert np.any(g[:H] != 0.0)
    for suffix, acts in layer.activations().items():
        assert np.all(acts["f"] == 1.0), suffix


def test_no_forget_gate_equals_torch_with_saturated_forget_gate():
    """f == 1 is torch's LSTM with zero forget weights and a forget bias of 1000
    (sigmoid(1000) == 1.0 exactly in float64, and its derivative is exactly 0)."""
    cfg = _cfg("LSTM", num_layers=2, bidirectional=True, proj_size=2, lengths=True)
    layer = make_layer(cfg, forget_gate=False, seed=8)
    case = random_case(layer, cfg, np.random.default_rng(8))
    case["lengths"] = np.array([4, 1, 3])
    twin = torch_twin(layer)
    H = layer.hidden_size
    for name, p in twin.named_parameters():
        if not name.startswith("weight_hr"):
            p.data[H : 2 * H] = 1000.0 if name.startswith("bias_ih") else 0.0
    ours, ref = lk_run(layer, case), torch_run(twin, case)
    errs = compare_runs(ours, ref)
    assert max(errs.values()) <= 1e-10, errs
    with_gate = lk_run(make_layer(cfg, seed=8), case)
    assert np.max(np.abs(with_gate["y"] - ours["y"])) > 1e-3  # the flag changes the output


# ---- dropout ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_finite_differences_with_fixed_mask(kind):
    """In train mode, backward uses the forward's mask: FD with the generator reset agrees."""
    cfg = _cfg(kind, num_layers=3, bidirectional=kind == "GRU", proj_size=1)
    layer = make_layer(cfg, dropout=0.5, seed=2)
    rng = np.random.default_rng(2)
    case = random_case(layer, cfg, rng)

    def reset() -> None:
        layer._rng = np.random.default_rng(77)

    errs = _fd_errors(layer, case, rng, reset=reset)
    assert max(errs.values()) <= FD_TOL, errs

    # the mask really drops something: train output differs from eval output
    reset()
    y_train, _ = layer(case["x"], case["state"])
    y_eval, _ = layer.eval()(case["x"], case["state"])
    assert np.max(np.abs(y_train - y_eval)) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_eval_mode_and_seeding(kind):
    cfg = _cfg(kind, num_layers=3, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    a = make_layer(cfg, dropout=0.3, seed=11)
    b = make_layer(cfg, dropout=0.3, seed=11)
    plain = make_layer(cfg, dropout=0.0, seed=11)
    assert all(np.array_equal(v, plain.state_dict()[k]) for k, v in a.state_dict().items())

    y_a, s_a = a(x)
    y_b, s_b = b(x)  # same seed: same weights and the same masks
    assert np.array_equal(y_a, y_b)
    assert all(np.array_equal(p, q) for p, q in zip(parts(s_a), parts(s_b)))
    y_a2, _ = a(x)  # the generator advances: a new mask
    assert not np.array_equal(y_a, y_a2)

    y_plain, _ = plain(x)
    y_eval, _ = a.eval()(x)  # eval: no dropout at all
    assert np.array_equal(y_eval, y_plain)
    assert not np.allclose(y_a, y_plain)
    # dropout=0 in train mode is the identity too
    assert np.array_equal(plain.train()(x)[0], y_plain)

    # between layers only: a one-layer net ignores dropout (torch warns; we just don't drop)
    one = make_layer(_cfg(kind), dropout=0.5, seed=1)
    one_plain = make_layer(_cfg(kind), seed=1)
    x1 = x[..., :2]
    assert np.array_equal(one(x1)[0], one_plain(x1)[0])


# ---- accumulation -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_accumulate_until_zero_grad(kind):
    cfg = _cfg(kind, num_layers=2, bidirectional=True, proj_size=1)
    layer = make_layer(cfg, seed=3)
    rng = np.random.default_rng(3)
    c1, c2 = random_case(layer, cfg, rng), random_case(layer, cfg, rng)
    g1, g2 = lk_run(layer, c1)["grads"], lk_run(layer, c2)["grads"]
    assert all(np.any(g != 0) for g in g1.values())

    layer.zero_grad()
    layer(c1["x"], c1["state"])
    dx_a, _ = layer.backward(c1["dy"], c1["dstate"])
    dx_b, _ = layer.backward(c1["dy"], c1["dstate"])  # the same forward, twice
    assert np.array_equal(dx_a, dx_b)  # dx is returned, not accumulated
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * g1[k], rtol=1e-13, atol=1e-15, err_msg=k)

    layer.zero_grad()
    assert all(np.all(g == 0) for g in layer.grads.values())
    for c in (c1, c2):
        layer(c["x"], c["state"])
        layer.backward(c["dy"], c["dstate"])
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, g1[k] + g2[k], rtol=1e-13, atol=1e-15, err_msg=k)
    grads_before = {k: id(g) for k, g in layer.grads.items()}
    layer.zero_grad()  # in place: the arrays stay the same objects (optimizers may hold them)
    assert {k: id(g) for k, g in layer.grads.items()} == grads_before


def test_accumulation_matches_torch():
    """Two backward passes in torch (no zero_grad between) give the same sums."""
    import torch

    cfg = _cfg("LSTM", num_layers=2, proj_size=2)
    layer = make_layer(cfg, seed=6)
    twin = torch_twin(layer)
    rng = np.random.default_rng(6)
    cases = [random_case(layer, cfg, rng) for _ in range(2)]
    layer.zero_grad()
    for c in cases:
        x = torch.from_numpy(c["x"])
        y, (h, cc) = twin(x, tuple(torch.from_numpy(s) for s in c["state"]))
        loss = (y * torch.from_numpy(c["dy"])).sum()
        loss = loss + (h * torch.from_numpy(c["dstate"][0])).sum()
        (loss + (cc * torch.from_numpy(c["dstate"][1])).sum()).backward()
        layer(c["x"], c["state"])
        layer.backward(c["dy"], c["dstate"])
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=1e-10, err_msg=name)


# ---- the LSTM variants (their torch-autograd oracle is tests/test_variants_oracle.py) -------

VARIANTS = {
    "peepholes": dict(peepholes=True),
    "CIFG": dict(coupled_gates=True),
    "NIG": dict(input_gate=False),
    "NFG": dict(forget_gate=False),
    "NOG": dict(output_gate=False),
    "NIAF": dict(input_activation=False),
    "NOAF": dict(output_activation=False),
    "layer_norm": dict(layer_norm=True),
    "FGR": dict(gate_recurrence=True),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "zoneout": dict(zoneout=(0.3, 0.4)),
}
# the gate rows (i, f, g, o = 0..3) whose weights get zero gradient under each option
_DEAD_ROWS = {"CIFG": [1], "NIG": [0], "NFG": [1], "NOG": [3]}
_LAYOUTS = {
    "plain": {},
    "L2-bi-proj-len": dict(num_layers=2, bidirectional=True, proj_size=2, lengths=True),
    "unb-bf-nobias": dict(unbatched=True, batch_first=True, bias=False),
}
_SLOW_LAYOUTS = {"L2-bi-proj-len"}  # ~0.6 s each: in the slow tier


def _variant_fd(options, extra, seed, training=True, max_entries=12):
    """FD errors of a variant layer; the generator is reset before every forward, so the
    training masks are the same in every evaluation of the loss."""
    cfg = _cfg("LSTM", **extra)
    layer = make_layer(cfg, seed=seed, **options).train(training)
    rng = np.random.default_rng(seed)
    case = random_case(layer, cfg, rng)
    if cfg["lengths"]:
        case["lengths"] = np.array([2, cfg["T"], 1])

    def reset() -> None:
        layer._rng = np.random.default_rng(99)

    return layer, _fd_errors(layer, case, rng, reset=reset, max_entries=max_entries)


@pytest.mark.parametrize(
    "layout",
    [pytest.param(k, marks=[pytest.mark.slow] * (k in _SLOW_LAYOUTS)) for k in _LAYOUTS],
)
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_finite_differences(variant, layout):
    """Every parameter (the variants' own included), x and the initial states."""
    layer, errs = _variant_fd(VARIANTS[variant], _LAYOUTS[layout], seed=5)
    assert max(errs.values()) <= FD_TOL, errs
    names = set(layer.parameters())
    if variant == "peepholes":
        assert {"weight_ci_l0", "weight_cf_l0", "weight_co_l0"} <= names
    if variant == "FGR":
        assert layer.parameters()["weight_gr_l0"].shape == (9, 9)
    if variant == "layer_norm":
        assert {"weight_ln_ih_l0", "weight_ln_hh_l0", "weight_ln_c_l0"} <= names
        assert ("bias_ln_c_l0" in names) == layer.bias
    H = layer.hidden_size
    for name, g in layer.grads.items():
        if name.startswith(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
            for gate in _DEAD_ROWS.get(variant, []):
                assert np.all(g[gate * H : (gate + 1) * H] == 0.0), (name, gate)


def _pairs():
    out = []
    names = list(VARIANTS)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            pair = {names[a], names[b]}
            if "CIFG" in pair and pair & {"NIG", "NFG"}:
                continue  # f = 1 - i needs both gates (refused: see test_variants.py)
            out.append(pytest.param(names[a], names[b], id=f"{names[a]}+{names[b]}"))
    return out


@pytest.mark.parametrize("first, second", _pairs())
@pytest.mark.slow
def test_variant_pairs_finite_differences(first, second):
    options = {**VARIANTS[first], **VARIANTS[second]}
    extra = dict(num_layers=2, proj_size=2, lengths=True, batch_first=True)
    _, errs = _variant_fd(options, extra, seed=6, max_entries=6)
    assert max(errs.values()) <= FD_TOL, errs


@pytest.mark.slow
def test_all_gate_options_at_once_finite_differences():
    options = dict(peepholes=True, coupled_gates=True, input_activation=False, layer_norm=True)
    options.update(output_activation=False, recurrent_dropout=0.2, zoneout=(0.2, 0.3))
    options.update(gate_recurrence=True)
    extra = dict(num_layers=2, bidirectional=True, proj_size=1, lengths=True)
    _, errs = _variant_fd(options, extra, seed=7)
    assert max(errs.values()) <= FD_TOL, errs


def test_zoneout_eval_mode_finite_differences():
    """In evaluation zoneout is the deterministic expectation; its gradient too."""
    options = dict(zoneout=(0.3, 0.6), recurrent_dropout=0.5, peepholes=True)
    extra = dict(num_layers=2, bidirectional=True, lengths=True)
    _, errs = _variant_fd(options, extra, seed=8, training=False)
    assert max(errs.values()) <= FD_TOL, errs
