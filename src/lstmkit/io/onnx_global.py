"""The global forecaster (many series, one model) as one ONNX graph: raw values in, each
series' median h-step forecast out.

``export_global(members, horizon, "f.onnx", ids)`` writes the whole forecast of
:func:`lstmkit.series.many.fit_global` as standard ONNX operators, so ONNX Runtime gives
``series forecast``'s numbers (to float32 rounding in the LSTMs)::

    inputs   history   (N, need) float64  the last ``need`` values of each of N series
             n         (N,) int64         each series' length (n mod m: the season's phase)
             series    (N,) int64         each one's index among the run's S series (the
                                          metadata ``ids``, a JSON list, names them): which
                                          seasonal indices, mean and scale it uses
             future    (N, need + horizon, F) float64  with F known-future covariates:
                                          their values at times n - need .. n + horizon - 1
             past      (N, need, P) float64  with P past covariates: at n - need .. n - 1
    outputs  forecast  (N, horizon) float64   the median over the members at every step
             members   (K, N, horizon) float64  each member's forecast
             lo, hi    (N, horizon) float64   with an interval: forecast -+ q[series]

The prediction interval (``interval=Interval(level, q)``, optional): each series' own
half-widths, a constant table q (S, horizon) computed at export from that series'
calibration errors, Gathered by ``series``: lo = forecast - q[series], hi = forecast +
q[series]; the metadata ``level`` says which.

With covariates (:mod:`lstmkit.series.covariates`) the context's step at time t reads
[z_t, x~_{t+1}, p~_t] (each covariate minus the series' mean, over its scale, Gathered by
``series`` as the transform is), and each step of the roll-out is fed [z, x~, p~]: its
predicted z and past covariates, the known-future covariates of the step it predicts.

The graph is :mod:`lstmkit.io.onnx_ensemble`'s (its roll-out of one LSTM and head, its median
over the members) with one difference: a member's transform is not one set of numbers but
a table of them, one row per series, and every series Gathers its own row by ``series``:
the seasonal indices (S, m), flattened so that series i at phase j reads entry i m + j, and
the mean and scale (S,). A series must hold ``need`` values; a shorter one (which lstmkit
forecasts from a shorter context) cannot use the graph.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmkit.io.onnx import DEFAULT_OPSET, operator_weights
from lstmkit.io.onnx_ensemble import (
    Graph,
    Interval,
    Member,
    bounds,
    check_arguments,
    check_member,
    differenced,
    median,
    roll_out,
    save_graph,
)

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = ["GlobalMember", "export_global", "members_of"]

_FLOAT, _DOUBLE = 1, 11  # onnx.TensorProto.FLOAT and DOUBLE (onnx is imported when used)


@dataclass(frozen=True)
class GlobalMember:
    """One member of the global ensemble: its model (children ``lstm``, one forward layer
    reading one value, and ``head``, a Linear to one value) and each series' transform."""

    model: Any
    lookback: int
    difference: bool
    season: np.ndarray  # (S, m) each series' additive seasonal indices by t mod m
    mean: np.ndarray  # (S,) each series' mean of its model-space values
    scale: np.ndarray  # (S,) and their scale
    covariates: np.ndarray | None = None  # (S, F + P, 2) each series' covariate mean, scale
    future: int = 0  # F: the first F covariates are known-future ones, the rest past ones

    @property
    def past(self) -> int:
        """P, the number of past-observed covariates."""
        return 0 if self.covariates is None else self.covariates.shape[1] - self.future

    def need(self) -> int:
        """Values of the history the member reads."""
        return self.lookback + int(self.difference)

    def one(self) -> Member:
        """The member without its per-series tables (what the shared pieces read)."""
        return Member(self.model, self.lookback, self.difference, self.season[0], 0.0, 1.0)

    def check(self) -> None:
        """ValueError (one line) if the tables disagree in their number of series."""
        S = self.season.shape[0]
        if self.season.ndim != 2 or self.mean.shape != (S,) or self.scale.shape != (S,):
            raise ValueError(
                f"member tables: expected season (S, m), mean (S,), scale (S,), got "
                f"{self.season.shape}, {self.mean.shape}, {self.scale.shape}"
            )
        if self.covariates is None:
            check_member(self.one())
            return
        F, P = self.future, self.past
        if self.covariates.shape[0] != S or self.covariates.shape[2:] != (2,) or P < 0:
            raise ValueError(
                f"member covariates: expected (S, F + P, 2) with S = {S}, F = {F}, got "
                f"{self.covariates.shape}"
            )
        check_member(self.one(), inputs=1 + F + P, outputs=1 + P)


