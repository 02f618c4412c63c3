"""Bits per character of a model on a text, with the state carried across windows."""

from __future__ import annotations

import math

import numpy as np

from lstmkit.nn.losses import softmax_cross_entropy
from lstmkit.text.model import CharLM
from lstmkit.text.tbptt import windows


def bits_per_char(model: CharLM, ids: np.ndarray, batch: int = 32, seq_len: int = 256) -> float:
    """Mean -log2 p(next char) over ``ids`` (1-D), read as ``batch`` parallel streams.

    The text is cut into ``batch`` equal streams (the remainder, at most batch - 1
    characters, is not scored); each stream is read in windows of ``seq_len`` with the state
    carried, so every prediction but each stream's first sees all of its stream's past.
    """
    if len(ids) < 2:
        raise ValueError(f"text too short to evaluate: {len(ids)} characters")
    batch = max(1, min(batch, (len(ids) - 1) // 2))
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for x, y in windows(ids, batch, seq_len):  # (T, B) each
            logits, state = model(x, state, inference=True)
            loss, _ = softmax_cross_entropy(logits, y, reduction="sum")
            total += loss
            count += y.size
    finally:
        model.train(was_training)
    return total / count / math.log(2.0)
