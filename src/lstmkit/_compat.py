"""Old module paths, kept working for now with a DeprecationWarning.

lstmkit 0.2 moved its modules into packages by concept (``nn``, ``kernels``, ``train``,
``io``, ``cli``, ``explain``; see docs/design.md). ``import lstmkit.layers`` and the like
still work: a finder on ``sys.meta_path`` answers an old name with the module at its new
place (the same module object, so classes and functions are identical) and warns once.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

MOVED = {
    "lstmkit.activations": "lstmkit.nn.activations",
    "lstmkit.cells": "lstmkit.nn.cells",
    "lstmkit.cells.base": "lstmkit.nn.cells.base",
    "lstmkit.cells.gru": "lstmkit.nn.cells.gru",
    "lstmkit.cells.lstm": "lstmkit.nn.cells.lstm",
    "lstmkit.cells.rnn": "lstmkit.nn.cells.rnn",
    "lstmkit.checkpoint": "lstmkit.train.checkpoint",
    "lstmkit.container": "lstmkit.nn.model",
    "lstmkit.distributed": "lstmkit.train.distributed",
    "lstmkit.init": "lstmkit.nn.init",
    "lstmkit.interop": "lstmkit.io.pytorch",
    "lstmkit.layers": "lstmkit.nn.recurrent",
    "lstmkit.losses": "lstmkit.nn.losses",
    "lstmkit.memory.explain": "lstmkit.explain.explorer",
    "lstmkit.module": "lstmkit.nn.module",
    "lstmkit.modules": "lstmkit.nn.feedforward",
    "lstmkit.onnx": "lstmkit.io.onnx",
    "lstmkit.optim": "lstmkit.nn.optim",
    "lstmkit.runs": "lstmkit.train.run_folder",
    "lstmkit.schedules": "lstmkit.nn.schedules",
    "lstmkit.sequence": "lstmkit.nn.time_loop",
    "lstmkit.tbptt": "lstmkit.text.tbptt",
    "lstmkit.training": "lstmkit.train.trainer",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and loads them as their new modules."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported, under its new name, by create_module."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
