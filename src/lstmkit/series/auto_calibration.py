"""The intervals' calibration errors at earlier cuts of the history.

:func:`_earlier_cut_errors` retrains the chosen forms on cuts ending one validation part
earlier and records their errors from every origin of the part after the cut; those errors
join the cross-fitted validation errors behind the split-conformal intervals (see
:mod:`lstmkit.series.auto`, step 4).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lstmkit.series.auto_candidates import AutoConfig, _candidate
from lstmkit.series.auto_train import _errors_at, _train, _z_observed
from lstmkit.series.hybrid import fit_form

__all__ = ["cuts_as_rows"]


def cuts_as_rows(cuts: list[np.ndarray]) -> list[np.ndarray]:
    """Each earlier cut's errors (forms, R, h) as rows (forms R, h) of calibration errors."""
    return [e.reshape(-1, e.shape[-1]) for e in cuts]


def _earlier_cut_errors(
    y: np.ndarray,
    m: int,
    h: int,
    rows: list[dict[str, Any]],
    config: AutoConfig,
    deadline: float,
    observed: np.ndarray | None,
) -> list[np.ndarray]:
    """Errors y - forecast (forms, R, h) of the chosen forms at earlier cuts, in the spirit
    of CV+: for k = 1 .. ``calibration_cuts``, with V = ``val_horizons`` h and a = n - (k + 1) V,
    each form of ``rows`` (its own transform) is trained on y[:a] for its early-stopping
    steps and forecasts h values from every origin a .. a + V - h (R = V - h + 1): windows
    before the validation part that chose the forms, never used to choose anything. Cuts
    too short for every form, or past ``deadline``, are left out."""
    n, V = len(y), config.val_horizons * h
    actual = y if observed is None else np.where(observed, y, np.nan)
    out = []
    for k in range(1, config.calibration_cuts + 1):
        a = n - (k + 1) * V
        forms = [(_candidate(r), r["steps"]) for r in rows]
        forms = [(c, s) for c, s in forms if a >= c.need() + c.lookback]
        if not forms or time.monotonic() > deadline:
            break
        origins = np.arange(a, a + V - h + 1)
        errors = []
        for c, steps in forms:
            tf = fit_form(y[:a], m, c, config.burn_in)
            z_obs = None if observed is None else _z_observed(observed[:a], c.difference)
            seed = config.seed + 10 * k
            model = _train(tf, y[:a], c, config, seed, steps, deadline, None, z_obs)
            errors.append(_errors_at(model, c, tf, y, actual, origins, h))
        out.append(np.stack(errors))
    return out