def _tables(g: Graph, p: str, member: GlobalMember) -> tuple[str, str]:
    """This member's mean and scale of every series of the batch, each (N, 1)."""
    mean = g.op("Gather", [g.const(p + "mean", member.mean, np.float64), "series_column"], axis=0)
    scale = g.op(
        "Gather", [g.const(p + "scale", member.scale, np.float64), "series_column"], axis=0
    )
    return mean, scale


def _season(g: Graph, p: str, member: GlobalMember, offsets: str) -> str:
    """Each series' seasonal index (N, w) at times n + offsets (the Gather of entry i m +
    (t mod m) of the flattened table)."""
    m = member.season.shape[1]
    table = g.const(p + "season", member.season.reshape(-1), np.float64)  # (S m,)
    t = g.op("Add", ["n_column", offsets])  # (N, w)
    phase = g.op("Mod", [t, g.const(p + "m", [m])])  # Python's sign: t < 0 still right
    row = g.op("Mul", ["series_column", p + "m"])  # (N, 1)
    return g.op("Gather", [table, g.op("Add", [row, phase])], axis=0)


def _transform(
    g: Graph, p: str, member: GlobalMember, need: int, stats: tuple[str, str]
) -> tuple[str, str | None]:
    """(z (L, N, 1) float32 of the member's context, its last deseasoned value (N, 1) or
    None without differencing)."""
    w = member.need()
    start, end = g.const(p + "from", [need - w]), g.const("end", [need])
    x = g.op("Slice", ["history", start, end, g.const("axis1", [1])])  # (N, w)
    if np.any(member.season != 0):
        x = g.op("Sub", [x, _season(g, p, member, g.const(p + "t_past", np.arange(-w, 0)))])
    x, last = differenced(g, p, x, w) if member.difference else (x, None)
    z = g.op("Div", [g.op("Sub", [x, stats[0]]), stats[1]])  # (N, L)
    z = g.op("Transpose", [g.op("Cast", [z], to=_FLOAT)], perm=[1, 0])  # float32 (L, N)
    return g.op("Unsqueeze", [z, g.const("axis2", [2])]), last


def _covariate_context(
    g: Graph, p: str, member: GlobalMember, need: int, horizon: int, z: str
) -> tuple[str, str | None]:
    """(u (L, N, 1 + F + P) float32, the member's context with its scaled covariates, and
    the scaled known-future covariates (horizon - 1, N, F) float32 of the fed-back steps, or
    None) from z (L, N, 1) float32. Step k of the context (time t = n - L + k) reads
    x_{t + 1} (rows need - L + 1 .. need of ``future``, which start at time n - need) and
    p_t (rows need - L .. need - 1 of ``past``)."""
    L, F, P = member.lookback, member.future, member.past
    assert member.covariates is not None
    table = g.const(p + "covariates", member.covariates, np.float64)  # (S, F + P, 2)
    rows = g.op("Gather", [table, "series"], axis=0)  # (N, F + P, 2)
    axis = g.const("axis2", [2])
    axis1 = g.const("axis1", [1])
    mean = g.op("Unsqueeze", [g.op("Gather", [rows, g.const("zero_scalar", 0)], axis=2), axis1])
    scale = g.op("Unsqueeze", [g.op("Gather", [rows, g.const("one_scalar", 1)], axis=2), axis1])

    def scaled(name: str, lo: int, hi: int, cols: tuple[int, int]) -> str:
        """Rows lo .. hi - 1 of input ``name`` (N, rows, C), minus the mean, over the scale
        of covariates cols (N, hi - lo, C) float64."""
        c = [g.const(f"{p}c{v}", [v]) for v in cols]
        x = g.op("Slice", [name, g.const(f"{p}r{lo}", [lo]), g.const(f"{p}r{hi}", [hi]), axis1])
        m, s = (g.op("Slice", [a, c[0], c[1], axis]) for a in (mean, scale))  # (N, 1, C)
        return g.op("Div", [g.op("Sub", [x, m]), s])

    parts = [g.op("Transpose", [z], perm=[1, 0, 2])]  # (N, L, 1) float32
    x_next = None
    if F:
        parts.append(g.op("Cast", [scaled("future", need - L + 1, need + 1, (0, F))], to=_FLOAT))
        if horizon > 1:
            later = scaled("future", need + 1, need + horizon, (0, F))  # (N, h - 1, F)
            x_next = g.op("Transpose", [g.op("Cast", [later], to=_FLOAT)], perm=[1, 0, 2])
    if P:
        parts.append(g.op("Cast", [scaled("past", need - L, need, (F, F + P))], to=_FLOAT))
    u = g.op("Concat", parts, axis=2)  # (N, L, 1 + F + P)
    return g.op("Transpose", [u], perm=[1, 0, 2]), x_next


