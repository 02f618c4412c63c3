"""PyTorch in and out: from_torch, to_torch, .pt loading and the ONNX gate order.

The oracle is torch itself in float64: a converted layer must give the module's outputs
(and the other way round) to float64 rounding, with bit-identical weights.

Run: .venv/bin/python -m pytest tests/test_interop.py -q
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import rel_err

import lstmkit as lk
from lstmkit.io.pytorch import from_torch, load_torch_state_dict, onnx_gate_order, to_torch

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

TOL_F64 = 1e-12

CONFIGS = [
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True, proj_size=2)),
    ("LSTM", dict(num_layers=3, bias=False, dropout=0.25)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(bias=False, batch_first=True)),
    ("RNN", dict(nonlinearity="tanh", num_layers=2)),
    ("RNN", dict(nonlinearity="relu", bidirectional=True, batch_first=True, bias=False)),
]


def _ids(config: tuple[str, dict]) -> str:
    return "-".join([config[0], *(f"{k}{v}" for k, v in config[1].items())])


def _torch_run(module: Any, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        s = [torch.from_numpy(p) for p in state]
        y, s_n = module(torch.from_numpy(x), tuple(s) if len(s) == 2 else s[0])
    return [y.numpy()] + [t.numpy() for t in (s_n if isinstance(s_n, tuple) else (s_n,))]


def _lk_run(layer: Any, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
    y, s_n = layer(x, tuple(state) if len(state) == 2 else state[0])
    return [y] + list(s_n if isinstance(s_n, tuple) else (s_n,))


def _inputs(layer: Any, rng: np.random.Generator, dtype: Any = np.float64):
    T, N = 5, 3
    shape = (N, T, layer.input_size) if layer.batch_first else (T, N, layer.input_size)
    rows = layer.num_layers * layer.num_directions
    sizes = [layer.output_size] + ([layer.hidden_size] if isinstance(layer, lk.LSTM) else [])
    state = [rng.standard_normal((rows, N, s)).astype(dtype) for s in sizes]
    return rng.standard_normal(shape).astype(dtype), state


def _assert_same_weights(layer: Any, module: Any) -> None:
    ours = layer.state_dict()
    theirs = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k]), k


def _assert_outputs_equal(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert float(np.std(b)) > 1e-2  # a non-degenerate reference
        assert rel_err(a, b) < TOL_F64


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_from_torch_matches_module(config):
    kind, options = config
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 4, dtype=torch.float64, **options).eval()
    layer = from_torch(module)
    assert type(layer) is getattr(lk, kind) and layer.dtype == np.float64
    assert not layer.training
    for name in ["num_layers", "bias", "batch_first", "dropout", "bidirectional"]:
        assert getattr(layer, name) == getattr(module, name), name
    assert getattr(layer, "nonlinearity", None) == getattr(module, "nonlinearity", None)
    assert layer.proj_size == getattr(module, "proj_size", 0)
    _assert_same_weights(layer, module)
    x, state = _inputs(layer, np.random.default_rng(1))
    _assert_outputs_equal(_lk_run(layer, x, state), _torch_run(module, x, state))
    # the weights were copied, not shared: changing the module leaves the layer alone
    before = layer.state_dict()
    with torch.no_grad():
        next(module.parameters()).add_(1.0)
    assert all(np.array_equal(before[k], v) for k, v in layer.state_dict().items())


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_to_torch_matches_layer(config):
    kind, options = config
    layer = getattr(lk, kind)(3, 4, dtype=np.float64, seed=2, **options).eval()
    module = to_torch(layer)
    assert type(module) is getattr(torch.nn, kind) and not module.training
    assert next(module.parameters()).dtype == torch.float64
    _assert_same_weights(layer, module)
    x, state = _inputs(layer, np.random.default_rng(3))
    _assert_outputs_equal(_torch_run(module, x, state), _lk_run(layer, x, state))
    # and back again: the same weights, bit for bit
    again = from_torch(module)
    assert repr(again) == repr(layer)
    for k, w in layer.state_dict().items():
        assert np.array_equal(again.state_dict()[k], w)


def test_dtype_and_mode_carry_over():
    module = torch.nn.GRU(2, 3)  # float32, training mode
    layer = from_torch(module)
    assert layer.dtype == np.float32 and layer.training
    back = to_torch(layer.eval())
    assert next(back.parameters()).dtype == torch.float32 and not back.training
    x, state = _inputs(layer, np.random.default_rng(4), np.float32)
    got, ref = _lk_run(layer, x, state), _torch_run(module.eval(), x, state)
    assert all(rel_err(a, b) < 1e-5 for a, b in zip(got, ref))


def test_conversion_errors():
    with pytest.raises(TypeError, match="expected torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN"):
        from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(TypeError, match="float32 or float64 parameters, got torch.float16"):
        from_torch(torch.nn.LSTM(2, 3).half())
    with pytest.raises(ValueError, match="forget_gate=False cannot be converted"):
        to_torch(lk.LSTM(2, 3, forget_gate=False))
    with pytest.raises(TypeError, match="expected an lstmkit LSTM, GRU or RNN"):
        to_torch(torch.nn.LSTM(2, 3))


# ---- .pt files ---------------------------------------------------------------------------


def test_load_torch_state_dict(tmp_path):
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    path = tmp_path / "lstm.pt"
    torch.save(module.state_dict(), path)
    sd = load_torch_state_dict(path)
    assert list(sd) == list(module.state_dict())
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    layer = lk.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    layer.load_state_dict(sd)
    _assert_same_weights(layer, module)


def test_load_nested_checkpoint_with_prefix(tmp_path):
    module = torch.nn.GRU(2, 3)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"rnn": module.state_dict()}, "epoch": 7}, path)
    sd = load_torch_state_dict(path, prefix="model.rnn.")
    assert list(sd) == list(module.state_dict())
    layer = lk.GRU(2, 3)
    layer.load_state_dict(sd)
    _assert_same_weights(layer, module)
    with pytest.raises(TypeError, match="epoch: expected a tensor, got int; pass prefix="):
        load_torch_state_dict(path)
    with pytest.raises(ValueError, match="expected tensors under prefix 'nothing.'"):
        load_torch_state_dict(path, prefix="nothing.")


class _Payload:
    """Pickles as 'call open(marker, "w")': loading it with full unpickling creates a file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_never_unpickles_objects(tmp_path):
    marker = tmp_path / "was_run"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(str(marker))}, path)
    with pytest.raises(Exception, match="(?i)weights.only"):
        load_torch_state_dict(path)
    assert not marker.exists()
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(TypeError, match="expected a state dict .*got list"):
        load_torch_state_dict(tmp_path / "list.pt")


