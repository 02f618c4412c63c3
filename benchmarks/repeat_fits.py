"""Repeated automatic-forecaster fits in one process: are their roll-outs bit for bit equal?

    for p in $(seq 20); do PYTHONPATH=src python benchmarks/repeat_fits.py 40; done

Fits ``tests/test_series_auto_resume.py``'s series ``FITS`` times with the settings of the
search's note in docs/forecasting.md ("Bit for bit") and records every one-series roll-out
of the scores (``auto_train._predict``, 78 a fit). Prints how many fits had a roll-out
whose bits differ from the process's first fit, and the first candidate's validation MAEs.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series import auto_train
from lstmkit.series.auto import AutoConfig, fit_auto

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from test_series_auto_resume import H, M, series  # noqa: E402

CONFIG = AutoConfig(steps=20, eval_every=10, hidden=4, sizes=(3,), top=2, seeds=2, minutes=None)


def main(fits: int) -> None:
    predict, calls = auto_train._predict, []

    def recorded(*args: Any) -> np.ndarray:
        out = predict(*args)
        calls.append(out.tobytes())
        return out

    auto_train._predict = recorded
    first: list[bytes] | None = None
    differ, scores = 0, Counter()
    for _ in range(fits):
        calls.clear()
        scores[repr(fit_auto(series(), M, H, CONFIG).table[0]["val_mae"])] += 1
        first = first or list(calls)
        differ += calls != first
    print(f"{differ} of {fits - 1} fits differ from the first; first candidate's scores {scores}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
