"""Time-series forecasting: CSV data and scaling, the model, training, roll-out, evaluation.

``Forecaster`` is the automatic forecaster's Python API (:mod:`lstmkit.series.forecaster`).
"""

from lstmkit.series.forecaster import Forecaster

__all__ = ["Forecaster"]
