"""Validation at the public boundary: every message says what was expected and what came."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def as_array(value: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """The value as an ndarray of exactly ``dtype``; no silent casts between float types."""
    arr = np.asarray(value)
    if arr.dtype != dtype:
        if arr.dtype.kind in "fc" or arr.dtype == object:
            raise TypeError(
                f"{name}: expected dtype {np.dtype(dtype).name}, got {arr.dtype.name}; "
                f"convert with .astype(np.{np.dtype(dtype).name}) or build the layer with "
                f"dtype=np.{arr.dtype.name}"
            )
        if arr.dtype.kind not in "iub":
            raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype.name}")
        arr = arr.astype(dtype)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}: expected finite values, got {arr[tuple(bad)]} at index {tuple(bad.tolist())}"
        )


def check_shape(arr: np.ndarray, expected: Sequence[int], name: str) -> None:
    if tuple(arr.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(arr.shape)}")


def lengths_mask(lengths: Any, T: int, N: int) -> np.ndarray:
    """Valid-step mask (T, N, 1) for per-sequence ``lengths`` (N ints in 1..T, any order)."""
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != N:
        raise ValueError(f"lengths: expected {N} lengths (one per sequence), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"lengths: expected integers, got dtype {arr.dtype.name}")
    if arr.size and (arr.min() < 1 or arr.max() > T):
        raise ValueError(
            f"lengths: expected every length in 1..{T} (the sequence length), "
            f"got min {arr.min()} and max {arr.max()}"
        )
    return (np.arange(T)[:, None] < arr[None, :])[:, :, None]
