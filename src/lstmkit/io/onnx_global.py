"""The global forecaster (many series, one model) as one ONNX graph: raw values in, each
series' median h-step forecast out.

``export_global(members, horizon, "f.onnx")`` writes the whole forecast of
:func:`lstmkit.series.many.fit_global` (without covariates) as standard ONNX operators, so
ONNX Runtime gives ``series forecast``'s numbers (to float32 rounding in the LSTMs)::

    inputs   history   (N, need) float64  the last ``need`` values of each of N series
             n         (N,) int64         each series' length (n mod m: the season's phase)
             series    (N,) int64         each one's index among the run's S series (the
                                          metadata ``ids``, a JSON list, names them): which
                                          seasonal indices, mean and scale it uses
    outputs  forecast  (N, horizon) float64   the median over the members at every step
             members   (K, N, horizon) float64  each member's forecast

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

from lstmkit.io.onnx import DEFAULT_OPSET
from lstmkit.io.onnx_ensemble import (
    Graph,
    Member,
    check_arguments,
    check_member,
    median,
    roll_out,
    save_graph,
)

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = ["GlobalMember", "export_global"]

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
        check_member(self.one())


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
    last = None
    if member.difference:
        ends = [g.const(k, [v]) for k, v in ((p + "w", w), (p + "w-1", w - 1))]
        last = g.op("Slice", [x, ends[1], ends[0], g.const("axis1", [1])])  # (N, 1)
        later = g.op("Slice", [x, g.const("one", [1]), ends[0], g.const("axis1", [1])])
        earlier = g.op("Slice", [x, g.const("zero", [0]), ends[1], g.const("axis1", [1])])
        x = g.op("Sub", [later, earlier])  # e_t (N, L)
    z = g.op("Div", [g.op("Sub", [x, stats[0]]), stats[1]])  # (N, L)
    z = g.op("Transpose", [g.op("Cast", [z], to=_FLOAT)], perm=[1, 0])  # float32 (L, N)
    return g.op("Unsqueeze", [z, g.const("axis2", [2])]), last


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


def export_global(
    members: list[GlobalMember],
    horizon: int,
    path: str | os.PathLike[str],
    ids: list[str],
    opset: int = DEFAULT_OPSET,
) -> ModelProto:
    """Write the median of ``members`` over the series named ``ids`` for ``horizon`` steps
    to ``path`` (inputs and outputs in the module docstring), check it, and return it."""
    from onnx import TensorProto, helper

    check_arguments(len(members), horizon, opset)
    for member in members:
        member.check()
        if member.season.shape[0] != len(ids):
            raise ValueError(
                f"member tables: expected one row per series ({len(ids)}), got "
                f"{member.season.shape[0]}"
            )
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
        z_hat = roll_out(g, p, member.one(), z, horizon)
        values = _decode(g, p, member, z_hat, last, stats, horizon)
        forecasts.append(g.op("Unsqueeze", [values, g.const("axis0", [0])]))
    g.nodes.append(helper.make_node("Concat", forecasts, ["members"], axis=0))  # (K, N, h)
    g.nodes.append(helper.make_node("Identity", [median(g, "members", K)], ["forecast"]))
    inputs = [
        helper.make_tensor_value_info("history", TensorProto.DOUBLE, ["N", need]),
        helper.make_tensor_value_info("n", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("series", TensorProto.INT64, ["N"]),
    ]
    outputs = [
        helper.make_tensor_value_info("forecast", TensorProto.DOUBLE, ["N", horizon]),
        helper.make_tensor_value_info("members", TensorProto.DOUBLE, [K, "N", horizon]),
    ]
    m = members[0].season.shape[1]
    props = {"need": need, "horizon": horizon, "season": m, "members": K}
    props["ids"] = json.dumps(list(ids))
    return save_graph(g, "lstmkit_global_forecaster", (inputs, outputs), props, opset, path)
