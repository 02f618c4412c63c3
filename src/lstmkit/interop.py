"""PyTorch in and out, and the one place where gate orders are converted.

lstmkit keeps torch's layout everywhere (gate order i, f, g, o for the LSTM and r, z, n for
the GRU; ``weight_ih_l0`` etc. as parameter names), so moving weights to and from torch is a
copy. Other formats order the gates differently; :func:`onnx_gate_order` is the only place
that knows ONNX's order.

torch is needed only by the functions that take or return torch objects, and is imported
inside them; lstmkit itself never depends on it.

>>> import torch, lstmkit as lk                                  # doctest: +SKIP
>>> layer = from_torch(torch.nn.LSTM(8, 16, num_layers=2))     # doctest: +SKIP
>>> module = to_torch(layer)                                   # doctest: +SKIP
>>> layer.load_state_dict(load_torch_state_dict("lstm.pt"))    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from lstmkit.layers import GRU, LSTM, RNN

__all__ = ["from_torch", "load_torch_state_dict", "onnx_gate_order", "to_torch"]

# Rows of each gate block, in torch's order, listed in the target format's order.
# LSTM: torch (i, f, g, o) -> ONNX (i, o, f, c), where ONNX's c is torch's g.
# GRU:  torch (r, z, n)    -> ONNX (z, r, h), where ONNX's h is torch's n.
_ONNX_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}


def onnx_gate_order(w: np.ndarray, mode: str) -> np.ndarray:
    """Reorder the gate blocks along axis 0 from torch's order to ONNX's.

    ``w`` is a weight (G*H, ·) or a bias (G*H,) in torch's order; ``mode`` is "LSTM"
    (i, f, g, o -> i, o, f, c), "GRU" (r, z, n -> z, r, h) or "RNN" (one block, unchanged).
    """
    if mode not in _ONNX_ORDER:
        raise ValueError(f"mode: expected one of {sorted(_ONNX_ORDER)}, got {mode!r}")
    order = _ONNX_ORDER[mode]
    if w.shape[0] % len(order):
        raise ValueError(
            f"w: expected a first dimension divisible by {len(order)} gates for {mode}, "
            f"got shape {w.shape}"
        )
    blocks = np.split(w, len(order), axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def _numpy_dtype(torch_dtype: Any) -> np.dtype:
    import torch

    dtypes: dict[Any, np.dtype] = {torch.float32: np.dtype(np.float32)}
    dtypes[torch.float64] = np.dtype(np.float64)
    if torch_dtype not in dtypes:
        raise TypeError(
            f"expected a module with float32 or float64 parameters, got {torch_dtype}; "
            "convert it first with module.float() or module.double()"
        )
    return dtypes[torch_dtype]


def from_torch(module: Any) -> LSTM | GRU | RNN:
    """An lstmkit layer equal to a ``torch.nn.LSTM``, ``GRU`` or ``RNN``, with copied weights.

    Every constructor option carries over (num_layers, bias, batch_first, dropout,
    bidirectional, proj_size, nonlinearity) as do the parameters' dtype (float32 or
    float64) and the training/eval mode. The weights are copied exactly.
    """
    import torch

    common: dict[str, Any] = {}
    if isinstance(module, torch.nn.LSTM):
        cls: type[LSTM] | type[GRU] | type[RNN] = LSTM
        common["proj_size"] = module.proj_size
    elif isinstance(module, torch.nn.GRU):
        cls = GRU
    elif isinstance(module, torch.nn.RNN):
        cls = RNN
        common["nonlinearity"] = module.nonlinearity
    else:
        raise TypeError(
            f"module: expected torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN, "
            f"got {type(module).__name__}"
        )
    params = dict(module.named_parameters())
    dtypes = {p.dtype for p in params.values()}
    if len(dtypes) != 1:
        raise TypeError(f"module: expected one parameter dtype, got {sorted(map(str, dtypes))}")
    layer = cls(
        module.input_size,
        module.hidden_size,
        num_layers=module.num_layers,
        bias=module.bias,
        batch_first=module.batch_first,
        dropout=float(module.dropout),
        bidirectional=module.bidirectional,
        dtype=_numpy_dtype(dtypes.pop()),
        **common,
    )
    layer.load_state_dict({k: p.detach().cpu().numpy() for k, p in params.items()})
    layer.train(module.training)
    return layer


def to_torch(layer: LSTM | GRU | RNN) -> Any:
    """A ``torch.nn.LSTM``, ``GRU`` or ``RNN`` equal to ``layer``, with copied weights.

    The module gets the layer's options, dtype and training/eval mode. An LSTM built with
    ``forget_gate=False`` has no torch equivalent and raises ValueError.
    """
    import torch

    kwargs: dict[str, Any] = {}
    cls: Any
    if isinstance(layer, LSTM):
        if not getattr(layer.cell, "forget_gate", True):
            raise ValueError(
                "to_torch: torch.nn.LSTM always has a forget gate; a layer built with "
                "forget_gate=False cannot be converted"
            )
        cls = torch.nn.LSTM
        kwargs["proj_size"] = layer.proj_size
    elif isinstance(layer, GRU):
        cls = torch.nn.GRU
    elif isinstance(layer, RNN):
        cls = torch.nn.RNN
        kwargs["nonlinearity"] = layer.nonlinearity
    else:
        raise TypeError(f"layer: expected an lstmkit LSTM, GRU or RNN, got {type(layer).__name__}")
    module = cls(
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bias=layer.bias,
        batch_first=layer.batch_first,
        dropout=layer.dropout,
        bidirectional=layer.bidirectional,
        dtype=torch.float64 if layer.dtype == np.float64 else torch.float32,
        **kwargs,
    )
    state = {k: torch.from_numpy(np.array(w)) for k, w in layer.parameters().items()}
    module.load_state_dict(state, strict=True)
    module.train(layer.training)
    return module


def load_torch_state_dict(path: str | os.PathLike[str], prefix: str = "") -> dict[str, np.ndarray]:
    """Read a torch checkpoint (``.pt``/``.pth``) into a dict of NumPy arrays.

    Needs torch. The file is read with ``torch.load(weights_only=True)``, which only
    rebuilds tensors and plain containers and refuses arbitrary pickled objects, so an
    untrusted file cannot run code; a checkpoint holding other objects fails to load
    (re-save it as ``torch.save(module.state_dict(), path)``).

    Nested dicts are flattened with dotted keys, as torch names submodules
    (``{"model": {"lstm.weight_ih_l0": ...}}`` -> ``"model.lstm.weight_ih_l0"``).
    With ``prefix`` only the keys starting with it are kept, with the prefix removed:
    ``layer.load_state_dict(load_torch_state_dict(path, prefix="lstm."))``.
    """
    import torch

    obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"{os.fspath(path)}: expected a state dict (a mapping of names to tensors), "
            f"got {type(obj).__name__}"
        )
    flat: dict[str, np.ndarray] = {}

    def visit(mapping: Mapping[Any, Any], base: str) -> None:
        for key, value in mapping.items():
            name = f"{base}{key}"
            if isinstance(value, Mapping):
                visit(value, name + ".")
            elif isinstance(value, torch.Tensor):
                if not name.startswith(prefix):
                    continue
                flat[name[len(prefix) :]] = value.detach().cpu().numpy().copy()
            elif name.startswith(prefix):
                raise TypeError(
                    f"{os.fspath(path)}: {name}: expected a tensor, got {type(value).__name__}; "
                    "pass prefix= to select the state dict inside the checkpoint"
                )

    visit(obj, "")
    if not flat:
        raise ValueError(f"{os.fspath(path)}: expected tensors under prefix {prefix!r}, got none")
    return flat
