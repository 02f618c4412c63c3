"""Each member's forecast at one backtest origin: do the members scatter or agree?

    python benchmarks/member_forecasts.py data/realgdp.csv 8 2 [highway=4 ...]

Refits the automatic forecaster on the history before origin k (0 = the oldest of the 5
origins ``lstmkit series backtest --horizon H --origins 5`` uses) with ``AutoConfig(seed=0,
minutes=5, calibration_cuts=0)`` (the point forecast is the backtest's) and prints every
member's h-step forecast and MASE (the backtest's scale: the in-sample seasonal naive MAE of
the history), the median's, the members' spread and the median's bias.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from lstmkit.series import backtest as bt
from lstmkit.series.auto import AutoConfig, fit_auto
from lstmkit.series.data import read_csv
from lstmkit.series.evaluate import resolve_season


def main() -> None:
    path, h, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    changes = {}
    for item in sys.argv[4:]:
        name, text = item.split("=", 1)
        changes[name] = text == "true" if text in ("true", "false") else int(text)
    time_column = open(path).readline().strip().split(",")[0]
    series = read_csv(path, "value", time_column)
    m, _ = resolve_season(series, None)
    y = np.asarray(series.values, np.float64).ravel()
    o = bt.origins(len(y), h, 5, h, h + 5)[k]
    config = replace(AutoConfig(seed=0, minutes=5, calibration_cuts=0), **changes)
    ensemble = fit_auto(y[:o], m, h, config)
    F = ensemble.member_forecasts(h)  # (members, h)
    actual = y[o : o + h]
    scale = np.mean(np.abs(y[m:o] - y[: o - m]))
    np.set_printoptions(precision=3, suppress=True, linewidth=150)
    print(f"{path} origin {o} m {m} truncated {ensemble.truncated}\nactual {actual}")
    for (c, _, _, steps), f in zip(ensemble.members, F):
        form = f"L{c.lookback} ds{c.deseason:d} d{c.difference:d} lv{c.level:d} H{c.hidden}"
        mase = np.mean(np.abs(f - actual)) / scale
        print(f"{form} q{c.highway} steps {steps} {f} MASE {mase:.3f}")
    median = np.median(F, axis=0)
    print(
        f"median MASE {np.mean(np.abs(median - actual)) / scale:.3f}; members' spread "
        f"(sd, mean over steps) / scale {F.std(0).mean() / scale:.3f}; |mean bias of the "
        f"median| / scale {abs(np.mean(median - actual)) / scale:.3f}"
    )


if __name__ == "__main__":
    main()
