"""The Python API: ``lk.series.Forecaster(horizon).fit(y).predict(h)``.

>>> import numpy as np, lstmkit as lk
>>> y = np.sin(np.arange(120) * 2 * np.pi / 12) + 0.01 * np.arange(120)
>>> f = lk.series.Forecaster(horizon=12, season=12, minutes=0.1).fit(y)  # doctest: +SKIP
>>> f.predict(12).shape                                                  # doctest: +SKIP
(12,)

``fit`` takes a 1-D NumPy array (or list), a pandas Series, or a pandas DataFrame with one
numeric column (or ``column=`` naming it); ``predict(h)`` returns a NumPy array, or a pandas
Series indexed by the time stamps that follow the fitted ones when ``fit`` was given pandas.
The model is the automatic forecaster of :mod:`lstmkit.series.auto`: it chooses lookback,
season handling, differencing, size and training length on validation windows inside the
series, then refits a median ensemble on all of it. The season is ``season`` if given, else
inferred from a pandas DatetimeIndex or PeriodIndex (monthly 12, quarterly 4, weekly 52,
daily 7, hourly 24, else 1), else 1.

Missing values (NaN, or time stamps a regular DatetimeIndex skips) are an error unless
``missing`` is "interpolate", "previous" or "mask" (see :mod:`lstmkit.series.missing`).

**Many series.** A long DataFrame (one row per series id and time; Nixtla's ``unique_id``,
``ds``, ``y`` by default, else ``id_column=``, ``time_column=``, ``column=``) fits one global
model on every series (:mod:`lstmkit.series.many`); ``future_covariates`` and
``past_covariates`` are then lists of the frame's columns. ``predict(h)`` returns a long
DataFrame (id, time, ``forecast``) and ``predict_interval(h, level)`` one with ``lo_<level>``
and ``hi_<level>``; with future covariates both take ``X_future``, a long frame holding the
id column and those columns for the h steps of every id.

>>> f = lk.series.Forecaster(horizon=12).fit(df)   # df: unique_id, ds, y  # doctest: +SKIP
>>> f.predict(12).columns.tolist()                                        # doctest: +SKIP
['unique_id', 'ds', 'forecast']
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from lstmkit.series import missing as gaps
from lstmkit.series.auto import AutoConfig, Ensemble, fit_auto
from lstmkit.series.times import season_of

__all__ = ["Forecaster"]


class Forecaster:
    """Automatic LSTM forecaster; the constructor only stores its arguments.

    horizon: the number of steps it is tuned to forecast (validation windows are this long);
    season: the seasonal period (None: inferred from a pandas time index, else 1);
    minutes: time budget of one fit; seed: the seed of every model; config: an
    :class:`~lstmkit.series.auto.AutoConfig` for the rest of the search; missing: "error"
    (default), "interpolate", "previous" or "mask" for missing values.
    """

    def __init__(
        self,
        horizon: int,
        season: int | None = None,
        minutes: float | None = 1.0,
        seed: int = 0,
        config: AutoConfig | None = None,
        missing: str = "error",
    ) -> None:
        self.horizon = horizon
        self.season = season
        self.minutes = minutes
        self.seed = seed
        self.config = config
        self.missing = missing

    def __repr__(self) -> str:
        return (
            f"Forecaster(horizon={self.horizon!r}, season={self.season!r}, "
            f"minutes={self.minutes!r}, seed={self.seed!r}, missing={self.missing!r})"
        )

    def fit(
        self,
        y: Any,
        column: str | None = None,
        *,
        future_covariates: Any = None,
        past_covariates: Any = None,
        id_column: str | None = None,
        time_column: str | None = None,
    ) -> Forecaster:
        """Fit on the series y (n,), or on the many series of a long DataFrame; see the
        module docstring for what y may be.

        ``future_covariates`` (n, F) and ``past_covariates`` (n, P): arrays or pandas
        (see :mod:`lstmkit.series.covariates`), or column names of a long frame; with
        either, ``predict`` needs ``X_future`` when F > 0 (:meth:`predict`).
        ``id_column`` (default ``unique_id`` when the frame has it) and ``time_column``
        (default ``ds`` when it has it) name a long frame's columns."""
        for fitted in ("global_", "ensemble_", "panel_"):
            self.__dict__.pop(fitted, None)
        _check_int("horizon", self.horizon, 1)
        if self.season is not None:
            _check_int("season", self.season, 1)
        gaps.check_mode(self.missing, "missing")
        if id_column is not None or _has_column(y, "unique_id"):
            return self._fit_many(
                y, id_column or "unique_id", time_column, column, future_covariates,
                past_covariates,
            )  # fmt: skip
        if time_column is not None:
            raise ValueError("time_column: goes with a long DataFrame (id_column=)")
        values, index = _on_grid(*_values(y, column))
        _check_missing(values, index, self.missing)
        values, observed = gaps.fill(values, self.missing)
        season = self.season or _infer_season(index)
        config = replace(self.config or AutoConfig(), minutes=self.minutes, seed=self.seed)
        if future_covariates is not None or past_covariates is not None:
            return self._fit_covariates(
                values, index, y, season, config, future_covariates, past_covariates
            )
        self._check_length(values)
        mask = observed if self.missing == "mask" else None
        self.ensemble_: Ensemble = fit_auto(values, season, self.horizon, config, mask)
        self.season_, self.index_, self.name_ = season, index, getattr(y, "name", None)
        return self

    def predict(self, h: int | None = None, X_future: Any = None) -> Any:
        """The next h values (default: the horizon) after the fitted series: an array (h,),
        or a pandas Series over the following time stamps if ``fit`` was given pandas.
        ``X_future`` (h, F): the known-future covariates of those steps, when fitted with
        ``future_covariates``."""
        if hasattr(self, "panel_"):
            return self._predict_many(h, X_future)
        if hasattr(self, "global_"):
            return self._predict_covariates(h, X_future)
        h = self._single_horizon(h, X_future)
        return self._labelled(self.ensemble_.predict(h))

    def predict_interval(
        self, h: int | None = None, level: float = 80.0, X_future: Any = None
    ) -> Any:
        """(lo, hi): the ``level`` % prediction interval of the next h values, from the
        search's validation errors (see :meth:`lstmkit.series.auto.Ensemble.interval`);
        arrays (h,), or pandas Series like :meth:`predict`'s. After a fit on a long frame: a
        long DataFrame (id, time, ``lo_<level>``, ``hi_<level>``)."""
        if hasattr(self, "panel_"):
            return self._predict_many(h, X_future, level)
        if hasattr(self, "global_"):
            h = self._horizon(h)
            lo, hi = self.global_.interval(h, level, self._x_future(h, X_future))
            return self._labelled(lo[0]), self._labelled(hi[0])
        lo, hi = self.ensemble_.interval(self._single_horizon(h, X_future), level)
        return self._labelled(lo), self._labelled(hi)

    def _horizon(self, h: int | None) -> int:
        """h checked (an integer >= 1), the horizon when None."""
        h = self.horizon if h is None else h
        _check_int("h", h, 1)
        return h

    def _single_horizon(self, h: int | None, X_future: Any) -> int:
        """:meth:`_horizon` for a fit on one series without covariates (refused before it)."""
        if X_future is not None:
            raise ValueError("X_future: this Forecaster was fitted without future_covariates")
        if not hasattr(self, "ensemble_"):
            raise RuntimeError("this Forecaster is not fitted yet; call fit(y) before predict(h)")
        return self._horizon(h)

    def _check_length(self, values: np.ndarray) -> None:
        """A ValueError unless the series (n,) holds at least horizon + 4 values."""
        if len(values) < self.horizon + 4:
            raise ValueError(
                f"y: expected at least horizon + 4 = {self.horizon + 4} values, got "
                f"{len(values)}; pass a longer series or a smaller horizon"
            )

    def _fit_covariates(
        self, values: Any, index: Any, y: Any, season: int, config: Any, future: Any, past: Any
    ) -> Forecaster:
        """``fit`` with covariates: a global model over a panel of this one series."""
        from lstmkit.series.many import fit_global, single_panel

        self._check_length(values)
        panel, names = single_panel(values, future, past)
        self.global_ = fit_global(panel, season, self.horizon, config, names)
        self.__dict__.pop("ensemble_", None)
        self.season_, self.index_, self.name_ = season, index, getattr(y, "name", None)
        return self

    def _x_future(self, h: int, X_future: Any) -> list[np.ndarray] | None:
        """One series' known-future covariates as the global model takes them."""
        from lstmkit.series.covariates import as_matrix

        names = self.global_.future_names
        if X_future is not None and hasattr(X_future, "columns"):
            by_name = {str(k): k for k in X_future.columns}
            missing = [c for c in names if c not in by_name]
            if missing:
                raise ValueError(f"X_future: expected the columns {names}, missing {missing}")
            X_future = X_future[[by_name[c] for c in names]]
        return None if X_future is None else [as_matrix(X_future, "X_future", h)]

    def _labelled(self, values: np.ndarray) -> Any:
        """values (h,) as :meth:`predict` returns them (a pandas Series after pandas)."""
        if self.index_ is None:
            return values
        import pandas as pd

        return pd.Series(values, index=_future_index(self.index_, len(values)), name=self.name_)

    def _predict_covariates(self, h: int | None, X_future: Any) -> Any:
        h = self._horizon(h)
        return self._labelled(self.global_.predict(h, self._x_future(h, X_future))[0])

    def _fit_many(
        self, df: Any, id_column: str, time_column: str | None, column: str | None,
        future: Any, past: Any,
    ) -> Forecaster:  # fmt: skip
        """``fit`` on a long frame: one global model over its series."""
        from lstmkit.series.many import check_lengths, fit_global
        from lstmkit.series.panel_frame import frame_panel

        if self.missing != "error":
            raise ValueError("missing: the global forecaster needs complete series ('error')")
        names = (_names(future, "future_covariates"), _names(past, "past_covariates"))
        if time_column is None and _has_column(df, "ds"):
            time_column = "ds"
        fp = frame_panel(df, id_column, time_column, column or "y", *names)
        check_lengths(fp.panel, self.horizon)
        season = self.season or _infer_season(None if fp.index is None else fp.index[0])
        config = replace(self.config or AutoConfig(), minutes=self.minutes, seed=self.seed)
        self.global_ = fit_global(fp.panel, season, self.horizon, config, names)
        self.panel_, self.season_ = fp, season
        return self

    def _predict_many(self, h: int | None, X_future: Any, level: float | None = None) -> Any:
        """``predict`` / ``predict_interval`` after a fit on a long frame: a long frame."""
        from lstmkit.series.panel_frame import future_rows, long_frame

        h = self._horizon(h)
        fp, names = self.panel_, self.global_.future_names
        if X_future is not None and not names:
            raise ValueError("X_future: this Forecaster was fitted without future_covariates")
        X = None if X_future is None else future_rows(X_future, fp, names, h)
        if fp.index is None:
            times = [np.arange(len(y), len(y) + h) for y in fp.panel.y]
        else:
            times = [_future_index(index, h) for index in fp.index]
        if level is None:
            return long_frame(fp, times, {"forecast": self.global_.predict(h, X)})
        lo, hi = self.global_.interval(h, level, X)
        return long_frame(fp, times, {f"lo_{level:g}": lo, f"hi_{level:g}": hi})

    def summary(self) -> dict[str, Any]:
        """The chosen ensemble members and the validation table of the search."""
        if hasattr(self, "global_"):
            return {"season": self.season_, **self.global_.summary()}
        if not hasattr(self, "ensemble_"):
            raise RuntimeError("this Forecaster is not fitted yet; call fit(y) first")
        return {"season": self.season_, **self.ensemble_.summary()}


