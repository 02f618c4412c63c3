"""The model: cells (one step's equations and their backward), the reference loop over
time, the recurrent layers built on them, and what a network needs around them (linear
layers, losses, initialisers, optimisers, schedules). NumPy only; how a layer runs fast is
:mod:`lstmkit.kernels`' business, chosen by the layer's :class:`lstmkit.kernels.Execution`.
"""
