"""Dropout masks keyed by (seed, step, example): the same masks however a batch is split.

A layer or :class:`~lstmkit.nn.feedforward.Dropout` draws its masks from its own
generator, one after another, so the masks depend on the batch size and on every draw
before. A data-parallel run (K processes, each with B/K of the B examples) then draws other
masks than one process with the whole batch. :class:`KeyedNoise` removes the dependence:
the uniform numbers of example (column) n in the d-th draw of step s come from a Philox
counter-based stream keyed by (seed, s, d, n), so

* K ranks holding columns [r B/K, (r + 1) B/K) draw exactly the masks one process draws
  for those columns (``rank`` tells a rank's first column: ``rank * N`` for N local ones),
* a resumed run needs nothing but the step to continue the masks, on any K.

A model uses it once the trainer calls ``model.set_noise(KeyedNoise(seed))`` and
``noise.start(step, rank)`` before each step's forward; without it, modules draw from their
generators as before. Draws must happen in the same order on every rank (they do: the
ranks run the same modules on fewer columns).
"""

from __future__ import annotations

import numpy as np

__all__ = ["KeyedNoise"]

_TAG = 0x6C73_746D_6B69_7401  # "lstmkit", version 1 of the keying


class KeyedNoise:
    """Uniform numbers in [0, 1) keyed by (seed, step, draw, global column); see the module."""

    def __init__(self, seed: int):
        words = np.random.SeedSequence([int(seed) & (2**64 - 1), _TAG]).generate_state(2, np.uint64)
        self.key = words
        self.step = 0
        self.rank = 0
        self.draws = 0

    def start(self, step: int, rank: int = 0) -> None:
        """Before step ``step``'s forward on the rank holding the ``rank``-th equal share."""
        self.step, self.rank, self.draws = int(step), int(rank), 0

    def random(self, shape: tuple[int, ...], batch_axis: int) -> np.ndarray:
        """Float64 uniforms of ``shape`` whose slice n along ``batch_axis`` comes from
        the stream of global column ``rank * shape[batch_axis] + n``."""
        d = self.draws
        self.draws += 1
        out = np.empty(shape, np.float64)
        rows = np.moveaxis(out, batch_axis, 0)  # a view: filling it fills ``out``
        first = self.rank * shape[batch_axis]
        for n in range(shape[batch_axis]):
            counter = np.array([0, d, first + n, self.step], dtype=np.uint64)
            gen = np.random.Generator(np.random.Philox(key=self.key, counter=counter))
            rows[n] = gen.random(rows.shape[1:])
        return out

    def __repr__(self) -> str:
        return f"KeyedNoise(step={self.step}, rank={self.rank})"
