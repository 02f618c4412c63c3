"""lstmkit: LSTM, GRU and RNN layers from first principles on NumPy.

>>> import numpy as np, lstmkit as lk
>>> lstm = lk.LSTM(8, 16, seed=0)
>>> y, (h_n, c_n) = lstm(np.zeros((5, 2, 8), np.float32))
>>> y.shape, h_n.shape
((5, 2, 16), (1, 2, 16))
"""

from lstmkit import init as init  # lk.init.orthogonal_ etc., as init.py documents
from lstmkit.layers import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN"]
__version__ = "0.1.0"
