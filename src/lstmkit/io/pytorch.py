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

from lstmkit.nn.recurrent import GRU, LSTM, RNN

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


def from_torch(module: Any) -> LSTM | GRU | RNN:
    """An lstmkit layer equal to a ``torch.nn.LSTM``, ``GRU`` or ``RNN``, with copied weights
    (see :meth:`lstmkit.LSTM.from_torch`)."""
    import torch

    for torch_cls, cls in ((torch.nn.LSTM, LSTM), (torch.nn.GRU, GRU), (torch.nn.RNN, RNN)):
        if isinstance(module, torch_cls):
            return cls.from_torch(module)
    raise TypeError(
        f"module: expected torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN, got {type(module).__name__}"
    )


def to_torch(layer: LSTM | GRU | RNN) -> Any:
    """A ``torch.nn.LSTM``, ``GRU`` or ``RNN`` equal to ``layer``, with copied weights (see
    :meth:`lstmkit.LSTM.to_torch`; an LSTM built with ``forget_gate=False`` has no torch
    equivalent and raises ValueError)."""
    if not isinstance(layer, LSTM | GRU | RNN):
        raise TypeError(f"layer: expected an lstmkit LSTM, GRU or RNN, got {type(layer).__name__}")
    return layer.to_torch()


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
