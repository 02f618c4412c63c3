"""lstmkit: LSTM, GRU and RNN layers from first principles on NumPy.

>>> import numpy as np, lstmkit as lk
>>> lstm = lk.LSTM(8, 16, seed=0)
>>> y, (h_n, c_n) = lstm(np.zeros((5, 2, 8), np.float32))
>>> y.shape, h_n.shape
((5, 2, 16), (1, 2, 16))
"""

from lstmkit import _compat
from lstmkit.kernels.execution import Execution
from lstmkit.nn import init as init  # lk.init.orthogonal_ etc., as init.py documents
from lstmkit.nn.feedforward import Dropout, Embedding, Linear
from lstmkit.nn.losses import mse, softmax_cross_entropy
from lstmkit.nn.model import Model
from lstmkit.nn.optim import SGD, Adam, AdamW, RMSprop, clip_grad_norm
from lstmkit.nn.recurrent import GRU, LSTM, RNN

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "SGD",
    "Adam",
    "AdamW",
    "Dropout",
    "Embedding",
    "Execution",
    "Linear",
    "Model",
    "RMSprop",
    "clip_grad_norm",
    "init",
    "mse",
    "softmax_cross_entropy",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``lk.series`` imported on first use (it is not needed by the layers above)."""
    if name == "series":
        import importlib

        return importlib.import_module("lstmkit.series")
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")


_compat.install()  # old module paths (lstmkit.layers, ...) with a DeprecationWarning
