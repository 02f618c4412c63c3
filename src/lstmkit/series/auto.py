"""The automatic forecaster: chooses its own form on validation windows, then refits.

Given a history y (n,), a season m and a horizon h, :func:`fit_auto` needs no other option:

1. **Candidates.** Every combination of the season handling (deseason the additive seasonal
   indices or let the LSTM see the season; only when m > 1), differencing (yes/no) and the
   lookback (multiples of the season, or of the horizon when m = 1), with hidden size
   :attr:`AutoConfig.hidden` (see :mod:`lstmkit.series.transform` for the forms); with
   :attr:`AutoConfig.hybrid`, also one ES-hybrid form per lookback (:mod:`lstmkit.series.hybrid`);
   with :attr:`AutoConfig.level_input` (off), the differenced forms' LSTM also reads the
   undifferenced level (:mod:`lstmkit.series.level_input`); with
   :attr:`AutoConfig.level_if_stationary` (off), only if the ADF test rejects a unit root
   in the history (:mod:`lstmkit.series.stationarity`): a trending level has no mean to
   revert to, and reading it would ask the LSTM to extrapolate past its training range.
   With :attr:`AutoConfig.difference_if_unit_root` (off), the same test also decides d,
   as auto.arima's unit-root test does before fitting: where it does not reject a unit
   root, the candidates are the differenced forms only (an undifferenced form's output
   ``W_head h + b`` is bounded and flattens on a trend); where it rejects, they are as above.
   Training draws ``batch`` windows of ``lookback`` values per Adam step and scores the
   next-value prediction at the positions after the first ``burn_in`` x lookback: a forecast
   always reads a full context, and positions with little context only add noise (chosen
   on the tuning series: burn-in 0, 0.5, 0.75, 0.9 gave mean MASE 0.400, 0.390, 0.333,
   0.373 on CO2 and 0.688, 0.673, 0.652, 0.650 on Nile).
2. **Validation inside the history.** Each candidate trains on ``y[:n - V]`` only (V = kh
   with k = ``val_horizons`` if the history allows, else fewer) and, every ``eval_every``
   steps, forecasts h values from 2k - 1 origins h/2 apart inside the last V values (the
   candidate never trained on them). Its score is the best mean MAE over those checkpoints
   and that checkpoint's step count is its early-stopping point. Then, for the best form,
   the other model sizes in :attr:`AutoConfig.sizes` are tried the same way.
3. **Refit and ensemble.** The ``top`` best candidates are each trained again on all of y
   (their own transform fitted on all of y) for their early-stopping number of steps, with
   ``seeds`` seeds each; the forecast is the median over these members at every step.
4. **Intervals.** The best checkpoint of each candidate also forecasts from every origin of
   its validation part. Cross-fitted (each half of the origins takes the errors of the
   ``top`` candidates ranked on the other half, :func:`~lstmkit.series.conformal.cross_fit`),
   these errors, with those of the chosen forms retrained on ``calibration_cuts`` earlier
   cuts (each cut ends one validation part earlier and forecasts from every origin of the
   part after it, which chose nothing), calibrate split-conformal intervals, pooled over
   the steps with a sqrt(step) scale (:func:`~lstmkit.series.conformal.pooled_quantiles`).
   They never change the point forecast: the earlier cuts train after the refits, with
   their own seeds.
5. **Combination** (with :attr:`AutoConfig.combine`; off by default): the forecast is
   w x the median + (1 - w) x Holt-Winters', w chosen on the validation windows
   (:mod:`lstmkit.series.combination`); the calibration errors are then the combination's.

Nothing after the end of y is read: a backtest origin hands over only the history before it.
The time budget ``minutes`` caps one fit (selection and refit); when it runs out, the
remaining candidates are skipped and the refits are shortened, and the summary says so.

Here: :class:`Ensemble` and :func:`fit_auto` (the refit of the chosen members). The settings
and the candidate forms are in :mod:`~lstmkit.series.auto_candidates`, training one candidate
and its forecasts in :mod:`~lstmkit.series.auto_train`, the search on validation windows in
:mod:`~lstmkit.series.auto_search`, the earlier cuts' calibration errors in
:mod:`~lstmkit.series.auto_calibration`; every name moved there is still importable from here.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from lstmkit.series import combination, conformal
from lstmkit.series.auto_calibration import _earlier_cut_errors as _earlier_cut_errors
from lstmkit.series.auto_calibration import cuts_as_rows as cuts_as_rows
from lstmkit.series.auto_candidates import AutoConfig as AutoConfig
from lstmkit.series.auto_candidates import Candidate as Candidate
from lstmkit.series.auto_candidates import _candidate as _candidate
from lstmkit.series.auto_candidates import candidates as candidates
from lstmkit.series.auto_search import _mean_abs as _mean_abs
from lstmkit.series.auto_search import _seed_curves as _seed_curves
from lstmkit.series.auto_search import _val_key as _val_key
from lstmkit.series.auto_search import _validate as _validate
from lstmkit.series.auto_search import search as search
from lstmkit.series.auto_train import _errors_at as _errors_at
from lstmkit.series.auto_train import _masked_mse as _masked_mse
from lstmkit.series.auto_train import _predict as _predict
from lstmkit.series.auto_train import _train as _train
from lstmkit.series.auto_train import _z_observed as _z_observed
from lstmkit.series.auto_train import fit_windows as fit_windows
from lstmkit.series.combination import Combination
from lstmkit.series.hybrid import fit_form
from lstmkit.series.model import Forecaster
from lstmkit.series.stationarity import level_stationary

__all__ = ["AutoConfig", "Candidate", "Ensemble", "candidates", "fit_auto"]


@dataclass
class Ensemble:
    """The fitted automatic forecaster: members (candidate, transform, model, steps), the
    history they were fitted on, and the validation table of the search."""

    members: list[tuple[Candidate, Any, Forecaster, int]]  # a Transform or LevelTransform
    history: np.ndarray  # (n,)
    season: int
    table: list[dict[str, Any]]
    truncated: bool
    errors: np.ndarray  # (R, h) the intervals' calibration: cross-fitted validation errors
    # y - forecast of the best candidates from every origin of their validation parts, then
    # the chosen forms' errors at the earlier cuts
    candidate_errors: list[np.ndarray] = field(default_factory=list)  # per search row (R_i, h)
    cut_errors: list[np.ndarray] = field(default_factory=list)  # per earlier cut (forms, R, h)
    cut_seconds: float = 0.0  # time spent training the earlier cuts' models
    combination: Combination | None = None  # with Holt-Winters' forecast (AutoConfig.combine)
    # with AutoConfig.difference_if_unit_root: whether ADF left a unit root standing (the
    # differenced forms only were searched); None when that option is off
    unit_root: bool | None = None

    def interval(
        self, h: int, level: float = 80.0, history: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (h,): the ``level`` % split-conformal prediction interval around
        :meth:`predict`, per step ahead (see :mod:`lstmkit.series.conformal`).

        Calibrated on :attr:`errors`, the cross-fitted validation errors of the best
        candidates and the errors of the chosen forms at earlier cuts (inside the fitted
        history, never after it), pooled over the steps with a sqrt(step) scale; NaN if the
        search had no validation part, inf if it held too few errors for the level.
        """
        q = conformal.pooled_quantiles(self.errors, level)
        return conformal.interval(self.predict(h, history), q)

    def predict(self, h: int, history: np.ndarray | None = None) -> np.ndarray:
        """Median over the members of the h-step forecasts after ``history`` (default: the
        fitted one) -> (h,), combined with Holt-Winters' if :attr:`combination`; every
        member's in :meth:`member_forecasts`."""
        median = np.median(self.member_forecasts(h, history), axis=0)
        if self.combination is None:
            return median
        y = self.history if history is None else np.asarray(history, np.float64)
        return self.combination.combine(median, y)

    def member_forecasts(self, h: int, history: np.ndarray | None = None) -> np.ndarray:
        """(members, h) forecasts."""
        if h < 1:
            raise ValueError(f"horizon: expected an integer >= 1, got {h}")
        y = self.history if history is None else np.asarray(history, np.float64)
        return np.stack([_predict(model, c, tf, y, h) for c, tf, model, _ in self.members])

    def summary(self) -> dict[str, Any]:
        """The chosen members and the search table, JSON-ready."""
        return {
            "members": [{**asdict(c), "steps": s} for c, _, _, s in self.members],
            "search": self.table,
            "truncated_by_time": self.truncated,
            "calibration_cut_seconds": round(self.cut_seconds, 2),
            **({} if self.combination is None else {"lstm_weight": self.combination.weight}),
            **({} if self.unit_root is None else {"unit_root": self.unit_root}),
        }


