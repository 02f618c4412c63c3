"""``lstmkit export onnx``: a trained run's model as an ONNX file that ONNX Runtime runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import add_run_option, output_file
from lstmkit.train.checkpoint import CheckpointError


def add_commands(subparsers: Any) -> None:
    export = subparsers.add_parser("export", help="export a trained model (ONNX)")
    sub = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    p = sub.add_parser(
        "onnx",
        help="write the run's model as ONNX (standard LSTM/GRU/RNN operators)",
        description="Export a char-LM or forecaster run to ONNX; needs lstmkit[onnx]. "
        "Inputs: the sequence, initial states and (unless --no-sequence-lens) sequence_lens; "
        "outputs: the result and the final states, so the model can stream chunk by chunk. "
        "An automatic forecaster's run (auto.npz) becomes one graph of its whole forecast: "
        "inputs history (N, need) float64, the last values of each series, and n (N,) int64, "
        "each series' length; outputs forecast (N, horizon), the median of the members, and "
        "members (K, N, horizon). A global forecaster's run (global.npz: --id-column or "
        "covariates) likewise, with a third input series (N,) int64, each series' index among "
        "the run's (the model's metadata 'ids'), and with covariates future (N, need + "
        "horizon, F) and past (N, need, P) float64.",
    )
    add_run_option(p)
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (%(default)s)")
    p.add_argument(
        "--no-sequence-lens",
        action="store_true",
        help="no sequence_lens input (every sequence runs all steps; not for auto.npz or "
        "global.npz)",
    )
    p.add_argument(
        "--horizon",
        type=int,
        help="automatic or global forecaster: forecast steps unrolled in the graph (default: "
        "the run's)",
    )
    p.set_defaults(func=_onnx)


def load_run_model(run: str) -> Any:
    """The model of a run folder or checkpoint, whatever kind of run it is."""
    from lstmkit.series.auto_run import is_auto_run, load_ensemble
    from lstmkit.series.global_run import is_global_run, load_global
    from lstmkit.train import checkpoint
    from lstmkit.train.run_folder import Run

    path = Path(run)
    if is_global_run(path):
        try:
            return load_global(path)[0]
        except CheckpointError as e:
            raise UserError(str(e)) from None
    if is_auto_run(path):
        try:
            return load_ensemble(path)[0]
        except CheckpointError as e:
            raise UserError(str(e)) from None
    if path.is_dir():
        r = Run(path)
        path = r.checkpoint_path("best" if r.exists("best") else "latest")
    if not path.exists():
        raise UserError(f"--run: no checkpoint in {run}")
    try:
        _, meta = checkpoint.load(path)
        kind = meta.get("kind")
        if kind == "charlm":
            from lstmkit.text.train import load_model

            return load_model(path)[0]
        if kind == "forecaster":
            from lstmkit.series.train import load_model as load_forecaster

            return load_forecaster(path)[0]
    except CheckpointError as e:
        raise UserError(str(e)) from None
    raise UserError(f"{path}: a {kind!r} run has no exportable model")


def _onnx(args: argparse.Namespace) -> int:
    try:
        from lstmkit.io.onnx import export
    except ModuleNotFoundError as e:
        raise UserError(f"{e.name} is missing: pip install 'lstmkit[onnx]'") from None
    from lstmkit.series.auto import Ensemble
    from lstmkit.series.many import GlobalEnsemble

    output_file(args.out, "--out")
    model = load_run_model(args.run)
    if isinstance(model, Ensemble):
        return _onnx_ensemble(args, model)
    if isinstance(model, GlobalEnsemble):
        return _onnx_global(args, model)
    if args.horizon is not None:
        raise UserError(
            "--horizon goes with an automatic or global forecaster's run (auto.npz, global.npz)"
        )
    try:
        export(model, args.out, opset=args.opset, sequence_lens=not args.no_sequence_lens)
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    print(f"wrote {args.out}")
    return 0


def _onnx_ensemble(args: argparse.Namespace, ensemble: Any) -> int:
    """The automatic forecaster's whole forecast as one graph (lstmkit.io.onnx_ensemble)."""
    from lstmkit.io.onnx_ensemble import Member, export_ensemble

    if args.no_sequence_lens:
        raise UserError("--no-sequence-lens: the automatic forecaster's graph has no lengths")
    horizon = ensemble.errors.shape[1] if args.horizon is None else args.horizon
    if horizon < 1:
        raise UserError(f"--horizon: expected an integer >= 1, got {horizon}")
    members = [
        Member(
            model, c.lookback, c.difference, tf.season, tf.scaler.mean, tf.scaler.scale, c.hybrid
        )
        for c, tf, model, _ in ensemble.members
    ]
    try:
        proto = export_ensemble(members, horizon, args.out, opset=args.opset)
    except ModuleNotFoundError as e:
        raise UserError(f"{e.name} is missing: pip install 'lstmkit[onnx]'") from None
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    need = next(p.value for p in proto.metadata_props if p.key == "need")
    print(
        f"wrote {args.out}: the median of {len(members)} LSTMs, {horizon} steps from the "
        f"last {need} values (inputs history (N, {need}) float64 and n (N,) int64)"
    )
    return 0


def _onnx_global(args: argparse.Namespace, ensemble: Any) -> int:
    """The global forecaster's whole forecast as one graph (lstmkit.io.onnx_global)."""
    import numpy as np

    from lstmkit.io.onnx_global import GlobalMember, export_global

    if args.no_sequence_lens:
        raise UserError("--no-sequence-lens: the global forecaster's graph has no lengths")
    F, P = len(ensemble.future_names), len(ensemble.past_names)
    unknown = all(e.shape == (1, 1) and np.isnan(e).all() for e in ensemble.errors)
    if args.horizon is None and unknown:  # a run saved before it stored its errors
        raise UserError("--horizon: the run does not record its horizon; pass --horizon H")
    horizon = ensemble.errors[0].shape[1] if args.horizon is None else args.horizon
    if horizon < 1:
        raise UserError(f"--horizon: expected an integer >= 1, got {horizon}")
    members = [
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
    ids = list(ensemble.panel.ids)
    try:
        export_global(members, horizon, args.out, ids, opset=args.opset)
    except ModuleNotFoundError as e:
        raise UserError(f"{e.name} is missing: pip install 'lstmkit[onnx]'") from None
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    need = max(m.need() for m in members)
    short = [i for i, y in zip(ids, ensemble.panel.y) if len(y) < need]
    note = f"; {len(short)} series shorter than {need} values cannot use it" if short else ""
    extra = f", future (N, {need + horizon}, {F}) float64" if F else ""
    extra += f", past (N, {need}, {P}) float64" if P else ""
    print(
        f"wrote {args.out}: the median of {len(members)} LSTMs over {len(ids)} series, "
        f"{horizon} steps from the last {need} values (inputs history (N, {need}) float64, "
        f"n (N,) int64, series (N,) int64, the index in the metadata ids{extra}){note}"
    )
    return 0
