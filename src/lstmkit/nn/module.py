"""The interface shared by every layer and module: parameters, gradients, state dicts, modes.

- ``parameters()`` -> the LIVE arrays by name, read-only (updating an array in place updates
  the module; the arrays are never replaced);
- ``grads`` -> a dict with the same keys, accumulated by ``backward`` (``+=``), cleared
  by ``zero_grad()``;
- ``state_dict()`` -> copies; ``load_state_dict(sd, strict=True)`` names bad keys and shapes
  and changes nothing unless every entry is good;
- ``train()`` / ``eval()``.

Subclasses fill ``_params`` through ``_register`` and write ``forward`` and ``backward``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from lstmkit.nn.checks import check_finite


class Parameters(Mapping[str, np.ndarray]):
    """A module's live parameter arrays by name. They are updated in place (an optimiser,
    ``load_state_dict``, ``params[name][...] = value``, ``params[name] *= 2``) and never
    replaced, so what a layer prepared from them (its streaming step) stays valid."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __setitem__(self, name: str, value: Any) -> None:
        if value is not self._arrays.get(name):  # ``params[name] *= 2`` assigns the same array
            raise TypeError(
                f"parameters()[{name!r}]: parameters are updated in place, not replaced; "
                f"use parameters()[{name!r}][...] = value"
            )

    def __repr__(self) -> str:
        return f"Parameters({list(self._arrays)})"


class Module:
    """Parameter bookkeeping shared by the layers and modules (subclasses fill ``_params``)."""

    def __init__(self) -> None:
        self.training = True
        self._params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def _register(self, params: dict[str, np.ndarray]) -> None:
        self._params = params
        self.grads = {name: np.zeros_like(w) for name, w in params.items()}

    def parameters(self) -> Parameters:
        """The live parameter arrays, a read-only mapping: updating an array in place updates
        the module (as optimisers and ``load_state_dict`` do); the arrays themselves are
        never replaced, so what a layer prepared from them stays valid."""
        return Parameters(self._params)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under torch's names."""
        return {name: w.copy() for name, w in self._params.items()}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters (in place, so live references stay valid).

        ``strict``: every key must be present and no other; without it, missing keys keep
        their values and unknown keys are ignored. Shapes must always match.
        """
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                f"for {self!r}"
            )
        arrays = {}
        for name, w in self._params.items():
            if name not in state_dict:
                continue
            arr = np.asarray(state_dict[name])
            if arr.shape != w.shape:
                raise ValueError(
                    f"load_state_dict: {name}: expected shape {w.shape}, got {arr.shape}"
                )
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: {name}: expected numbers, got {arr.dtype.name}")
            with np.errstate(over="ignore", invalid="ignore"):
                cast = arr.astype(w.dtype, copy=False)  # 1e39 -> inf in float32: refused below
            check_finite(cast, f"load_state_dict: {name}")
            arrays[name] = cast
        for name, arr in arrays.items():  # only after every check passed
            self._params[name][...] = arr

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g.fill(0.0)

    def train(self, mode: bool = True) -> Module:
        self.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: forward is defined by the subclass")

    def _stored(self, what: str) -> Any:
        value = getattr(self, "_cache", None)
        if value is None:
            raise RuntimeError(f"backward: call forward first (no {what} is recorded)")
        return value
