"""The layer-normalised LSTM (``layer_norm=True``) on the fused float32 kernel, against the
float64 reference time loop (:mod:`lstmkit.nn.time_loop` over the reference cell, itself
checked against a torch oracle written from Ba et al. 2016 in tests/test_variants_oracle.py).

The two layers hold the same weights (the float32 ones, exactly widened) with the norms'
gains and shifts moved away from their initial 1 and 0, and see the same inputs and, in
training, the same regularisers' masks (the same seed draws them alike). The fused run
must agree to float32 rounding in the outputs, final states, dx, the initial state's
gradient and every parameter gradient, on random configurations: sizes (down to one cell,
where the cell norm's variance is 0), lengths, layers, directions, projections, no biases,
and the options the kernel combines with it (peepholes, CIFG, the gate ablations,
recurrent dropout, zoneout), in each layout of the loops over rows (the layer norm needs a
row's 4H gates in one place: where the loops split by cells would run, these run).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import lk_run, make_layer, parts, random_case, rel_err

import lstmkit as lk
from lstmkit.kernels import lstm as fast_lstm
from lstmkit.kernels.lstm_cell import BLAS_PRODUCTS
from lstmkit.nn import strategy

TOL = 5e-5
SLACK = 16.0  # see _compare; measured up to 9.5 over the 240 random configurations
# A gradient far smaller than the run's largest one is a sum that cancelled (seed 156:
# dx = -2.65e-5 from terms of order 1, with dstate0 up to 348): its float32 error is absolute,
# ~1e-7 like every other gradient's, so it is measured against GRAD_FLOOR x the largest
# gradient (a dx of zero would still be off by 7.6e-4 there, 15 x TOL).
GRAD_FLOOR = 1e-4

MODES = {  # the layouts of the rows' loops; "cells" asks for the split loops, which decline
    "compiled": lk.Execution(impl="fused", split_from=2**62),
    "per-step": lk.Execution(impl="fused", split_from=2**62, small=0, small_backward=0),
    "blas": lk.Execution(impl="fused", split_from=0, threads=1),  # BLAS inside the loops
    "split-rows": lk.Execution(impl="fused", split_from=2**62, min_work=0, min_rows=1, threads=2),
    "cells": lk.Execution(impl="fused", split_from=0, min_work=0, min_cells=1, threads=2),
}

BASE: dict[str, Any] = {  # a layer and its data (tests/conftest.py's configurations)
    "kind": "LSTM",
    "input_size": 5,
    "hidden_size": 8,
    "num_layers": 1,
    "bias": True,
    "batch_first": False,
    "bidirectional": False,
    "proj_size": 0,
    "T": 7,
    "N": 4,
    "unbatched": False,
    "lengths": True,
    "given_state": True,
    "given_dstate": True,
}

OPTIONS: list[dict[str, Any]] = [  # what the kernel combines with the layer norm
    {},
    {"peepholes": True},
    {"coupled_gates": True},
    {"peepholes": True, "coupled_gates": True},
    {"input_gate": False},
    {"forget_gate": False},
    {"output_gate": False},
    {"input_activation": False},
    {"output_activation": False},
    {"output_activation": False, "peepholes": True},
    {"recurrent_dropout": 0.3},
    {"zoneout": (0.3, 0.2)},
    {"recurrent_dropout": 0.25, "zoneout": (0.1, 0.4), "peepholes": True},
]


def _config(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A random layer, data, option set and layout."""
    H = int(rng.integers(1, 10))
    unbatched = bool(rng.random() < 0.15)
    cfg = {
        "kind": "LSTM",
        "input_size": int(rng.integers(1, 7)),
        "hidden_size": H,
        "num_layers": int(rng.integers(1, 4)),
        "bias": bool(rng.random() < 0.8),
        "batch_first": bool(rng.random() < 0.3),
        "bidirectional": bool(rng.random() < 0.5),
        "proj_size": int(rng.integers(1, H)) if H > 1 and rng.random() < 0.3 else 0,
        "T": int(rng.integers(1, 9)),
        "N": 1 if unbatched else int(rng.integers(1, 6)),
        "unbatched": unbatched,
        "lengths": not unbatched and bool(rng.random() < 0.6),
        "given_state": bool(rng.random() < 0.7),
        "given_dstate": bool(rng.random() < 0.7),
    }
    options = OPTIONS[int(rng.integers(len(OPTIONS)))]
    return cfg, options, list(MODES)[int(rng.integers(len(MODES)))]


