"""Seeing inside a trained model: the gate explorer (:mod:`lstmkit.explain.explorer`) and
its HTML page (:mod:`lstmkit.explain.html`)."""
