"""The character-level language model: embedding -> LSTM stack -> dropout -> linear head.

Shapes, with V the vocabulary size, E the embedding size, H the hidden size:

=========  ===========
ids        (T, N) int
embedded   (T, N, E)
y          (T, N, H)
logits     (T, N, V)
=========  ===========
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstmkit.nn.feedforward import Dropout, Embedding, Linear
from lstmkit.nn.model import Model
from lstmkit.nn.recurrent import LSTM

State = tuple[np.ndarray, ...]  # (h, c), or (h, c, a) with gate_recurrence


@dataclass(frozen=True)
class CharLMConfig:
    vocab_size: int
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    dtype: str = "float32"  # or "float64" (gradient checks); a name, so the config is JSON
    # the LSTM's options away from torch's ({"peepholes": True}; see lstmkit.train.variant)
    variant: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CharLM(Model):
    def __init__(self, config: CharLMConfig, seed: int | np.random.Generator | None = None):
        super().__init__()
        self.config = config
        rng = np.random.default_rng(seed)
        self.dtype = np.dtype(config.dtype)
        dt = self.dtype
        self.embed: Embedding = self.add(
            "embed", Embedding(config.vocab_size, config.embed, dtype=dt, seed=rng)
        )
        self.lstm: LSTM = self.add(
            "lstm",
            LSTM(
                config.embed,
                config.hidden,
                config.layers,
                dropout=config.dropout,
                dtype=dt,
                seed=rng,
                **config.variant,
            ),
        )
        self.drop: Dropout = self.add("drop", Dropout(config.dropout, seed=rng))
        self.head: Linear = self.add(
            "head", Linear(config.hidden, config.vocab_size, dtype=dt, seed=rng)
        )

    def initial_state(self, batch: int) -> State:
        """Zeros: h and c (L, N, H), and a (L, N, 3H) with gate_recurrence."""
        state: State = self.lstm.zero_state(batch)
        return state

    def forward(
        self, ids: np.ndarray, state: State | None = None, *, inference: bool = False
    ) -> tuple[np.ndarray, State]:
        """ids (T, N) -> logits (T, N, V), final state ((L, N, H), (L, N, H)).
        ``inference``: the LSTM records nothing for backward (see :class:`lstmkit.LSTM`)."""
        y, state = self.lstm(self.embed(ids), state, inference=inference)  # (T, N, H)
        return self.head(self.drop(y)), state  # (T, N, V)

    def backward(self, dlogits: np.ndarray) -> None:
        """Accumulate every parameter's gradient from dlogits (T, N, V)."""
        dy = self.drop.backward(self.head.backward(dlogits))
        dx, _ = self.lstm.backward(dy)
        self.embed.backward(dx)

    def step(self, ids: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """One character per sequence, for sampling: ids (N,) -> logits (N, V), new state."""
        y, state = self.lstm.step(self.embed(ids), state)  # (N, H)
        return self.head(y), state
