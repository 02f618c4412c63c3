"""An automatic or global forecaster's fit interrupted on purpose, and results compared bit for
bit (test_series_auto_resume.py, test_series_many_resume.py)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Killed(Exception):
    """The interruption: raised when a chosen piece of work starts."""


class Interrupting:
    """A Progress that dies when the ``kill_at``-th piece of work to compute starts (the
    ones before it are saved), and counts the pieces it computed."""

    def __init__(self, progress: Any, kill_at: int | None = None) -> None:
        self.progress, self.kill_at, self.computed = progress, kill_at, 0
        self.spent = progress.spent

    def saved(self, c: Any) -> bool:
        return self.progress.saved(c)

    def validated(self, c: Any, run: Any) -> Any:
        return self.progress.validated(c, self._guard(run))

    def refitted(self, c: Any, seed: int, run: Any) -> Any:
        return self.progress.refitted(c, seed, self._guard(run))

    def _guard(self, run: Any) -> Any:
        def guarded() -> Any:
            self.computed += 1
            if self.computed == self.kill_at:
                raise Killed
            return run()

        return guarded


def same(a: object, b: object) -> bool:
    """Equal, floats bit for bit (NaN equal to NaN): the scores too, since the one-series
    roll-out no longer depends on where its arrays lie in memory (docs/forecasting.md)."""
    if isinstance(a, float) and isinstance(b, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes() or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
