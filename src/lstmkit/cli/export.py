"""``lstmkit export onnx``: a trained run's model as an ONNX file that ONNX Runtime runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

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
        "horizon, F) and past (N, need, P) float64. Both also output lo and hi (N, horizon), the "
        "prediction interval of --level.",
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
    p.add_argument(
        "--level",
        type=int,
        help="automatic or global forecaster: outputs lo and hi, the L %% prediction interval "
        "`series forecast --level L` writes (default 80; 0: none, the forecast only)",
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
    for option, value in (("--horizon", args.horizon), ("--level", args.level)):
        if value is not None:
            raise UserError(
                f"{option} goes with an automatic or global forecaster's run (auto.npz, global.npz)"
            )
    try:
        export(model, args.out, opset=args.opset, sequence_lens=not args.no_sequence_lens)
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    print(f"wrote {args.out}")
    return 0


def _onnx_ensemble(args: argparse.Namespace, ensemble: Any) -> int:
    """The automatic forecaster's whole forecast as one graph (lstmkit.io.onnx_ensemble)."""
    from lstmkit.io.onnx_ensemble import export_ensemble, members_of

    if args.no_sequence_lens:
        raise UserError("--no-sequence-lens: the automatic forecaster's graph has no lengths")
    horizon = ensemble.errors.shape[1] if args.horizon is None else args.horizon
    if horizon < 1:
        raise UserError(f"--horizon: expected an integer >= 1, got {horizon}")
    hybrid = any(c.hybrid for c, _, _, _ in ensemble.members)  # refused below, say that first
    interval = None if hybrid else _interval(args.level, [ensemble.errors], horizon)
    try:
        members = members_of(ensemble)
        proto = export_ensemble(members, horizon, args.out, opset=args.opset, interval=interval)
    except ModuleNotFoundError as e:
        raise UserError(f"{e.name} is missing: pip install 'lstmkit[onnx]'") from None
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    need = next(p.value for p in proto.metadata_props if p.key == "need")
    print(
        f"wrote {args.out}: the median of {len(members)} LSTMs, {horizon} steps from the "
        f"last {need} values (inputs history (N, {need}) float64 and n (N,) int64)"
        + _outputs_note(interval)
    )
    return 0


def _onnx_global(args: argparse.Namespace, ensemble: Any) -> int:
    """The global forecaster's whole forecast as one graph (lstmkit.io.onnx_global)."""
    from lstmkit.io.onnx_global import export_global, members_of

    if args.no_sequence_lens:
        raise UserError("--no-sequence-lens: the global forecaster's graph has no lengths")
    F, P = len(ensemble.future_names), len(ensemble.past_names)
    unknown = all(e.shape == (1, 1) and np.isnan(e).all() for e in ensemble.errors)
    if args.horizon is None and unknown:  # a run saved before it stored its errors
        raise UserError("--horizon: the run does not record its horizon; pass --horizon H")
    horizon = ensemble.errors[0].shape[1] if args.horizon is None else args.horizon
    if horizon < 1:
        raise UserError(f"--horizon: expected an integer >= 1, got {horizon}")
    ids = list(ensemble.panel.ids)
    interval = _interval(args.level, ensemble.errors, horizon, ids)
    members = members_of(ensemble)
    try:
        export_global(members, horizon, args.out, ids, opset=args.opset, interval=interval)
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
        f"n (N,) int64, series (N,) int64, the index in the metadata ids{extra})"
        f"{_outputs_note(interval)}{note}"
    )
    return 0


def _interval(
    level: int | None, errors: list[Any], horizon: int, ids: list[str] | None = None
) -> Any:
    """The graph's Interval (half-widths (horizon,) or, with ``ids``, (S, horizon)) of
    ``--level`` from each series' calibration errors (R_i, H); None for --level 0. A
    UserError (one line) if a series' half-widths are not finite."""
    from lstmkit.io.onnx_ensemble import Interval

    given = level is not None
    level = 80 if level is None else level  # as `series forecast`
    if not 0 <= level < 100:
        raise UserError(f"--level: expected a percentage 0 <= level < 100, got {level}")
    if not level:
        return None
    q = np.stack([half_widths(e, level, horizon) for e in errors])  # (S, horizon)
    bad = np.flatnonzero(~np.isfinite(q).all(axis=1))
    if bad.size:
        raise UserError(_refusal(level, given, q[bad], [ids[i] for i in bad] if ids else None))
    return Interval(level, q if ids else q[0])


def half_widths(errors: Any, level: int, horizon: int) -> Any:
    """q (horizon,): the half-widths of `series forecast`'s ``level`` % interval
    (``Ensemble.interval``, ``GlobalEnsemble.interval``) from calibration errors (R, H):
    the pooled conformal quantiles, past step H widened by sqrt(j / H)."""
    from lstmkit.series import conformal

    _, hi = conformal.interval(np.zeros(horizon), conformal.pooled_quantiles(errors, level))
    return hi  # 0 + q


def _refusal(level: int, given: bool, q: Any, names: list[str] | None) -> str:
    """The one line refusing ``level`` whose half-widths q (B, horizon) are inf or NaN."""
    option = f"--level {level}" + ("" if given else " (the default)")
    who = "the run holds"
    if names is not None:
        shown = ", ".join(repr(k) for k in names[:3]) + (", ..." if len(names) > 3 else "")
        who = f"series {shown} of the run hold" + ("s" if len(names) == 1 else "")
    if np.isnan(q).any():
        return (
            f"{option}: {who} no calibration errors (no validation part, or a run saved "
            "before it stored them), so no interval; export the forecast without lo and hi: "
            "--level 0"
        )
    return (
        f"{option}: {who} too few calibration errors for a {level} % interval (a short "
        "history); pass a lower --level, or --level 0 to export the forecast without lo and hi"
    )


def _outputs_note(interval: Any) -> str:
    """What the wrote-line adds for the interval's outputs."""
    if interval is None:
        return ""
    h = np.shape(interval.q)[-1]
    return f"; outputs lo and hi (N, {h}), the {interval.level} % interval (metadata level)"
