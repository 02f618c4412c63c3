"""The LSTM cell, in PyTorch's gate order (i, f, g, o), with its variants as options.

Forward, for one step (every option off: torch's LSTM)::

    i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     update (input) gate
    f  = sigmoid(W_if x + b_if + W_hf h + b_hf)     forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)        candidate cell
    o  = sigmoid(W_io x + b_io + W_ho h + b_ho)     output gate
    c' = f * c + i * g
    m  = o * tanh(c')
    h' = m                  (proj_size == 0)
    h' = W_hr m             (proj_size > 0)

The options (:class:`LSTMOptions`; they compose, one per gate or term):

* ``forget_gate=False`` (NFG): f = 1, the original 1997 cell, whose memory can only grow;
* ``input_gate=False`` (NIG): i = 1;  ``output_gate=False`` (NOG): o = 1;
* ``coupled_gates=True`` (CIFG): f = 1 - i (ONNX's ``input_forget=1``);
* ``input_activation=False`` (NIAF): g = its pre-activation, no tanh;
* ``output_activation=False`` (NOAF): m = o * c', no tanh;
* ``peepholes=True`` (Gers & Schmidhuber 2000): diagonal weights from the cell state, i and
  f see the previous c, o sees the new c'::

      i = sigmoid(... + w_ci * c)     f = sigmoid(... + w_cf * c)     o = sigmoid(... + w_co * c')

* ``gate_recurrence=True`` (FGR, Greff et al. 2017): i, f and o also receive the previous
  step's gate activations a = [i, f, o] (3H) through a full matrix W_gr (3H, 3H); a becomes
  a third state (zeros at the start)::

      [z_i, z_f, z_o] += W_gr a_prev        (after the norms, with layer_norm)

* ``layer_norm=True`` (Ba et al. 2016, section 3.1): the two pre-activations are normalised
  separately over their 4H entries, and c' only inside the output nonlinearity (the carried
  c' is not)::

      z  = LN(W_ih x; g_ih, b_ih) + LN(W_hh h; g_hh, b_hh)      (the gates from z as above)
      m  = o * tanh(LN(c'; g_c, b_c))

  with LN(a; g, b) = g * (a - mean(a)) / sqrt(var(a) + 1e-5) + b (torch's ``LayerNorm``).
  The biases b_ih, b_hh are the norms' shifts (Ba's separate b is redundant with them, as
  torch's two biases are with each other); ``bias=False`` leaves all shifts out.

Gates switched off keep their rows in the weights, so state dicts keep torch's 4H rows;
those rows then receive zero gradient (as do the peepholes of a fixed gate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar, NamedTuple

import numpy as np

from lstmkit.nn.activations import dsigmoid, dtanh, sigmoid
from lstmkit.nn.cells.base import Params, State, recurrent_preactivation

LN_EPS = 1e-5  # torch.nn.LayerNorm's default


@dataclass(frozen=True)
class LSTMOptions:
    """The LSTM's gate options (the defaults are torch's LSTM) and the layer's recurrent
    regularisers, which the time loop applies with masks drawn by the layer:
    ``recurrent_dropout`` (Gal & Ghahramani 2016: one mask per sequence on x and on the h
    entering W_hh, the same at every step) and ``zoneout_c``, ``zoneout_h`` (Krueger et al.
    2017: each unit keeps its previous value with that probability)."""

    forget_gate: bool = True
    input_gate: bool = True
    output_gate: bool = True
    coupled_gates: bool = False
    input_activation: bool = True
    output_activation: bool = True
    peepholes: bool = False
    layer_norm: bool = False
    gate_recurrence: bool = False
    recurrent_dropout: float = 0.0
    zoneout_c: float = 0.0
    zoneout_h: float = 0.0

    def __post_init__(self) -> None:
        for name in ("recurrent_dropout", "zoneout_c", "zoneout_h"):
            value = getattr(self, name)
            if isinstance(value, bool) or not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
        if self.coupled_gates and not (self.forget_gate and self.input_gate):
            raise ValueError(
                "coupled_gates=True sets f = 1 - i: expected forget_gate=True and "
                f"input_gate=True, got forget_gate={self.forget_gate}, "
                f"input_gate={self.input_gate}"
            )

    # the options the fused kernel covers (lstmkit.kernels.lstm_cell.gate_constants' flags)
    IN_KERNEL: ClassVar[tuple[str, ...]] = (
        "forget_gate",
        "input_gate",
        "output_gate",
        "coupled_gates",
        "input_activation",
        "output_activation",
        "peepholes",
        "layer_norm",  # the loops over rows only (lstmkit.kernels.layer_norm)
        "recurrent_dropout",  # the regularisers: masks the layer passes in p (time_loop.py)
        "zoneout_c",
        "zoneout_h",
    )

    def variants(self) -> list[str]:
        """The options away from their defaults that the fused kernel does not cover (yet),
        as ``name=value`` strings."""
        default = LSTMOptions()
        return [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in self.IN_KERNEL and getattr(self, f.name) != getattr(default, f.name)
        ]

    def changed(self) -> dict[str, object]:
        """Every option away from its default: {name: value}."""
        default = asdict(LSTMOptions())
        return {k: v for k, v in asdict(self).items() if v != default[k]}


class LSTMCache(NamedTuple):
    i: np.ndarray  # (N, H) gate activations, kept for the backward pass
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c_prev: np.ndarray
    tanh_c: np.ndarray  # tanh(c'), or what stands in for it (tanh(LN(c')), c', LN(c'))
    m: np.ndarray  # o * tanh(c'), the projection's input
    # only with some options (None otherwise; activations() leaves them out):
    c: np.ndarray | None = None  # c', the new cell state (peepholes)
    a_prev: np.ndarray | None = None  # (N, 3H) the previous step's [i, f, o] (gate_recurrence)
    ln_x: np.ndarray | None = None  # (N, 4H) normalised W_ih x (layer_norm)
    ln_h: np.ndarray | None = None  # (N, 4H) normalised W_hh h
    ln_c: np.ndarray | None = None  # (N, H) normalised c'
    rstd_x: np.ndarray | None = None  # (N, 1) 1 / sqrt(var + eps) of each norm
    rstd_h: np.ndarray | None = None
    rstd_c: np.ndarray | None = None


def _normalise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a - mean) / sqrt(var + eps) over the last axis, and 1 / sqrt(var + eps) (N, 1)."""
    centred = a - a.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt((centred * centred).mean(axis=1, keepdims=True) + LN_EPS)
    return centred * rstd, rstd


