"""Sampling text from a char-LM, one character at a time with the state carried."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from lstmkit.text.corpus import Vocab
from lstmkit.text.model import CharLM


def next_char_distribution(
    logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None
) -> np.ndarray:
    """Probabilities (V,) from logits (V,): softmax(logits / temperature) over the top k.

    Exactly k entries stay (ties at the k-th largest logit go to the lower ids)."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        keep = np.argsort(-z, kind="stable")[:top_k]
        kept = np.full_like(z, -np.inf)
        kept[keep] = z[keep]
        z = kept
    z -= z.max()
    p = np.exp(z)
    p[0] = 0.0 if p.sum() > p[0] else p[0]  # never emit <unk> unless nothing else is left
    return p / p.sum()


def generate(
    model: CharLM,
    vocab: Vocab,
    prime: str,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield ``length`` characters following ``prime`` (streamed as they are drawn).

    The prime is read once by the whole-sequence forward; every new character costs one
    ``model.step`` with the state carried, never a re-run of the prefix.
    """
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k: expected >= 1, got {top_k}")
    rng = np.random.default_rng(seed)
    model.eval()
    ids = vocab.encode(prime or "\n")
    logits, state = model(ids[:, None], inference=True)  # (T, 1, V)
    last = logits[-1, 0]
    for _ in range(length):
        p = next_char_distribution(last, temperature, top_k)
        next_id = int(rng.choice(p.size, p=p))
        yield vocab.decode([next_id])
        step_logits, state = model.step(np.array([next_id]), state)
        last = step_logits[0]
