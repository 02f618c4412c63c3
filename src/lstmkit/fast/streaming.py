"""Streaming: one time step of a layer (placeholder, filled in below)."""

from __future__ import annotations

from typing import Any

import numpy as np


def step(layer: Any, x_t: Any, state: Any) -> tuple[np.ndarray, Any] | None:
    return None
