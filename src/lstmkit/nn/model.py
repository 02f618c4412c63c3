"""A small container so a whole model exposes parameters, grads and state dicts like a layer.

A subclass registers its children (any objects with the layer interface: ``parameters()``,
``grads``, ``state_dict()``, ``load_state_dict()``, ``zero_grad()``, ``train()``) and writes
``forward`` / ``backward`` itself, so the chain rule stays readable::

    class CharLM(Model):
        def __init__(self, V, E, H, seed):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.embed = self.add("embed", Embedding(V, E, seed=rng))
            self.lstm = self.add("lstm", LSTM(E, H, seed=rng))
            self.head = self.add("head", Linear(H, V, seed=rng))

        def forward(self, ids, state=None):
            y, state = self.lstm(self.embed(ids), state)     # (T, N, H)
            return self.head(y), state                       # (T, N, V)

        def backward(self, dlogits):
            dy = self.head.backward(dlogits)
            dx, _ = self.lstm.backward(dy)
            self.embed.backward(dx)

Assigning ``self.children = {"embed": ..., "lstm": ...}`` registers the same way (and sets
the attributes). Flat names are dotted: ``"embed.weight"``, ``"lstm.weight_ih_l0"``,
``"head.bias"``; they are ordered by registration order, then by each child's own order,
so the order is deterministic. The flat dicts hold the children's LIVE arrays, so an
optimizer that updates ``model.parameters()`` in place updates the children.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from lstmkit.nn.checks import check_finite
from lstmkit.nn.module import Parameters

__all__ = ["Model"]

_INTERFACE = ("parameters", "state_dict", "load_state_dict", "zero_grad", "train")


class Model:
    """Base class for a model made of named children; see the module docstring."""

    def __init__(self) -> None:
        self.training = True
        self._children: dict[str, Any] = {}

    # ---- registration -------------------------------------------------------------

    def add(self, name: str, module: Any) -> Any:
        """Register ``module`` under ``name`` (also as ``self.<name>``); returns the module."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name: expected a Python identifier (no dots), got {name!r}")
        if hasattr(type(self), name):
            raise ValueError(f"name: {name!r} would hide {type(self).__name__}.{name}; rename it")
        if name in self._children:
            raise ValueError(f"name: {name!r} is already registered; pick another name")
        missing = [a for a in _INTERFACE + ("grads",) if not hasattr(module, a)]
        if missing:
            raise TypeError(
                f"{name}: expected a module with {', '.join(_INTERFACE)} and grads, "
                f"got {type(module).__name__} without {', '.join(missing)}"
            )
        self._children[name] = module
        setattr(self, name, module)
        return module

    @property
    def children(self) -> Mapping[str, Any]:
        """The registered children by name, in registration order (read-only view)."""
        return MappingProxyType(self._children)

    @children.setter
    def children(self, modules: Mapping[str, Any]) -> None:
        self._children = {}
        for name, module in modules.items():
            self.add(name, module)

    # ---- parameters ---------------------------------------------------------------

    def parameters(self) -> Parameters:
        """Every child's live parameter arrays under dotted names (read-only, as a
        layer's: update the arrays in place)."""
        return Parameters(
            {
                f"{name}.{key}": w
                for name, child in self._children.items()
                for key, w in child.parameters().items()
            }
        )

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Every child's live gradient arrays, same keys as ``parameters()``."""
        return {
            f"{name}.{key}": g
            for name, child in self._children.items()
            for key, g in child.grads.items()
        }

    def num_parameters(self) -> int:
        return sum(int(w.size) for w in self.parameters().values())

    def zero_grad(self) -> None:
        for child in self._children.values():
            child.zero_grad()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter under dotted names."""
        return {
            f"{name}.{key}": w
            for name, child in self._children.items()
            for key, w in child.state_dict().items()
        }

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load dotted-name arrays into the children, checking everything before changing any.

        ``strict``: the keys must be exactly ``parameters()``'s; without it, missing keys keep
        their values and unknown keys are ignored. Shapes must always match.
        """
        params = self.parameters()
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                f"for {type(self).__name__}"
            )
        for key, w in params.items():
            if key not in state_dict:
                continue
            arr = np.asarray(state_dict[key])
            if arr.shape != w.shape:
                raise ValueError(
                    f"load_state_dict: {key}: expected shape {w.shape}, got {arr.shape}"
                )
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: {key}: expected numbers, got {arr.dtype.name}")
            check_finite(arr, f"load_state_dict: {key}")
        # Each child gets a complete dict (missing keys filled with its current values), so
        # children whose load_state_dict is always strict work too.
        for name, child in self._children.items():
            prefix = name + "."
            sub = {
                k: state_dict[prefix + k] if prefix + k in state_dict else v
                for k, v in child.state_dict().items()
            }
            child.load_state_dict(sub)

    # ---- modes and randomness -----------------------------------------------------

    def train(self, mode: bool = True) -> Model:
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self) -> Model:
        return self.train(False)

    def rng_state(self) -> dict[str, Any]:
        """JSON-able states of the children's random generators (dropout), by child name."""
        states: dict[str, Any] = {}
        for name, child in self._children.items():
            if hasattr(child, "rng_state"):
                states[name] = child.rng_state()
            elif isinstance(getattr(child, "_rng", None), np.random.Generator):
                states[name] = dict(child._rng.bit_generator.state)
        return states

    def set_rng_state(self, states: Mapping[str, Any]) -> None:
        """Restore what ``rng_state()`` returned (strict about the child names)."""
        expected = set(self.rng_state())
        if set(states) != expected:
            raise ValueError(
                f"set_rng_state: expected states for {sorted(expected)}, got {sorted(states)}"
            )
        for name, state in states.items():
            child = self._children[name]
            if hasattr(child, "set_rng_state"):
                child.set_rng_state(state)
            else:
                child._rng.bit_generator.state = state

    def set_noise(self, noise: Any) -> None:
        """Draw every child's dropout masks from ``noise`` (a
        :class:`~lstmkit.nn.noise.KeyedNoise`, keyed by (seed, step, example)), or again
        from the children's generators with None."""
        for child in self._children.values():
            if hasattr(child, "set_noise"):
                child.set_noise(noise)
            elif hasattr(child, "noise"):
                child.noise = noise

    # ---- computation (subclasses) -------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: define forward in the subclass")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: define backward in the subclass")

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self._children.items()
        ]
        if not lines:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"
