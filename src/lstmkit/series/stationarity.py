"""The augmented Dickey-Fuller test: may the automatic forecaster's differenced forms read
the level (:attr:`lstmkit.series.auto_candidates.AutoConfig.level_if_stationary`)?

The level is worth reading where it reverts to a mean, the alternative of the ADF test
(Said and Dickey 1984) with a constant. With Delta x_t = x_t - x_{t-1} and k lags, the
least-squares regression over the T rows t = k + 1 .. n - 1

    Delta x_t = a + rho x_{t-1} + sum_{j=1..k} phi_j Delta x_{t-j} + eps_t

gives the statistic tau = rho_hat / se(rho_hat); a unit root (no mean to revert to) is
rejected at 5 % when tau is below MacKinnon's (2010) critical value

    c(T) = -2.86154 - 2.8903 / T - 4.234 / T^2 - 40.04 / T^3.

The lag k = floor((n - 1)^(1/3)) is that of R's ``forecast::ndiffs(test = "adf")``. A
trending series does not reject (a constant alone cannot absorb the drift).
"""

from __future__ import annotations

import numpy as np

from lstmkit.series.transform import seasonal_indices

__all__ = ["adf_critical_5", "adf_lags", "adf_statistic", "level_stationary"]


def adf_lags(n: int) -> int:
    """k = floor((n - 1)^(1/3)), the lagged differences of the ADF regression for n values."""
    return int(np.floor((n - 1) ** (1 / 3) + 1e-9))


def adf_critical_5(T: int) -> float:
    """MacKinnon's (2010) 5 % critical value of tau with a constant, for T regression rows."""
    return -2.86154 - 2.8903 / T - 4.234 / T**2 - 40.04 / T**3


def adf_statistic(x: np.ndarray, lags: int) -> tuple[float, int]:
    """(tau, T) of x (n,) with ``lags`` lagged differences; see the module docstring."""
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or lags < 0 or x.shape[0] < lags + 4:
        raise ValueError(f"expected x (n,) with n >= lags + 4, got shape {x.shape} and {lags}")
    dx = np.diff(x)  # (n - 1,): dx[i] = Delta x_{i+1}
    target = dx[lags:]  # (T,)
    T = target.shape[0]
    lagged = [dx[lags - j : dx.shape[0] - j] for j in range(1, lags + 1)]  # each (T,)
    A = np.column_stack([np.ones(T), x[lags:-1], *lagged])  # (T, 2 + lags)
    coef, *_ = np.linalg.lstsq(A, target, rcond=None)
    resid = target - A @ coef
    dof = T - A.shape[1]
    if dof < 1:
        raise ValueError(f"expected more values than {A.shape[1]} for the ADF regression")
    cov = np.linalg.pinv(A.T @ A) * (resid @ resid / dof)  # (2 + lags, 2 + lags)
    se = np.sqrt(cov[1, 1])
    return (float(coef[1] / se) if se > 0 else -np.inf), T


def level_stationary(y: np.ndarray, m: int) -> bool:
    """Whether ADF rejects a unit root at 5 % on the history y (n,), deseasoned first by
    the classical additive seasonal indices when m > 1 (:func:`seasonal_indices`)."""
    y = np.asarray(y, np.float64)
    d = y - seasonal_indices(y, m)[np.arange(y.shape[0]) % m]
    tau, T = adf_statistic(d, adf_lags(d.shape[0]))
    return tau < adf_critical_5(T)
