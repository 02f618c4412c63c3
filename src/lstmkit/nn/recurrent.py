"""Recurrent layers with torch.nn's interface: :class:`LSTM`, :class:`GRU`, :class:`RNN`.

One base class stacks layers and directions over the time loop of
:mod:`lstmkit.nn.time_loop`; the three layers differ only in their cell.

Shapes (torch's). L = num_layers, D = 2 if bidirectional else 1,
P = proj_size or hidden_size (the size of h), H = hidden_size:

==============  ==========================  =================================
x               (T, N, I)                   (N, T, I) with batch_first; (T, I) unbatched
y               (T, N, D*P)                 likewise
h_0, h_n        (L*D, N, P)                 (L*D, P) unbatched
c_0, c_n        (L*D, N, H)                 LSTM only
==============  ==========================  =================================

The LSTM's variants (peepholes, coupled or fixed gates, no activations, layer norm,
recurrent dropout, zoneout) are options of :class:`LSTM`; see its docstring for their
parameters and :mod:`lstmkit.nn.cells.lstm` for the equations.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from lstmkit.kernels.execution import Execution
from lstmkit.nn import strategy, time_loop
from lstmkit.nn.cells import GRUCell, LSTMCell, RNNCell
from lstmkit.nn.cells.base import Cell, Params
from lstmkit.nn.cells.lstm import LSTMOptions
from lstmkit.nn.checks import as_array, check_finite, check_shape, lengths_mask
from lstmkit.nn.module import Module
from lstmkit.nn.noise import KeyedNoise

_LOCAL_NAMES = {"weight_ih": "W_ih", "weight_hh": "W_hh", "bias_ih": "b_ih", "bias_hh": "b_hh"}
_LOCAL_NAMES["weight_hr"] = "W_hr"
# the LSTM variants' parameters (see LSTM): peepholes, layer-norm gains and the c norm's shift
_LOCAL_NAMES.update(weight_ci="w_ci", weight_cf="w_cf", weight_co="w_co")
_LOCAL_NAMES.update(weight_ln_ih="ln_ih_g", weight_ln_hh="ln_hh_g", weight_ln_c="ln_c_g")
_LOCAL_NAMES["bias_ln_c"] = "ln_c_b"
_LOCAL_NAMES["weight_gr"] = "W_gr"
# with layer_norm, torch's two biases are the shifts of the two norms (inside the cell)
_LAYER_NORM_NAMES = {**_LOCAL_NAMES, "bias_ih": "ln_ih_b", "bias_hh": "ln_hh_b"}


def _lstm_options(cell: Cell) -> LSTMOptions:
    """The cell's LSTM options (the defaults for other cells)."""
    return cell.options if isinstance(cell, LSTMCell) else LSTMOptions()


def param_shapes(
    num_gates: int,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    proj_size: int = 0,
    bias: bool = True,
    options: LSTMOptions | None = None,
) -> dict[str, tuple[int, ...]]:
    """The parameters' names and shapes of a layer (torch's state_dict names, in torch's
    order; the LSTM variants' after each layer-direction's), computed without building it:
    G = ``num_gates``, H = ``hidden_size``, P = ``proj_size`` or H, D directions.
    ``weight_ih_l{k}`` (G*H, I or D*P), ``weight_hh_l{k}`` (G*H, P), biases (G*H,), ..."""
    G, H, P = num_gates, hidden_size, proj_size or hidden_size
    D = 2 if bidirectional else 1
    opt = options or LSTMOptions()
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        layer_in = input_size if layer == 0 else D * P
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            shapes["weight_ih" + s] = (G * H, layer_in)
            shapes["weight_hh" + s] = (G * H, P)
            if bias:
                shapes["bias_ih" + s] = (G * H,)
                shapes["bias_hh" + s] = (G * H,)
            if proj_size:
                shapes["weight_hr" + s] = (P, H)
            if opt.peepholes:
                for gate in "ifo":
                    shapes[f"weight_c{gate}" + s] = (H,)
            if opt.gate_recurrence:
                shapes["weight_gr" + s] = (3 * H, 3 * H)
            if opt.layer_norm:
                shapes["weight_ln_ih" + s] = (G * H,)
                shapes["weight_ln_hh" + s] = (G * H,)
                shapes["weight_ln_c" + s] = (H,)
                if bias:
                    shapes["bias_ln_c" + s] = (H,)
    return shapes


