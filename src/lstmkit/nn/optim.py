"""Optimizers with torch.optim's update rules, and global-norm gradient clipping.

An optimizer holds two dicts of LIVE arrays with the same keys — the parameters and their
gradients (``model.parameters()``, ``model.grads``) — and ``step()`` updates the parameters
in place. Each update follows torch's single-tensor code path line by line (same operation
order, same bias correction and eps placement), so in float64 the trajectories agree with
``torch.optim`` to rounding.

``lr`` is a plain attribute a schedule may set before each step. ``state_dict()`` returns
``(arrays, scalars)``: the per-parameter buffers as ``"<buffer>.<param name>"`` arrays and a
JSON-able dict (optimizer type, step count, hyperparameters), so a checkpoint stores them
as .npz + JSON and ``load_state_dict(arrays, scalars)`` resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "clip_grad_norm"]


def _lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """a <- a + w (b - a) in place, with torch's formula for each range of w."""
    if abs(w) < 0.5:
        a += w * (b - a)
    else:
        a[...] = b - (b - a) * (1.0 - w)


def _l2_decayed(g: np.ndarray, p: np.ndarray, weight_decay: float) -> np.ndarray:
    """g + weight_decay * p, the gradient with L2 weight decay (g itself at 0, no copy)."""
    return g + weight_decay * p if weight_decay != 0 else g


def _check_hyper(name: str, value: float, low: float = 0.0, high: float | None = None) -> float:
    value = float(value)
    if not (value >= low and (high is None or value < high)):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected a number {bound}, got {value!r}")
    return value


