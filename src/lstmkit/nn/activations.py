"""Pointwise nonlinearities and their derivatives, written from the outputs.

``sigmoid`` is computed as ``(1 + tanh(x / 2)) / 2``: it cannot overflow for any
finite input and costs one vectorised ufunc.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x)), overflow-free."""
    s = np.tanh(0.5 * x)
    s *= 0.5
    s += 0.5
    return s


def dsigmoid(s: np.ndarray) -> np.ndarray:
    """Derivative of the sigmoid given its output s: s * (1 - s)."""
    return s * (1.0 - s)


def dtanh(t: np.ndarray) -> np.ndarray:
    """Derivative of tanh given its output t: 1 - t^2."""
    return 1.0 - t * t


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def drelu(r: np.ndarray) -> np.ndarray:
    """Derivative of relu given its output r (0 at 0, like torch)."""
    return (r > 0.0).astype(r.dtype)
