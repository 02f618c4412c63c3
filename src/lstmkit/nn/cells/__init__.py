"""One recurrent cell per module, all with the same small interface.

A cell computes one time step for one layer and one direction. The time loop
(:mod:`lstmkit.nn.time_loop`) does the input projection ``xw = x @ W_ih.T + b_ih``
for all steps at once, so a cell only sees

* ``step(xw, state, p) -> (y, state, cache)`` where ``xw`` is ``(N, G*H)``,
  ``state`` a tuple of ``(N, ·)`` arrays and ``p`` the parameters of this
  layer-direction (``W_hh``, ``b_hh`` and, for a projected LSTM, ``W_hr``);
* ``step_backward(dstate, cache, p, grads) -> (dxw, dhw, dstate_prev)`` where
  ``dxw`` is the gradient of the input pre-activation, ``dhw`` that of the
  recurrent pre-activation ``h_prev @ W_hh.T + b_hh`` (the same array for LSTM
  and RNN), and ``dstate_prev`` the part of the previous state's gradient that
  does not flow through ``W_hh`` (the loop adds ``dhw @ W_hh`` to ``dh_prev``).
  Parameters used only inside the cell (``W_hr``) get their gradient added to
  ``grads``.
"""

from lstmkit.nn.cells.base import Cell
from lstmkit.nn.cells.gru import GRUCell
from lstmkit.nn.cells.lstm import LSTMCell
from lstmkit.nn.cells.rnn import RNNCell

__all__ = ["Cell", "GRUCell", "LSTMCell", "RNNCell"]