def _has_column(y: Any, name: str) -> bool:
    """Whether y is a pandas DataFrame with a column ``name``."""
    return type(y).__name__ == "DataFrame" and name in getattr(y, "columns", ())


def _names(columns: Any, name: str) -> list[str]:
    """A long frame's covariate column names: None, one name or a list of names."""
    if columns is None:
        return []
    names = [columns] if isinstance(columns, str) else list(columns)
    if not all(isinstance(c, str) and c for c in names):
        raise TypeError(f"{name}: expected column names of the long frame, got {columns!r}")
    return names


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def _values(y: Any, column: str | None) -> tuple[np.ndarray, Any]:
    """(values (n,) float64, the pandas index or None) of what ``fit`` was given."""
    index = None
    if type(y).__module__.startswith("pandas"):
        import pandas as pd

        if isinstance(y, pd.DataFrame):
            y = _column(y, column)
        elif column is not None:
            raise ValueError(f"column: expected None for a pandas Series, got {column!r}")
        if not isinstance(y, pd.Series):
            raise TypeError(f"y: expected a pandas Series or DataFrame, got {type(y).__name__}")
        if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
            raise TypeError(f"y: expected numeric values, got dtype {y.dtype}")
        index = y.index
        if isinstance(index, pd.DatetimeIndex | pd.PeriodIndex):
            if not index.is_monotonic_increasing or index.has_duplicates:
                raise ValueError("y: expected increasing, unique time stamps in the index")
        y = y.to_numpy(np.float64, na_value=np.nan)
    elif column is not None:
        raise ValueError(f"column: expected None unless y is a pandas DataFrame, got {column!r}")
    try:
        values = np.asarray(y, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"y: expected numbers, got {type(y).__name__}") from None
    if values.ndim != 1:
        raise ValueError(f"y: expected a 1-D series, got shape {values.shape}")
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        raise ValueError(
            f"y: expected finite values, got {bad.size} infinite (first at position {bad[0]})"
        )
    return values, index


