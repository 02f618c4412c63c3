"""Time-series forecasting: CSV data and scaling, the model, training, roll-out, evaluation."""
