"""The global forecaster's progress file, so a killed ``series train --id-column`` can
``--resume``.

The mechanism is the automatic forecaster's (:mod:`lstmkit.series.auto_progress`, whose
:class:`~lstmkit.series.auto_progress.Progress` this subclasses): :func:`lstmkit.series.many.
fit_global` with a :class:`GlobalProgress` saves every validated candidate's row and every
refitted member as it ends, atomically, and a resumed fit replays them. Every candidate and
member trains from its own seed, so with a time budget that does not bind a fit interrupted
anywhere and resumed ends with the same ``global.npz``, bit for bit, as an uninterrupted one.

``RUN/global-progress.npz`` differs from ``auto-progress.npz`` in three points:

========================  ================================================================
``row<i>/errors``         (R, h) the i-th candidate's validation errors of every series, end
                          to end (R = sum of the series' origins R_k)
``row<i>/counts``         (K,) how many of those rows are each series' (R_k)
``member<j>/<param>``     the j-th member's :class:`~lstmkit.series.covariates.CovariateLSTM`
========================  ================================================================

the rows' score is ``val_mase`` (the global search's), and the ``stamp`` a resume must match
holds a fingerprint of every series' values and covariates, their lengths, the number of
covariate columns and every option of :class:`~lstmkit.series.auto.AutoConfig` but
``minutes``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np

from lstmkit.series.auto import AutoConfig, Candidate
from lstmkit.series.auto_progress import Progress
from lstmkit.series.covariates import CovariateLSTM
from lstmkit.series.data import fingerprint
from lstmkit.series.many import Panel
from lstmkit.train import checkpoint

__all__ = ["FILE", "KIND", "GlobalProgress", "stamp"]

KIND = "global-forecaster-progress"
FILE = "global-progress.npz"


def stamp(panel: Panel, m: int, h: int, config: AutoConfig) -> dict[str, Any]:
    """What a resumed global fit must share with the saved one, JSON-ready."""
    options = {k: v for k, v in asdict(config).items() if k != "minutes"}
    columns = [
        np.concatenate([y[:, None], x, p], axis=1) for y, x, p in zip(panel.y, panel.X, panel.P)
    ]
    data = {
        "values": fingerprint(np.concatenate([c.ravel() for c in columns])),
        "n": int(sum(len(y) for y in panel.y)),
        "lengths": [len(y) for y in panel.y],
        "future": panel.F,
        "past": panel.n_past,
        "season": m,
        "horizon": h,
    }
    return json.loads(json.dumps({**data, **options}))  # tuples as lists, as when loaded


class GlobalProgress(Progress):
    """The memo :func:`~lstmkit.series.many.fit_global` consults and fills; make one with
    :meth:`start` or :meth:`resume` (the stamp: :func:`stamp`)."""

    kind = KIND
    file = FILE
    score = "val_mase"

    def _model(self, c: Candidate) -> CovariateLSTM:
        return CovariateLSTM(c.hidden, int(self.stamp["future"]), int(self.stamp["past"]))

    def _errors_arrays(self, i: int, errors: list[np.ndarray]) -> dict[str, np.ndarray]:
        values = np.concatenate(errors) if errors else np.zeros((0, 1))
        counts = np.array([len(e) for e in errors], np.int64)
        return {f"row{i}/errors": values, f"row{i}/counts": counts}

    def _errors_from(self, arrays: dict[str, np.ndarray], i: int) -> list[np.ndarray]:
        values, counts = arrays[f"row{i}/errors"], arrays.get(f"row{i}/counts")
        if counts is None or np.any(counts < 0) or int(counts.sum()) != values.shape[0]:
            raise checkpoint.CheckpointError(
                f"{self.path}: row {i}: expected counts that add up to its errors' rows"
            )
        return list(np.split(values, np.cumsum(counts)[:-1])) if len(counts) else []
