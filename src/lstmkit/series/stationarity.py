"""The KPSS test of level stationarity: may the automatic forecaster's differenced forms
read the level (:attr:`lstmkit.series.auto_candidates.AutoConfig.level_if_stationary`)?

KPSS (Kwiatkowski, Phillips, Schmidt and Shin 1992), null hypothesis: x (n,) is stationary
around a constant. With the deviations and their running sums

    e_t = x_t - mean(x),   S_t = e_1 + ... + e_t,

and the long-run variance with Bartlett weights and l lags

    sigma2 = gamma_0 + 2 sum_{k=1..l} (1 - k / (l + 1)) gamma_k,   gamma_k = sum_{t>k} e_t e_{t-k} / n,

the statistic is eta = sum_t S_t^2 / (n^2 sigma2); the null is rejected at 5 % when
eta > 0.463. The lag l = floor(3 sqrt(n) / 13) and the 5 % level are those with which
auto.arima decides whether to difference (R's ``forecast::ndiffs``, statsforecast's
``ndiffs``): the level is read where auto.arima would leave it undifferenced.
"""

from __future__ import annotations

import numpy as np

from lstmkit.series.transform import seasonal_indices

__all__ = ["KPSS_CRITICAL_5", "kpss_lags", "kpss_statistic", "level_stationary"]

KPSS_CRITICAL_5 = 0.463  # the 5 % critical value of eta (Kwiatkowski et al. 1992, table 1)


def kpss_lags(n: int) -> int:
    """l = floor(3 sqrt(n) / 13), the lag of auto.arima's KPSS test for n values."""
    return int(np.floor(3 * np.sqrt(n) / 13))


def kpss_statistic(x: np.ndarray, lags: int) -> float:
    """eta of x (n,) with ``lags`` Bartlett lags (see the module docstring); 0 for a
    constant x (no deviation: stationary)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or x.shape[0] < 2 or lags < 0:
        raise ValueError(f"expected x (n,) with n >= 2 and lags >= 0, got {x.shape}, {lags}")
    n = x.shape[0]
    e = x - x.mean()  # (n,)
    S = np.cumsum(e)  # (n,)
    sigma2 = e @ e / n
    for k in range(1, min(lags, n - 1) + 1):
        sigma2 += 2 * (1 - k / (lags + 1)) * (e[k:] @ e[:-k]) / n
    if not sigma2 > 0:
        return 0.0
    return float(S @ S / (n * n * sigma2))


def level_stationary(y: np.ndarray, m: int) -> bool:
    """Whether KPSS does not reject at 5 % on the history y (n,), deseasoned first by the
    classical additive seasonal indices when m > 1 (:func:`seasonal_indices`)."""
    y = np.asarray(y, np.float64)
    d = y - seasonal_indices(y, m)[np.arange(y.shape[0]) % m]
    return kpss_statistic(d, kpss_lags(d.shape[0])) <= KPSS_CRITICAL_5
