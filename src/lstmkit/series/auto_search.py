"""The search over candidate forms on validation windows inside the history.

:func:`_validate` trains a candidate on the history before its validation part and scores
its forecasts from origins inside that part (:func:`_seed_curves` with several seeds);
:func:`search` runs the candidates, then the other sizes for the best form, within the time
budget (see :mod:`lstmkit.series.auto`, step 2).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from lstmkit.series.auto_candidates import AutoConfig, Candidate, _candidate
from lstmkit.series.auto_train import _errors_at, _train, _z_observed
from lstmkit.series.hybrid import fit_form
from lstmkit.series.model import Forecaster

__all__ = ["search"]


def _validate(
    y: np.ndarray,
    m: int,
    h: int,
    c: Candidate,
    config: AutoConfig,
    deadline: float,
    observed: np.ndarray | None = None,
) -> tuple[float, int, np.ndarray]:
    """(best mean validation MAE, its step, its errors y - forecast (origins, h)) of
    candidate c; see the module docstring. Missing values (``observed`` False) are
    left out of the loss and the errors."""
    n, k = len(y), config.val_horizons
    while k > 1 and n - k * h < c.need() + c.lookback:
        k -= 1
    cut = n - k * h
    tf = fit_form(y[:cut], m, c, config.burn_in)
    origins = np.unique(np.linspace(cut, n - h, 2 * k - 1).astype(int))
    best = (np.inf, config.eval_every, np.full((len(origins), h), np.nan))

    dense = np.arange(cut, n - h + 1)

    def score(step: int, model: Forecaster) -> None:
        nonlocal best
        if config.score_every_origin:
            errors = every = _errors_at(model, c, tf, y, actual, dense, h)
        else:
            errors = _errors_at(model, c, tf, y, actual, origins, h, one_by_one=True)
        mae = _mean_abs(errors, observed is not None)
        if np.isfinite(mae) and mae < best[0]:
            # the intervals' calibration: the errors from every origin of the part, which
            # the model did not train on either (the score may keep its 2k - 1 origins)
            if not config.score_every_origin:
                every = _errors_at(model, c, tf, y, actual, dense, h)
            best = (mae, step, every)

    actual = y if observed is None else np.where(observed, y, np.nan)
    z_observed = None if observed is None else _z_observed(observed[:cut], c.difference)
    if config.search_seeds > 1:
        curve = _seed_curves(y[:cut], c, config, deadline, z_observed, tf, y, actual, origins, h)
        return curve if curve is not None else best
    _train(tf, y[:cut], c, config, config.seed, config.steps, deadline, score, z_observed)
    return best


def _seed_curves(
    y_fit: np.ndarray,
    c: Candidate,
    config: AutoConfig,
    deadline: float,
    z_observed: np.ndarray | None,
    tf: Any,
    y: np.ndarray,
    actual: np.ndarray,
    origins: np.ndarray,
    h: int,
) -> tuple[float, int, np.ndarray] | None:
    """Candidate c trained with ``search_seeds`` seeds: (the least validation MAE of the
    seeds' mean curve, its step, the first seed's errors there from every origin of the
    part); None if no checkpoint has a finite mean."""
    curves: list[dict[int, float]] = []
    snapshots: dict[int, dict[str, np.ndarray]] = {}
    skip_missing = z_observed is not None

    def record(step: int, model: Forecaster) -> None:
        e = _errors_at(model, c, tf, y, actual, origins, h, one_by_one=True)
        curves[-1][step] = _mean_abs(e, skip_missing)
        if len(curves) == 1:  # the first seed's checkpoints: the calibration errors
            snapshots[step] = {n: w.copy() for n, w in model.state_dict().items()}

    for k in range(config.search_seeds):
        curves.append({})
        seed = config.seed + 500 * k
        _train(tf, y_fit, c, config, seed, config.steps, deadline, record, z_observed)
    steps = sorted(set.intersection(*(set(cv) for cv in curves)))
    means = [float(np.mean([cv[t] for cv in curves])) for t in steps]
    finite = [(v, t) for v, t in zip(means, steps) if np.isfinite(v)]
    if not finite:
        return None
    mae, step = min(finite, key=lambda vt: vt[0])  # the earliest of equal means
    model = Forecaster(c.model_config(), inputs=c.inputs())
    model.load_state_dict(snapshots[step])
    dense = np.arange(origins[0], len(y) - h + 1)
    return mae, step, _errors_at(model, c, tf, y, actual, dense, h)


def _mean_abs(errors: np.ndarray, skip_missing: bool) -> float:
    """mean |errors|, over the known ones (not NaN) when ``skip_missing``."""
    if not skip_missing:
        return float(np.mean(np.abs(errors)))
    known = np.abs(errors[np.isfinite(errors)])
    return float(np.mean(known)) if known.size else np.nan


def search(
    pool: list[Candidate],
    room: int,
    sizes: tuple[int, ...],
    validate: Any,
    fallback: Any,
    deadline: float,
    key: Any,
    saved: Any = None,
    prefetch: Any = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The validation table of a candidate search, and whether the deadline cut it: a row
    (the candidate's fields and ``validate(c)``'s scores) for each candidate of ``pool``
    whose windows fit in ``room`` values, then for the best one (the row with the least
    ``key(row)``) at each other hidden size of ``sizes``. With none fitting, the first candidate's
    row with ``fallback(c)``'s scores. Once a row exists, candidates past ``deadline`` are
    skipped, except those for which ``saved(c)`` is true (a resumed fit replays every row
    the interrupted one finished, whatever the clock). ``prefetch(cands)``, if given, is told
    each round's candidates before it runs (a memo shared among MPI ranks computes them
    there, and they count as saved)."""
    table: list[dict[str, Any]] = []
    truncated = False

    def run(cands: list[Candidate]) -> None:
        nonlocal truncated
        if prefetch is not None and not (table and time.monotonic() > deadline):
            prefetch([c for c in cands if room >= c.need()])
        for c in cands:
            late = time.monotonic() > deadline and not (saved is not None and saved(c))
            if late and table:
                truncated = True
                return
            if room >= c.need():
                table.append({**asdict(c), **validate(c)})

    run(pool)
    if not table:  # too short to hold out a validation part: train the first candidate
        table.append({**asdict(pool[0]), **fallback(pool[0])})
    best = min(table, key=key)
    run([replace(_candidate(best), hidden=s) for s in sizes if s != best["hidden"]])
    return table, truncated


def _val_key(row: dict[str, Any]) -> float:
    return row["val_mae"] if np.isfinite(row["val_mae"]) else np.inf
