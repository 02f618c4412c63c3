"""The LSTM variants against an independent torch-autograd implementation, in float64.

``oracle`` below is written from the papers' equations (Gers & Schmidhuber 2000 for the
peepholes, Greff et al. 2017 for CIFG, the ablations NIG/NFG/NOG/NIAF/NOAF and FGR (full
gate recurrence), Ba et al. 2016 section 3.1 for layer normalisation, Gal & Ghahramani 2016
for variational recurrent dropout, Krueger et al. 2017 for zoneout), step by step with
torch operations and no lstmkit code; torch's autograd gives its gradients. The parameters
are read by their state-dict names, so the oracle is also the proof that a torch
implementation can load them.

For every seeded random configuration (layers, directions, projection, bias, layout,
variable lengths, given initial states, and a random subset of the options), the outputs,
final states, the input's and initial states' gradients and every parameter's gradient
agree to 1e-12 relative. The random masks of dropout and zoneout in training are the one
thing taken from the layer (``layer.masks()``): the oracle applies them by the equations.

Run: .venv/bin/python -m pytest tests/test_variants_oracle.py -q
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import lk_run, make_layer, parts, random_case, random_config, rel_err

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-12
GATE_OPTIONS = (
    "peepholes",
    "coupled_gates",
    "layer_norm",
    "input_gate",
    "output_gate",
    "forget_gate",
    "input_activation",
    "output_activation",
    "gate_recurrence",
)
OFF_BY_DEFAULT = ("peepholes", "coupled_gates", "layer_norm", "gate_recurrence")
DEFAULTS = {name: name not in OFF_BY_DEFAULT for name in GATE_OPTIONS}


# ---- the oracle ---------------------------------------------------------------------------


def _ln(a: Any, gain: Any, shift: Any) -> Any:
    """Layer normalisation over the last axis (Ba et al. 2016, eq. 4), torch's eps."""
    return F.layer_norm(a, (a.shape[-1],), gain, shift, eps=1e-5)


def oracle_cell(
    x: Any,
    h: Any,
    c: Any,
    a_prev: Any,
    w: dict[str, Any],
    opt: dict[str, Any],
    masks: dict[str, Any],
) -> tuple[Any, Any, Any]:
    """One step: (x (N, I), h (N, P), c (N, H), a (N, 3H) the previous i, f, o) ->
    (h', c', a') before zoneout."""
    if "x_mask" in masks:  # Gal & Ghahramani: the same x and h masks at every step
        x = x * masks["x_mask"]
    if "h_mask" in masks:
        h = h * masks["h_mask"]
    if opt["layer_norm"]:  # Ba et al.: LN(W_x x) + LN(W_h h), the biases as the shifts
        a = _ln(x @ w["weight_ih"].T, w["weight_ln_ih"], w.get("bias_ih")) + _ln(
            h @ w["weight_hh"].T, w["weight_ln_hh"], w.get("bias_hh")
        )
    else:
        a = x @ w["weight_ih"].T + h @ w["weight_hh"].T
        if "bias_ih" in w:
            a = a + w["bias_ih"] + w["bias_hh"]
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
    if opt["gate_recurrence"]:  # Greff et al.'s FGR: R_{k <- j} for gates j, k in i, f, o
        W = w["weight_gr"]
        H = c.shape[1]
        prev = {"i": a_prev[:, :H], "f": a_prev[:, H : 2 * H], "o": a_prev[:, 2 * H :]}
        blocks = {k: W[r * H : (r + 1) * H] for r, k in enumerate("ifo")}
        rec = {
            k: sum(prev[j] @ blocks[k][:, q * H : (q + 1) * H].T for q, j in enumerate("ifo"))
            for k in "ifo"
        }
        a_i, a_f, a_o = a_i + rec["i"], a_f + rec["f"], a_o + rec["o"]
    if opt["peepholes"]:  # Gers & Schmidhuber: i, f see c_{t-1}
        a_i = a_i + w["weight_ci"] * c
        a_f = a_f + w["weight_cf"] * c
    one = torch.ones_like(c)
    i = torch.sigmoid(a_i) if opt["input_gate"] else one
    if opt["coupled_gates"]:  # CIFG
        f = 1 - i
    else:
        f = torch.sigmoid(a_f) if opt["forget_gate"] else one
    g = torch.tanh(a_g) if opt["input_activation"] else a_g
    c_new = f * c + i * g
    if opt["peepholes"]:  # ... and o sees c_t
        a_o = a_o + w["weight_co"] * c_new
    o = torch.sigmoid(a_o) if opt["output_gate"] else one
    c_out = _ln(c_new, w["weight_ln_c"], w.get("bias_ln_c")) if opt["layer_norm"] else c_new
    m = o * (torch.tanh(c_out) if opt["output_activation"] else c_out)
    h_new = m @ w["weight_hr"].T if "weight_hr" in w else m
    return h_new, c_new, torch.cat([i, f, o], dim=1)


