"""One global model for many series (and for covariates): search, refit, forecast each.

A :class:`Panel` holds K series y_i (n_i,), each with its known-future covariates X_i (n_i, F)
and past-observed covariates P_i (n_i, P) (F = P = 0 without covariates; K = 1 for one series
with covariates). :func:`fit_global` follows :func:`lstmkit.series.auto.fit_auto` step for
step, with one model shared by every series:

1. **Candidates**: :func:`lstmkit.series.auto.candidates` for the shortest series.
2. **Validation**: each series keeps its last V_i = k_i h values out (k_i: as many of
   ``val_horizons`` as its length allows); every series has its own
   :class:`~lstmkit.series.transform.Transform` (seasonal indices from two seasons on) and
   covariate scales fitted on the rest, and the windows of all series train one
   :class:`~lstmkit.series.covariates.CovariateLSTM`. Each series is forecast from every
   origin of its validation part; the score is the mean over series of the validation MAE
   divided by that series' in-sample seasonal-naive MAE (a MASE: series of different scales
   weigh alike; for K = 1 it ranks as the MAE does). Then the other sizes of
   :attr:`AutoConfig.sizes`.
3. **Refit and ensemble**: the ``top`` candidates x ``seeds`` seeds on all of every series,
   for their early-stopping number of steps; the forecast is the median over members.
4. **Intervals**: each series' validation errors at every candidate's best checkpoint,
   cross-fitted (:func:`lstmkit.series.conformal.cross_fit`), calibrate that series'
   split-conformal interval, pooled over the steps with a sqrt(step) scale, as the
   automatic forecaster's (:meth:`GlobalEnsemble.interval`).

A series too short for the lookback of every candidate is a ValueError naming it. Every
candidate and member trains from its own seed, so a fit given a progress memo
(:mod:`lstmkit.series.many_progress`) can be killed and resumed to the same ensemble.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from lstmkit.series import conformal
from lstmkit.series.auto import AutoConfig, Candidate, candidates, fit_windows, search
from lstmkit.series.covariates import (
    CovariateLSTM,
    context,
    fit_scales,
    inputs_targets,
    roll_out_batch,
    windows,
)
from lstmkit.series.transform import Transform

__all__ = ["GlobalEnsemble", "Member", "Panel", "check_lengths", "fit_global", "single_panel"]


@dataclass(frozen=True)
class Panel:
    """K series and their covariates, each (n_i,), (n_i, F), (n_i, P); ``ids`` name them."""

    y: list[np.ndarray]
    X: list[np.ndarray]
    P: list[np.ndarray]
    ids: list[str]

    @classmethod
    def of(cls, y: list[np.ndarray], ids: list[str] | None = None, F: int = 0) -> Panel:
        """Series without past covariates and (unless given) without future ones."""
        ids = ids if ids is not None else [str(i) for i in range(len(y))]
        return cls(y, [np.zeros((len(v), F)) for v in y], [np.zeros((len(v), 0)) for v in y], ids)

    @property
    def F(self) -> int:
        return int(self.X[0].shape[1])

    @property
    def n_past(self) -> int:
        return int(self.P[0].shape[1])

    def cut(self, ends: list[int]) -> Panel:
        """Series i up to (not including) ends[i]."""
        return Panel(
            [v[:e] for v, e in zip(self.y, ends)],
            [x[:e] for x, e in zip(self.X, ends)],
            [p[:e] for p, e in zip(self.P, ends)],
            self.ids,
        )


@dataclass
class Member:
    """One fitted member: its candidate, each series' transform and covariate scales
    (K, F + P, 2), the model and its number of training steps."""

    candidate: Candidate
    transforms: list[Transform]
    scales: list[np.ndarray]
    model: CovariateLSTM
    steps: int


def _fit_forms(panel: Panel, m: int, c: Candidate) -> tuple[list[Transform], list[np.ndarray]]:
    # two seasons suffice for the seasonal indices: short series would otherwise validate
    # without deseasoning and refit with it (see docs/forecasting.md: 1.320 -> 0.836 at the
    # first origin of the synthetic set)
    tfs = [Transform.fit(y, m, c.deseason, c.difference, min_seasons=2) for y in panel.y]
    scales = [fit_scales(np.concatenate([x, p], axis=1)) for x, p in zip(panel.X, panel.P)]
    return tfs, scales


def _train(
    panel: Panel,
    c: Candidate,
    forms: tuple[list[Transform], list[np.ndarray]],
    config: AutoConfig,
    seed: int,
    steps: int,
    deadline: float,
    every: Any = None,
) -> CovariateLSTM:
    """One model on the windows of every series for ``steps`` Adam steps (fewer past the
    deadline); ``every(step, model)`` every ``eval_every`` steps and at the end."""
    model = CovariateLSTM(c.hidden, panel.F, panel.n_past, seed=seed)
    pairs = [
        windows(*inputs_targets(tf.encode(y), int(c.difference), x, p, s), c.lookback)
        for y, x, p, tf, s in zip(panel.y, panel.X, panel.P, *forms)
        if len(y) >= c.need()  # a shorter series is only forecast (from a shorter context)
    ]
    if not pairs:
        raise ValueError(f"no series holds the {c.need()} values a lookback of {c.lookback} needs")
    U = np.concatenate([u for u, _ in pairs], axis=1).astype(model.dtype)  # (L, M, D)
    V = np.concatenate([v for _, v in pairs], axis=1).astype(model.dtype)  # (L, M, 1 + P)
    return fit_windows(model, U, V, None, c, config, seed, steps, deadline, every)


Job = tuple[Transform, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _forecast(model: CovariateLSTM, c: Candidate, jobs: list[Job]) -> list[np.ndarray]:
    """Forecasts (h,) after each job's history: (transform, covariate scales, y (n,), X (n,
    F), P (n, P), X_future (h, F)); one batched roll-out per context length."""
    off = int(c.difference)
    contexts = [
        context(tf.encode(y), off, X, Pc, s, Xf, c.lookback) for tf, s, y, X, Pc, Xf in jobs
    ]
    out: list[np.ndarray] = [np.empty(0)] * len(jobs)
    for L in {u.shape[0] for u, _ in contexts}:
        group = [i for i, (u, _) in enumerate(contexts) if u.shape[0] == L]
        u = np.stack([contexts[i][0] for i in group], axis=1)  # (L, N, D)
        x_next = np.stack([contexts[i][1] for i in group], axis=1)  # (h - 1, N, F)
        z_hat = roll_out_batch(model, u, x_next)  # (h, N)
        for col, i in enumerate(group):
            out[i] = jobs[i][0].decode(z_hat[:, col], jobs[i][2])
    return out


def _naive_scale(y: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal-naive (else naive) forecast; 1 if it is 0."""
    lag = m if len(y) > m else 1
    d = np.mean(np.abs(y[lag:] - y[:-lag])) if len(y) > lag else 0.0
    return float(d) if d > 0 else 1.0


