"""The automatic forecaster's settings and its candidate forms (see :mod:`lstmkit.series.auto`).

:class:`AutoConfig` holds the search's and the training's settings; a :class:`Candidate` is one
form (lookback, deseason, difference, hidden size), and :func:`candidates` the first round's
forms for a season, a horizon and a history length.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from lstmkit.series.model import ForecasterConfig

__all__ = ["AutoConfig", "Candidate", "candidates"]


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
    combine: bool = False  # weigh the ensemble with Holt-Winters (lstmkit.series.combination)
    combine_trend: bool = False  # that Holt-Winters with a trend, ETS(A,A,A)
    level_input: bool = False  # differenced forms also read the level (series.level_input)
    # differenced forms read the level where ADF rejects a unit root (series.stationarity);
    # one series only: the global model reads no level
    level_if_stationary: bool = True
    # q > 0: every LSTM form (not the ES-hybrid) adds a linear autoregressive highway of
    # order q (at most its lookback) to its head (ForecasterConfig.highway); one series only
    highway: int = 0
    # where ADF does not reject a unit root (the level gate's test, series.stationarity),
    # the candidates are the differenced forms only: the test decides d as auto.arima does
    difference_if_unit_root: bool = False

    def __post_init__(self) -> None:
        names = ("steps", "eval_every", "val_horizons", "batch", "hidden", "top", "seeds")
        for name in (*names, "search_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if not isinstance(self.highway, int) or isinstance(self.highway, bool) or self.highway < 0:
            raise ValueError(f"highway: expected an integer >= 0, got {self.highway!r}")
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
    level: bool = False  # differenced, the level a second input (lstmkit.series.level_input)
    highway: int = 0  # the linear autoregressive highway's order (lstmkit.series.model)

    def inputs(self) -> int:
        """Values the LSTM reads per step."""
        return 2 if self.level else 1

    def model_config(self) -> ForecasterConfig:
        """The LSTM's settings for this form."""
        return ForecasterConfig(hidden=self.hidden, highway=self.highway)

    def need(self) -> int:
        """Values a history must hold to train this candidate (two windows)."""
        return self.lookback + 2 + int(self.difference)


def candidates(
    m: int,
    h: int,
    n: int,
    hidden: int = 16,
    hybrid: bool = False,
    level: bool = False,
    highway: int = 0,
    differenced_only: bool = False,
) -> list[Candidate]:
    """The first round's candidates for season m, horizon h and n training values; with
    ``level``, the differenced forms read the level too (:mod:`lstmkit.series.level_input`);
    with ``highway`` q > 0, the LSTM forms add a linear autoregressive highway of order
    min(q, lookback) (:mod:`lstmkit.series.model`); with ``differenced_only`` (a unit root
    not rejected, :attr:`AutoConfig.difference_if_unit_root`), only the differenced forms
    (no undifferenced form, no ES-hybrid).

    Lookbacks: m, 2m, 3m for m > 1; h, 2h, 3h (at least 4) for m = 1; those the n values
    cannot train (see :meth:`Candidate.need`) are dropped, and if none is left the longest
    lookback that fits is used.
    """
    base = m if m > 1 else max(h, 4)
    lookbacks = [k * base for k in (1, 2, 3)]
    diffs = (True,) if differenced_only else (True, False)
    forms = [(d, f) for d in ((True, False) if m > 1 else (False,)) for f in diffs]
    out = [
        Candidate(L, d, f, hidden, level=f and level, highway=min(highway, L))
        for L in lookbacks
        for d, f in forms
    ]
    if hybrid and not differenced_only:
        out += [Candidate(L, m > 1, False, hidden, True) for L in lookbacks]
    fits = [c for c in out if c.need() <= n]
    if fits:
        return fits
    d = differenced_only and n >= 5  # a differenced form needs one value more
    L = n - 3 - int(d)
    if L < 1:
        raise ValueError(f"the history has {n} values; the forecaster needs at least 4")
    return [Candidate(L, False, d, hidden, highway=min(highway, L))]


def _candidate(row: dict[str, Any]) -> Candidate:
    return Candidate(**{f.name: row[f.name] for f in fields(Candidate) if f.name in row})