# ---- a whole char-LM through its state dict ----------------------------------------------


def test_char_lm_state_dict_from_torch(tmp_path):
    """A torch char-LM's checkpoint loads into an lstmkit Model with the same children."""
    container = pytest.importorskip("lstmkit.nn.model")
    modules = pytest.importorskip("lstmkit.nn.feedforward")
    V, E, H = 7, 3, 5

    class TorchCharLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, num_layers=2)
            self.head = torch.nn.Linear(H, V)

        def forward(self, ids):
            return self.head(self.lstm(self.embed(ids))[0])

    torch.manual_seed(0)
    ref = TorchCharLM().double().eval()
    torch.save(ref.state_dict(), tmp_path / "charlm.pt")

    model = container.Model()
    model.add("embed", modules.Embedding(V, E, dtype=np.float64))
    model.add("lstm", lk.LSTM(E, H, num_layers=2, dtype=np.float64))
    model.add("head", modules.Linear(H, V, dtype=np.float64))
    model.load_state_dict(load_torch_state_dict(tmp_path / "charlm.pt"))

    ids = np.random.default_rng(5).integers(0, V, size=(6, 2))
    y, _ = model.lstm(model.embed(ids))
    logits = model.head(y)
    with torch.no_grad():
        expected = ref(torch.from_numpy(ids)).numpy()
    assert rel_err(logits, expected) < TOL_F64


# ---- gate order --------------------------------------------------------------------------


def test_onnx_gate_order():
    H = 2
    labels = np.repeat(np.arange(4), H)  # rows of gate k hold k: torch's i=0, f=1, g=2, o=3
    w = np.stack([labels, labels + 10], axis=1)  # (4H, 2)
    got = onnx_gate_order(w, "LSTM")
    assert got[:, 0].tolist() == np.repeat([0, 3, 1, 2], H).tolist()  # ONNX i, o, f, c
    assert np.array_equal(got[:, 1], got[:, 0] + 10)  # whole rows move
    gru = onnx_gate_order(np.repeat(np.arange(3), H), "GRU")  # torch r=0, z=1, n=2
    assert gru.tolist() == np.repeat([1, 0, 2], H).tolist()  # ONNX z, r, h
    assert onnx_gate_order(np.arange(3), "RNN").tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="mode: expected one of"):
        onnx_gate_order(w, "lstm")
    with pytest.raises(ValueError, match="divisible by 4 gates for LSTM, got shape"):
        onnx_gate_order(np.zeros(6), "LSTM")
