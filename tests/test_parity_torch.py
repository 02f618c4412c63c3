"""Parity with torch.nn.LSTM / GRU / RNN: outputs, final states and every gradient.

The weights are copied through ``state_dict`` (strict on both sides), so names, shapes
and the gate order must also be torch's. Configurations come from a seeded grid of
small random sizes covering layers, directions, proj_size, bias, batch_first, unbatched
input, variable lengths (torch: pack_padded_sequence(enforce_sorted=False) ->
pad_packed_sequence(total_length=T)), both RNN nonlinearities and given/omitted states
and state gradients.

Run: .venv/bin/python -m pytest tests/test_parity_torch.py -q
"""

from __future__ import annotations

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

N_CONFIGS_F64 = 60  # per layer type
N_CONFIGS_F32 = 15
TOL_F64 = 1e-10
TOL_F32 = 1e-5


def test_grid_covers_the_features():
    """The seeded grid really contains every feature the parity test claims to cover."""
    configs = [p.values[0] for p in config_grid(N_CONFIGS_F64, 2024)]
    for kind in KINDS:
        mine = [c for c in configs if c["kind"] == kind]
        for key in ["bidirectional", "bias", "batch_first", "unbatched", "lengths"]:
            assert {c[key] for c in mine} == {True, False}, (kind, key)
        for key in ["given_state", "given_dstate"]:
            assert {c[key] for c in mine} == {True, False}, (kind, key)
        assert {c["num_layers"] for c in mine} == {1, 2, 3}
        assert any(c["lengths"] and c["bidirectional"] and c["num_layers"] > 1 for c in mine)
    lstms = [c for c in configs if c["kind"] == "LSTM"]
    assert any(c["proj_size"] and c["bidirectional"] and c["num_layers"] > 1 for c in lstms)
    assert any(c["proj_size"] and c["lengths"] for c in lstms)
    assert {c["nonlinearity"] for c in configs if c["kind"] == "RNN"} == {"tanh", "relu"}


@pytest.mark.parametrize("cfg, k", config_grid(N_CONFIGS_F64, 2024))
def test_parity_float64(cfg, k):
    layer = make_layer(cfg, np.float64, seed=k)
    case = random_case(layer, cfg, np.random.default_rng(1000 + k))
    ours, ref = lk_run(layer, case), torch_run(torch_twin(layer), case)
    errs = compare_runs(ours, ref)
    worst = max(errs, key=errs.get)
    assert errs[worst] <= TOL_F64, f"{worst}: rel err {errs[worst]:.3g}; all: {errs}"


@pytest.mark.parametrize("cfg, k", config_grid(N_CONFIGS_F32, 77))
def test_parity_float32(cfg, k):
    layer = make_layer(cfg, np.float32, seed=k)
    case = random_case(layer, cfg, np.random.default_rng(2000 + k), dtype=np.float32)
    ours, ref = lk_run(layer, case), torch_run(torch_twin(layer), case)
    assert ours["y"].dtype == np.float32 and ours["dx"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in ours["grads"].values())
    errs = compare_runs(ours, ref)
    worst = max(errs, key=errs.get)
    assert errs[worst] <= TOL_F32, f"{worst}: rel err {errs[worst]:.3g}; all: {errs}"


def _with(kind: str, **overrides) -> dict:
    cfg = random_config(kind, np.random.default_rng(0))
    cfg.update(input_size=3, hidden_size=4, T=5, N=3, unbatched=False)
    cfg.update(given_state=True, given_dstate=True, lengths=False)
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize(
    "cfg",
    [
        _with(
            "LSTM", num_layers=3, bidirectional=True, proj_size=2, batch_first=True, lengths=True
        ),
        _with("GRU", num_layers=2, bidirectional=True, batch_first=False, lengths=True),
        _with("RNN", num_layers=2, bidirectional=True, nonlinearity="relu", lengths=True),
    ],
    ids=KINDS,
)
def test_parity_full_features(cfg):
    """One deliberately dense configuration per type (all features at once)."""
    layer = make_layer(cfg, np.float64, seed=5)
    case = random_case(layer, cfg, np.random.default_rng(5))
    case["lengths"] = np.array([2, 5, 1])  # unsorted, with a full-length and a length-1 sequence
    errs = compare_runs(lk_run(layer, case), torch_run(torch_twin(layer), case))
    assert max(errs.values()) <= TOL_F64, errs


@pytest.mark.parametrize("kind", KINDS)
def test_padding_is_zero_and_has_no_gradient(kind):
    """Past each sequence's length: y == 0, and dx == 0 whatever dy holds there."""
    cfg = _with(kind, num_layers=2, bidirectional=True, lengths=True, batch_first=False)
    layer = make_layer(cfg, np.float64, seed=1)
    case = random_case(layer, cfg, np.random.default_rng(1))
    case["lengths"] = np.array([3, 5, 1])
    out = lk_run(layer, case)
    for n, length in enumerate(case["lengths"]):
        assert np.all(out["y"][length:, n] == 0.0)
        assert np.all(out["dx"][length:, n] == 0.0)
        assert np.any(out["dx"][:length, n] != 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_through_torch(kind):
    """torch -> state_dict -> lstmkit -> state_dict -> fresh torch: identical everywhere."""
    import lstmkit as lk

    torch.manual_seed(3)
    extra = {"proj_size": 2} if kind == "LSTM" else {}
    cls = getattr(torch.nn, kind)
    src = cls(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64, **extra)
    layer = getattr(lk, kind)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=9)
    if kind == "LSTM":
        layer = lk.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, dtype=np.float64)
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    layer.load_state_dict({k: v.detach().numpy() for k, v in src.state_dict().items()})
    assert any(not np.array_equal(before[k], v) for k, v in layer.state_dict().items())
    sd = layer.state_dict()
    assert list(sd) == list(src.state_dict())
    for k, v in src.state_dict().items():
        assert sd[k].shape == tuple(v.shape) and np.array_equal(sd[k], v.numpy()), k
    dst = cls(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64, **extra)
    dst.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((5, 2, 3)))
    with torch.no_grad():
        y_src, s_src = src(x)
        y_dst, s_dst = dst(x)
    assert torch.equal(y_src, y_dst)
    for a, b in zip(s_src if kind == "LSTM" else (s_src,), s_dst if kind == "LSTM" else (s_dst,)):
        assert torch.equal(a, b)
    y_lk, _ = layer(x.numpy())
    assert np.max(np.abs(y_lk - y_src.numpy())) <= 1e-12 * np.max(np.abs(y_src.numpy()))


def test_load_state_dict_accepts_tensors_and_lists():
    import lstmkit as lk

    src = torch.nn.GRU(2, 3, dtype=torch.float64)
    layer = lk.GRU(2, 3, dtype=np.float64)
    layer.load_state_dict({k: v.detach().numpy().tolist() for k, v in src.state_dict().items()})
    for k, v in src.state_dict().items():
        assert np.array_equal(layer.state_dict()[k], v.numpy())