def fit_auto(
    y: np.ndarray,
    m: int,
    h: int,
    config: AutoConfig | None = None,
    observed: np.ndarray | None = None,
    progress: Any = None,
) -> Ensemble:
    """Search the candidates on validation windows inside y (n,), then refit the best on
    all of y; see the module docstring. m: season (1 for none), h: horizon it is tuned for.

    ``observed`` (n,) bool, for missing="mask": y holds filled values where it is False
    (their inputs); the loss and the validation errors skip those targets.

    ``progress``, for a resumable fit (:class:`lstmkit.series.auto_progress.Progress`): a
    memo of finished work. ``progress.validated(c, run)`` and ``progress.refitted(c, seed,
    run)`` return a saved result of ``run()`` (candidate c's validation (mae, step, errors);
    its refitted model for that seed) or compute and save it; ``progress.spent`` is the
    seconds of the time budget an interrupted fit already used, and ``progress.saved(c)``
    whether candidate c's validation is saved (it is replayed even past the deadline).
    A memo that also has ``validate_all(jobs)`` and ``refit_all(jobs)`` is told each round's
    validations (candidate, run) and all the members ((candidate, seed), run) before they
    are asked for, to compute them elsewhere (:mod:`lstmkit.series.auto_shared`: MPI ranks)."""
    config = config or AutoConfig()
    y = np.asarray(y, np.float64)
    if y.ndim != 1 or not np.all(np.isfinite(y)):
        raise ValueError(f"y: expected a 1-D array of finite values, got shape {y.shape}")
    if observed is not None:
        observed = np.asarray(observed, bool)
        if observed.shape != y.shape:
            raise ValueError(f"observed: expected shape {y.shape} (y's), got {observed.shape}")
    if m < 1 or h < 1:
        raise ValueError(f"season and horizon: expected integers >= 1, got {m} and {h}")
    start = time.monotonic() - (0.0 if progress is None else progress.spent)
    budget = np.inf if config.minutes is None else 60.0 * config.minutes
    search_deadline = start + 0.7 * budget
    n = len(y)
    errors: list[np.ndarray] = []  # each row's validation errors (origins, h)

    def validate(c: Candidate) -> dict[str, Any]:
        run = partial(_validate, y, m, h, c, config, search_deadline, observed)
        mae, step, e = run() if progress is None else progress.validated(c, run)
        errors.append(e)
        return {"val_mae": mae, "steps": step}

    def fallback(c: Candidate) -> dict[str, Any]:
        errors.append(np.full((1, h), np.nan))
        return {"val_mae": float("nan"), "steps": config.steps}

    level, unit_root = _gates(y, m, config)
    pool = candidates(
        m, h, n - h, config.hidden, config.hybrid, level, config.highway, bool(unit_root)
    )
    args = (validate, fallback, search_deadline, _val_key)
    saved = None if progress is None else progress.saved
    share = getattr(progress, "validate_all", None)  # a memo shared among MPI ranks
    prefetch = None
    if share is not None:
        job = partial(
            _validate, y, m, h, config=config, deadline=search_deadline, observed=observed
        )
        prefetch = partial(_announce, share, job)
    table, truncated = search(pool, n - h, config.sizes, *args, saved, prefetch)
    order = sorted(range(len(table)), key=lambda i: _val_key(table[i]))[: config.top]
    ranked = [table[i] for i in order]
    members = []
    refit_deadline = start + budget
    jobs = []  # (candidate, transform, seed, steps, run) of every member
    for row in ranked:
        c = _candidate(row)
        tf = fit_form(y, m, c, config.burn_in)
        for k in range(config.seeds):
            seed = config.seed + 1000 * (k + 1)
            z_observed = _z_observed(observed, c.difference)
            run = partial(
                _train, tf, y, c, config, seed, row["steps"], refit_deadline, None, z_observed
            )
            jobs.append((c, tf, seed, row["steps"], run))
    if getattr(progress, "refit_all", None) is not None:
        progress.refit_all([((c, seed), run) for c, _, seed, _, run in jobs])
    for c, tf, seed, steps, run in jobs:
        model = run() if progress is None else progress.refitted(c, seed, run)
        members.append((c, tf, model, steps))
    truncated = truncated or time.monotonic() > refit_deadline
    cut_start = time.monotonic()
    cuts = _earlier_cut_errors(y, m, h, ranked, config, refit_deadline, observed)
    seconds = time.monotonic() - cut_start
    mix = None
    if config.combine:
        mix, errors, cuts = _combined(y, m, h, errors, cuts, config, observed)
    calibration = np.concatenate([conformal.cross_fit(errors, config.top), *cuts_as_rows(cuts)])
    return Ensemble(
        members, y, m, table, truncated, calibration, errors, cuts, seconds, mix, unit_root
    )


