"""Compiled fast paths, plugged in under the reference layers (see :mod:`lstmkit.nn.strategy`).

A kernel computes exactly what the reference time loop (:mod:`lstmkit.nn.time_loop` over a
cell of :mod:`lstmkit.nn.cells`) computes, with the same signatures, on float32 arrays with
numba (``pip install lstmkit[fast]``); tests prove every path equal to the reference. This
package imports nothing from the rest of lstmkit. The modules:

* :mod:`lstmkit.kernels.execution`: :class:`Execution`, the choices of how a layer runs;
* :mod:`lstmkit.kernels.lstm`: the LSTM's loop over time, forward and backward (what is
  fused, and why); the entry point;
* :mod:`lstmkit.kernels.compiled`: the LSTM cell's pointwise math compiled, whole-sequence
  loops and the streaming step;
* :mod:`lstmkit.kernels.layer_norm`: the layer-normalised LSTM's norms (``layer_norm=True``),
  for the loops over rows;
* :mod:`lstmkit.kernels.cell_split`: whole-sequence loops that split each step's work by
  cells across threads, on NumPy's BLAS (:mod:`lstmkit.kernels.blas`) with one wait per step
  (:mod:`lstmkit.kernels.sync`);
* :mod:`lstmkit.kernels.parallel`: how work is split across threads;
* :mod:`lstmkit.kernels.h_loop`: the GRU's and the RNN's loop over time (their cells:
  :mod:`lstmkit.kernels.gru_cell`, :mod:`lstmkit.kernels.rnn_cell`);
* :mod:`lstmkit.kernels.inference`: the lean whole-sequence inference of the plain LSTM,
  the GRU and the RNN (``layer(x, inference=True)`` at small sizes), one part per loop
  (:mod:`lstmkit.kernels.lstm_inference`, :mod:`lstmkit.kernels.h_inference`), the
  weights it keeps between calls (:mod:`lstmkit.kernels.kept`), the LSTM's recurrent
  product at few rows with its sums in registers (:mod:`lstmkit.kernels.panels`) and its
  loop split by rows across threads (:mod:`lstmkit.kernels.lstm_row_split`);
* :mod:`lstmkit.kernels.streaming`: one step of a stack of layers (``layer.step``);
* :mod:`lstmkit.kernels.numba_cache`: numba's on-disk cache, cleared when a source changed.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from lstmkit.kernels import numba_cache
from lstmkit.kernels.execution import IMPLS, Execution

__all__ = ["IMPLS", "Execution", "available"]

numba_cache.check()  # before any kernel module compiles or loads its cache


def available(dtype: np.dtype) -> bool:
    """Whether the compiled kernels run for arrays of ``dtype``: float32, numba installed.

    (float64 runs the reference, exact NumPy ufuncs: the kernels' tanh is accurate to
    float32 only.)"""
    return np.dtype(dtype) == np.float32 and _numba_installed()


@functools.cache
def _numba_installed() -> bool:
    """Whether numba is installed (asked once: the lookup takes ~25 us)."""
    return importlib.util.find_spec("numba") is not None