def _val_cut(n: int, h: int, c: Candidate, k: int) -> int:
    """Where the validation part of a series of n values begins: k horizons before its end,
    fewer (at least one) if the rest would not hold the candidate's windows and a context."""
    while k > 1 and n - k * h < c.need() + c.lookback:
        k -= 1
    return n - k * h


def _validate(
    panel: Panel, m: int, h: int, c: Candidate, config: AutoConfig, deadline: float
) -> tuple[float, int, list[np.ndarray]]:
    """(best mean scaled validation MAE over the series, its step, each series' errors
    y - forecast (R_i, h) there) of candidate c.

    Each series keeps its own validation part (as many of ``val_horizons`` horizons as its
    length allows) and forecasts from every origin inside it (R_i = its length - h + 1)."""
    cuts = [_val_cut(len(y), h, c, config.val_horizons) for y in panel.y]
    train = panel.cut(cuts)
    forms = _fit_forms(train, m, c)
    scale = [_naive_scale(y, m) for y in train.y]
    best: tuple[float, int, list[np.ndarray]] = (np.inf, config.eval_every, [])

    jobs, owner = [], []  # every (series, origin) of the validation part
    for i, (y, X, Pc) in enumerate(zip(panel.y, panel.X, panel.P)):
        for o in range(cuts[i], len(y) - h + 1):
            jobs.append((forms[0][i], forms[1][i], y[:o], X[:o], Pc[:o], X[o : o + h]))
            owner.append((i, o))

    def score(step: int, model: CovariateLSTM) -> None:
        nonlocal best
        errors: list[list[np.ndarray]] = [[] for _ in panel.y]
        for (i, o), f in zip(owner, _forecast(model, c, jobs)):
            errors[i].append(panel.y[i][o : o + h] - f)
        value = float(np.mean([np.mean(np.abs(e)) / s for e, s in zip(errors, scale)]))
        if np.isfinite(value) and value < best[0]:
            best = (value, step, [np.stack(e) for e in errors])

    _train(train, c, forms, config, config.seed, config.steps, deadline, score)
    return best


