"""Validation at the public boundary: every message says what was expected and what came."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def as_array(value: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """The value as an ndarray of exactly ``dtype``; no silent casts between float types."""
    arr = np.asarray(value)
    if arr.dtype != dtype:
        want = np.dtype(dtype).name
        if arr.dtype in (np.float32, np.float64):  # the other dtype a layer can have
            raise TypeError(
                f"{name}: expected dtype {want}, got {arr.dtype.name}; convert with "
                f".astype(np.{want}) or build the layer with dtype=np.{arr.dtype.name}"
            )
        if arr.dtype.kind == "c":
            raise TypeError(
                f"{name}: expected dtype {want}, got {arr.dtype.name}; complex values are not "
                "supported (layers are float32 or float64)"
            )
        if arr.dtype.kind == "f" or arr.dtype == object:
            raise TypeError(
                f"{name}: expected dtype {want}, got {arr.dtype.name}; convert with "
                f".astype(np.{want}) (layers are float32 or float64)"
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
