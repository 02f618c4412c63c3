"""Shared helpers for the layer tests: random configurations, a torch twin, FD checks.

Import them with ``from conftest import ...`` (pytest puts ``tests/`` on ``sys.path``).
torch is imported inside the functions that need it, so tests without torch stay light.

State conventions: an LSTM state is ``(h, c)``, a GRU/RNN state is ``h``; the helpers
``parts``/``join`` convert to and from a list of arrays so one code path serves all three.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lstmkit as lk

KINDS = ("LSTM", "GRU", "RNN")
TINY = 1e-30  # floor of the denominator of rel_err


def rel_err(a: Any, b: Any) -> float:
    """max|a - b| / max(max|b|, tiny), with b the reference; shapes must match exactly."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} vs reference {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), TINY))


def parts(state: Any) -> list[np.ndarray]:
    """A layer's state as a list of arrays: [h, c] for the LSTM, [h] otherwise."""
    return list(state) if isinstance(state, tuple | list) else [state]


def join(kind: str, arrays: list[Any]) -> Any:
    """The inverse of ``parts``."""
    return tuple(arrays) if kind == "LSTM" else arrays[0]


# ---- configurations ---------------------------------------------------------------------


def random_config(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """A small random layer configuration plus data options, covering the feature grid."""
    H = int(rng.integers(1, 6))
    unbatched = bool(rng.random() < 0.2)
    cfg: dict[str, Any] = {
        "kind": kind,
        "input_size": int(rng.integers(1, 5)),
        "hidden_size": H,
        "num_layers": int(rng.integers(1, 4)),
        "bias": bool(rng.random() < 0.75),
        "batch_first": bool(rng.random() < 0.5),
        "bidirectional": bool(rng.random() < 0.5),
        # data options
        "T": int(rng.integers(1, 6)),
        "N": 1 if unbatched else int(rng.integers(1, 5)),
        "unbatched": unbatched,
        "lengths": (not unbatched) and bool(rng.random() < 0.4),
        "given_state": bool(rng.random() < 0.5),
        "given_dstate": bool(rng.random() < 0.7),
    }
    if kind == "LSTM":
        cfg["proj_size"] = int(rng.integers(1, H)) if H > 1 and rng.random() < 0.4 else 0
    if kind == "RNN":
        cfg["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    return cfg


def config_grid(n: int, seed: int) -> list[Any]:
    """``n`` seeded random configurations per layer type as pytest params ``(cfg, k)``.

    ``k`` numbers the configurations (tests seed the layer and the data with it).
    """
    import pytest

    rng = np.random.default_rng(seed)
    configs = [random_config(kind, rng) for kind in KINDS for _ in range(n)]
    return [pytest.param(cfg, k, id=f"{k}-{config_id(cfg)}") for k, cfg in enumerate(configs)]


def config_id(cfg: dict[str, Any]) -> str:
    """A short readable test id, e.g. ``LSTM-I3H4T5N2-L2-bi-proj2-bf-len-s0-ds``."""
    flags = [f"L{cfg['num_layers']}"]
    flags += ["bi"] if cfg["bidirectional"] else []
    flags += [f"proj{cfg['proj_size']}"] if cfg.get("proj_size") else []
    flags += [] if cfg["bias"] else ["nobias"]
    flags += ["bf"] if cfg["batch_first"] else []
    flags += ["unb"] if cfg["unbatched"] else []
    flags += ["len"] if cfg["lengths"] else []
    flags += ["s0"] if cfg["given_state"] else []
    flags += ["ds"] if cfg["given_dstate"] else []
    flags += [cfg["nonlinearity"]] if "nonlinearity" in cfg else []
    sizes = f"I{cfg['input_size']}H{cfg['hidden_size']}T{cfg['T']}N{cfg['N']}"
    return "-".join([cfg["kind"], sizes, *flags])


_LAYER_ARGS = ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional"]


def make_layer(cfg: dict[str, Any], dtype: Any = np.float64, seed: int = 0, **extra: Any) -> Any:
    """The lstmkit layer described by ``cfg``."""
    kwargs = {k: cfg[k] for k in _LAYER_ARGS}
    for k in ("proj_size", "nonlinearity"):
        if k in cfg:
            kwargs[k] = cfg[k]
    kwargs.update(extra)
    return getattr(lk, cfg["kind"])(dtype=dtype, seed=seed, **kwargs)


def state_shapes(layer: Any, N: int, unbatched: bool) -> list[tuple[int, ...]]:
    LD = layer.num_layers * layer.num_directions
    sizes = list(layer._state_sizes())  # (P, H) for the LSTM ((P, H, 3H) with gate_recurrence)
    return [(LD, s) if unbatched else (LD, N, s) for s in sizes]


def random_case(
    layer: Any, cfg: dict[str, Any], rng: np.random.Generator, dtype: Any = np.float64
) -> dict[str, Any]:
    """Random x, initial state, lengths, dy and dstate for ``layer`` as ``cfg`` asks.

    ``state``/``dstate`` are None when not given; ``dstate_parts`` are then zeros.
    """
    T, N = cfg["T"], cfg["N"]
    D, P = layer.num_directions, layer.output_size
    if cfg["unbatched"]:
        x_shape, y_shape = (T, layer.input_size), (T, D * P)
    elif layer.batch_first:
        x_shape, y_shape = (N, T, layer.input_size), (N, T, D * P)
    else:
        x_shape, y_shape = (T, N, layer.input_size), (T, N, D * P)
    shapes = state_shapes(layer, N, cfg["unbatched"])

    def normal(shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    state_parts = [normal(s) for s in shapes] if cfg["given_state"] else None
    dstate_parts = [normal(s) for s in shapes] if cfg["given_dstate"] else None
    lengths = rng.integers(1, T + 1, size=N) if cfg["lengths"] else None
    return {
        "x": normal(x_shape),
        "state": None if state_parts is None else join(cfg["kind"], state_parts),
        "lengths": lengths,
        "dy": normal(y_shape),
        "dstate": None if dstate_parts is None else join(cfg["kind"], dstate_parts),
        "zeros": [np.zeros(s, dtype) for s in shapes],
    }


# ---- lstmkit side -------------------------------------------------------------------------


def lk_run(layer: Any, case: dict[str, Any]) -> dict[str, Any]:
    """Forward and backward through the lstmkit layer (grads zeroed first)."""
    layer.zero_grad()
    y, state_n = layer(case["x"], case["state"], case["lengths"])
    dx, dstate0 = layer.backward(case["dy"], case["dstate"])
    return {
        "y": y,
        "state_n": parts(state_n),
        "dx": dx,
        "dstate0": parts(dstate0),
        "grads": {k: g.copy() for k, g in layer.grads.items()},
    }


# ---- torch side ---------------------------------------------------------------------------


def torch_twin(layer: Any) -> Any:
    """A torch.nn.LSTM/GRU/RNN with the same configuration, dtype and weights as ``layer``."""
    import torch

    torch.set_num_threads(1)
    kind = type(layer).__name__
    kwargs: dict[str, Any] = {
        "input_size": layer.input_size,
        "hidden_size": layer.hidden_size,
        "num_layers": layer.num_layers,
        "bias": layer.bias,
        "batch_first": layer.batch_first,
        "bidirectional": layer.bidirectional,
        "dtype": torch.float64 if layer.dtype == np.float64 else torch.float32,
    }
    if kind == "LSTM":
        kwargs["proj_size"] = layer.proj_size
    if kind == "RNN":
        kwargs["nonlinearity"] = layer.nonlinearity
    module = getattr(torch.nn, kind)(**kwargs)
    # strict load: also proves the names and shapes of state_dict() are torch's
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return module


def torch_run(module: Any, case: dict[str, Any]) -> dict[str, Any]:
    """The same forward and backward in torch; loss = sum(y*dy) + sum(state_n*dstate).

    An omitted initial state is passed as explicit zeros so its gradient can be compared;
    variable lengths go through pack_padded_sequence / pad_packed_sequence.
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    kind = type(module).__name__
    x = torch.tensor(case["x"], requires_grad=True)
    given = case["state"] if case["state"] is not None else join(kind, case["zeros"])
    s0 = [torch.tensor(p, requires_grad=True) for p in parts(given)]
    if case["lengths"] is None:
        y, state_n = module(x, join(kind, s0))
    else:
        lengths = torch.as_tensor(np.asarray(case["lengths"]), dtype=torch.int64)
        packed = pack_padded_sequence(
            x, lengths, batch_first=module.batch_first, enforce_sorted=False
        )
        out, state_n = module(packed, join(kind, s0))
        T = x.shape[1] if module.batch_first else x.shape[0]
        y, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    loss = (y * torch.from_numpy(case["dy"])).sum()
    if case["dstate"] is not None:
        for s, ds in zip(parts(state_n), parts(case["dstate"])):
            loss = loss + (s * torch.from_numpy(ds)).sum()
    module.zero_grad(set_to_none=False)
    loss.backward()
    return {
        "y": y.detach().numpy(),
        "state_n": [s.detach().numpy() for s in parts(state_n)],
        "dx": x.grad.numpy(),
        "dstate0": [s.grad.numpy() for s in s0],
        "grads": {k: p.grad.numpy().copy() for k, p in module.named_parameters()},
    }


def compare_runs(ours: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
    """rel_err of every output of lk_run against torch_run; keys name the quantity."""
    errs = {"y": rel_err(ours["y"], ref["y"]), "dx": rel_err(ours["dx"], ref["dx"])}
    assert len(ours["state_n"]) == len(ref["state_n"])
    for j, (a, b) in enumerate(zip(ours["state_n"], ref["state_n"])):
        errs[f"state_n[{j}]"] = rel_err(a, b)
    for j, (a, b) in enumerate(zip(ours["dstate0"], ref["dstate0"])):
        errs[f"dstate0[{j}]"] = rel_err(a, b)
    assert list(ours["grads"]) == list(ref["grads"]), "parameter names/order differ from torch"
    for name in ref["grads"]:
        errs["grad " + name] = rel_err(ours["grads"][name], ref["grads"][name])
    return errs


# ---- finite differences -------------------------------------------------------------------


def fd_check(
    loss: Any,
    array: np.ndarray,
    analytic: np.ndarray,
    rng: np.random.Generator,
    max_entries: int = 12,
    eps: float = 1e-6,
) -> float:
    """Centred differences of ``loss()`` w.r.t. entries of ``array`` (perturbed in place).

    Checks at most ``max_entries`` random entries; returns rel_err(analytic, numeric) over them.
    """
    assert array.dtype == np.float64 and analytic.shape == array.shape
    flat = array.reshape(-1)  # a view: perturbing it perturbs what ``loss`` reads
    assert np.shares_memory(flat, array)
    n = flat.size
    idx = rng.choice(n, size=min(n, max_entries), replace=False)
    numeric = np.empty(len(idx))
    for j, k in enumerate(idx):
        old = flat[k]
        flat[k] = old + eps
        up = loss()
        flat[k] = old - eps
        down = loss()
        flat[k] = old
        numeric[j] = (up - down) / (2 * eps)
    got = analytic.reshape(-1)[idx]
    # absolute floor: an all-zero gradient must be matched to roundoff of the FD quotient
    scale = max(float(np.max(np.abs(numeric))), 1e-7)
    return float(np.max(np.abs(got - numeric)) / scale)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def forecaster_dpred(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The gradients dL/dprediction that each ``series.model.Forecaster.backward`` call
    receives during the test (copies, in order); the backward still runs."""
    from lstmkit.series.model import Forecaster

    seen: list[np.ndarray] = []
    real = Forecaster.backward

    def spy(self: Forecaster, dpred: np.ndarray) -> None:
        seen.append(dpred.copy())
        real(self, dpred)

    monkeypatch.setattr(Forecaster, "backward", spy)
    return seen