def oracle(
    weights: dict[str, Any],
    cfg: dict[str, Any],
    opt: dict[str, Any],
    x: Any,
    s0: list[Any],
    lengths: Any,
    masks: dict[str, dict[str, Any]],
    training: bool,
) -> tuple[Any, list[Any]]:
    """The stacked (bi)directional LSTM over time-major x (T, N, I) from the initial state
    s0 = [h0, c0] (and a0 with gate_recurrence): (y, [h_n, c_n(, a_n)])."""
    T, N, _ = x.shape
    L, D = cfg["num_layers"], 2 if cfg["bidirectional"] else 1
    valid = None if lengths is None else torch.arange(T)[:, None] < torch.as_tensor(lengths)
    layer_in = x
    finals: list[list[Any]] = [[] for _ in s0]
    for layer in range(L):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w = {k[: -len(sfx)]: v for k, v in weights.items() if k.endswith(sfx)}
            mk = masks.get(sfx, {})
            h, c = s0[0][layer * D + d], s0[1][layer * D + d]
            N, H = c.shape
            a = s0[2][layer * D + d] if len(s0) == 3 else torch.zeros(N, 3 * H, dtype=c.dtype)
            ys: list[Any] = [None] * T
            for t in range(T - 1, -1, -1) if d else range(T):
                h_new, c_new, a_new = oracle_cell(layer_in[t], h, c, a, w, opt, mk)
                zc, zh = opt["zoneout_c"], opt["zoneout_h"]  # Krueger et al.
                if zc:
                    k = mk["zoneout_c"][t] if training else zc
                    c_new = k * c + (1 - k) * c_new
                if zh:
                    k = mk["zoneout_h"][t] if training else zh
                    h_new = k * h + (1 - k) * h_new
                if valid is not None:  # padded steps carry the state, output zeros
                    v = valid[t][:, None]
                    h_new, c_new = torch.where(v, h_new, h), torch.where(v, c_new, c)
                    a_new = torch.where(v, a_new, a)
                    ys[t] = torch.where(v, h_new, torch.zeros_like(h_new))
                else:
                    ys[t] = h_new
                h, c, a = h_new, c_new, a_new
            outs.append(torch.stack(ys))
            for acc, s in zip(finals, (h, c, a)):
                acc.append(s)
        layer_in = torch.cat(outs, dim=2)
    return layer_in, [torch.stack(acc) for acc in finals]


# ---- configurations -----------------------------------------------------------------------


def random_options(rng: np.random.Generator) -> dict[str, Any]:
    """A random subset of the options (each gate option flipped with probability 0.3)."""
    opt = {name: DEFAULTS[name] != (rng.random() < 0.3) for name in DEFAULTS}
    if opt["coupled_gates"]:  # f = 1 - i needs both gates
        opt["forget_gate"] = opt["input_gate"] = True
    opt["recurrent_dropout"] = float(rng.choice([0.0, 0.0, 0.3]))
    opt["zoneout_c"] = float(rng.choice([0.0, 0.0, 0.4]))
    opt["zoneout_h"] = float(rng.choice([0.0, 0.0, 0.25]))
    opt["training"] = bool(rng.random() < 0.6)
    return opt