@dataclass
class GlobalEnsemble:
    """The fitted global forecaster: members, the panel they were fitted on, the season,
    the validation table and covariate names."""

    members: list[Member]
    panel: Panel
    season: int
    table: list[dict[str, Any]]
    truncated: bool
    future_names: list[str]
    past_names: list[str]
    errors: list[np.ndarray]  # each series' (R_i, h) cross-fitted validation errors y - forecast

    def interval(
        self,
        h: int,
        level: float = 80.0,
        X_future: list[np.ndarray] | None = None,
        panel: Panel | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (K, h): every series' ``level`` % split-conformal interval around
        :meth:`predict`, calibrated on that series' own errors in :attr:`errors` (pooled
        over the steps with a sqrt(step) scale, :func:`~lstmkit.series.conformal.
        pooled_quantiles`); NaN without a validation part, inf with too few errors."""
        forecast = self.predict(h, X_future, panel)
        bounds = [
            conformal.interval(f, conformal.pooled_quantiles(e, level))
            for f, e in zip(forecast, self.errors)
        ]
        return np.stack([lo for lo, _ in bounds]), np.stack([hi for _, hi in bounds])

    def predict(
        self, h: int, X_future: list[np.ndarray] | None = None, panel: Panel | None = None
    ) -> np.ndarray:
        """(K, h) forecasts of every series after ``panel`` (default: the fitted one); the
        median over the members. ``X_future``: each series' known-future covariates (h, F)."""
        if h < 1:
            raise ValueError(f"horizon: expected an integer >= 1, got {h}")
        panel = panel or self.panel
        F = len(self.future_names)
        if X_future is None:
            if F:
                raise ValueError(
                    f"X_future: the model was fitted with {F} known-future covariates "
                    f"{self.future_names}; pass their values for the {h} forecast steps"
                )
            X_future = [np.zeros((h, 0)) for _ in panel.y]
        for i, x in enumerate(X_future):
            if x.shape != (h, F):
                raise ValueError(
                    f"X_future: expected {h} rows of the {F} columns {self.future_names} "
                    f"for series {panel.ids[i]!r}, got shape {x.shape}"
                )
        out = np.empty((len(self.members), len(panel.y), h))
        for j, mb in enumerate(self.members):
            jobs = list(zip(mb.transforms, mb.scales, panel.y, panel.X, panel.P, X_future))
            out[j] = np.stack(_forecast(mb.model, mb.candidate, jobs))
        return np.median(out, axis=0)

    def summary(self) -> dict[str, Any]:
        """The chosen members and the search table, JSON-ready."""
        return {
            "series": len(self.panel.y),
            "future_covariates": self.future_names,
            "past_covariates": self.past_names,
            "members": [{**asdict(mb.candidate), "steps": mb.steps} for mb in self.members],
            "search": self.table,
            "truncated_by_time": self.truncated,
        }


def check_lengths(panel: Panel, h: int) -> None:
    """A ValueError naming the shortest series if it cannot hold a horizon and two windows."""
    need = h + 4
    for y, name in zip(panel.y, panel.ids):
        if len(y) < need:
            raise ValueError(
                f"series {name!r} has {len(y)} values; the horizon {h} needs at least {need} "
                "(drop it, or use a smaller --horizon)"
            )


