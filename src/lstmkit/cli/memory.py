"""``lstmkit memory``, ``lstmkit gradients`` and ``lstmkit explain``: the long memory, shown."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import (
    add_run_option,
    add_variant_options,
    check_at_least,
    check_memory,
    check_positive,
    json_safe,
    output_folder,
    variant_of,
)

# Defaults chosen to finish in a few minutes on a 2-core CPU and still show the contrast.
_DEFAULT_LAGS = {"adding": "10,25,50,100", "copying": "5,10,20", "temporal": "10,25,50,100"}
_DEFAULT_MODELS = {"reber": "lstm,lstm-noforget"}


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise UserError(f"{name}: expected at least one integer, got {text!r}")
    return values


def _name_list(text: str, allowed: tuple[str, ...], name: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise UserError(f"{name}: expected names from {', '.join(allowed)}, got {text!r}")
    return values


# ---- memory ---------------------------------------------------------------------------


def _memory(args: argparse.Namespace) -> int:
    from lstmkit.memory import train

    task = args.task
    models = _name_list(
        args.models or _DEFAULT_MODELS.get(task, "rnn,gru,lstm"), train.MODELS, "--models"
    )
    lags = (
        [args.chunk] if task == "reber" else _int_list(args.lags or _DEFAULT_LAGS[task], "--lags")
    )
    if args.seeds < 1:
        raise UserError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    check_at_least(args, 1, "chunk")
    check_memory(SimpleNamespace(hidden=args.hidden, batch=args.batch, seq_len=max(lags)))
    try:
        config = train.MemoryConfig(
            hidden=args.hidden,
            batch=args.batch,
            lr=args.lr,
            clip=args.clip,
            budget_seconds=args.budget_seconds,
            eval_every=args.eval_every,
            schedule=args.schedule,
            max_steps=args.max_steps,
            init=args.init,
            curriculum=args.curriculum,
            reber_test_steps=args.reber_test_steps,
            variant=variant_of(args),
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    out = output_folder(args.out or f"runs/memory-{task}", "--out", create=True)

    def progress(r: dict[str, Any]) -> None:
        lag = "" if r["lag"] is None else f" lag {r['lag']}"
        print(
            f"  {r['model']}{lag} seed {r['seed']}: {r['metric_name']} {r['test_metric']:.4g} "
            f"(baseline {r['baseline']:.4g}) {'solved' if r['solved'] else 'not solved'} "
            f"in {r['steps']} steps, {r['seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    try:
        records = train.sweep(task, models, lags, args.seeds, config, on_record=progress)
    except ValueError as e:
        raise UserError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    result = json_safe({"results": records})
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    table = train.format_table(records)
    (out / "results.txt").write_text(table + "\n", encoding="utf-8")
    png = train.plot_metric_vs_lag(records, out, init=args.init)
    curves = train.plot_learning_curves(records, out)
    if args.json:
        print(json.dumps(result))
    else:
        print(table)
        figures = f"{png} and {curves}" if curves is not None else str(png)
        print(f"\nwrote {out / 'results.json'}, {out / 'results.txt'}, {figures}")
    return 0


# ---- gradients ------------------------------------------------------------------------


def _gradients(args: argparse.Namespace) -> int:
    from lstmkit.memory import gradients, train

    models = _name_list(args.models, train.MODELS, "--models")
    check_positive(args, "hidden", "batch", "lag", "train_seconds", "train_steps")
    check_at_least(args, 0, "seed")
    check_memory(SimpleNamespace(hidden=args.hidden, batch=args.batch, seq_len=args.lag))
    config = gradients.GradientsConfig(
        hidden=args.hidden,
        batch=args.batch,
        train_seconds=args.train_seconds,
        train_steps=args.train_steps,
        init=args.init,
    )
    out = output_folder(args.out or "runs/gradients", "--out", create=True)
    try:
        rows, curves = gradients.measure(models, args.task, args.lag, args.seed, config)
    except ValueError as e:
        raise UserError(str(e)) from None
    title = f"{args.task}, T = {args.lag}: gradient of the last step's loss"
    png = gradients.plot_gradient_norms(curves, out, title)
    series = {
        f"{m}/{phase}": {k: v.tolist() for k, v in norms.items()}
        for (m, phase), norms in curves.items()
    }
    result = json_safe({"rows": rows, "norms": series})
    (out / "gradients.json").write_text(json.dumps(result) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps({"rows": result["rows"]}))
    else:
        print(gradients.format_table(rows))
        print("\ndecay/step: slope of ln ||dL/dh_t|| per step back in time (x: factor per step)")
        print(f"wrote {png} and {out / 'gradients.json'}")
    return 0


# ---- explain --------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    from lstmkit.explain import explorer

    text = args.text
    path = Path(text)
    if len(text) < 4096 and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--text: cannot read {path}: {e}") from None
    if not text:
        raise UserError("--text: expected a non-empty string or file")
    for flag, value in [("--max-chars", args.max_chars), ("--html-chars", args.html_chars)]:
        if value < 1:
            raise UserError(f"{flag}: expected an integer >= 1, got {value}")
    check_at_least(args, 1, "top")
    text = text[: args.max_chars]
    try:
        model, vocab = explorer.load_run(args.run)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"--run: {e}") from None
    out = output_folder(args.out or Path(args.run) / "explain", "--out", create=True)
    cells = None
    if args.cells:
        cells = _int_list(args.cells, "--cells")
    try:
        report = explorer.explain(
            model, vocab, text, out, cells=cells, top=args.top, html_chars=args.html_chars
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    print(explorer.format_top_cells(report["top_cells"]))
    print("\nwrote " + ", ".join(str(p) for p in report["files"]))
    return 0


def add_commands(subparsers: Any) -> None:
    from lstmkit.memory.tasks import TASKS
    from lstmkit.memory.train import INITS, MODELS

    p = subparsers.add_parser(
        "memory",
        help="RNN vs GRU vs LSTM on long-lag tasks (adding, copying, temporal order, Reber)",
        description="Train each model at each lag within a time budget and compare the test "
        "metric with the memoryless baseline. Writes results.json (with each run's learning "
        "curve), results.txt, metric_vs_lag.png and learning_curves.png to --out.",
    )
    p.add_argument("--task", choices=list(TASKS), default="adding")
    p.add_argument(
        "--lags",
        help="comma-separated lags T (default: adding/temporal 10,25,50,100; copying 5,10,20; "
        "ignored for reber, whose lags vary)",
    )
    p.add_argument(
        "--models",
        help=f"comma-separated, from {', '.join(MODELS)} (default rnn,gru,lstm; "
        "for reber lstm,lstm-noforget)",
    )
    p.add_argument("--budget-seconds", type=float, default=30.0, help="per run (default 30)")
    p.add_argument("--max-steps", type=int, default=None, help="per run (default: no limit)")
    p.add_argument("--seeds", type=int, default=1, help="runs per model and lag (default 1)")
    p.add_argument(
        "--init",
        choices=list(INITS),
        default="chrono",
        help="LSTM initialisation: torch's default, forget-gate bias 1, or chrono (Tallec & "
        "Ollivier 2018, T_max = lag; the default); other models keep torch's default",
    )
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate")
    p.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="Adam's learning rate: constant, or cosine to 0 at --max-steps (constant)",
    )
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (1.0)")
    p.add_argument(
        "--eval-every",
        type=int,
        default=25,
        help="steps between validation evaluations, the learning curve's points (25)",
    )
    p.add_argument(
        "--curriculum",
        type=int,
        metavar="L0",
        help="train first at lags up to L0 (each batch's lag drawn from [L0/2, L0]), growing "
        "it x1.5 each time the model solves it, up to the task's lag; validation and test stay "
        "at the task's lag (default: train at the lag)",
    )
    p.add_argument("--chunk", type=int, default=50, help="reber: truncated-BPTT chunk length")
    p.add_argument(
        "--reber-test-steps",
        type=int,
        default=10_000,
        help="reber: length of each of the 4 test streams, never reset (10000)",
    )
    p.add_argument("--out", help="output folder (default runs/memory-TASK)")
    p.add_argument("--json", action="store_true", help='print {"results": [...]} as JSON')
    add_variant_options(p)  # the LSTMs' (lstm, lstm-noforget); the RNN and GRU have none
    p.set_defaults(func=_memory)

    g = subparsers.add_parser(
        "gradients",
        help="measure how ||dL/dh_t|| vanishes with T - t, at init and after training",
        description="With the loss at the last step only, record the batch-mean norm of "
        "dL/dh_t (and dL/dc_t for the LSTM) for every t, at initialisation and after a short "
        "training; plot them on a log scale and print each model's decay rate per step.",
    )
    g.add_argument("--task", choices=["adding", "temporal"], default="adding")
    g.add_argument("--lag", type=int, default=100)
    g.add_argument("--models", default="rnn,gru,lstm")
    g.add_argument("--train-seconds", type=float, default=20.0, help="per model (default 20)")
    g.add_argument("--train-steps", type=int, default=None)
    g.add_argument(
        "--init",
        choices=list(INITS),
        default="forget1",
        help="LSTM initialisation (default forget1: forget-gate bias 1)",
    )
    g.add_argument("--hidden", type=int, default=64)
    g.add_argument("--batch", type=int, default=64, help="sequences the norms average over")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", help="output folder (default runs/gradients)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=_gradients)

    e = subparsers.add_parser(
        "explain",
        help="gate heat maps, saturation, interpretable cells and an HTML explorer",
        description="Run a trained char-LM over a text and show its gates: PNG figures, a "
        "ranking of cells by correlation with text features, and one self-contained HTML "
        "explorer (no network needed).",
    )
    add_run_option(e, "a char-LM run folder (lstmkit train)")
    e.add_argument("--text", required=True, help="a text file, or the text itself")
    e.add_argument("--out", help="output folder (default RUN/explain)")
    e.add_argument("--cells", help="comma-separated cells of the last layer to plot")
    e.add_argument("--top", type=int, default=8, help="interpretable cells to show")
    e.add_argument("--max-chars", type=int, default=3000, help="of the text to analyse")
    e.add_argument(
        "--html-chars", type=int, default=1000, help="of the text the explorer shows (1000)"
    )
    e.set_defaults(func=_explain)