def _cases(n: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        cfg = random_config("LSTM", rng)
        opt = random_options(rng)
        if opt["layer_norm"]:
            # ill-conditioned sizes left to the finite differences of test_gradcheck.py: a
            # norm over 1..3 units is (nearly) constant, and LN(W x) with one input (or
            # LN(W_hh h) with P = 1; also where dropout zeroes all inputs but one) does not
            # depend on the input's scale; their gradients are all cancellation, where two
            # float64 implementations agree to ~1e-11 only
            cfg["hidden_size"] = max(cfg["hidden_size"], 4)
            cfg["input_size"] = max(cfg["input_size"], 3)
            cfg["proj_size"] = 3 if cfg["proj_size"] else 0
        changed = [f"{k}={v}" for k, v in opt.items() if k in DEFAULTS and v != DEFAULTS[k]]
        changed += [f"{k}{v}" for k, v in opt.items() if k not in DEFAULTS and v]
        tag = f"L{cfg['num_layers']}{'-bi' if cfg['bidirectional'] else ''}"
        tag += f"-proj{cfg['proj_size']}" if cfg["proj_size"] else ""
        out.append(pytest.param(cfg, opt, k, id=f"{k}-{tag}-" + "-".join(changed or ["plain"])))
    return out


def _layer_options(opt: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opt.items() if k != "training"}


def _time_major(a: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    if cfg["unbatched"]:
        return a[:, None, :]
    return a.transpose(1, 0, 2) if cfg["batch_first"] else a


def _user_layout(a: Any, cfg: dict[str, Any]) -> Any:
    if cfg["unbatched"]:
        return a[:, 0, :]
    return a.transpose(0, 1) if cfg["batch_first"] else a


def oracle_run(layer: Any, cfg: dict[str, Any], opt: dict[str, Any], case: dict[str, Any]):
    """The oracle's y, final state and gradients for the case (loss as in conftest)."""
    training = opt["training"]
    weights = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    masks = {
        sfx: {k: torch.from_numpy(v) for k, v in m.items()} for sfx, m in layer.masks().items()
    }
    x = torch.tensor(_time_major(case["x"], cfg), requires_grad=True)
    given = case["state"] if case["state"] is not None else tuple(case["zeros"])
    s0 = [torch.tensor(s, requires_grad=True) for s in parts(given)]
    batched = [s[:, None, :] if cfg["unbatched"] else s for s in s0]
    y, state_n = oracle(weights, cfg, opt, x, batched, case["lengths"], masks, training)
    y = _user_layout(y, cfg)
    if cfg["unbatched"]:
        state_n = [s[:, 0, :] for s in state_n]
    loss = (y * torch.from_numpy(case["dy"])).sum()
    if case["dstate"] is not None:
        for s, ds in zip(state_n, parts(case["dstate"])):
            loss = loss + (s * torch.from_numpy(ds)).sum()
    loss.backward()

    def grad(t: Any) -> np.ndarray:
        return np.zeros(t.shape) if t.grad is None else t.grad.numpy()  # unused: zero

    return {
        "y": y.detach().numpy(),
        "state_n": [s.detach().numpy() for s in state_n],
        "dx": _user_layout(torch.from_numpy(grad(x)), cfg).numpy(),
        "dstate0": [grad(s) for s in s0],
        "grads": {k: grad(w) for k, w in weights.items()},
    }


# ---- tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg, opt, k", _cases(150, seed=2016))
def test_variant_equals_the_oracle(cfg, opt, k):
    layer = make_layer(cfg, np.float64, seed=k, **_layer_options(opt))
    layer.train(opt["training"])
    rng = np.random.default_rng(1000 + k)
    case = random_case(layer, cfg, rng)
    ours = lk_run(layer, case)  # forward (draws the masks) and backward
    ref = oracle_run(layer, cfg, opt, case)
    errs = {"y": rel_err(ours["y"], ref["y"]), "dx": rel_err(ours["dx"], ref["dx"])}
    assert len(ours["state_n"]) == len(ref["state_n"]) == 2 + opt["gate_recurrence"]
    for j in range(len(ref["state_n"])):
        errs[f"state_n[{j}]"] = rel_err(ours["state_n"][j], ref["state_n"][j])
        errs[f"dstate0[{j}]"] = rel_err(ours["dstate0"][j], ref["dstate0"][j])
    assert sorted(ours["grads"]) == sorted(ref["grads"])
    for name, g in ref["grads"].items():
        errs["grad " + name] = rel_err(ours["grads"][name], g)
    worst = max(errs, key=errs.get)
    assert errs[worst] <= TOL, f"{worst}: rel err {errs[worst]:.3g}"
    assert float(np.max(np.abs(ref["y"]))) > 1e-6  # not a degenerate comparison


@pytest.mark.parametrize(
    "option",
    [
        "peepholes",
        "coupled_gates",
        "layer_norm",
        "input_gate",
        "output_gate",
        "forget_gate",
        "input_activation",
        "output_activation",
        "gate_recurrence",
        "recurrent_dropout",
        "zoneout",
    ],
)
def test_each_option_alone_equals_the_oracle_and_changes_the_result(option):
    """Every option alone, on one fixed configuration, in training mode; and the oracle
    with the option off disagrees (the comparison can see each option)."""
    cfg = dict(random_config("LSTM", np.random.default_rng(0)))
    cfg.update(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, proj_size=0)
    cfg.update(T=5, N=3, unbatched=False, lengths=True, given_state=True, given_dstate=True)
    cfg.update(bias=True, batch_first=False)
    opt = {**DEFAULTS, "recurrent_dropout": 0.0, "zoneout_c": 0.0, "zoneout_h": 0.0}
    opt["training"] = True
    if option == "recurrent_dropout":
        opt[option] = 0.4
    elif option == "zoneout":
        opt["zoneout_c"], opt["zoneout_h"] = 0.3, 0.5
    else:
        opt[option] = not DEFAULTS[option]
    layer = make_layer(cfg, np.float64, seed=3, **_layer_options(opt))
    case = random_case(layer, cfg, np.random.default_rng(3))
    ours = lk_run(layer, case)
    ref = oracle_run(layer, cfg, opt, case)
    assert rel_err(ours["y"], ref["y"]) <= TOL
    for name, g in ref["grads"].items():
        assert rel_err(ours["grads"][name], g) <= TOL, name
    plain = {**opt, **DEFAULTS, "recurrent_dropout": 0.0, "zoneout_c": 0.0, "zoneout_h": 0.0}
    with torch.no_grad():
        other = oracle_run_forward(layer, cfg, plain, case)
    assert rel_err(other, ref["y"]) > 1e-3, "the option does not change the oracle's output"


def oracle_run_forward(layer, cfg, opt, case):
    weights = {k: torch.tensor(v) for k, v in layer.state_dict().items()}
    x = torch.tensor(_time_major(case["x"], cfg))
    s0 = [torch.tensor(s) for s in parts(case["state"])]
    y, _ = oracle(weights, cfg, opt, x, s0, case["lengths"], {}, False)
    return _user_layout(y, cfg).numpy()
