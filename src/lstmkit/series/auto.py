"""The automatic forecaster: chooses its own form on validation windows, then refits.

Given a history y (n,), a season m and a horizon h, :func:`fit_auto` needs no other option:

1. **Candidates.** Every combination of the season handling (deseason the additive seasonal
   indices or let the LSTM see the season; only when m > 1), differencing (yes/no) and the
   lookback (multiples of the season, or of the horizon when m = 1), with hidden size
   :attr:`AutoConfig.hidden` (see :mod:`lstmkit.series.transform` for the forms); with
   :attr:`AutoConfig.hybrid`, also one ES-hybrid form per lookback (:mod:`lstmkit.series.hybrid`).
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

Nothing after the end of y is read: a backtest origin hands over only the history before it.
The time budget ``minutes`` caps one fit (selection and refit); when it runs out, the
remaining candidates are skipped and the refits are shortened, and the summary says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from typing import Any

import numpy as np

from lstmkit.nn.losses import mse
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.series import conformal
from lstmkit.series.data import make_windows
from lstmkit.series.forecast import roll_out
from lstmkit.series.hybrid import fit_form
from lstmkit.series.model import Forecaster, ForecasterConfig

__all__ = ["AutoConfig", "Candidate", "Ensemble", "candidates", "fit_auto"]


@dataclass(frozen=True)
class AutoConfig:
    """Search and training settings of the automatic forecaster (defaults need no tuning)."""

    steps: int = 400  # most steps per candidate (early stopping picks fewer)
    eval_every: int = 50
    val_horizons: int = 2  # the validation part: this many horizons (fewer if y is short)
    batch: int = 32
    lr: float = 3e-3
    clip: float = 1.0
    hidden: int = 16
    sizes: tuple[int, ...] = (8, 32)  # tried for the best form after the first round
    top: int = 3  # candidates in the ensemble
    seeds: int = 2  # seeds per candidate in the ensemble
    minutes: float | None = 1.0  # time budget of one fit (None: no cap)
    seed: int = 0
    burn_in: float = 0.75  # the first burn_in * lookback steps of a window carry no loss
    calibration_cuts: int = 1  # earlier cuts whose errors also calibrate the intervals
    score_every_origin: bool = False  # score on every validation origin, not 2k - 1
    search_seeds: int = 1  # seeds per candidate in the search; their mean curve scores it
    hybrid: bool = False  # also the ES-hybrid forms (lstmkit.series.hybrid), one per lookback

    def __post_init__(self) -> None:
        names = ("steps", "eval_every", "val_horizons", "batch", "hidden", "top", "seeds")
        for name in (*names, "search_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        for name in ("lr", "clip"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name}: expected a number > 0, got {getattr(self, name)!r}")
        if self.minutes is not None and not float(self.minutes) > 0:
            raise ValueError(f"minutes: expected a number > 0 or None, got {self.minutes!r}")
        if not 0 <= float(self.burn_in) < 1:
            raise ValueError(f"burn_in: expected a fraction 0 <= burn_in < 1, got {self.burn_in!r}")
        cuts = self.calibration_cuts
        if not isinstance(cuts, int) or isinstance(cuts, bool) or cuts < 0:
            raise ValueError(f"calibration_cuts: expected an integer >= 0, got {cuts!r}")
        if any(not isinstance(s, int) or s < 1 for s in self.sizes):
            raise ValueError(f"sizes: expected integers >= 1, got {self.sizes!r}")


@dataclass(frozen=True)
class Candidate:
    """One form of the forecaster: what the LSTM reads and how big it is."""

    lookback: int
    deseason: bool
    difference: bool
    hidden: int
    hybrid: bool = False  # the ES-RNN-style form (lstmkit.series.hybrid): no differencing

    def need(self) -> int:
        """Values a history must hold to train this candidate (two windows)."""
        return self.lookback + 2 + int(self.difference)


def candidates(m: int, h: int, n: int, hidden: int = 16, hybrid: bool = False) -> list[Candidate]:
    """The first round's candidates for season m, horizon h and n training values.

    Lookbacks: m, 2m, 3m for m > 1; h, 2h, 3h (at least 4) for m = 1; those the n values
    cannot train (see :meth:`Candidate.need`) are dropped, and if none is left the longest
    lookback that fits is used.
    """
    base = m if m > 1 else max(h, 4)
    lookbacks = [k * base for k in (1, 2, 3)]
    forms = [(d, f) for d in ((True, False) if m > 1 else (False,)) for f in (True, False)]
    out = [Candidate(L, d, f, hidden) for L in lookbacks for d, f in forms]
    out += [Candidate(L, m > 1, False, hidden, True) for L in lookbacks if hybrid]
    fits = [c for c in out if c.need() <= n]
    if fits:
        return fits
    L = n - 3
    if L < 1:
        raise ValueError(f"the history has {n} values; the forecaster needs at least 4")
    return [Candidate(L, False, False, hidden)]


def _train(
    tf: Any,
    y: np.ndarray,
    c: Candidate,
    config: AutoConfig,
    seed: int,
    steps: int,
    deadline: float,
    every: Any = None,
    z_observed: np.ndarray | None = None,
) -> Forecaster:
    """An LSTM trained on the windows ``tf.windows`` cuts from y (n,) for ``steps`` Adam steps
    (fewer past the deadline); ``every(step, model)`` is called every ``eval_every`` steps and
    at the end.
    ``z_observed`` (n,) bool: the loss skips the targets that are False (missing="mask")."""
    model = Forecaster(ForecasterConfig(hidden=c.hidden), seed=seed)
    X, Y = tf.windows(y, c.lookback)  # (L, M, 1)
    X, Y = X.astype(model.dtype), Y.astype(model.dtype)
    W = None if z_observed is None else make_windows(z_observed.astype(model.dtype), c.lookback)[1]
    return fit_windows(model, X, Y, W, c, config, seed, steps, deadline, every)


def fit_windows(
    model: Any,
    X: np.ndarray,
    Y: np.ndarray,
    W: np.ndarray | None,
    c: Candidate,
    config: AutoConfig,
    seed: int,
    steps: int,
    deadline: float,
    every: Any = None,
) -> Any:
    """``model`` (a Forecaster or a CovariateLSTM) trained on the windows X (L, M, D) ->
    Y (L, M, K) for ``steps`` Adam steps on random batches (fewer past the deadline), the
    loss the MSE after the burn-in (with W (L, M, K): only where W is 1);
    ``every(step, model)`` is called every ``eval_every`` steps and at the end."""
    rng = np.random.default_rng([seed, 1])
    optimizer = Adam(model.parameters(), model.grads, lr=config.lr)
    B = min(config.batch, X.shape[1])
    skip = min(int(config.burn_in * c.lookback), c.lookback - 1)
    for step in range(1, steps + 1):
        idx = rng.choice(X.shape[1], B, replace=False)
        model.zero_grad()
        pred, _ = model(X[:, idx])  # (L, B, K)
        if W is None:
            _, d_kept = mse(pred[skip:], Y[skip:, idx])  # the steps after the burn-in
        else:
            d_kept = _masked_mse_grad(pred[skip:], Y[skip:, idx], W[skip:, idx])
        dpred = np.zeros_like(pred)
        dpred[skip:] = d_kept
        model.backward(dpred)
        clip_grad_norm(model.grads, config.clip)
        optimizer.step()
        last = step == steps or time.monotonic() > deadline
        if every is not None and (step % config.eval_every == 0 or last):
            every(step, model)
        if last:
            break
    return model


def _masked_mse_grad(pred: np.ndarray, target: np.ndarray, w: np.ndarray) -> np.ndarray:
    """d/dpred of sum(w (pred - target)^2) / sum(w), all (T, B, 1); w is 1 where the target
    was observed, 0 where missing (no target: no gradient)."""
    return (2.0 * w * (pred - target) / max(float(w.sum()), 1.0)).astype(pred.dtype)


def _z_observed(observed: np.ndarray | None, difference: bool) -> np.ndarray | None:
    """Which model-space values z (n,) or (n - 1,) rest on observed values only."""
    if observed is None:
        return None
    return observed[1:] & observed[:-1] if difference else observed.copy()


def _predict(model: Forecaster, c: Candidate, tf: Any, y: np.ndarray, h: int) -> np.ndarray:
    """The h values following the history y (n,) -> (h,)."""
    z = tf.encode(y)[-c.lookback :]
    return tf.decode(roll_out(model, z[:, None], h)[:, 0].astype(np.float64), y)


def _errors_at(
    model: Forecaster,
    c: Candidate,
    tf: Any,
    y: np.ndarray,
    actual: np.ndarray,
    origins: np.ndarray,
    h: int,
    one_by_one: bool = False,
) -> np.ndarray:
    """actual - forecast (origins, h) of h-step forecasts from each origin o (history y[:o];
    ``actual`` is y with NaN where missing), all origins rolled out in one batch, or with
    ``one_by_one`` each on its own (:func:`_predict`; the search's scores keep its roundings)."""
    if one_by_one:
        return np.stack([actual[o : o + h] - _predict(model, c, tf, y[:o], h) for o in origins])
    contexts = tf.contexts(y, origins, c.lookback)  # (L, origins)
    z_hat = roll_out(model, contexts, h).astype(np.float64)  # (h, origins)
    return np.stack(
        [actual[o : o + h] - tf.decode(z_hat[:, i], y[:o]) for i, o in enumerate(origins)]
    )


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
    model = Forecaster(ForecasterConfig(hidden=c.hidden))
    model.load_state_dict(snapshots[step])
    dense = np.arange(origins[0], len(y) - h + 1)
    return mae, step, _errors_at(model, c, tf, y, actual, dense, h)


def _mean_abs(errors: np.ndarray, skip_missing: bool) -> float:
    """mean |errors|, over the known ones (not NaN) when ``skip_missing``."""
    if not skip_missing:
        return float(np.mean(np.abs(errors)))
    known = np.abs(errors[np.isfinite(errors)])
    return float(np.mean(known)) if known.size else np.nan


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
        fitted one) -> (h,); and every member's in :meth:`member_forecasts`."""
        return np.median(self.member_forecasts(h, history), axis=0)

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

    pool = candidates(m, h, n - h, config.hidden, config.hybrid)
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
    calibration = np.concatenate([conformal.cross_fit(errors, config.top), *cuts_as_rows(cuts)])
    return Ensemble(members, y, m, table, truncated, calibration, errors, cuts, seconds)


def _announce(share: Any, job: Any, cands: list[Candidate]) -> None:
    """``share`` the validations ``job(c=c)`` of a round of candidates (a shared memo's
    ``validate_all``)."""
    share([(c, partial(job, c=c)) for c in cands])


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


def _candidate(row: dict[str, Any]) -> Candidate:
    return Candidate(**{f.name: row[f.name] for f in fields(Candidate) if f.name in row})
