"""How the explorer writes a value: round(10^4 v) as an integer, shown with 4 decimals.

Shared by the page's packed data (:mod:`lstmkit.explain.html`) and the cell diagram's
numbers (:mod:`lstmkit.explain.diagram`), so both show exactly the same text.
"""

from __future__ import annotations

import numpy as np

SCALE = 10_000


def quantised(values: np.ndarray) -> np.ndarray:
    """n = round(10^4 v) as int64 (clipped to int32)."""
    n = np.rint(np.asarray(values, dtype=np.float64) * SCALE)
    return np.clip(n, -(2**31 - 1), 2**31 - 1).astype(np.int64)


def display_value(value: float) -> str:
    """The text the page shows for ``value``: round(10^4 v) / 10^4 with 4 decimals."""
    n = int(quantised(np.array([value]))[0])
    return f"{n / SCALE:.4f}"