class Optimizer:
    """Shared bookkeeping: the parameter/gradient dicts, the step count, state (de)serialising.

    Subclasses list their hyperparameters in ``_hyper`` (saved in ``scalars``), name the
    buffers that exist in ``_buffer_names()`` and update one array in ``_update``.
    """

    _hyper: tuple[str, ...] = ()

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        **hyperparameters: Any,
    ):
        """``hyperparameters``: ``lr`` and every name of ``_hyper`` (checked by ``_validate``)."""
        if set(params) != set(grads):
            raise ValueError(
                f"grads: expected the same keys as params, got params without grads "
                f"{[k for k in params if k not in grads]} and grads without params "
                f"{[k for k in grads if k not in params]}"
            )
        for name, p in params.items():
            g = grads[name]
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params[{name!r}]: expected a float ndarray, got {type(p)}")
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
                raise ValueError(
                    f"grads[{name!r}]: expected an ndarray of shape {p.shape} and dtype "
                    f"{p.dtype.name}, got {getattr(g, 'shape', type(g))} "
                    f"{getattr(getattr(g, 'dtype', None), 'name', '')}"
                )
            if np.shares_memory(p, g):
                raise ValueError(f"grads[{name!r}]: shares memory with its parameter")
        self.params = dict(params)  # the same (live) arrays, a fixed order
        self.grads = dict(grads)
        self.lr = 0.0
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}  # buffer -> param name -> array
        if hyperparameters:
            self._set_hyperparameters(hyperparameters)

    # ---- subclass hooks -----------------------------------------------------------

    def _buffer_names(self, step_count: int) -> list[str]:
        """Names of the per-parameter buffers that exist after ``step_count`` steps (torch
        creates them on the first step)."""
        return []

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def _buffer(self, buffer: str, name: str, like: np.ndarray) -> np.ndarray:
        """The buffer for one parameter, created as zeros on first use."""
        per_param = self.state.setdefault(buffer, {})
        if name not in per_param:
            per_param[name] = np.zeros_like(like)
        return per_param[name]

    # ---- public -------------------------------------------------------------------

    def step(self) -> None:
        """Update every parameter in place from its gradient."""
        self.step_count += 1
        for name, p in self.params.items():
            self._update(name, p, self.grads[name])

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g.fill(0.0)

    def hyperparameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lr": self.lr}
        for key in self._hyper:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays ``{"<buffer>.<param>": copy}``, JSON-able scalars)."""
        arrays = {
            f"{buffer}.{name}": arr.copy()
            for buffer in self._buffer_names(self.step_count)
            for name, arr in self.state.get(buffer, {}).items()
        }
        scalars = {"type": type(self).__name__, "step": self.step_count}
        scalars.update(self.hyperparameters())
        return arrays, scalars

    def load_state_dict(self, arrays: Mapping[str, Any], scalars: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` returned; every check passes before anything changes."""
        kind = scalars.get("type")
        if kind != type(self).__name__:
            raise ValueError(
                f"load_state_dict: expected state of a {type(self).__name__} optimizer, "
                f"got {kind!r}"
            )
        expected_keys = {"type", "step", "lr", *self._hyper}
        if set(scalars) != expected_keys:
            raise ValueError(
                f"load_state_dict: expected scalars {sorted(expected_keys)}, got {sorted(scalars)}"
            )
        step = scalars["step"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"load_state_dict: step: expected an integer >= 0, got {step!r}")
        old = self.hyperparameters()
        try:
            self._set_hyperparameters(scalars)
            buffers = self._buffer_names(step)
            expected = {f"{b}.{n}": (b, n) for b in buffers for n in self.params}
            missing = [k for k in expected if k not in arrays]
            unexpected = [k for k in arrays if k not in expected]
            if missing or unexpected:
                raise ValueError(
                    f"load_state_dict: missing arrays {missing}, unexpected arrays {unexpected}"
                )
            for key, (_, name) in expected.items():
                shape = np.shape(arrays[key])
                if shape != self.params[name].shape:
                    raise ValueError(
                        f"load_state_dict: {key}: expected shape {self.params[name].shape}, "
                        f"got {shape}"
                    )
        except Exception:
            self._set_hyperparameters(old)
            raise
        self.step_count = step
        self.state = {}
        for key, (buffer, name) in expected.items():
            p = self.params[name]
            self.state.setdefault(buffer, {})[name] = np.array(arrays[key], dtype=p.dtype)

    def _set_hyperparameters(self, values: Mapping[str, Any]) -> None:
        self.lr = _check_hyper("lr", values["lr"])
        for key in self._hyper:
            value = values[key]
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self._validate()

    def _validate(self) -> None:
        pass

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} arrays, {args})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov, dampening and L2 weight decay.

    g <- grad + weight_decay * p
    b <- g on the first step, else momentum * b + (1 - dampening) * g
    g <- g + momentum * b (Nesterov) or b
    p <- p - lr * g
    """

    _hyper = ("momentum", "dampening", "nesterov", "weight_decay")
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
    ):
        super().__init__(
            params, grads, lr=lr, momentum=momentum, nesterov=nesterov,
            weight_decay=weight_decay, dampening=dampening,
        )  # fmt: skip

    def _validate(self) -> None:
        self.momentum = _check_hyper("momentum", self.momentum)
        self.dampening = float(self.dampening)
        self.weight_decay = _check_hyper("weight_decay", self.weight_decay)
        self.nesterov = bool(self.nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov: expected momentum > 0 and dampening = 0, got momentum "
                f"{self.momentum} and dampening {self.dampening}"
            )

    def _buffer_names(self, step_count: int) -> list[str]:
        return ["momentum_buffer"] if self.momentum != 0 and step_count > 0 else []

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        g = _l2_decayed(g, p, self.weight_decay)
        if self.momentum != 0:
            buffers = self.state.setdefault("momentum_buffer", {})
            b = buffers.get(name)
            if b is None:
                b = buffers[name] = g.copy()  # torch: the first buffer is the gradient itself
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p += -self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with torch's bias correction and eps placement.

    g <- grad + weight_decay * p           (Adam; AdamW instead p <- p (1 - lr weight_decay))
    m <- lerp(m, g, 1 - beta1);  v <- beta2 v + (1 - beta2) g^2
    v_max <- max(v_max, v)                 (amsgrad; then used in place of v)
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _hyper = ("betas", "eps", "weight_decay", "amsgrad")
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    amsgrad: bool
    _decoupled = False

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(
            params, grads, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            amsgrad=amsgrad,
        )  # fmt: skip

    def _validate(self) -> None:
        if len(self.betas) != 2:
            raise ValueError(f"betas: expected two numbers, got {self.betas!r}")
        self.betas = (
            _check_hyper("betas[0]", self.betas[0], 0.0, 1.0),
            _check_hyper("betas[1]", self.betas[1], 0.0, 1.0),
        )
        self.eps = _check_hyper("eps", self.eps)
        self.weight_decay = _check_hyper("weight_decay", self.weight_decay)
        self.amsgrad = bool(self.amsgrad)

    def _buffer_names(self, step_count: int) -> list[str]:
        if step_count == 0:
            return []
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        beta1, beta2 = self.betas
        lr, t = self.lr, self.step_count
        m = self._buffer("exp_avg", name, p)
        v = self._buffer("exp_avg_sq", name, p)
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        _lerp_(m, g, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * g * g
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        step_size = lr / bias_correction1
        if self.amsgrad:
            v_max = self._buffer("max_exp_avg_sq", name, p)
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v) / bias_correction2**0.5 + self.eps
        p += -step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p <- p (1 - lr wd) first."""

    _decoupled = True

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, grads, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e) as torch implements it.

    g <- grad + weight_decay * p
    s <- alpha s + (1 - alpha) g^2
    avg <- sqrt(s - a^2) + eps with a <- lerp(a, g, 1 - alpha) (centered), else sqrt(s) + eps
    b <- momentum b + g / avg; p <- p - lr b      (momentum > 0)
    p <- p - lr g / avg                            (otherwise)
    """

    _hyper = ("alpha", "eps", "momentum", "centered", "weight_decay")
    alpha: float
    eps: float
    momentum: float
    centered: bool
    weight_decay: float

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        centered: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params, grads, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
            weight_decay=weight_decay,
        )  # fmt: skip

    def _validate(self) -> None:
        self.alpha = _check_hyper("alpha", self.alpha)
        self.eps = _check_hyper("eps", self.eps)
        self.momentum = _check_hyper("momentum", self.momentum)
        self.weight_decay = _check_hyper("weight_decay", self.weight_decay)
        self.centered = bool(self.centered)

    def _buffer_names(self, step_count: int) -> list[str]:
        if step_count == 0:
            return []
        names = ["square_avg"]
        if self.momentum > 0:
            names.append("momentum_buffer")
        if self.centered:
            names.append("grad_avg")
        return names

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        alpha = self.alpha
        s = self._buffer("square_avg", name, p)
        g = _l2_decayed(g, p, self.weight_decay)
        s *= alpha
        s += (1 - alpha) * g * g
        if self.centered:
            a = self._buffer("grad_avg", name, p)
            _lerp_(a, g, 1 - alpha)
            avg = np.sqrt(s - a * a)
        else:
            avg = np.sqrt(s)
        avg += self.eps
        if self.momentum > 0:
            b = self._buffer("momentum_buffer", name, p)
            b *= self.momentum
            b += g / avg
            p += -self.lr * b
        else:
            p += -self.lr * (g / avg)


def clip_grad_norm(
    grads: Mapping[str, np.ndarray] | Iterable[np.ndarray],
    max_norm: float,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale the gradients in place so their global L2 norm is at most ``max_norm``.

    Like ``torch.nn.utils.clip_grad_norm_``: total = ||(||g_1||, ||g_2||, ...)||, and every
    gradient is multiplied by ``min(max_norm / (total + 1e-6), 1)``. Returns the total norm
    before clipping. A NaN or inf total is returned as such and — unlike torch, which then
    multiplies by NaN or 0 — the gradients are left untouched, so the caller can report the
    divergence; ``error_if_nonfinite=True`` raises ``FloatingPointError`` instead.
    """
    arrays = list(grads.values()) if isinstance(grads, Mapping) else list(grads)
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a number > 0, got {max_norm!r}")
    norms = [float(np.linalg.norm(g.reshape(-1))) for g in arrays]
    total = float(np.linalg.norm(np.array(norms, dtype=np.float64))) if norms else 0.0
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise FloatingPointError(
                f"clip_grad_norm: the total gradient norm is {total}; the model diverged"
            )
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in arrays:
            g *= g.dtype.type(coef)
    return total