def _covariate_roll_out(
    g: Graph, p: str, member: GlobalMember, u: str, x_next: str | None, horizon: int
) -> str:
    """The model-space forecasts (N, horizon) float32 of a member with covariates: the LSTM
    over the context u, then one step per further forecast fed [z, x_next, p] (the
    predicted z and past covariates, the known-future ones of that step)."""
    lstm, head = member.model.children["lstm"], member.model.children["head"]
    weights = operator_weights(lstm)
    W, R, B = (g.const(p + k, weights[k], np.float32) for k in "WRB")
    params = head.parameters()
    head_w = g.const(p + "head_weight_T", params["weight"].T, np.float32)  # (H, 1 + P)
    head_b = g.const(p + "head_bias", params["bias"], np.float32)
    peep = [g.const(p + "P", weights["P"], np.float32)] if "P" in weights else []
    attrs = {"hidden_size": lstm.hidden_size}
    if lstm.options.coupled_gates:
        attrs["input_forget"] = 1
    axis2, P = g.const("axis2", [2]), member.past
    first = [g.const("zero", [0]), g.const("one", [1])]
    state, preds, x = ["", ""], [], u
    for j in range(horizon):
        _, h, c = g.op("LSTM", [x, W, R, B, "", *state, *peep], outputs=3, **attrs)
        v = g.op("Add", [g.op("MatMul", [h, head_w]), head_b])  # (1, N, 1 + P)
        z = g.op("Slice", [v, *first, axis2])  # (1, N, 1)
        preds.append(z)
        if j + 1 < horizon:
            parts = [z]
            if x_next is not None:
                rows = [g.const(f"step{k}", [k]) for k in (j, j + 1)]
                parts.append(g.op("Slice", [x_next, *rows, g.const("axis0", [0])]))
            if P:
                ends = [g.const("one", [1]), g.const(f"{p}1+P", [1 + P])]
                parts.append(g.op("Slice", [v, *ends, axis2]))
            x = g.op("Concat", parts, axis=2)  # (1, N, 1 + F + P)
        state = [h, c]
    z_hat = g.op("Concat", preds, axis=0) if horizon > 1 else preds[0]  # (horizon, N, 1)
    return g.op("Transpose", [g.op("Squeeze", [z_hat, axis2])], perm=[1, 0])


def _decode(
    g: Graph,
    p: str,
    member: GlobalMember,
    z_hat: str,
    last: str | None,
    stats: tuple[str, str],
    h: int,
) -> str:
    """Forecast values (N, h) float64 from the model-space z_hat (N, h) float32."""
    e = g.op("Cast", [z_hat], to=_DOUBLE)
    e = g.op("Add", [g.op("Mul", [e, stats[1]]), stats[0]])
    if last is not None:
        e = g.op("Add", [last, g.op("CumSum", [e, g.const("axis1_scalar", 1)])])
    if np.any(member.season != 0):
        e = g.op("Add", [e, _season(g, p, member, g.const(p + "t_future", np.arange(h)))])
    return e