def _combined(
    y: np.ndarray,
    m: int,
    h: int,
    errors: list[np.ndarray],
    cuts: list[np.ndarray],
    config: AutoConfig,
    observed: np.ndarray | None,
) -> tuple[Combination, list[np.ndarray], list[np.ndarray]]:
    """(the combination chosen on the validation windows, the search rows' errors and the
    earlier cuts' errors of the combined forecast: w e + (1 - w) e_hw at the same origins);
    see :mod:`lstmkit.series.combination`."""
    n, V = len(y), config.val_horizons * h
    actual = y if observed is None else np.where(observed, y, np.nan)
    R = max(e.shape[0] for e in errors)
    origins = np.arange(n - h - R + 1, n - h + 1)
    e_lstm = combination.cross_fitted_median(errors, config.top)  # (R, h)
    trend = config.combine_trend
    if not np.isfinite(e_lstm).any():  # no validation part: the LSTM alone
        return Combination(1.0, combination.fit(y, m, trend)), errors, cuts
    e_hw = combination.errors_at(y, m, h, origins, actual, trend)  # (R, h)
    w = combination.choose_weight(e_lstm, e_hw[R - e_lstm.shape[0] :])
    mixed = [w * e + (1 - w) * e_hw[R - e.shape[0] :] for e in errors]
    mixed_cuts = []
    for k, e in enumerate(cuts, start=1):  # (forms, R_k, h) from the origins a .. a + V - h
        a = n - (k + 1) * V
        e_cut = combination.errors_at(y, m, h, np.arange(a, a + V - h + 1), actual, trend)
        mixed_cuts.append(w * e + (1 - w) * e_cut[None])
    return Combination(w, combination.fit(y, m, trend)), mixed, mixed_cuts


def _gates(y: np.ndarray, m: int, config: AutoConfig) -> tuple[bool, bool | None]:
    """(whether the differenced forms read the level, whether a unit root stands) (step 1).

    The level: ``level_input``, or ``level_if_stationary`` and ADF rejects a unit root in
    the history y (n,). The unit root, with ``difference_if_unit_root`` (None without):
    ADF does not reject it, and only the differenced forms are searched. One test decides
    both; it runs only when one of the two options reads it."""
    asked = config.level_if_stationary or config.difference_if_unit_root
    stationary = asked and level_stationary(y, m)
    level = config.level_input or (config.level_if_stationary and stationary)
    return level, (not stationary if config.difference_if_unit_root else None)


def _announce(share: Any, job: Any, cands: list[Candidate]) -> None:
    """``share`` the validations ``job(c=c)`` of a round of candidates (a shared memo's
    ``validate_all``)."""
    share([(c, partial(job, c=c)) for c in cands])
