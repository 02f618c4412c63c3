"""Studies across many training runs: ``gates`` asks Greff et al. (2017)'s question, which
parts of the LSTM cell earn their place, on this machine (``lstmkit study gates``).

:mod:`~lstmkit.explain.study.gates` plans and runs the (task, variant, seed) runs into a resumable
folder, :mod:`~lstmkit.explain.study.stats` compares each variant with the full cell, and
:mod:`~lstmkit.explain.study.report` writes the table, the findings and the box plots.
"""