def _on_grid(values: np.ndarray, index: Any) -> tuple[np.ndarray, Any]:
    """A DatetimeIndex that skips stamps of its frequency: the full grid, NaN values there."""
    import_ok = index is not None and type(index).__name__ == "DatetimeIndex" and len(index) > 2
    if not import_ok or _freq(index) is not None:
        return values, index
    from lstmkit.series.times import Stamps, frequency

    stamps = Stamps(index.as_unit("s"), "datetime")
    freq = frequency(stamps)
    if freq is None:
        return values, index
    full, grid, _ = gaps.complete_grid(values, stamps, freq)
    return full, grid.as_unit(index.unit)


def _check_missing(values: np.ndarray, index: Any, mode: str) -> None:
    """A ValueError naming the first missing value when ``mode`` is "error"."""
    at = np.flatnonzero(np.isnan(values))
    if at.size and mode == "error":
        where = f"position {at[0]}" + ("" if index is None else f" ({index[at[0]]})")
        raise ValueError(
            f"y: {at.size} missing values (NaN or time stamps the index skips; first at "
            f"{where}); fill them or pass missing='interpolate', 'previous' or 'mask'"
        )


def _column(df: Any, column: str | None) -> Any:
    """The value column of a DataFrame: ``column``, else its only numeric column."""
    import pandas as pd

    if column is not None:
        if column not in df.columns:
            raise ValueError(f"column: expected one of {list(df.columns)}, got {column!r}")
        return df[column]
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c].dtype)]
    if len(numeric) != 1:
        raise ValueError(
            f"y: expected a DataFrame with one numeric column, got {len(numeric)} "
            f"({numeric}); pass column='name'"
        )
    return df[numeric[0]]


def _freq(index: Any) -> str | None:
    import pandas as pd

    if isinstance(index, pd.PeriodIndex):
        return str(index.freqstr)
    if isinstance(index, pd.DatetimeIndex) and len(index) >= 3:
        return index.freqstr or pd.infer_freq(index)
    return None


def _infer_season(index: Any) -> int:
    """The season of a pandas time index (see the module docstring), else 1."""
    named = season_of(None if index is None else _freq(index))
    return 1 if named is None else named[1]


def _future_index(index: Any, h: int) -> Any:
    """The h labels after a pandas index: time stamps at its frequency, else positions."""
    import pandas as pd

    if isinstance(index, pd.PeriodIndex):
        return pd.period_range(index[-1] + 1, periods=h, freq=index.freq)
    freq = _freq(index)
    if isinstance(index, pd.DatetimeIndex) and freq is not None:
        return pd.date_range(index[-1], periods=h + 1, freq=freq)[1:]
    if pd.api.types.is_integer_dtype(index.dtype) and len(index):
        return pd.RangeIndex(int(index[-1]) + 1, int(index[-1]) + 1 + h)
    return pd.RangeIndex(len(index), len(index) + h)
