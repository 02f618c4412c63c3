"""Variational recurrent dropout and zoneout on the fused float32 kernel, against the
reference time loop (:mod:`lstmkit.nn.time_loop`, itself checked against a torch oracle
written from the papers in tests/test_variants_oracle.py).

Two layers built with the same seed draw the same masks, so in training the fused and the
reference runs see the same noise: outputs, final states, dx, the initial state's gradient
and every parameter gradient must agree to float32 rounding. Each layout of the kernel is
forced (the compiled whole-sequence loop, the per-step loop, the batch split over two
threads, the loops split by cells with the input projected in the loop or before it, and
with the recurrent products transposed; a projected layer takes the rows' loops).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import lk_run, make_layer, random_case, rel_err

import lstmkit as lk
from lstmkit.kernels import lstm as fast_lstm
from lstmkit.nn.noise import KeyedNoise

TOL = 2e-5

BASE: dict[str, Any] = {
    "kind": "LSTM",
    "input_size": 5,
    "hidden_size": 7,
    "num_layers": 1,
    "bias": True,
    "batch_first": False,
    "bidirectional": False,
    "proj_size": 0,
    "T": 6,
    "N": 4,
    "unbatched": False,
    "lengths": True,
    "given_state": True,
    "given_dstate": True,
}

SHAPES = {
    "plain": {},
    "2-layers": {"num_layers": 2},
    "no-lengths": {"lengths": False},
    "bidirectional": {"bidirectional": True},
    "2-layers-bidirectional": {"num_layers": 2, "bidirectional": True},
    "projection": {"proj_size": 3},
    "projection-2-layers": {"proj_size": 3, "num_layers": 2, "bidirectional": True},
    "no-bias-no-state": {"bias": False, "given_state": False, "given_dstate": False},
    "unbatched": {"unbatched": True, "N": 1},
}

OPTIONS = {
    "dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": (0.3, 0.2)},
    "zoneout-h": {"zoneout_h": 0.25},
    "zoneout-c": {"zoneout_c": 0.25},
    "both": {"recurrent_dropout": 0.3, "zoneout": (0.2, 0.4)},
    "both-peepholes-cifg": {
        "recurrent_dropout": 0.2,
        "zoneout": 0.3,
        "peepholes": True,
        "coupled_gates": True,
    },
}

# the layouts that take the regularisers (see tests/test_fused.py's _execution)
MODES = {
    "compiled": lk.Execution(impl="fused", split_from=2**62),
    "per-step": lk.Execution(impl="fused", split_from=2**62, small=0, small_backward=0),
    "split-rows": lk.Execution(impl="fused", split_from=2**62, min_work=0, min_rows=1, threads=2),
    "cells": lk.Execution(impl="fused", split_from=0),
    "cells-split-projected": lk.Execution(
        impl="fused",
        split_from=0,
        project_in_loop=0,
        min_work=0,
        min_rows=1,
        min_cells=1,
        threads=2,
        rows_backward_up_to=0,  # both loops split by cells
        rows_forward_up_to=0,
    ),
    "cells-split-rows": lk.Execution(  # both loops (the forward in training) split by rows
        impl="fused", split_from=0, min_work=0, min_rows=1, min_cells=1, threads=2
    ),
    "cells-split-transposed": lk.Execution(
        impl="fused",
        split_from=0,
        transposed_from=0,
        min_work=0,
        min_rows=1,
        min_cells=1,
        threads=2,
    ),
}


def _pair(cfg: dict[str, Any], mode: str, options: dict[str, Any]) -> tuple[Any, Any]:
    fused = make_layer(cfg, np.float32, seed=1, **options)
    reference = make_layer(cfg, np.float32, seed=1, **options)
    fused.execution = MODES[mode]
    reference.execution = lk.Execution(impl="reference")
    return fused, reference


def _compare(got: dict[str, Any], ref: dict[str, Any]) -> None:
    assert rel_err(got["y"], ref["y"]) < TOL
    assert rel_err(got["dx"], ref["dx"]) < TOL
    for a, b in zip(got["state_n"], ref["state_n"], strict=True):
        assert rel_err(a, b) < TOL
    for a, b in zip(got["dstate0"], ref["dstate0"], strict=True):
        assert rel_err(a, b) < TOL
    assert got["grads"].keys() == ref["grads"].keys()
    for name in ref["grads"]:
        assert rel_err(got["grads"][name], ref["grads"][name]) < TOL, name


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_training_equals_reference(shape: str, options: str, mode: str) -> None:
    """Training mode, the same seed: the same masks, the same results and gradients."""
    cfg = {**BASE, **SHAPES[shape]}
    fused, reference = _pair(cfg, mode, OPTIONS[options])
    case = random_case(fused, cfg, np.random.default_rng(7), np.float32)
    got = lk_run(fused, case)
    ref = lk_run(reference, case)
    assert all(isinstance(t, fast_lstm.FusedTape) for t in fused._tape["tapes"])
    masks, ref_masks = fused.masks(), reference.masks()
    assert masks.keys() == ref_masks.keys() and masks  # the same noise, drawn alike
    for key in ref_masks:
        assert masks[key].keys() == ref_masks[key].keys() and masks[key]
        for name in ref_masks[key]:
            assert np.array_equal(masks[key][name], ref_masks[key][name]), (key, name)
    _compare(got, ref)
    # inference in training mode (new masks, drawn alike): the split loops' private rings
    args = (case["x"], case["state"], case["lengths"])
    y_inf, state_inf = fused(*args, inference=True)
    y_ref, state_ref = reference(*args, inference=True)
    assert rel_err(y_inf, y_ref) < TOL
    for a, b in zip(state_inf, state_ref, strict=True):
        assert rel_err(a, b) < TOL


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("shape", ["2-layers", "projection-2-layers"])
def test_evaluation_equals_reference(shape: str, options: str, mode: str) -> None:
    """Evaluation: no recurrent dropout, zoneout's expectation; forward, backward (a layer
    in eval still differentiates), inference, and the streaming step."""
    cfg = {**BASE, **SHAPES[shape], "bidirectional": False}
    fused, reference = _pair(cfg, mode, OPTIONS[options])
    fused.eval()
    reference.eval()
    case = random_case(fused, cfg, np.random.default_rng(8), np.float32)
    got = lk_run(fused, case)
    assert all(isinstance(t, fast_lstm.FusedTape) for t in fused._tape["tapes"])
    _compare(got, lk_run(reference, case))
    y_inf, state_inf = fused(case["x"], case["state"], case["lengths"], inference=True)
    assert rel_err(y_inf, got["y"]) < TOL
    state = ref_state = case["state"]
    for t in range(3):  # the streaming kernel, from a given state
        y, state = fused.step(case["x"][t], state)
        y_ref, ref_state = reference.step(case["x"][t], ref_state)
        assert rel_err(y, y_ref) < TOL
        for a, b in zip(state, ref_state, strict=True):
            assert rel_err(a, b) < TOL
    # the fused streaming step ran (not the reference's fallback)
    assert fused._stepper(fused.execution) is not None


def test_larger_sizes_per_step_and_compiled() -> None:
    """Longer sequences and more cells, both loops, every regulariser at once."""
    cfg = {**BASE, "input_size": 9, "hidden_size": 33, "T": 30, "N": 5}
    options = {"recurrent_dropout": 0.25, "zoneout": (0.1, 0.05)}
    for mode in ("compiled", "per-step"):
        fused, reference = _pair(cfg, mode, options)
        case = random_case(fused, cfg, np.random.default_rng(9), np.float32)
        _compare(lk_run(fused, case), lk_run(reference, case))


@pytest.mark.parametrize("mode", ["compiled", "cells"])
@pytest.mark.parametrize("lengths", [True, False])
def test_keyed_noise_and_activation_records(lengths: bool, mode: str) -> None:
    """Masks keyed by (seed, step, example) (data-parallel training) reach the kernel the
    same way; the activations (m: the cell's, though y is the zoned h) and the backward's
    recorded state gradients (the per-step loop) agree too."""
    cfg = {**BASE, "bidirectional": True, "lengths": lengths}
    options = {"recurrent_dropout": 0.3, "zoneout": (0.2, 0.3)}
    fused, reference = _pair(cfg, mode, options)
    for layer in (fused, reference):
        layer.noise = KeyedNoise(11)
        layer.noise.start(3, rank=1)
        layer.record_state_grads = True  # the fused backward then runs the per-step loop
    case = random_case(fused, cfg, np.random.default_rng(10), np.float32)
    _compare(lk_run(fused, case), lk_run(reference, case))
    assert fused.masks().keys() == reference.masks().keys()
    for name, acts in reference.activations().items():  # h_prev: the h W_hh saw, masked
        assert fused.activations()[name].keys() == acts.keys()
        for field, value in acts.items():
            assert rel_err(fused.activations()[name][field], value) < TOL, (name, field)
    assert fused.state_grads.keys() == reference.state_grads.keys()
    for name, grad in reference.state_grads.items():
        assert rel_err(fused.state_grads[name], grad) < TOL, name


def test_every_layout_runs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing: a layer with the regularisers takes the loops split by cells where a plain
    one would (in training and in evaluation), and the rows' loops otherwise."""
    calls: list[str] = []
    real = fast_lstm._forward_cells

    def spy(*args: Any, **kwargs: Any) -> None:
        calls.append("cells")
        real(*args, **kwargs)

    monkeypatch.setattr(fast_lstm, "_forward_cells", spy)
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    for ex, expected in ((MODES["cells"], ["cells"]), (MODES["compiled"], [])):
        for training in (True, False):
            calls.clear()
            layer = lk.LSTM(5, 7, seed=0, zoneout=0.1, recurrent_dropout=0.2).train(training)
            layer(x, execution=ex)
            assert calls == expected
            assert isinstance(layer._tape["tapes"][0], fast_lstm.FusedTape)
