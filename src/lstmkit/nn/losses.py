"""Losses that return ``(loss, gradient)``: softmax cross-entropy and mean squared error.

Each function gives the loss as a Python float (accumulated in float64) and the gradient
with respect to its first argument, in that argument's dtype, ready for ``backward``.
Non-finite inputs are not rejected: a NaN or inf loss is returned as such, so the training
loop can stop with its own message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["log_softmax", "mse", "softmax_cross_entropy"]

_REDUCTIONS = ("mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def _float_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array, got dtype {arr.dtype.name}")
    return arr


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable: (z - max) - log(sum(exp(z - max)))."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits: Any,
    targets: Any,
    ignore_index: int | None = None,
    mask: Any = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Cross-entropy of class ``targets`` under ``softmax(logits)``; matches torch's
    ``F.cross_entropy(logits.reshape(-1, C), targets.reshape(-1), ignore_index=...)``.

    ==============  ==========================================================
    logits          (..., C) floats
    targets         (...) integers in [0, C); entries equal to ``ignore_index``
                    (any value, e.g. -100) or where ``mask`` is False are skipped
    mask            (...) booleans (or 0/1), True = counted; optional
    returns         (loss, dlogits (..., C))
    ==============  ==========================================================

    ``reduction="mean"`` divides by the number of counted entries (torch's rule), and
    raises if nothing is counted; ``"sum"`` adds them up.
    """
    _check_reduction(reduction)
    logits = _float_array(logits, "logits")
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits: expected shape (..., C) with C >= 1, got {logits.shape}")
    C = logits.shape[-1]
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integers, got dtype {targets.dtype.name}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets: expected shape {logits.shape[:-1]} (logits' shape without the class "
            f"axis), got {targets.shape}"
        )
    valid = _counted(targets, ignore_index, mask)  # (...) bools, or None: every entry
    counted = targets if valid is None else targets[valid]
    if counted.size and (counted.min() < 0 or counted.max() >= C):
        bad = counted[(counted < 0) | (counted >= C)].flat[0]
        hint = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise ValueError(f"targets: expected class ids in [0, {C}){hint}, got {bad}")
    n = counted.size
    if reduction == "mean" and n == 0:
        raise ValueError(
            "softmax_cross_entropy: every target is ignored or masked, so the mean is "
            "undefined; check the batch or use reduction='sum'"
        )
    z = logits.reshape(-1, C)  # (M, C)
    t = (targets if valid is None else np.where(valid, targets, 0)).reshape(-1)  # (M,)
    rows = np.arange(z.shape[0])
    counts = None if valid is None else valid.reshape(-1)  # (M,)

    # log p_t = (z_t - max) - log(sum(exp(z - max))), summed in float64
    p = z - z.max(axis=1, keepdims=True)  # (M, C): shifted, then exp, then the gradient
    picked = p[rows, t]  # (M,)
    np.exp(p, out=p)
    total = p.sum(axis=1, keepdims=True)  # (M, 1)
    picked -= np.log(total[:, 0])  # log p_t
    loss = -float(np.sum(picked, where=counts if counts is not None else True, dtype=np.float64))

    # d(-log p_t)/dz = softmax(z) - onehot(t), divided by n for the mean; zero where not
    # counted. One pass over (M, C) scales exp(z - max) by 1 / (sum * n).
    scale = 1.0 / n if reduction == "mean" else 1.0
    if reduction == "mean":
        total *= n
    p *= np.reciprocal(total, out=total)
    p[rows, t] -= p.dtype.type(scale)
    if counts is not None:
        p[~counts] = 0
    if reduction == "mean":
        loss /= n
    return loss, p.reshape(logits.shape)


def _counted(targets: np.ndarray, ignore_index: int | None, mask: Any) -> np.ndarray | None:
    """Which targets count (not ``ignore_index``, ``mask`` True), or None if all do."""
    valid = None
    if ignore_index is not None:
        valid = targets != ignore_index
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != targets.shape:
            raise ValueError(f"mask: expected shape {targets.shape}, got {m.shape}")
        if m.dtype != bool:
            if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
                raise ValueError("mask: expected booleans or 0/1 values")
            m = m.astype(bool)
        valid = m if valid is None else valid & m
    return None if valid is None or valid.all() else valid


def mse(pred: Any, target: Any, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Mean (or sum) of squared errors; pred and target must have the same shape.

    Returns ``(loss, dpred)`` with ``dpred = 2 (pred - target) / n`` for the mean.
    """
    _check_reduction(reduction)
    pred = _float_array(pred, "pred")
    target = np.asarray(target)
    if target.shape != pred.shape:
        raise ValueError(
            f"target: expected shape {pred.shape} (pred's shape; no broadcasting), "
            f"got {target.shape}"
        )
    if target.dtype.kind not in "iuf":
        raise TypeError(f"target: expected numbers, got dtype {target.dtype.name}")
    if pred.size == 0:
        raise ValueError("pred: expected at least one element, got an empty array")
    diff = pred - target.astype(pred.dtype, copy=False)
    loss = float(np.sum(np.square(diff, dtype=np.float64)))
    dpred = 2 * diff
    if reduction == "mean":
        loss /= pred.size
        dpred /= pred.dtype.type(pred.size)
    return loss, dpred