def _affine(a_hat: np.ndarray, p: Params, gain: str, shift: str) -> np.ndarray:
    out = a_hat * p[gain]
    if shift in p:
        out += p[shift]
    return out


def _normalise_backward(
    dy: np.ndarray, a_hat: np.ndarray, rstd: np.ndarray, p: Params, grads: Params, gain: str,
    shift: str,
) -> np.ndarray:  # fmt: skip
    """The gradient of a from that of y = gain * a_hat + shift; adds the gain's and shift's."""
    grads[gain] += (dy * a_hat).sum(axis=0)
    if shift in grads:
        grads[shift] += dy.sum(axis=0)
    da_hat = dy * p[gain]
    mean_d = da_hat.mean(axis=1, keepdims=True)
    mean_da = (da_hat * a_hat).mean(axis=1, keepdims=True)
    return rstd * (da_hat - mean_d - a_hat * mean_da)


class LSTMCell:
    num_gates = 4
    state_names: tuple[str, ...] = ("h", "c")

    def __init__(self, forget_gate: bool = True, options: LSTMOptions | None = None):
        if options is None:
            options = LSTMOptions(forget_gate=forget_gate)
        elif not forget_gate:
            raise ValueError("LSTMCell: give forget_gate inside options")
        self.options = options
        self.forget_gate = options.forget_gate
        self.variants = tuple(options.variants())  # asked on every call (strategy.py)
        # the options the fused kernel takes as flags, asked on every call (strategy.py)
        self.kernel_options = {name: getattr(options, name) for name in options.IN_KERNEL}
        self.plain = not options.changed()  # torch's LSTM: the kernels' most used loops
        if options.gate_recurrence:  # the previous step's gates [i, f, o] are a state
            self.state_names = ("h", "c", "a")

    def step(self, xw: np.ndarray, state: State, p: Params) -> tuple[np.ndarray, State, LSTMCache]:
        """xw: (N, 4H) input pre-activation; state: (h (N, P or H), c (N, H))."""
        opt = self.options
        h_prev, c_prev = state[:2]
        extra: dict[str, np.ndarray] = {}
        if opt.layer_norm:  # xw = W_ih x here (the time loop leaves the bias to the norm)
            ln_x, extra["rstd_x"] = _normalise(xw)
            ln_h, extra["rstd_h"] = _normalise(h_prev @ p["W_hh"].T)
            extra["ln_x"], extra["ln_h"] = ln_x, ln_h
            z = _affine(ln_x, p, "ln_ih_g", "ln_ih_b") + _affine(ln_h, p, "ln_hh_g", "ln_hh_b")
        else:
            z = xw + recurrent_preactivation(h_prev, p)  # (N, 4H)
        zi, zf, zg, zo = np.split(z, 4, axis=1)
        if opt.gate_recurrence:
            extra["a_prev"] = state[2]
            ri, rf, ro = np.split(state[2] @ p["W_gr"].T, 3, axis=1)
            zi, zf, zo = zi + ri, zf + rf, zo + ro
        if opt.peepholes:
            zi = zi + p["w_ci"] * c_prev
            zf = zf + p["w_cf"] * c_prev
        i = sigmoid(zi) if opt.input_gate else np.ones_like(zi)
        if opt.coupled_gates:
            f = 1.0 - i
        else:
            f = sigmoid(zf) if opt.forget_gate else np.ones_like(zf)
        g = np.tanh(zg) if opt.input_activation else zg
        c = f * c_prev + i * g
        if opt.peepholes:
            zo = zo + p["w_co"] * c
            extra["c"] = c
        o = sigmoid(zo) if opt.output_gate else np.ones_like(zo)
        c_out = c
        if opt.layer_norm:
            extra["ln_c"], extra["rstd_c"] = _normalise(c)
            c_out = _affine(extra["ln_c"], p, "ln_c_g", "ln_c_b")
        tanh_c = np.tanh(c_out) if opt.output_activation else c_out
        m = o * tanh_c
        h = m @ p["W_hr"].T if "W_hr" in p else m
        new: State = (h, c, np.concatenate([i, f, o], axis=1)) if opt.gate_recurrence else (h, c)
        return h, new, LSTMCache(i, f, g, o, c_prev, tanh_c, m, **extra)

    def step_backward(
        self, dstate: State, cache: LSTMCache, p: Params, grads: Params
    ) -> tuple[np.ndarray, np.ndarray, State]:
        """dstate: (dh, dc[, da]) of this step's outputs. Returns (dxw, dhw, (0, dc_prev[,
        da_prev])); dxw and dhw are the same array unless ``layer_norm``."""
        opt = self.options
        dh, dc = dstate[:2]
        i, f, g, o, c_prev, tanh_c, m = cache[:7]
        da_i = da_f = da_o = None
        if opt.gate_recurrence:  # this step's gates are also the next step's state a
            da_i, da_f, da_o = np.split(dstate[2], 3, axis=1)
        if "W_hr" in p:  # h = W_hr m
            grads["W_hr"] += dh.T @ m
            dm = dh @ p["W_hr"]
        else:
            dm = dh
        do = dm * tanh_c
        if da_o is not None:
            do = do + da_o
        dzo = do * dsigmoid(o) if opt.output_gate else np.zeros_like(do)
        if opt.layer_norm or not opt.output_activation:
            dc_out = dm * o * dtanh(tanh_c) if opt.output_activation else dm * o
            if opt.layer_norm:
                assert cache.ln_c is not None and cache.rstd_c is not None
                dc_out = _normalise_backward(
                    dc_out, cache.ln_c, cache.rstd_c, p, grads, "ln_c_g", "ln_c_b"
                )
            dc = dc + dc_out
        else:
            dc = dc + dm * o * dtanh(tanh_c)
        if opt.peepholes:  # zo = ... + w_co * c'
            grads["w_co"] += (dzo * cache.c).sum(axis=0)
            dc = dc + dzo * p["w_co"]
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        dc_prev = dc * f
        if da_i is not None:
            di, df = di + da_i, df + da_f
        if opt.coupled_gates:  # f = 1 - i
            di = di - df
            dzf = np.zeros_like(df)
        else:
            dzf = df * dsigmoid(f) if opt.forget_gate else np.zeros_like(df)
        dzi = di * dsigmoid(i) if opt.input_gate else np.zeros_like(di)
        if opt.peepholes:  # zi = ... + w_ci * c, zf = ... + w_cf * c
            grads["w_ci"] += (dzi * c_prev).sum(axis=0)
            grads["w_cf"] += (dzf * c_prev).sum(axis=0)
            dc_prev = dc_prev + dzi * p["w_ci"] + dzf * p["w_cf"]
        dz = np.concatenate(
            [dzi, dzf, dg * dtanh(g) if opt.input_activation else dg, dzo],
            axis=1,
        )  # (N, 4H)
        d_prev: State = (np.zeros_like(dh), dc_prev)
        if opt.gate_recurrence:  # [z_i, z_f, z_o] += W_gr a_prev
            assert cache.a_prev is not None
            dz_r = np.concatenate([dzi, dzf, dzo], axis=1)
            grads["W_gr"] += dz_r.T @ cache.a_prev
            d_prev = (*d_prev, dz_r @ p["W_gr"])
        if not opt.layer_norm:
            return dz, dz, d_prev
        assert cache.ln_x is not None and cache.rstd_x is not None
        assert cache.ln_h is not None and cache.rstd_h is not None
        dxw = _normalise_backward(dz, cache.ln_x, cache.rstd_x, p, grads, "ln_ih_g", "ln_ih_b")
        dhw = _normalise_backward(dz, cache.ln_h, cache.rstd_h, p, grads, "ln_hh_g", "ln_hh_b")
        return dxw, dhw, d_prev