class _Recurrent(Module):
    """Shared machinery of the three layers (stacking, directions, lengths, state dicts)."""

    _mode = ""

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
    ):
        for name, value, low in [
            ("input_size", input_size, 1),
            ("hidden_size", hidden_size, 1),
            ("num_layers", num_layers, 1),
            ("proj_size", proj_size, 0),
        ]:
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected < hidden_size ({hidden_size}), got {proj_size}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype.name}")
        self.cell = cell
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self.noise: KeyedNoise | None = None  # set: masks keyed by (seed, step, example)
        self._register(self._init_params(self._rng))
        self._tape: dict[str, Any] | None = None
        # arrays the fused path reuses from call to call: the tape's, per layer-direction
        # (one set, taken by a forward while it runs: see _take_workspaces); backward's
        # scratch (used one layer at a time), per direction
        self._free_workspaces: list[list[dict[str, np.ndarray]]] = [
            [{} for _ in range(self.num_layers * self.num_directions)]
        ]
        self._backward_workspaces: list[dict[str, np.ndarray]] = [
            {} for _ in range(self.num_directions)
        ]
        self.record_state_grads = False  # backward then fills self.state_grads
        self.execution = Execution()  # how it runs: see lstmkit.kernels.execution
        self.state_grads: dict[str, np.ndarray] = {}

    # ---- parameters -------------------------------------------------------------

    @property
    def impl(self) -> str:
        """``self.execution.impl``: "auto", "reference" or "fused" (settable)."""
        return self.execution.impl

    @impl.setter
    def impl(self, impl: str) -> None:
        self.execution = replace(self.execution, impl=impl)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size when projecting, else hidden_size)."""
        return self.proj_size or self.hidden_size

    def _suffix(self, layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes exactly as torch's state_dict, in torch's order."""
        return param_shapes(
            self.cell.num_gates,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
            self.proj_size,
            self.bias,
            _lstm_options(self.cell),
        )

    def _init_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """torch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)); layer norms
        start as the identity (gains 1, the c norm's shift 0)."""
        k = 1.0 / np.sqrt(self.hidden_size)
        out = {}
        for name, shape in self._param_shapes().items():
            if name.startswith(("weight_ln_", "bias_ln_")):
                out[name] = np.full(shape, name.startswith("weight"), dtype=self.dtype)
            else:
                out[name] = _uniform(rng, k, shape, self.dtype)
        return out

    def _local(self, tensors: dict[str, np.ndarray], layer: int, direction: int) -> Params:
        """The cell's view of one layer-direction: {"W_ih": ..., "W_hh": ..., ...} (of the
        parameters or of their gradients, which have the same names)."""
        return {local: tensors[name] for name, local in self._local_names(layer, direction)}

    def _local_names(self, layer: int, direction: int) -> tuple[tuple[str, str], ...]:
        """(torch's name, the cell's name) of one layer-direction's parameters, worked out
        once per layer-direction (building them took ~2 us a call, an eighth of a step)."""
        known = self.__dict__.setdefault("_local_names_known", {})
        if (layer, direction) not in known:
            s = self._suffix(layer, direction)
            names = _LAYER_NORM_NAMES if _lstm_options(self.cell).layer_norm else _LOCAL_NAMES
            known[layer, direction] = tuple(
                (name + s, local) for name, local in names.items() if name + s in self._params
            )
        return known[layer, direction]

    def _noise(
        self, layer: int, x_shape: tuple[int, ...], training: bool
    ) -> list[dict[str, np.ndarray]]:
        """Per direction, the masks of the recurrent regularisers for one layer's run over
        x (T, N, I) (see :mod:`lstmkit.nn.time_loop`), drawn from the layer's generator in
        training; in evaluation only zoneout's expectations. Empty when off."""
        opt = _lstm_options(self.cell)
        T, N, I = x_shape
        sizes = {"zoneout_h": self.output_size, "zoneout_c": self.hidden_size}
        out: list[dict[str, np.ndarray]] = []
        for _ in range(self.num_directions):
            noise: dict[str, np.ndarray] = {}
            p = opt.recurrent_dropout
            if p and training:
                for name, shape in (("x_mask", (N, I)), ("h_mask", (N, self.output_size))):
                    keep = self._uniform(shape, batch_axis=0) >= p
                    noise[name] = keep.astype(self.dtype) / self.dtype.type(1.0 - p)
            for name, z in (("zoneout_h", opt.zoneout_h), ("zoneout_c", opt.zoneout_c)):
                if z and training:
                    noise[name] = self._below((T, N, sizes[name]), z)
                elif z:
                    noise[name] = np.asarray(z, dtype=self.dtype)
            out.append(noise)
        return out

    def _below(self, shape: tuple[int, ...], z: float) -> np.ndarray:
        """``(uniforms < z)`` in the layer's dtype, the uniforms of :meth:`_uniform` (batch
        axis 1). From the layer's generator they are drawn into a float64 array kept from
        call to call (the same numbers: ``Generator.random(out=)``), and compared straight
        into the result: a (100, 32, 256) zoneout mask took 3.9 ms instead of 8.4, most of
        it the first touch of fresh memory."""
        out = np.empty(shape, self.dtype)
        if self.noise is not None:
            return np.less(self.noise.random(shape, batch_axis=1), z, out=out)
        spare: dict[tuple[int, ...], np.ndarray] = self.__dict__.setdefault("_spare_draws", {})
        draw = spare.pop(shape, None)  # taken while in use (a concurrent forward: its own)
        if draw is None:
            draw = np.empty(shape, np.float64)
        np.less(self._rng.random(out=draw), z, out=out)
        spare[shape] = draw
        return out

    def _uniform(self, shape: tuple[int, ...], batch_axis: int) -> np.ndarray:
        """Uniforms for a mask: from ``self.noise`` (keyed by example) when set, else from
        the layer's generator."""
        if self.noise is not None:
            return self.noise.random(shape, batch_axis)
        return self._rng.random(shape)

    def __repr__(self) -> str:
        args = [f"{self.input_size}", f"{self.hidden_size}"]
        for name, default in [
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("proj_size", 0),
        ]:
            if getattr(self, name) != default:
                args.append(f"{name}={getattr(self, name)}")
        args += [f"{k}={v!r}" for k, v in _lstm_options(self.cell).changed().items()]
        if self.dtype != np.float32:
            args.append(f"dtype={self.dtype.name}")
        return f"{type(self).__name__}({', '.join(args)})"

    # ---- PyTorch interchange (torch imported only here) -----------------------------

    _torch_options: tuple[str, ...] = ()  # constructor options beyond the common ones

    @classmethod
    def from_torch(cls, module: Any) -> Any:
        """A layer equal to a ``torch.nn`` module of the same name, with copied weights.

        Every constructor option carries over (num_layers, bias, batch_first, dropout,
        bidirectional, proj_size, nonlinearity) as do the parameters' dtype (float32 or
        float64) and the training/eval mode. The weights are copied exactly.
        """
        import torch

        if not isinstance(module, getattr(torch.nn, cls.__name__)) or (
            cls.__name__ == "RNN" and isinstance(module, torch.nn.LSTM | torch.nn.GRU)
        ):
            raise TypeError(
                f"{cls.__name__}.from_torch: expected a torch.nn.{cls.__name__}, "
                f"got {type(module).__name__}"
            )
        params = dict(module.named_parameters())
        dtypes = {p.dtype for p in params.values()}
        if len(dtypes) != 1:
            raise TypeError(f"module: expected one parameter dtype, got {sorted(map(str, dtypes))}")
        dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(dtypes.pop())
        if dtype is None:
            raise TypeError(
                f"module: expected float32 or float64 parameters, got {module.weight_ih_l0.dtype}; "
                "convert it first with module.float() or module.double()"
            )
        common = ("num_layers", "bias", "batch_first", "bidirectional") + cls._torch_options
        layer = cls(
            module.input_size,
            module.hidden_size,
            dropout=float(module.dropout),
            dtype=dtype,
            **{name: getattr(module, name) for name in common},
        )
        layer.load_state_dict({k: p.detach().cpu().numpy() for k, p in params.items()})
        layer.train(module.training)
        return layer

    def to_torch(self) -> Any:
        """The equivalent ``torch.nn`` module, with this layer's exact weights, options,
        dtype and training/eval mode."""
        import torch

        common = ("num_layers", "bias", "batch_first", "dropout", "bidirectional")
        module = getattr(torch.nn, type(self).__name__)(
            self.input_size,
            self.hidden_size,
            dtype=torch.float64 if self.dtype == np.float64 else torch.float32,
            **{name: getattr(self, name) for name in common + self._torch_options},
        )
        state = {k: torch.from_numpy(np.array(w)) for k, w in self.parameters().items()}
        module.load_state_dict(state, strict=True)
        module.train(self.training)
        return module

    # ---- input handling ------------------------------------------------------------

    def _state_sizes(self) -> tuple[int, ...]:
        """The last dimension of each state tensor: (P, H) for the LSTM ((P, H, 3H) with
        gate_recurrence: a holds the previous step's gates i, f, o), (H,) otherwise."""
        sizes = {"h": self.output_size, "a": 3 * self.hidden_size}
        return tuple(sizes.get(name, self.hidden_size) for name in self.cell.state_names)

    def zero_state(self, batch: int) -> Any:
        """The zero state of ``batch`` sequences as ``forward`` takes and returns it: h
        (L*D, N, P), and for the LSTM the tuple (h, c) ((h, c, a) with gate_recurrence)."""
        LD = self.num_layers * self.num_directions
        parts = [np.zeros((LD, batch, size), self.dtype) for size in self._state_sizes()]
        return self._public_state(parts, unbatched=False)

    def _prepare_input(self, x: Any) -> tuple[np.ndarray, bool]:
        """x as time-major (T, N, I) and whether it came unbatched."""
        x = as_array(x, "x", self.dtype)
        expected = "(N, T, I)" if self.batch_first else "(T, N, I)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape {expected} or (T, I) with I = {self.input_size}, got {x.shape}"
            )
        if x.shape[-2] == 0 or (x.ndim == 3 and x.shape[0] == 0):
            raise ValueError(f"x: expected at least one time step and one sequence, got {x.shape}")
        check_finite(x, "x")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        return np.ascontiguousarray(x), unbatched

    def _prepare_state(self, state: Any, N: int, unbatched: bool, name: str) -> list[np.ndarray]:
        """The state tensors as (L*D, N, ·), zeros if None."""
        LD = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        if state is None:
            return [np.zeros((LD, N, size), dtype=self.dtype) for size in sizes]
        parts = state if len(sizes) > 1 else (state,)
        if len(sizes) > 1 and (not isinstance(state, tuple | list) or len(state) != len(sizes)):
            raise ValueError(f"{name}: expected a tuple ({', '.join(self.cell.state_names)})")
        out = []
        for part, size, state_name in zip(parts, sizes, self.cell.state_names):
            label = f"{name}[{state_name}]" if len(sizes) > 1 else name
            arr = as_array(part, label, self.dtype)
            check_shape(arr, (LD, size) if unbatched else (LD, N, size), label)
            check_finite(arr, label)
            out.append(arr[:, None, :] if unbatched else arr)
        return out

    def _public_state(self, parts: list[np.ndarray], unbatched: bool) -> Any:
        if unbatched:
            parts = [p[:, 0, :] for p in parts]
        return tuple(parts) if len(parts) > 1 else parts[0]

    def _to_user_layout(self, y: np.ndarray, unbatched: bool) -> np.ndarray:
        if unbatched:
            return y[:, 0, :]
        return y.transpose(1, 0, 2) if self.batch_first else y

    # ---- forward and backward ------------------------------------------------------

    def __call__(
        self,
        x: Any,
        state: Any = None,
        lengths: Any = None,
        *,
        inference: bool = False,
        execution: Execution | None = None,
    ) -> tuple[np.ndarray, Any]:
        return self.forward(x, state, lengths, inference=inference, execution=execution)

    def forward(
        self,
        x: Any,
        state: Any = None,
        lengths: Any = None,
        *,
        inference: bool = False,
        execution: Execution | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Run the whole sequence. Returns (y, final state); see the module doc for shapes.

        ``inference=True`` (like running torch under ``no_grad``): nothing is recorded, so
        neither ``backward`` nor ``activations`` can follow; the fused float32 loops then
        keep two steps of their gates and cell states instead of all T (less memory, and
        faster on several threads). Results are the same either way. ``execution``: how
        to run this call (default ``self.execution``); ``backward`` runs as it did."""
        ex = self.execution if execution is None else execution
        if inference and lengths is None and (lean := self._infer_lean(x, state, ex)):
            return lean
        x, unbatched = self._prepare_input(x)
        T, N, _ = x.shape
        state0 = self._prepare_state(state, N, unbatched, "state")
        mask = None if lengths is None else lengths_mask(lengths, T, N)
        D = self.num_directions
        finals: list[list[np.ndarray]] = [[] for _ in state0]
        tapes: list[Any] = []
        dropout_masks: list[np.ndarray | None] = []
        layer_input = x
        spaces = self._take_workspaces()
        try:
            for layer in range(self.num_layers):
                outputs = []
                params = [self._local(self._params, layer, d) for d in range(D)]
                for p, noise in zip(params, self._noise(layer, layer_input.shape, self.training)):
                    p.update(noise)
                # training: both directions' y side by side, written in place (no
                # concatenation, one copy fewer at the peak); inference keeps each
                # direction's y contiguous (its loop reads h back: strided, 50 -> 60 ms at
                # (16, 100, 128, 256), 2 layers) and concatenates
                joined = (
                    None
                    if D == 1 or inference
                    else np.empty((T + 2, N, D * self.output_size), x.dtype)
                )
                runs = strategy.forward_directions(
                    self.cell,
                    params,
                    layer_input,
                    [tuple(s[layer * D + d] for s in state0) for d in range(D)],
                    mask,
                    ex,
                    workspaces=None if spaces is None else spaces[layer * D : (layer + 1) * D],
                    keep_tape=not inference,
                    joined=joined,
                )
                for y, final, tape in runs:
                    outputs.append(y)
                    tapes.append(tape)
                    for parts, s in zip(finals, final):
                        parts.append(s)
                if joined is not None:
                    layer_input = joined[1 : T + 1]
                else:
                    layer_input = outputs[0] if D == 1 else np.concatenate(outputs, axis=2)
                if layer < self.num_layers - 1 and self.training and self.dropout > 0:
                    keep = self._uniform(layer_input.shape, batch_axis=1) >= self.dropout
                    drop = keep.astype(self.dtype) / (1.0 - self.dropout)
                    dropout_masks.append(drop)
                    layer_input = layer_input * drop
                else:
                    dropout_masks.append(None)
        finally:
            if spaces is not None:
                self._free_workspaces.append(spaces)
        record = {"tapes": tapes, "dropout": dropout_masks, "shape": x.shape, "execution": ex}
        self._tape = None if inference else {**record, "unbatched": unbatched}
        # (one layer-direction: a view of its new final arrays; np.stack cost ~5 us each)
        final_state = [parts[0][None] if len(parts) == 1 else np.stack(parts) for parts in finals]
        return self._to_user_layout(layer_input, unbatched), self._public_state(
            final_state, unbatched
        )

    def _infer_lean(self, x: Any, state: Any, ex: Execution) -> tuple[np.ndarray, Any] | None:
        """``forward(x, state, inference=True)`` by the lean entry of the plain LSTM, the GRU
        and the RNN (:func:`strategy.inferrer`: little per-call work), or None where it does
        not apply (the general path then runs, and validates). Prepared on the first call
        and kept while the execution is the same object, as :meth:`_stepper`."""
        kept = self.__dict__.get("_inferrer_kept")
        if kept is None or kept[0] is not ex:
            infer = None
            if not self.bidirectional:
                params = [self._local(self._params, layer, 0) for layer in range(self.num_layers)]
                infer = strategy.inferrer(self.cell, params, self.dtype, ex)
            kept = (ex, infer)
            self.__dict__["_inferrer_kept"] = kept
        infer = kept[1]
        if infer is None or (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        if self.batch_first and type(x) is np.ndarray and x.ndim == 3:
            x = x.transpose(1, 0, 2)
        elif self.batch_first:
            return None
        spaces = self._take_workspaces()
        if spaces is None:
            return None
        try:
            out = infer(x, state, spaces)
        finally:
            self._free_workspaces.append(spaces)
        if out is None:
            return None
        self._tape = None  # as the general path's inference: nothing to go back through
        return (out[0].transpose(1, 0, 2), out[1]) if self.batch_first else out

    def _take_workspaces(self) -> list[dict[str, np.ndarray]] | None:
        """The tape's reusable arrays, or None while another thread's forward holds them:
        that call then allocates its own, so concurrent inference stays exact. (list.pop
        is atomic under the GIL.)"""
        try:
            return self._free_workspaces.pop()
        except IndexError:
            return None

    def backward(self, dy: Any, dstate: Any = None) -> tuple[np.ndarray, Any]:
        """Gradients of the last forward's inputs; adds parameter gradients to ``grads``.

        dy has y's shape; dstate the final state's (None: zeros). Returns (dx, dstate_0).
        """
        if self._tape is None:
            raise RuntimeError(
                "backward: call forward first (none is recorded; forward(..., inference=True) "
                "records nothing)"
            )
        tape = self._tape
        unbatched = tape["unbatched"]
        T, N, _ = tape["shape"]
        D, P = self.num_directions, self.output_size
        dy = as_array(dy, "dy", self.dtype)
        y_shape = (
            (T, D * P) if unbatched else ((N, T, D * P) if self.batch_first else (T, N, D * P))
        )
        check_shape(dy, y_shape, "dy")
        check_finite(dy, "dy")
        if unbatched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = dy.transpose(1, 0, 2)
        dfinal = self._prepare_state(dstate, N, unbatched, "dstate")
        n_runs = len(tape["tapes"])
        dstate0: list[list[np.ndarray]] = [[np.empty(0)] * n_runs for _ in dfinal]
        d_out = dy
        for layer in reversed(range(self.num_layers)):
            drop = tape["dropout"][layer]
            if drop is not None:
                d_out = d_out * drop
            d_in = None
            records: list[list[np.ndarray] | None] = []
            for d in range(D):
                record = None
                if self.record_state_grads:
                    record = [np.empty((T, N, size), self.dtype) for size in self._state_sizes()]
                    sfx = self._suffix(layer, d)
                    for state_name, rec in zip(self.cell.state_names, record):
                        self.state_grads[state_name + sfx] = rec
                records.append(record)
            runs = strategy.backward_directions(
                self.cell,
                [self._local(self._params, layer, d) for d in range(D)],
                tape["tapes"][layer * D : (layer + 1) * D],
                [d_out[:, :, d * P : (d + 1) * P] for d in range(D)],  # (views: no copies)
                [tuple(s[layer * D + d] for s in dfinal) for d in range(D)],
                [self._local(self.grads, layer, d) for d in range(D)],
                records,
                tape["execution"],
                self._backward_workspaces,
            )
            for d, (dx, ds0) in enumerate(runs):  # (dx: each run's own new array)
                d_in = dx if d_in is None else np.add(d_in, dx, out=d_in)
                for parts, ds in zip(dstate0, ds0):
                    parts[layer * D + d] = ds
            d_out = d_in
            del runs, dx  # the other direction's dx, not kept through the next layer's backward
        dx_user = self._to_user_layout(d_out, unbatched)
        return dx_user, self._public_state([np.stack(parts) for parts in dstate0], unbatched)

    def activations(self) -> dict[str, dict[str, np.ndarray]]:
        """The last forward pass's stored per-step values, by layer-direction suffix.

        For the LSTM ``{"_l0": {"i", "f", "g", "o": (T, N, H) gates, "c_prev": c entering each
        step, "tanh_c": tanh(c'), "m": o * tanh(c'), "h_prev": (T, N, P) h entering each step}}``;
        the GRU's are r, z, n, hw_n, h_prev; the RNN's h (the output) and h_prev: the fields
        of each cell's cache, stacked over time.
        Time runs forward in every direction; padded steps hold whatever the cell computed.
        """
        if self._tape is None:
            raise RuntimeError(
                "activations: call forward first (none is recorded; forward(..., "
                "inference=True) records nothing)"
            )
        out: dict[str, dict[str, np.ndarray]] = {}
        for k, tape in enumerate(self._tape["tapes"]):
            layer, d = divmod(k, self.num_directions)
            # copies: the fused tape's arrays are reused by the next forward
            fields = {name: a.copy() for name, a in tape.fields().items()}
            fields.setdefault("h_prev", tape.h_prev.copy())  # the fused tape's: masked
            out[self._suffix(layer, d)] = fields
        return out

    def masks(self) -> dict[str, dict[str, np.ndarray]]:
        """The recurrent regularisers' masks of the last forward pass, by layer-direction
        suffix: ``x_mask`` (N, I) and ``h_mask`` (N, P) of ``recurrent_dropout`` (already
        scaled by 1 / (1 - p)), ``zoneout_h`` (T, N, P) and ``zoneout_c`` (T, N, H) (1 where
        the unit kept its previous value; in eval mode the scalar probability). Empty dicts
        when the layer has none of these options."""
        if self._tape is None:
            raise RuntimeError(
                "masks: call forward first (none is recorded; forward(..., inference=True) "
                "records nothing)"
            )
        out = {}
        for k, tape in enumerate(self._tape["tapes"]):
            layer, d = divmod(k, self.num_directions)
            noise = getattr(tape, "noise", None) or {}
            out[self._suffix(layer, d)] = {name: a.copy() for name, a in noise.items()}
        return out

    def _stepper(self, ex: Execution) -> Any:
        """The fused streaming step under ``ex`` (:func:`strategy.stepper`), prepared on the
        first step and kept while the execution is the same object (it holds the live
        weights, which are updated in place, never replaced)."""
        kept = self.__dict__.get("_stepper_kept")
        if kept is None or kept[0] is not ex:
            params = [self._local(self._params, layer, 0) for layer in range(self.num_layers)]
            kept = (ex, strategy.stepper(self.cell, params, self.dtype, ex))
            self.__dict__["_stepper_kept"] = kept
        return kept[1]

    def step(
        self, x_t: Any, state: Any = None, *, execution: Execution | None = None
    ) -> tuple[np.ndarray, Any]:
        """One time step for streaming: x_t (N, I) or (I,) -> (y_t (N, P), new state).

        Equal to ``forward`` on a length-1 sequence in eval mode (no dropout), without
        recording anything for backward.
        """
        if self.bidirectional:
            raise ValueError("step: a bidirectional layer needs the whole sequence; use forward")
        ex = self.execution if execution is None else execution
        stepper = self._stepper(ex)
        if stepper is not None and (fused := stepper(x_t, state)):
            return fused
        params = [self._local(self._params, layer, 0) for layer in range(self.num_layers)]
        x_t = as_array(x_t, "x_t", self.dtype)
        if x_t.ndim not in (1, 2) or x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t: expected shape (N, {self.input_size}) or ({self.input_size},), "
                f"got {x_t.shape}"
            )
        if x_t.ndim == 2 and x_t.shape[0] == 0:
            raise ValueError(f"x_t: expected at least one sequence (N >= 1), got {x_t.shape}")
        check_finite(x_t, "x_t")
        unbatched = x_t.ndim == 1
        x = x_t[None, :] if unbatched else x_t
        parts = self._prepare_state(state, x.shape[0], unbatched, "state")
        new_parts: list[list[np.ndarray]] = [[] for _ in parts]
        for layer in range(self.num_layers):
            p = params[layer]
            xw = x @ p["W_ih"].T
            if "b_ih" in p:
                xw += p["b_ih"]
            prev = tuple(s[layer] for s in parts)
            x, new_state, _ = self.cell.step(xw, prev, p)
            noise = self._noise(layer, (1, *x.shape), training=False)[0]
            if noise:  # zoneout's expectation
                keep = time_loop.zoneout_keep(noise, 0, len(prev))
                new_state = time_loop.zone(prev, new_state, keep)
                x = new_state[0]
            for acc, s in zip(new_parts, new_state):
                acc.append(s)
        y = x[0] if unbatched else x
        return y, self._public_state([np.stack(s) for s in new_parts], unbatched)


_INIT_CHUNK = 1 << 16  # float64 draws at a time when the layer is float32


def _uniform(
    rng: np.random.Generator, k: float, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """U(-k, k) of ``shape`` in ``dtype``: the numbers of ``rng.uniform(-k, k, shape)`` rounded
    to ``dtype``, drawn a chunk at a time into the result (the generator yields the same
    stream in chunks), so a float32 layer never holds its parameters in float64 too."""
    if np.dtype(dtype) == np.float64:
        return rng.uniform(-k, k, size=shape)
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _INIT_CHUNK):
        stop = min(start + _INIT_CHUNK, flat.size)
        flat[start:stop] = rng.uniform(-k, k, size=stop - start)
    return out


# LSTM, GRU and RNN spell out torch's constructor arguments each (a repetition the
# duplicates tool reports), as torch.nn does: so that each signature, help() and the
# editors show them, and each class documents its own defaults and extra options.


class LSTM(_Recurrent):
    """Long short-term memory, interchangeable with ``torch.nn.LSTM``.

    The variants are options, off by default (every option off is torch's LSTM, bit for
    bit); they compose, and :mod:`lstmkit.nn.cells.lstm` has their equations. Gate options
    (the names of Greff et al. 2017 in brackets):

    * ``forget_gate=False`` (NFG): f = 1, the original 1997 cell;
    * ``input_gate=False`` (NIG): i = 1; ``output_gate=False`` (NOG): o = 1;
    * ``coupled_gates=True`` (CIFG): f = 1 - i;
    * ``input_activation=False`` (NIAF): g without tanh; ``output_activation=False``
      (NOAF): m = o * c without tanh;
    * ``peepholes=True`` (Gers & Schmidhuber 2000): i and f see c_{t-1}, o sees c_t,
      through diagonal weights ``weight_ci_l{k}``, ``weight_cf_l{k}``, ``weight_co_l{k}``
      (H,) per layer-direction (``_reverse`` suffix as torch's);
    * ``layer_norm=True`` (Ba et al. 2016): LN(W_ih x) + LN(W_hh h), and h = o * tanh(LN(c));
      gains ``weight_ln_ih_l{k}`` (4H), ``weight_ln_hh_l{k}`` (4H), ``weight_ln_c_l{k}`` (H),
      shifts ``bias_ih_l{k}``, ``bias_hh_l{k}`` (torch's biases, which become the two
      norms' shifts) and ``bias_ln_c_l{k}`` (H) (no shifts with ``bias=False``);
    * ``gate_recurrence=True`` (FGR): i, f and o also receive the previous step's [i, f, o]
      through ``weight_gr_l{k}`` (3H, 3H) (rows: the pre-activations of i, f, o; columns:
      the previous activations of i, f, o). The state is then a triple (h, c, a) with
      a (L*D, N, 3H) the last gates (zeros if not given).

    Gates fixed or coupled keep their 4H weight rows (torch's shapes), which then get zero
    gradient. Regularisers, active in training only and drawn from the layer's generator
    (``seed``), so runs are reproducible:

    * ``recurrent_dropout=p`` (Gal & Ghahramani 2016, variational): per sequence, one mask
      on x and one on the h entering ``W_hh``, the same at every step, scaled by 1/(1-p);
    * ``zoneout_c``, ``zoneout_h`` (or ``zoneout=(zc, zh)``, or one number for both;
      Krueger et al. 2017): at each step each unit of c (h) keeps its previous value with
      that probability; in evaluation the expectation z * prev + (1 - z) * new.

    ``masks()`` returns the last training pass's masks. torch has none of these options,
    so ``to_torch`` refuses them; the fused kernel covers ``forget_gate`` only (the others
    run on the reference path; ``impl="fused"`` raises).
    """

    _torch_options = ("proj_size",)

    @property
    def options(self) -> LSTMOptions:
        """The variant options (see the class docstring)."""
        return _lstm_options(self.cell)

    def to_torch(self) -> Any:
        changed = self.options.changed()
        if changed:
            given = ", ".join(f"{k}={v!r}" for k, v in changed.items())
            raise ValueError(
                f"to_torch: torch.nn.LSTM has no such option; a layer built with {given} "
                "cannot be converted"
            )
        return super().to_torch()

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
        forget_gate: bool = True,
        *,
        input_gate: bool = True,
        output_gate: bool = True,
        coupled_gates: bool = False,
        input_activation: bool = True,
        output_activation: bool = True,
        peepholes: bool = False,
        layer_norm: bool = False,
        gate_recurrence: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] | None = None,
        zoneout_c: float = 0.0,
        zoneout_h: float = 0.0,
    ):
        if zoneout is not None:
            if zoneout_c or zoneout_h:
                raise ValueError("zoneout: give either zoneout or zoneout_c/zoneout_h, not both")
            zc, zh = zoneout if isinstance(zoneout, tuple | list) else (zoneout, zoneout)
            zoneout_c, zoneout_h = zc, zh
        options = LSTMOptions(
            forget_gate=bool(forget_gate),
            input_gate=bool(input_gate),
            output_gate=bool(output_gate),
            coupled_gates=bool(coupled_gates),
            input_activation=bool(input_activation),
            output_activation=bool(output_activation),
            peepholes=bool(peepholes),
            layer_norm=bool(layer_norm),
            gate_recurrence=bool(gate_recurrence),
            recurrent_dropout=float(recurrent_dropout),
            zoneout_c=float(zoneout_c),
            zoneout_h=float(zoneout_h),
        )
        super().__init__(
            LSTMCell(options=options),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            dtype,
            seed,
        )


class GRU(_Recurrent):
    """Gated recurrent unit, interchangeable with ``torch.nn.GRU``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
    ):
        super().__init__(
            GRUCell(),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            dtype,
            seed,
        )


class RNN(_Recurrent):
    """Elman RNN with tanh or relu, interchangeable with ``torch.nn.RNN``."""

    _torch_options = ("nonlinearity",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
    ):
        super().__init__(
            RNNCell(nonlinearity),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            dtype,
            seed,
        )
        self.nonlinearity = nonlinearity