def _layers(
    cfg: dict[str, Any], options: dict[str, Any], mode: str, seed: int
) -> tuple[Any, Any, Any]:
    """The fused float32 layer, the float32 reference and the float64 reference, with the
    same weights; the norms' gains and shifts random (not 1 and 0, where a wrong gain or
    shift would not show)."""
    fused, reference32 = (make_layer(cfg, np.float32, seed=seed, layer_norm=True, **options)
                          for _ in range(2))  # fmt: skip
    reference = make_layer(cfg, np.float64, seed=seed, layer_norm=True, **options)
    rng = np.random.default_rng(seed + 100)
    weights = fused.state_dict()
    for name, w in weights.items():
        if "_ln_" in name:
            w += (0.5 * rng.standard_normal(w.shape)).astype(np.float32)
    fused.load_state_dict(weights)
    reference32.load_state_dict(weights)
    reference.load_state_dict({name: w.astype(np.float64) for name, w in weights.items()})
    fused.execution = MODES[mode]
    reference32.execution = reference.execution = lk.Execution(impl="reference")
    return fused, reference32, reference


def _widened(case: dict[str, Any]) -> dict[str, Any]:
    """The same case in float64 (exact)."""

    def wide(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(wide(a) for a in v)
        return v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v

    return {k: wide(v) for k, v in case.items()}


def _quantities(run: dict[str, Any]) -> dict[str, np.ndarray]:
    """What :func:`lk_run` returns, by name: y, dx, the states, every parameter gradient."""
    out = {"y": run["y"], "dx": run["dx"]}
    out.update({f"state_n[{i}]": a for i, a in enumerate(run["state_n"])})
    out.update({f"dstate0[{i}]": a for i, a in enumerate(run["dstate0"])})
    out.update({f"grad {name}": g for name, g in run["grads"].items()})
    return out


def _compare(got: dict[str, Any], ref32: dict[str, Any], ref: dict[str, Any], where: Any) -> None:
    """Each quantity of the fused run within TOL of the float64 reference's, or within SLACK
    times the float32 reference's own error where float32 itself is further off (a norm
    over a few or nearly equal values, whose rstd reaches 1 / sqrt(eps), amplifies the
    rounding; the float32 reference, the cell's equations in NumPy with its pairwise sums,
    is the yardstick for the kernel's sequential sums and rational tanh)."""
    got_q, ref32_q, ref_q = _quantities(got), _quantities(ref32), _quantities(ref)
    assert got_q.keys() == ref_q.keys()
    assert any("_ln_" in name for name in ref_q)
    gradients = [name for name in ref_q if name.startswith(("d", "grad "))]
    floor = GRAD_FLOOR * max(float(np.max(np.abs(ref_q[name]))) for name in gradients)
    for name, value in ref_q.items():
        err, err32 = rel_err(got_q[name], value), rel_err(ref32_q[name], value)
        if name in gradients and np.max(np.abs(value)) < floor:  # a cancelled sum: see GRAD_FLOOR
            err, err32 = (e * np.max(np.abs(value)) / floor for e in (err, err32))
        assert err < max(TOL, SLACK * err32), (where, name, err)


def _check(cfg: dict[str, Any], options: dict[str, Any], mode: str, seed: int) -> None:
    fused, reference32, reference = _layers(cfg, options, mode, seed)
    assert strategy.fused_kernel(fused.cell, np.float32, fused.execution) is fast_lstm
    case = random_case(fused, cfg, np.random.default_rng(seed), np.float32)
    got = lk_run(fused, case)
    assert all(isinstance(t, fast_lstm.FusedTape) for t in fused._tape["tapes"])
    ref = lk_run(reference, _widened(case))
    for key, masks in reference.masks().items():  # the same noise, drawn alike
        for name, mask in masks.items():
            assert rel_err(fused.masks()[key][name], mask) < 1e-7, (key, name)
    where = (cfg, options, mode, seed)
    _compare(got, lk_run(reference32, case), ref, where)
    # inference (in training mode: new masks, drawn alike by the three layers)
    runs = [
        layer(*(c[k] for k in ("x", "state", "lengths")), inference=True)
        for layer, c in ((fused, case), (reference32, case), (reference, _widened(case)))
    ]
    (y, state), (y32, state32), (y64, state64) = runs
    for a, b32, b in zip([y, *parts(state)], [y32, *parts(state32)], [y64, *parts(state64)],
                         strict=True):  # fmt: skip
        assert rel_err(a, b) < max(TOL, SLACK * rel_err(b32, b)), (where, "inference")


@pytest.mark.parametrize("seed", range(10))
def test_random_configurations(seed: int) -> None:
    """Forward, backward and inference of random layers against the float64 reference."""
    _check(*_config(np.random.default_rng(seed)), seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 250))
