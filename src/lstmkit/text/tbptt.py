"""Truncated backpropagation through time over one long token stream.

The stream is cut into ``B`` contiguous parallel streams (column b continues row after row),
and consecutive windows of ``seq_len`` steps are handed out in order, so the recurrent state
at the end of window k is the right initial state for window k + 1::

    state = None
    for inputs, targets in windows(tokens, batch_size=B, seq_len=T):   # (T, B) each
        logits, state_n = model(inputs, state)
        ...backward over this window only...
        state = carry_state(state_n)   # forward continues, gradients stop at the boundary

Tokens 0..n-1 give L = (n - 1) // B steps per stream: column b reads inputs
``tokens[b*L : (b+1)*L]`` and targets one token later. The last window is shorter when T
does not divide L (or dropped with ``drop_last``). Everything is deterministic, and
``start=k`` resumes at window k; a new pass over the data should start from state None.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["carry_state", "num_windows", "windows"]


def _check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def num_windows(n_tokens: int, batch_size: int, seq_len: int, drop_last: bool = False) -> int:
    """How many windows ``windows`` yields for a stream of ``n_tokens`` tokens."""
    B = _check_positive_int("batch_size", batch_size)
    T = _check_positive_int("seq_len", seq_len)
    L = (int(n_tokens) - 1) // B
    if L < 1:
        raise ValueError(
            f"tokens: expected at least batch_size + 1 = {B + 1} tokens, got {n_tokens}"
        )
    return L // T if drop_last else -(-L // T)


def windows(
    tokens: Any, batch_size: int, seq_len: int, start: int = 0, drop_last: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (inputs (T, B), targets (T, B)) for windows start, start + 1, ... in order."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise ValueError(
            f"tokens: expected a 1-D integer array, got shape {tokens.shape} "
            f"and dtype {tokens.dtype.name}"
        )
    n = num_windows(tokens.shape[0], batch_size, seq_len, drop_last)
    if not isinstance(start, int | np.integer) or not 0 <= start <= n:
        raise ValueError(f"start: expected a window index in [0, {n}], got {start!r}")
    B, T = int(batch_size), int(seq_len)
    L = (tokens.shape[0] - 1) // B
    inputs = tokens[: B * L].reshape(B, L).T  # (L, B): column b is stream b
    targets = tokens[1 : B * L + 1].reshape(B, L).T  # (L, B), one token later
    return _generate(inputs, targets, T, int(start), n)


def _generate(
    inputs: np.ndarray, targets: np.ndarray, T: int, start: int, n: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for k in range(start, n):
        rows = slice(k * T, (k + 1) * T)
        yield np.ascontiguousarray(inputs[rows]), np.ascontiguousarray(targets[rows])


def carry_state(state: Any) -> Any:
    """The final state of one window as the initial state of the next.

    NumPy keeps no graph, so "detaching" is just reusing the values: a copy, so that later
    in-place changes to either side cannot leak across the boundary. Accepts None, an array
    or a tuple of arrays (the LSTM's (h, c)).
    """
    if state is None:
        return None
    if isinstance(state, tuple | list):
        return tuple(np.array(s, copy=True) for s in state)
    return np.array(state, copy=True)
