"""Parity of the reference path (``impl="reference"``) with torch.nn.LSTM / GRU / RNN.

The reference path is the plain NumPy loop of :mod:`lstmkit.nn.time_loop` over the cells
of :mod:`lstmkit.nn.cells`: the readable definition that the fused kernels are proven
equal to (tests/test_fused.py). test_parity_torch.py compares the default path with
torch; this file compares the reference itself, in float64, on a seeded grid of random
configurations (layers, directions, proj_size, bias, batch_first, unbatched input,
variable lengths, both RNN nonlinearities, given/omitted states and state gradients):
the output, the final states, the gradients of the input and of the initial states, and
every parameter gradient.

Each test also checks that the reference ran: the cell's ``step`` and ``step_backward``
are called (the fused path never calls them).

Run: PYTHONPATH=src .venv/bin/python -m pytest tests/test_reference_parity.py -q
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import (
    KINDS,
    compare_runs,
    config_grid,
    lk_run,
    make_layer,
    random_case,
    random_config,
    torch_run,
    torch_twin,
)

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

N_CONFIGS = 50  # per layer type
SEED = 4096  # a grid other than test_parity_torch.py's
TOL = 1e-10


def _reference_layer(cfg: dict[str, Any], seed: int) -> tuple[Any, dict[str, int]]:
    """The layer of ``cfg`` on the reference path, with its cell's calls counted."""
    layer = make_layer(cfg, np.float64, seed=seed)
    layer.impl = "reference"
    calls = {"step": 0, "step_backward": 0}
    cell = layer.cell
    step, step_backward = cell.step, cell.step_backward

    def counted_step(*args: Any) -> Any:
        calls["step"] += 1
        return step(*args)

    def counted_step_backward(*args: Any) -> Any:
        calls["step_backward"] += 1
        return step_backward(*args)

    cell.step, cell.step_backward = counted_step, counted_step_backward
    return layer, calls


def _check(cfg: dict[str, Any], layer: Any, calls: dict[str, int], case: dict[str, Any]) -> None:
    ours = lk_run(layer, case)
    assert calls["step"] > 0 and calls["step_backward"] > 0, "the reference loop did not run"
    errs = compare_runs(ours, torch_run(torch_twin(layer), case))
    worst = max(errs, key=errs.get)
    assert errs[worst] <= TOL, f"{worst}: rel err {errs[worst]:.3g}; all: {errs}"


def test_grid_covers_the_features() -> None:
    configs = [p.values[0] for p in config_grid(N_CONFIGS, SEED)]
    for kind in KINDS:
        mine = [c for c in configs if c["kind"] == kind]
        for key in ["bidirectional", "bias", "batch_first", "unbatched", "lengths"]:
            assert {c[key] for c in mine} == {True, False}, (kind, key)
        for key in ["given_state", "given_dstate"]:
            assert {c[key] for c in mine} == {True, False}, (kind, key)
        assert {c["num_layers"] for c in mine} == {1, 2, 3}, kind
    lstms = [c for c in configs if c["kind"] == "LSTM"]
    assert any(c["proj_size"] and c["bidirectional"] for c in lstms)
    assert any(c["proj_size"] and c["lengths"] for c in lstms)
    assert {c["nonlinearity"] for c in configs if c["kind"] == "RNN"} == {"tanh", "relu"}


@pytest.mark.parametrize("cfg, k", config_grid(N_CONFIGS, SEED))
def test_reference_parity_float64(cfg: dict[str, Any], k: int) -> None:
    layer, calls = _reference_layer(cfg, seed=k)
    case = random_case(layer, cfg, np.random.default_rng(3000 + k))
    _check(cfg, layer, calls, case)


def _dense(kind: str, **overrides: Any) -> dict[str, Any]:
    cfg = random_config(kind, np.random.default_rng(0))
    cfg.update(input_size=3, hidden_size=5, T=6, N=3, unbatched=False, num_layers=3)
    cfg.update(given_state=True, given_dstate=True, lengths=True, bidirectional=True)
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize(
    "cfg",
    [
        _dense("LSTM", proj_size=2, batch_first=True),
        _dense("LSTM", proj_size=0, bias=False),
        _dense("GRU", batch_first=False),
        _dense("RNN", nonlinearity="relu"),
        _dense("RNN", nonlinearity="tanh", batch_first=True),
    ],
    ids=["LSTM-proj", "LSTM-nobias", "GRU", "RNN-relu", "RNN-tanh"],
)
def test_reference_parity_dense(cfg: dict[str, Any]) -> None:
    """Every feature at once, with unsorted lengths including a full one and a length-1 one."""
    layer, calls = _reference_layer(cfg, seed=11)
    case = random_case(layer, cfg, np.random.default_rng(11))
    case["lengths"] = np.array([2, 6, 1])
    _check(cfg, layer, calls, case)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_parity_longer_sequences(kind: str) -> None:
    """Longer sequences and wider layers than the grid, where the gradient crosses many steps."""
    cfg = _dense(kind, input_size=7, hidden_size=16, T=40, N=4, num_layers=2)
    if kind == "LSTM":
        cfg["proj_size"] = 6
    layer, calls = _reference_layer(cfg, seed=21)
    case = random_case(layer, cfg, np.random.default_rng(21))
    case["lengths"] = np.array([40, 17, 1, 33])
    _check(cfg, layer, calls, case)