def test_random_configurations_many(seed: int) -> None:
    _check(*_config(np.random.default_rng(seed)), seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("options", range(len(OPTIONS)))
def test_every_option_in_every_layout(options: int, mode: str) -> None:
    """Each option set in each layout, on a bidirectional 2-layer layer with lengths."""
    cfg = {**BASE, "num_layers": 2, "bidirectional": True}
    _check(cfg, OPTIONS[options], mode, seed=options)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["compiled", "per-step"])
def test_larger_sizes(mode: str) -> None:
    """Longer sequences and more cells (a norm over 4H = 132 entries)."""
    cfg = {**BASE, "input_size": 17, "hidden_size": 33, "bidirectional": True, "T": 40, "N": 6}
    _check(cfg, {"peepholes": True, "zoneout": (0.1, 0.05)}, mode, seed=3)


def test_never_the_loops_split_by_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing: where a plain layer takes the loops split by cells, a layer-normalised one
    takes the rows' loops (fused: its tape is the fused kernel's), forward and backward."""
    calls: list[str] = []
    for name in ("_forward_cells", "_backward_cells"):
        real = getattr(fast_lstm, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> None:
            calls.append(_name)
            _real(*args, **kwargs)

        monkeypatch.setattr(fast_lstm, name, spy)
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    for layer_norm, expected in ((False, ["_forward_cells", "_backward_cells"]), (True, [])):
        calls.clear()
        layer = lk.LSTM(5, 7, seed=0, layer_norm=layer_norm)
        y, _ = layer(x, execution=MODES["cells"])
        layer.backward(np.ones_like(y))
        assert calls == expected
        assert isinstance(layer._tape["tapes"][0], fast_lstm.FusedTape)


def test_blas_inside_the_loops_for_the_norms_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing: from ``split_from`` the layer-normalised layer's compiled loops call BLAS
    (the loop bit BLAS_PRODUCTS), forward and backward; below it, and for a plain layer on
    the same loops (whose results must not change), they do not. (With a projection, so
    that the plain layer's backward takes the rows' loops too.)"""
    seen: list[int] = []
    for name in ("forward_sequence", "backward_sequence"):
        real = getattr(fast_lstm.compiled, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> None:
            flags = args[9] if _name == "forward_sequence" else args[7]
            seen.append(flags & BLAS_PRODUCTS)
            _real(*args, **kwargs)

        monkeypatch.setattr(fast_lstm.compiled, name, spy)
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    rows_loops = {"split_from": 2**62, "threads": 1}
    cases = (
        (True, lk.Execution(impl="fused", split_from=0, threads=1), BLAS_PRODUCTS),
        (True, lk.Execution(impl="fused", **rows_loops), 0),
        (False, lk.Execution(impl="fused", **rows_loops), 0),
    )
    for layer_norm, ex, expected in cases:
        seen.clear()
        layer = lk.LSTM(5, 7, seed=0, layer_norm=layer_norm, recurrent_dropout=0.2, proj_size=3)
        y, _ = layer(x, execution=ex)
        layer.backward(np.ones_like(y))
        assert seen == [expected, expected], (layer_norm, ex)


def test_activations_and_streaming_step() -> None:
    """The recorded activations (with the norms' a_hat and rstd) equal the reference's; the
    streaming step runs the reference cell (no fused stepper) and equals the forward."""
    cfg = {**BASE, "input_size": 4, "hidden_size": 6, "num_layers": 2, "proj_size": 3, "T": 5,
           "N": 3, "lengths": False, "given_dstate": False}  # fmt: skip
    fused, _, reference = _layers(cfg, {"peepholes": True}, "compiled", seed=5)
    case = random_case(fused, cfg, np.random.default_rng(5), np.float32)
    y, _ = fused(case["x"], case["state"])
    reference(*(_widened(case)[k] for k in ("x", "state")))
    for name, acts in reference.activations().items():
        assert {"ln_x", "ln_h", "ln_c", "rstd_x", "rstd_h", "rstd_c"} <= acts.keys()
        got = fused.activations()[name]
        for field in ("i", "f", "g", "o", "c_prev", "tanh_c", "ln_x", "ln_h", "ln_c", "rstd_x",
                      "rstd_h", "rstd_c"):  # fmt: skip
            assert rel_err(got[field], acts[field]) < TOL, (name, field)
    fused.eval()
    assert fused._stepper(fused.execution) is None
    state = case["state"]
    for t in range(cfg["T"]):
        y_t, state = fused.step(case["x"][t], state)
        assert rel_err(y_t, y[t]) < TOL
