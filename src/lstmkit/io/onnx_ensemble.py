"""A forecasting ensemble as one ONNX graph: raw values in, the median h-step forecast out.

``export_ensemble(members, horizon, "f.onnx")`` writes the whole forecast of the automatic
forecaster (:mod:`lstmkit.series.auto`) as standard ONNX operators, so ONNX Runtime gives
``series forecast``'s numbers (to float32 rounding in the LSTMs) without lstmkit::

    inputs   history   (N, need) float64  the last ``need`` values of each of N series
             n         (N,) int64         each series' length: the time index of the first
                                          forecast, n mod m is the season's phase
    outputs  forecast  (N, horizon) float64   the median over the members at every step
             members   (K, N, horizon) float64  each member's forecast
             lo, hi    (N, horizon) float64   with an :class:`Interval`: forecast -+ q

The prediction interval (``interval=Interval(level, q)``, optional): the half-widths q
(horizon,) are constants computed at export (the conformal quantiles of the run's
calibration errors, :mod:`lstmkit.series.conformal`), so lo = forecast - q and
hi = forecast + q, broadcast over the N rows; the metadata ``level`` says which.

``need`` = max over the members of lookback + difference (the model's metadata
``need``, ``horizon``, ``season`` and ``members`` say it too). ``n`` is unused (but still
fed) when no member deseasons. The graph of a member, in the order of
:class:`lstmkit.series.transform.Transform` and :func:`lstmkit.series.forecast.roll_out`:

1. its transform, in float64: the last lookback (+ 1 with differencing) values; minus the
   seasonal indices ``s[t mod m]`` (Gather) at their times t = n - w .. n - 1; the changes
   (two Slices and a Sub) with differencing; minus the mean, over the scale;
2. its LSTM (the ONNX ``LSTM`` operator, from zero states) over the context, the linear head
   on the final h: the first forecast, in float32;
3. the recursive roll-out unrolled for ``horizon`` steps: an ``LSTM`` node of one step from
   the carried (h, c), fed the previous forecast, and the head; all members' weights are
   initializers shared by their steps;
4. the inverse transform in float64: times the scale plus the mean; with differencing a
   CumSum over the steps added to the last deseasoned value; plus ``s[t mod m]`` at
   t = n .. n + horizon - 1.

A level member (``Member.level`` = (mean_d, scale_d), :mod:`lstmkit.series.level_input`: a
differenced form whose LSTM also reads the level) differs in steps 1 and 3 only. mean_d and
scale_d are constants fitted at training, so over the same w = lookback + 1 deseasoned
values d the graph computes both channels of each context step t = n - L .. n - 1:

    z_t = (d_t - d_{t-1} - mean_e) / scale_e,     u_t = (d_t - mean_d) / scale_d

a context (L, N, 2) for the operator's input_size 2; every roll-out step is fed
(z_hat, u_{t+1}) with u_{t+1} = u_t + (scale_e z_hat + mean_e) / scale_d, u carried in
float64 from u_{n-1} as :meth:`LevelInput.roll_out` carries it (per step two Casts, a Mul,
an Add, a Div, an Add and a Concat). The decoding is the differenced transform's.

An ES-hybrid member (:mod:`lstmkit.series.hybrid`, ``Member.hybrid``) is refused: its level
is smoothed over the whole history, which the graph's last ``need`` values do not hold; so
is, for the same reason, an ensemble combined with Holt-Winters (:func:`members_of`,
:mod:`lstmkit.series.combination`).

The median across the K members: ONNX has no median operator, so TopK (K largest along the
member axis, sorted) and the middle one, or for even K the two middle ones' sum times 0.5.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmkit.io.onnx import DEFAULT_OPSET, MIN_OPSET, operator_weights
from lstmkit.nn.recurrent import LSTM

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = [
    "Graph",
    "Interval",
    "Member",
    "bounds",
    "check_arguments",
    "check_member",
    "differenced",
    "export_ensemble",
    "members_of",
    "median",
    "roll_out",
    "save_graph",
]

_FLOAT, _DOUBLE = 1, 11  # onnx.TensorProto.FLOAT and DOUBLE (onnx is imported when used)


@dataclass(frozen=True)
class Member:
    """One member of the ensemble: its model (children ``lstm``, a one-layer forward LSTM
    reading one value, or two with a ``level``, and ``head``, a Linear to one value) and its
    transform."""

    model: Any
    lookback: int
    difference: bool
    season: np.ndarray  # (m,) additive seasonal indices by t mod m (zeros: not deseasoned)
    mean: float
    scale: float
    hybrid: bool = False  # an ES-hybrid member: no export yet (its level reads all the history)
    # (mean_d, scale_d) of the deseasoned values: a differenced member that also reads the
    # level u = (d - mean_d) / scale_d (lstmkit.series.level_input); None: it reads z only
    level: tuple[float, float] | None = None

    def need(self) -> int:
        """Values of the history the member reads."""
        return self.lookback + int(self.difference)

    def inputs(self) -> int:
        """Values its LSTM reads per step: z, and u with the level."""
        return 1 if self.level is None else 2


@dataclass(frozen=True)
class Interval:
    """A prediction interval's half-widths, constants of the graph: lo = forecast - q,
    hi = forecast + q at every step."""

    level: int  # the percentage (80), the metadata's ``level``
    q: np.ndarray  # (horizon,), or (S, horizon) per series for the global graph (Gathered)

    def check(self, shape: tuple[int, ...]) -> None:
        """ValueError (one line) unless q has ``shape`` and finite values >= 0."""
        if not 0 < self.level < 100:
            raise ValueError(f"interval.level: expected 0 < level < 100, got {self.level!r}")
        q = np.asarray(self.q)
        if q.shape != shape:
            raise ValueError(f"interval.q: expected shape {shape}, got {q.shape}")
        if not np.all(np.isfinite(q)) or np.any(q < 0):
            raise ValueError("interval.q: expected finite half-widths >= 0")


class Graph:
    """Nodes and initializers under fresh names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def const(self, name: str, value: Any, dtype: Any = np.int64) -> str:
        from onnx import numpy_helper

        if not any(t.name == name for t in self.inits):
            self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> Any:
        """The node's output name (a list of them when ``outputs`` > 1)."""
        from onnx import helper

        self._count += 1
        names = [f"{op_type.lower()}_{self._count}_{k}" for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names


def members_of(ensemble: Any) -> list[Member]:
    """The members of an automatic forecaster's ensemble
    (:class:`lstmkit.series.auto.Ensemble`: members (candidate, transform, model, steps));
    a level member's transform (:class:`lstmkit.series.level_input.LevelInput`) gives its
    ``level``. A ValueError (one line) if its forecast is combined with Holt-Winters'
    (weight < 1) or a member has a highway (:attr:`lstmkit.series.auto.AutoConfig.highway`)."""
    mix = getattr(ensemble, "combination", None)
    if mix is not None and mix.weight < 1:
        raise ValueError(
            f"the forecast is {mix.weight:g} x the LSTMs' median + {1 - mix.weight:g} x "
            "Holt-Winters' (a level smoothed over the whole history), which has no ONNX export "
            "yet: train without the combination (AutoConfig(combine=False))"
        )
    for k, (c, _, _, _) in enumerate(ensemble.members):
        if getattr(c, "highway", 0):
            raise ValueError(
                f"member {k} adds a linear autoregressive highway of order {c.highway}, which "
                "has no ONNX export yet: train without it (AutoConfig(highway=0))"
            )
    return [
        Member(
            model,
            c.lookback,
            c.difference,
            tf.season,
            tf.scaler.mean,
            tf.scaler.scale,
            c.hybrid,
            (tf.level.mean, tf.level.scale) if getattr(c, "level", False) else None,
        )
        for c, tf, model, _ in ensemble.members
    ]


def check_member(member: Member, inputs: int = 1, outputs: int = 1) -> None:
    """ValueError (one line) unless the member's model is one forward LSTM layer reading
    ``inputs`` values and a Linear head with a bias to ``outputs`` values."""
    children = dict(member.model.children)
    lstm, head = children.get("lstm"), children.get("head")
    if not isinstance(lstm, LSTM) or head is None:
        raise TypeError("member.model: expected children lstm (LSTM) and head (Linear)")
    one_layer = (lstm.num_layers, lstm.num_directions) == (1, 1) and not lstm.batch_first
    if not one_layer or lstm.input_size != inputs:
        reads = "one value" if inputs == 1 else f"{inputs} values"
        raise ValueError(
            f"member.model.lstm: expected one forward layer reading {reads}, got {lstm!r}"
        )
    if head.out_features != outputs or "bias" not in head.parameters():
        to = "one value" if outputs == 1 else f"{outputs} values"
        raise ValueError(f"member.model.head: expected a Linear to {to} with a bias")
    if member.lookback < 1:
        raise ValueError(f"member.lookback: expected >= 1, got {member.lookback}")


def _transform(g: Graph, p: str, member: Member, need: int) -> tuple[str, str | None, str | None]:
    """(x (L, N, I) float32, the member's context; its last deseasoned value (N, 1) or None
    without differencing; with the level, u_{n-1} (1, N, 1) float64, else None)."""
    w, m = member.need(), member.season.shape[0]
    start, end = g.const(p + "from", [need - w]), g.const("end", [need])
    d = g.op("Slice", ["history", start, end, g.const("axis1", [1])])  # (N, w)
    if np.any(member.season != 0):
        t = g.op("Add", ["n_column", g.const(p + "t_past", np.arange(-w, 0))])  # (N, w)
        phase = g.op("Mod", [t, g.const(p + "m", [m])])  # Python's sign: t < 0 still right
        season = g.const(p + "season", member.season, np.float64)
        d = g.op("Sub", [d, g.op("Gather", [season, phase], axis=0)])  # d_t
    e, last = differenced(g, p, d, w) if member.difference else (d, None)
    z = _scaled(g, e, g.const(p + "mean", member.mean, np.float64), p + "scale", member.scale)
    if member.level is None:
        return _context(g, [z]), last, None
    mean_d, scale_d = member.level
    axis1 = g.const("axis1", [1])
    later = g.op("Slice", [d, g.const("one", [1]), g.const(p + "w", [w]), axis1])  # (N, L)
    u = _scaled(g, later, g.const(p + "level_mean", mean_d, np.float64), p + "level_scale", scale_d)
    u_last = g.op("Slice", [u, g.const("minus_one", [-1]), g.const(p + "w", [w]), axis1])
    return _context(g, [z, u]), last, g.op("Unsqueeze", [u_last, g.const("axis0", [0])])


def _scaled(g: Graph, x: str, mean: str, scale_name: str, scale: float) -> str:
    """(x - mean) / scale, float64, of the same shape as x."""
    return g.op("Div", [g.op("Sub", [x, mean]), g.const(scale_name, scale, np.float64)])


def _context(g: Graph, channels: list[str]) -> str:
    """The channels, each (N, L) float64, as the LSTM's input (L, N, len(channels)) float32."""
    x = [g.op("Unsqueeze", [c, g.const("axis2", [2])]) for c in channels]  # (N, L, 1) each
    x = g.op("Concat", x, axis=2) if len(x) > 1 else x[0]  # (N, L, I)
    return g.op("Transpose", [g.op("Cast", [x], to=_FLOAT)], perm=[1, 0, 2])


def roll_out(g: Graph, p: str, member: Member, x: str, horizon: int, u: str | None = None) -> str:
    """The member's model-space forecasts (N, horizon) float32: the LSTM over the context x
    (L, N, I), then one LSTM step per further forecast from the carried state, fed the
    forecast z_hat (1, N, 1) and, for a level member, the level it implies (u: u_{n-1})."""
    lstm, head = member.model.children["lstm"], member.model.children["head"]
    weights = operator_weights(lstm)
    W, R, B = (g.const(p + k, weights[k], np.float32) for k in "WRB")
    params = head.parameters()
    head_w = g.const(p + "head_weight_T", params["weight"].T, np.float32)  # (H, 1)
    head_b = g.const(p + "head_bias", params["bias"], np.float32)
    P = [g.const(p + "P", weights["P"], np.float32)] if "P" in weights else []  # peepholes
    attrs = {"hidden_size": lstm.hidden_size}
    if lstm.options.coupled_gates:
        attrs["input_forget"] = 1
    level = member.level
    if (level is None) != (u is None):
        raise ValueError("roll_out: expected u (the name of u_{n-1}) for a level member only")
    state = ["", ""]  # zeros
    preds = []
    for k in range(horizon):
        _, h, c = g.op("LSTM", [x, W, R, B, "", *state, *P], outputs=3, **attrs)
        z = g.op("Add", [g.op("MatMul", [h, head_w]), head_b])  # (1, N, 1)
        preds.append(z)
        state = [h, c]
        x = z
        if level is not None and u is not None and k < horizon - 1:
            x, u = _with_level(g, p, member, level[1], z, u)
    z_hat = g.op("Concat", preds, axis=0) if horizon > 1 else preds[0]  # (horizon, N, 1)
    z_hat = g.op("Squeeze", [z_hat, g.const("axis2", [2])])
    return g.op("Transpose", [z_hat], perm=[1, 0])  # (N, horizon)


def _with_level(
    g: Graph, p: str, member: Member, scale_d: float, z: str, u: str
) -> tuple[str, str]:
    """(x (1, N, 2) float32, u_{t+1} (1, N, 1) float64): the next input (z_hat, u_{t+1})
    with u_{t+1} = u_t + (scale_e z_hat + mean_e) / scale_d, from z_hat (1, N, 1) float32
    and u_t (1, N, 1) float64."""
    scale_e = g.const(p + "scale", member.scale, np.float64)
    e = g.op("Mul", [g.op("Cast", [z], to=_DOUBLE), scale_e])
    e = g.op("Add", [e, g.const(p + "mean", member.mean, np.float64)])  # scale_e z_hat + mean_e
    u = g.op("Add", [u, g.op("Div", [e, g.const(p + "level_scale", scale_d, np.float64)])])
    return g.op("Concat", [z, g.op("Cast", [u], to=_FLOAT)], axis=2), u


def _decode(g: Graph, p: str, member: Member, z_hat: str, last: str | None, h: int) -> str:
    """Forecast values (N, h) float64 from the model-space z_hat (N, h) float32."""
    e = g.op("Cast", [z_hat], to=_DOUBLE)
    scale = g.const(p + "scale", member.scale, np.float64)
    e = g.op("Add", [g.op("Mul", [e, scale]), g.const(p + "mean", member.mean, np.float64)])
    if last is not None:
        e = g.op("Add", [last, g.op("CumSum", [e, g.const("axis1_scalar", 1)])])
    if np.any(member.season != 0):
        t = g.op("Add", ["n_column", g.const(p + "t_future", np.arange(h))])  # (N, h)
        phase = g.op("Mod", [t, p + "m"])
        e = g.op("Add", [e, g.op("Gather", [p + "season", phase], axis=0)])
    return e


def differenced(g: Graph, p: str, x: str, w: int) -> tuple[str, str]:
    """(e, last): the first differences e_t (N, w - 1) of x (N, w) and its last column
    (N, 1), which the decoding adds back."""
    ends = [g.const(k, [v]) for k, v in ((p + "w", w), (p + "w-1", w - 1))]
    last = g.op("Slice", [x, ends[1], ends[0], g.const("axis1", [1])])  # (N, 1)
    later = g.op("Slice", [x, g.const("one", [1]), ends[0], g.const("axis1", [1])])
    earlier = g.op("Slice", [x, g.const("zero", [0]), ends[1], g.const("axis1", [1])])
    return g.op("Sub", [later, earlier]), last  # e_t (N, L)


def median(g: Graph, members: str, K: int) -> str:
    """The median along axis 0 of (K, N, h): TopK sorts, then the middle (or the mean of
    the two middle ones)."""
    ranked, _ = g.op("TopK", [members, g.const("K", [K])], outputs=2, axis=0)
    if K % 2:
        return g.op("Gather", [ranked, g.const("middle", K // 2)], axis=0)
    pair = [g.op("Gather", [ranked, g.const(f"rank{r}", r)], axis=0) for r in (K // 2 - 1, K // 2)]
    return g.op("Mul", [g.op("Add", pair), g.const("half", 0.5, np.float64)])


def bounds(g: Graph, interval: Interval, rows: str | None = None) -> list[Any]:
    """Nodes lo = forecast - q and hi = forecast + q, (N, horizon) float64, and their value
    infos; q (horizon,) broadcast, or with ``rows`` (N,) int64 each row's own q Gathered
    from the (S, horizon) table."""
    from onnx import TensorProto, helper

    q = g.const("half_width", interval.q, np.float64)
    if rows is not None:
        q = g.op("Gather", [q, rows], axis=0)  # (N, horizon)
    g.nodes.append(helper.make_node("Sub", ["forecast", q], ["lo"]))
    g.nodes.append(helper.make_node("Add", ["forecast", q], ["hi"]))
    horizon = np.shape(interval.q)[-1]
    return [
        helper.make_tensor_value_info(k, TensorProto.DOUBLE, ["N", horizon]) for k in ("lo", "hi")
    ]


def export_ensemble(
    members: list[Member],
    horizon: int,
    path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    interval: Interval | None = None,
) -> ModelProto:
    """Write the median ensemble of ``members`` for ``horizon`` steps to ``path`` (inputs and
    outputs in the module docstring; ``lo``, ``hi`` with an ``interval`` of q (horizon,)),
    check it, and return the ModelProto."""
    from onnx import TensorProto, helper

    check_arguments(len(members), horizon, opset)
    if interval is not None:
        interval.check((horizon,))
    for k, member in enumerate(members):
        if member.hybrid:
            raise ValueError(
                f"member {k} is an ES-hybrid (a level smoothed over the whole history), which "
                "has no ONNX export yet: train without --hybrid (AutoConfig(hybrid=False))"
            )
        if member.level is not None and not member.difference:
            raise ValueError(f"member {k} reads the level: expected a differenced member")
        check_member(member, inputs=member.inputs())
    need, K = max(m.need() for m in members), len(members)
    g = Graph()
    g.nodes.append(helper.make_node("Unsqueeze", ["n", g.const("axis1", [1])], ["n_column"]))
    forecasts = []
    for k, member in enumerate(members):
        p = f"m{k}_"
        x, last, u = _transform(g, p, member, need)
        values = _decode(g, p, member, roll_out(g, p, member, x, horizon, u), last, horizon)
        forecasts.append(g.op("Unsqueeze", [values, g.const("axis0", [0])]))
    g.nodes.append(helper.make_node("Concat", forecasts, ["members"], axis=0))  # (K, N, h)
    g.nodes.append(helper.make_node("Identity", [median(g, "members", K)], ["forecast"]))
    inputs = [
        helper.make_tensor_value_info("history", TensorProto.DOUBLE, ["N", need]),
        helper.make_tensor_value_info("n", TensorProto.INT64, ["N"]),
    ]
    outputs = [
        helper.make_tensor_value_info("forecast", TensorProto.DOUBLE, ["N", horizon]),
        helper.make_tensor_value_info("members", TensorProto.DOUBLE, [K, "N", horizon]),
    ]
    m = members[0].season.shape[0]
    props = {"need": need, "horizon": horizon, "season": m, "members": K}
    if interval is not None:
        outputs += bounds(g, interval)
        props["level"] = interval.level
    return save_graph(g, "lstmkit_auto_forecaster", (inputs, outputs), props, opset, path)


def check_arguments(members: int, horizon: Any, opset: Any) -> None:
    """ValueError (one line) unless there are members, the horizon is an integer >= 1 and
    the opset one that onnx knows and the LSTM operator needs."""
    import onnx

    if not members:
        raise ValueError("members: expected at least one")
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon: expected an integer >= 1, got {horizon!r}")
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(
            f"opset: expected an integer in {MIN_OPSET}..{onnx.defs.onnx_opset_version()}, "
            f"got {opset!r}"
        )


def save_graph(
    g: Graph,
    name: str,
    signature: tuple[list[Any], list[Any]],
    props: dict[str, Any],
    opset: int,
    path: str | os.PathLike[str],
) -> ModelProto:
    """The graph g with its (inputs, outputs) value infos and metadata ``props`` as a
    model: checked, written to ``path`` and returned."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(g.nodes, name, *signature, g.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="lstmkit")
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(proto, {k: str(v) for k, v in props.items()})
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, os.fspath(path))
    return proto
