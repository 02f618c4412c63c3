"""Export to ONNX with the standard ``LSTM``, ``GRU`` and ``RNN`` operators.

``export(layer, "model.onnx")`` writes a graph that ONNX Runtime runs with the same results
as ``layer.forward`` (to float32 rounding). Needs the ``onnx`` package (``lstmkit[onnx]``),
imported inside the functions.

Graph of a layer (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size; the
batch N and time T are dynamic)::

    inputs   x              (T, N, I) float32   (N, T, I) with batch_first
             h0             (L*D, N, H) float32
             c0             (L*D, N, H) float32       LSTM only
             sequence_lens  (N,) int32                only with sequence_lens=True
    outputs  y              (T, N, D*H) float32   (N, T, D*H) with batch_first
             h_n            (L*D, N, H) float32
             c_n            (L*D, N, H) float32       LSTM only

The states are graph inputs and outputs so that a deployed model can stream: feed the
``h_n`` (and ``c_n``) of one chunk as the ``h0`` (``c0``) of the next; start with zeros.
ONNX has no default values for inputs whose shape depends on N, so the initial states are
always required. ``sequence_lens`` is optional the only way ONNX allows it, by exporting one
of two variants: ``export(..., sequence_lens=True)`` (the default) adds the int32 input
(every length in 1..T, as ``forward``'s ``lengths``: padded steps give zeros in ``y`` and
the final state is the one at each sequence's last step); ``sequence_lens=False`` leaves it
out and every sequence runs all T steps.

How the layer maps onto the operators (the spec's layout; the gate reordering lives in
:func:`lstmkit.io.pytorch.onnx_gate_order`):

* one operator per layer, chained; a bidirectional layer is one operator with
  ``direction="bidirectional"`` whose output (T, D, N, H) is reshaped to (T, N, D*H);
* ``W`` (D, G*H, in), ``R`` (D, G*H, H) and ``B`` (D, 2*G*H) = [Wb, Rb] with the gates in
  ONNX's order (LSTM i, o, f, c; GRU z, r, h); no ``B`` when ``bias=False``;
* the GRU uses ``linear_before_reset=1`` (torch's GRU); the RNN's ``activations`` are Tanh
  or Relu;
* ``batch_first`` becomes a Transpose on each side (not the operator's ``layout``, which
  would also make the states batch-major, unlike torch);
* dropout belongs to training and is not exported; the weights are exported as float32
  whatever the layer's dtype; unbatched (T, I) inputs are not part of the graph.

LSTM variants: ``peepholes=True`` becomes the operator's ``P`` input (D, 3H), the weights
``weight_ci``, ``weight_co``, ``weight_cf`` in ONNX's order (i, o, f; i and f see c_{t-1}, o
sees c_t, as in lstmkit); ``coupled_gates=True`` becomes ``input_forget=1`` (f = 1 - i; the
forget rows of W, R, B are exported but unused). ``recurrent_dropout`` belongs to training
like ``dropout`` and is not exported.

Not expressible with the ONNX ``LSTM`` operator, so ``export`` raises ValueError (one line
naming the option): ``proj_size > 0`` (the operator has no projection), ``forget_gate=False``
(the operator always has a learned forget gate), ``input_gate=False``, ``output_gate=False``,
``input_activation=False``, ``output_activation=False``, ``layer_norm=True``,
``gate_recurrence=True`` and zoneout.

Whole models (a :class:`lstmkit.nn.model.Model` with children ``embed``, ``lstm``, ``head``
or ``lstm``, ``head``; see :func:`export`) are built from the same pieces:
:func:`layer_nodes` emits the nodes and weights of one recurrent layer between tensor names
of the caller's choosing, so a model's graph is a Gather (embedding), these nodes and a
MatMul + Add (linear head). The automatic forecaster's whole forecast (transforms, unrolled
roll-outs, median of the members) is :mod:`lstmkit.io.onnx_ensemble`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmkit.io.pytorch import onnx_gate_order
from lstmkit.nn.recurrent import GRU, LSTM, RNN

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "export", "layer_nodes", "operator_weights"]

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Squeeze and Slice take their axes as inputs from opset 13 on

_Nodes = tuple[list["NodeProto"], list["TensorProto"]]


def _mode(layer: Any) -> str:
    """The ONNX operator for a layer: "LSTM", "GRU" or "RNN"; ValueError if it has none."""
    if isinstance(layer, LSTM):
        if layer.proj_size:
            raise ValueError(
                f"cannot export {layer!r}: the ONNX LSTM operator has no projection, "
                f"expected proj_size=0, got {layer.proj_size}"
            )
        if not getattr(layer.cell, "forget_gate", True):
            raise ValueError(
                f"cannot export {layer!r} built with forget_gate=False: the ONNX LSTM "
                "operator always has a learned forget gate"
            )
        opt = layer.options
        refused = [
            (not opt.input_gate, "input_gate=False", "always has a learned input gate"),
            (not opt.output_gate, "output_gate=False", "always has a learned output gate"),
            (not opt.input_activation, "input_activation=False", "exported with tanh only"),
            (not opt.output_activation, "output_activation=False", "exported with tanh only"),
            (opt.layer_norm, "layer_norm=True", "has no layer normalisation"),
            (opt.gate_recurrence, "gate_recurrence=True", "has no recurrence between gates"),
            (
                bool(opt.zoneout_c or opt.zoneout_h),
                f"zoneout=({opt.zoneout_c}, {opt.zoneout_h})",
                "has no zoneout (its evaluation mixes the previous and new states)",
            ),
        ]
        for bad, given, why in refused:
            if bad:
                raise ValueError(
                    f"cannot export {layer!r} built with {given}: the ONNX LSTM operator {why}"
                )
        return "LSTM"
    if isinstance(layer, GRU):
        return "GRU"
    if isinstance(layer, RNN):
        return "RNN"
    raise TypeError(f"expected an lstmkit LSTM, GRU or RNN, got {type(layer).__name__}")


def _operator_weights(layer: Any, mode: str, layer_index: int) -> dict[str, np.ndarray]:
    """W (D, G*H, in), R (D, G*H, H) and, with bias, B (D, 2*G*H) for one layer, float32."""
    p = layer.parameters()
    sfx = [f"_l{layer_index}" + ("_reverse" if d else "") for d in range(layer.num_directions)]

    def stacked(*names: str) -> np.ndarray:
        """Per direction, the named tensors reordered and joined; stacked over directions."""
        return np.stack(
            [np.concatenate([onnx_gate_order(p[n + s], mode) for n in names]) for s in sfx]
        )

    out = {"W": stacked("weight_ih"), "R": stacked("weight_hh")}
    if layer.bias:
        out["B"] = stacked("bias_ih", "bias_hh")  # [Wb, Rb]
    if mode == "LSTM" and layer.options.peepholes:  # ONNX's order: i, o, f
        out["P"] = np.stack([np.concatenate([p["weight_c" + g + s] for g in "iof"]) for s in sfx])
    return {k: v.astype(np.float32) for k, v in out.items()}


def operator_weights(layer: LSTM | GRU | RNN, layer_index: int = 0) -> dict[str, np.ndarray]:
    """The ONNX operator's weights of one layer (see :func:`layer_nodes`): W (D, G*H, in),
    R (D, G*H, H), with bias B (D, 2*G*H), with peepholes P (D, 3H), float32, in ONNX's gate
    order; ValueError if the operator cannot express the layer."""
    return _operator_weights(layer, _mode(layer), layer_index)


def layer_nodes(
    layer: LSTM | GRU | RNN,
    x: str,
    y: str,
    state_in: tuple[str, ...],
    state_out: tuple[str, ...],
    sequence_lens: str | None = None,
    prefix: str = "rnn",
) -> _Nodes:
    """The ONNX nodes and initializers computing ``y, state_out = layer(x, state_in, lengths)``.

    Tensor names: ``x`` is the input in the layer's layout ((T, N, I), or (N, T, I) with
    batch_first) and ``y`` the output likewise; ``state_in``/``state_out`` are ``(h,)`` or
    ``(h, c)`` for the LSTM, each (L*D, N, H); ``sequence_lens`` an int32 (N,) tensor or None.
    Every intermediate name and initializer starts with ``prefix``, so several layers can
    share a graph. Returns (nodes, initializers) to put in a ``onnx.helper.make_graph``.
    """
    from onnx import helper, numpy_helper

    mode = _mode(layer)
    n_states = 2 if mode == "LSTM" else 1
    if len(state_in) != n_states or len(state_out) != n_states:
        raise ValueError(
            f"state_in/state_out: expected {n_states} names for {mode}, "
            f"got {len(state_in)} and {len(state_out)}"
        )
    D, L, H = layer.num_directions, layer.num_layers, layer.hidden_size
    nodes: list[NodeProto] = []
    inits: list[TensorProto] = []

    def const(name: str, values: list[int]) -> str:
        """An int64 initializer, added once."""
        if not any(t.name == prefix + name for t in inits):
            inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), prefix + name))
        return prefix + name

    current = x
    if layer.batch_first:  # (N, T, I) -> (T, N, I)
        current = prefix + "_x_time_major"
        nodes.append(helper.make_node("Transpose", [x], [current], perm=[1, 0, 2]))
    last_states: list[list[str]] = [[] for _ in range(n_states)]
    for l in range(L):
        tag = f"{prefix}_l{l}"
        weights = _operator_weights(layer, mode, l)
        for key, arr in weights.items():
            inits.append(numpy_helper.from_array(arr, f"{tag}_{key}"))
        if L == 1:
            states = list(state_in)
        else:  # this layer's rows l*D .. (l+1)*D of each (L*D, N, H) state
            starts = const(f"_l{l}_start", [l * D])
            ends = const(f"_l{l}_end", [(l + 1) * D])
            states = [f"{tag}_{s}0" for s in "hc"[:n_states]]
            for name_in, name in zip(state_in, states):
                nodes.append(
                    helper.make_node("Slice", [name_in, starts, ends, const("_axis0", [0])], [name])
                )
        finals = list(state_out) if L == 1 else [f"{tag}_{s}_n" for s in "hc"[:n_states]]
        for acc, name in zip(last_states, finals):
            acc.append(name)
        attrs: dict[str, Any] = {
            "hidden_size": H,
            "direction": "bidirectional" if D == 2 else "forward",
        }
        if mode == "GRU":
            attrs["linear_before_reset"] = 1  # torch's GRU: r * (W_hn h + b_hn)
        if isinstance(layer, LSTM) and layer.options.coupled_gates:
            attrs["input_forget"] = 1  # f = 1 - i
        if isinstance(layer, RNN):
            attrs["activations"] = [layer.nonlinearity.capitalize()] * D
        y4 = f"{tag}_Y"  # (T, D, N, H)
        nodes.append(
            helper.make_node(
                mode,
                [
                    current,
                    f"{tag}_W",
                    f"{tag}_R",
                    f"{tag}_B" if layer.bias else "",
                    sequence_lens or "",
                    *states,
                    *([f"{tag}_P"] if "P" in weights else []),
                ],
                [y4, *finals],
                name=f"{tag}_{mode}",
                **attrs,
            )
        )
        is_last = l == L - 1
        out = y if is_last and not layer.batch_first else f"{tag}_out"  # (T, N, D*H)
        if D == 1:
            nodes.append(helper.make_node("Squeeze", [y4, const("_axis1", [1])], [out]))
        else:
            y_tn = f"{tag}_Y_TNDH"
            nodes.append(helper.make_node("Transpose", [y4], [y_tn], perm=[0, 2, 1, 3]))
            nodes.append(
                helper.make_node("Reshape", [y_tn, const("_shape_TN_", [0, 0, -1])], [out])
            )
        current = out
    if layer.batch_first:  # (T, N, D*H) -> (N, T, D*H)
        nodes.append(helper.make_node("Transpose", [current], [y], perm=[1, 0, 2]))
    if L > 1:
        for names, out_name in zip(last_states, state_out):
            nodes.append(helper.make_node("Concat", names, [out_name], axis=0))
    return nodes, inits


def _state_io(layer: Any, names: tuple[str, ...]) -> list[ValueInfoProto]:
    from onnx import TensorProto, helper

    rows = layer.num_layers * layer.num_directions
    return [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [rows, "N", layer.hidden_size])
        for name in names
    ]


def _layer_graph(layer: Any, sequence_lens: bool) -> Any:
    from onnx import TensorProto, helper

    lstm = _mode(layer) == "LSTM"
    state_in, state_out = ("h0", "c0")[: 1 + lstm], ("h_n", "c_n")[: 1 + lstm]
    lens = "sequence_lens" if sequence_lens else None
    nodes, inits = layer_nodes(layer, "x", "y", state_in, state_out, lens)
    TN = ["N", "T"] if layer.batch_first else ["T", "N"]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [*TN, layer.input_size])]
    inputs += _state_io(layer, state_in)
    if lens:
        inputs.append(helper.make_tensor_value_info(lens, TensorProto.INT32, ["N"]))
    width = layer.num_directions * layer.hidden_size
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*TN, width])]
    outputs += _state_io(layer, state_out)
    return helper.make_graph(nodes, f"lstmkit_{type(layer).__name__}", inputs, outputs, inits)


def _model_graph(model: Any, sequence_lens: bool) -> Any:
    """The graph of a container model: [embed ->] recurrent layer -> head (see ``export``)."""
    from onnx import TensorProto, helper, numpy_helper

    from lstmkit.nn.feedforward import Dropout, Embedding, Linear

    children = dict(model.children)
    names = {k: type(v).__name__ for k, v in children.items()}
    kinds = {"embed": Embedding, "lstm": LSTM | GRU | RNN, "head": Linear}
    unknown = [k for k, v in children.items() if k not in kinds and not isinstance(v, Dropout)]
    wrong = [k for k, cls in kinds.items() if k in children and not isinstance(children[k], cls)]
    if unknown or wrong or "lstm" not in children or "head" not in children:
        raise TypeError(
            "model: expected children lstm (LSTM, GRU or RNN) and head (Linear), optionally "
            f"embed (Embedding) and Dropout modules, got {names}"
        )
    layer, head = children["lstm"], children["head"]
    embed = children.get("embed")
    lstm = _mode(layer) == "LSTM"
    state_in, state_out = ("h0", "c0")[: 1 + lstm], ("h_n", "c_n")[: 1 + lstm]
    lens = "sequence_lens" if sequence_lens else None
    TN = ["N", "T"] if layer.batch_first else ["T", "N"]
    nodes: list[NodeProto] = []
    inits: list[TensorProto] = []
    if embed is not None:  # ids (T, N) -> vectors (T, N, E)
        inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, TN)]
        w = embed.parameters()["weight"].astype(np.float32)  # (V, E)
        inits.append(numpy_helper.from_array(w, "embed_weight"))
        nodes.append(helper.make_node("Gather", ["embed_weight", "ids"], ["embed_out"], axis=0))
        x, out_name = "embed_out", "logits"
    else:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [*TN, layer.input_size])]
        x, out_name = "x", "y"
    inputs += _state_io(layer, state_in)
    if lens:
        inputs.append(helper.make_tensor_value_info(lens, TensorProto.INT32, ["N"]))
    rnn_nodes, rnn_inits = layer_nodes(layer, x, "lstm_out", state_in, state_out, lens, "lstm")
    nodes += rnn_nodes
    inits += rnn_inits
    # head: y = x @ W.T + b on the last axis, (T, N, D*H) -> (T, N, out)
    params = head.parameters()
    inits.append(numpy_helper.from_array(params["weight"].T.astype(np.float32), "head_weight_T"))
    matmul_out = "head_matmul" if "bias" in params else out_name
    nodes.append(helper.make_node("MatMul", ["lstm_out", "head_weight_T"], [matmul_out]))
    if "bias" in params:
        inits.append(numpy_helper.from_array(params["bias"].astype(np.float32), "head_bias"))
        nodes.append(helper.make_node("Add", [matmul_out, "head_bias"], [out_name]))
    outputs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [*TN, head.out_features])]
    outputs += _state_io(layer, state_out)
    return helper.make_graph(nodes, f"lstmkit_{type(model).__name__}", inputs, outputs, inits)


def export(
    model: Any,
    path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    sequence_lens: bool = True,
) -> ModelProto:
    """Write ``model`` to ``path`` as an ONNX file, check it, and return the ModelProto.

    ``model`` is an lstmkit LSTM, GRU or RNN (graph inputs and outputs in the module
    docstring), or a :class:`lstmkit.nn.model.Model` whose forward is
    ``head(lstm(embed(ids), state, lengths))`` on every step, in eval mode:

    * char-LM, children ``embed`` (Embedding), ``lstm``, ``head`` (Linear): inputs ``ids``
      (T, N) int64, the states and ``sequence_lens``; outputs ``logits`` (T, N, V) and the
      final states;
    * forecaster, children ``lstm`` and ``head``: input ``x`` (T, N, F), output ``y``
      (T, N, out), the states as for a layer.

    Dropout children are left out (they are the identity in eval mode); (N, T) instead of
    (T, N) when the recurrent layer is batch_first. ``opset`` is the ai.onnx opset version
    (>= 13). ``sequence_lens=False`` exports the variant without the ``sequence_lens``
    input. The graph passes ``onnx.checker.check_model(full_check=True)`` before it is
    written.
    """
    import onnx
    from onnx import helper

    if not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(
            f"opset: expected an integer in {MIN_OPSET}..{onnx.defs.onnx_opset_version()} "
            f"(the installed onnx's newest), got {opset!r}"
        )
    if isinstance(model, LSTM | GRU | RNN):
        graph = _layer_graph(model, sequence_lens)
    elif hasattr(model, "children") and hasattr(model, "parameters"):
        graph = _model_graph(model, sequence_lens)
    else:
        raise TypeError(
            "model: expected an lstmkit LSTM, GRU or RNN or a lstmkit.nn.model.Model, "
            f"got {type(model).__name__}"
        )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="lstmkit")
    # The oldest IR version that carries this opset, so that older runtimes load the file.
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, os.fspath(path))
    return proto