def members_of(ensemble: Any) -> list[GlobalMember]:
    """The members of a global forecaster's ensemble (:mod:`lstmkit.series.many`: each
    member's candidate, per-series transforms and covariate scales)."""
    F, P = len(ensemble.future_names), len(ensemble.past_names)
    return [
        GlobalMember(
            mb.model,
            mb.candidate.lookback,
            mb.candidate.difference,
            np.stack([tf.season for tf in mb.transforms]),
            np.array([tf.scaler.mean for tf in mb.transforms]),
            np.array([tf.scaler.scale for tf in mb.transforms]),
            np.stack(mb.scales) if F + P else None,
            F,
        )
        for mb in ensemble.members
    ]


def export_global(
    members: list[GlobalMember],
    horizon: int,
    path: str | os.PathLike[str],
    ids: list[str],
    opset: int = DEFAULT_OPSET,
    interval: Interval | None = None,
) -> ModelProto:
    """Write the median of ``members`` over the series named ``ids`` for ``horizon`` steps
    to ``path`` (inputs and outputs in the module docstring; ``lo``, ``hi`` with an
    ``interval`` of q (S, horizon), one row per series), check it, and return it."""
    from onnx import TensorProto, helper

    check_arguments(len(members), horizon, opset)
    if interval is not None:
        interval.check((len(ids), horizon))
    for member in members:
        member.check()
        if member.season.shape[0] != len(ids):
            raise ValueError(
                f"member tables: expected one row per series ({len(ids)}), got "
                f"{member.season.shape[0]}"
            )
    if len({(m.future, m.past) for m in members}) > 1:
        raise ValueError("members: expected the same covariates (F, P) in every member")
    need, K = max(m.need() for m in members), len(members)
    g = Graph()
    for name in ("n", "series"):
        g.nodes.append(
            helper.make_node("Unsqueeze", [name, g.const("axis1", [1])], [name + "_column"])
        )
    forecasts = []
    for k, member in enumerate(members):
        p = f"m{k}_"
        stats = _tables(g, p, member)
        z, last = _transform(g, p, member, need, stats)
        if member.covariates is None:
            z_hat = roll_out(g, p, member.one(), z, horizon)
        else:
            u, x_next = _covariate_context(g, p, member, need, horizon, z)
            z_hat = _covariate_roll_out(g, p, member, u, x_next, horizon)
        values = _decode(g, p, member, z_hat, last, stats, horizon)
        forecasts.append(g.op("Unsqueeze", [values, g.const("axis0", [0])]))
    g.nodes.append(helper.make_node("Concat", forecasts, ["members"], axis=0))  # (K, N, h)
    g.nodes.append(helper.make_node("Identity", [median(g, "members", K)], ["forecast"]))
    inputs = [
        helper.make_tensor_value_info("history", TensorProto.DOUBLE, ["N", need]),
        helper.make_tensor_value_info("n", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("series", TensorProto.INT64, ["N"]),
    ]
    F, P = members[0].future, members[0].past
    if F:
        shape: list[str | int] = ["N", need + horizon, F]
        inputs.append(helper.make_tensor_value_info("future", TensorProto.DOUBLE, shape))
    if P:
        inputs.append(helper.make_tensor_value_info("past", TensorProto.DOUBLE, ["N", need, P]))
    outputs = [
        helper.make_tensor_value_info("forecast", TensorProto.DOUBLE, ["N", horizon]),
        helper.make_tensor_value_info("members", TensorProto.DOUBLE, [K, "N", horizon]),
    ]
    m = members[0].season.shape[1]
    props = {"need": need, "horizon": horizon, "season": m, "members": K}
    props.update({"ids": json.dumps(list(ids)), "future": F, "past": P})
    if interval is not None:
        outputs += bounds(g, interval, rows="series")
        props["level"] = interval.level
    return save_graph(g, "lstmkit_global_forecaster", (inputs, outputs), props, opset, path)