def fit_global(
    panel: Panel,
    m: int,
    h: int,
    config: AutoConfig | None = None,
    names: tuple[list[str], list[str]] | None = None,
    progress: Any = None,
) -> GlobalEnsemble:
    """Search on validation windows inside every series, then refit on all of them; see
    the module docstring. ``names``: the future and past covariate names (default x0, ...
    and p0, ...). ``progress``: a memo of finished work for a resumable fit, as
    :func:`lstmkit.series.auto.fit_auto`'s (:class:`lstmkit.series.many_progress.
    GlobalProgress`; with ``validate_all`` and ``refit_all`` one shared among MPI ranks,
    :class:`lstmkit.series.auto_shared.Shared`)."""
    config = config or AutoConfig()
    # level_if_stationary, difference_if_unit_root: the one series' unit-root test, not run
    # here (the global model searches its forms as before whatever they say)
    for name in ("combine", "level_input"):
        if getattr(config, name):
            raise ValueError(
                f"{name}: for one series only (fit_auto); the global model has none yet: "
                f"expected AutoConfig({name}=False)"
            )
    if config.highway:
        raise ValueError(
            f"highway: for one series only (fit_auto); the global model has none yet: "
            f"expected AutoConfig(highway=0), got {config.highway}"
        )
    if names is None:
        names = ([f"x{j}" for j in range(panel.F)], [f"p{j}" for j in range(panel.n_past)])
    if (len(names[0]), len(names[1])) != (panel.F, panel.n_past):
        raise ValueError(
            f"names: expected {panel.F} future and {panel.n_past} past covariate names, got {names}"
        )
    if m < 1 or h < 1:
        raise ValueError(f"season and horizon: expected integers >= 1, got {m} and {h}")
    check_lengths(panel, h)
    start = time.monotonic() - (0.0 if progress is None else progress.spent)
    budget = np.inf if config.minutes is None else 60.0 * config.minutes
    search_deadline = start + 0.7 * budget
    room = _pool_room([len(y) for y in panel.y], h)
    errors: list[list[np.ndarray]] = []  # each row's validation errors, per series (R_i, h)

    def validate(c: Candidate) -> dict[str, Any]:
        run = partial(_validate, panel, m, h, c, config, search_deadline)
        val, step, e = run() if progress is None else progress.validated(c, run)
        errors.append(e)
        return {"val_mase": val, "steps": step}

    def fallback(c: Candidate) -> dict[str, Any]:
        errors.append([np.full((1, h), np.nan) for _ in panel.y])
        return {"val_mase": float("nan"), "steps": config.steps}

    pool = candidates(m, h, room, config.hidden)
    args = (validate, fallback, search_deadline, _val_key)
    saved = None if progress is None else progress.saved
    share = getattr(progress, "validate_all", None)  # a memo shared among MPI ranks
    prefetch = None
    if share is not None:
        job = partial(_validate, panel, m, h, config=config, deadline=search_deadline)
        prefetch = partial(_announce, share, job)
    table, truncated = search(pool, room, config.sizes, *args, saved, prefetch)
    ranked = sorted(table, key=_val_key)[: config.top]
    members = []
    jobs = []  # (candidate, forms, seed, steps, run) of every member
    for row in ranked:
        c = _candidate(row)
        forms = _fit_forms(panel, m, c)
        for k in range(config.seeds):
            seed = config.seed + 1000 * (k + 1)
            run = partial(_train, panel, c, forms, config, seed, row["steps"], start + budget)
            jobs.append((c, forms, seed, row["steps"], run))
    if getattr(progress, "refit_all", None) is not None:
        progress.refit_all([((c, seed), run) for c, _, seed, _, run in jobs])
    for c, forms, seed, steps, run in jobs:
        model = run() if progress is None else progress.refitted(c, seed, run)
        members.append(Member(c, forms[0], forms[1], model, steps))
    truncated = truncated or time.monotonic() > start + budget
    calibration = _calibration(errors, len(panel.y), h, config.top)
    return GlobalEnsemble(
        members, panel, m, table, truncated, list(names[0]), list(names[1]), calibration
    )


def _announce(share: Any, job: Any, cands: list[Candidate]) -> None:
    """``share`` the validations ``job(c=c)`` of a round of candidates (the ``validate_all``
    of a memo shared among MPI ranks, :mod:`lstmkit.series.auto_shared`)."""
    share([(c, partial(job, c=c)) for c in cands])


def _calibration(errors: list[list[np.ndarray]], K: int, h: int, top: int) -> list[np.ndarray]:
    """Each series' cross-fitted validation errors (R'_i, h) from every row's errors (see
    :func:`lstmkit.series.conformal.cross_fit`); a (1, h) row of NaN without any."""
    rows = [e for e in errors if e]
    if not rows:
        return [np.full((1, h), np.nan) for _ in range(K)]
    return [conformal.cross_fit([e[i] for e in rows], top) for i in range(K)]


def _pool_room(lengths: list[int], h: int) -> int:
    """The training values the candidate pool is sized for: the shortest series' n - h."""
    return min(lengths) - h


def _val_key(row: dict[str, Any]) -> float:
    return row["val_mase"] if np.isfinite(row["val_mase"]) else np.inf


def _candidate(row: dict[str, Any]) -> Candidate:
    return Candidate(row["lookback"], row["deseason"], row["difference"], row["hidden"])


def single_panel(
    y: np.ndarray, future: Any, past: Any
) -> tuple[Panel, tuple[list[str], list[str]]]:
    """One series y (n,) with its covariates (arrays or pandas, see
    :func:`lstmkit.series.covariates.as_matrix`; None for none) as a panel, and the names of
    the future and past columns (a DataFrame's own, else ``x0, x1, ...`` / ``p0, ...``)."""
    from lstmkit.series.covariates import as_matrix

    n = len(y)
    X = np.zeros((n, 0)) if future is None else as_matrix(future, "future_covariates", n)
    Pc = np.zeros((n, 0)) if past is None else as_matrix(past, "past_covariates", n)
    names = (column_names(future, X.shape[1], "x"), column_names(past, Pc.shape[1], "p"))
    return Panel([y], [X], [Pc], ["0"]), names


def column_names(values: Any, count: int, prefix: str) -> list[str]:
    """A DataFrame's column names, a pandas Series' name, else ``prefix0, prefix1, ...``."""
    if hasattr(values, "columns"):
        return [str(c) for c in values.columns]
    if getattr(values, "name", None) is not None and count == 1:
        return [str(values.name)]
    return [f"{prefix}{j}" for j in range(count)]
