"""``lstmkit study gates``: which parts of the LSTM cell earn their place (Greff et al. 2017)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from types import SimpleNamespace
from typing import Any

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import check_memory, json_safe, output_folder


def add_commands(subparsers: Any) -> None:
    from lstmkit.explain.study.gates import TASKS, VARIANTS, StudyConfig

    d = StudyConfig()
    study = subparsers.add_parser("study", help="studies over many training runs")
    sub = study.add_subparsers(dest="study_command", metavar="STUDY", required=True)
    p = sub.add_parser(
        "gates",
        help="train every LSTM variant on a few tasks, many seeds each, and test each "
        "against the full cell",
        description="Greff et al. (2017) in miniature: each variant (vanilla = the full cell "
        "with peepholes; NIG, NFG, NOG: no input, forget, output gate; NIAF, NOAF: no input, "
        "output activation; NP: no peepholes; CIFG: coupled gates; FGR: full gate recurrence) "
        "trained on each task with each seed within the same budget. Prints mean ± sd per "
        "variant and task, Welch's t-test against vanilla (Holm-corrected) and what was "
        "found; writes results.jsonl (one line per finished run: run the same command again "
        "to go on after an interruption), summary.json, table.txt, report.md and "
        "boxplot.png to --out.",
    )
    p.add_argument("--out", default="runs/study-gates", help="study folder (%(default)s)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated (all)")
    p.add_argument(
        "--tasks",
        default=",".join(d.tasks),
        help=f"comma-separated, from {', '.join(TASKS)} (%(default)s)",
    )
    p.add_argument("--seeds", type=int, default=d.seeds, help="runs per variant and task (5)")
    p.add_argument("--minutes", type=float, default=d.minutes, help="per run (%(default)s)")
    p.add_argument(
        "--steps", type=int, help="per run (reproducible; with --minutes: whichever first)"
    )
    p.add_argument("--no-time-limit", action="store_true", help="--steps alone sets the budget")
    p.add_argument("--hidden", type=int, default=d.hidden, help="LSTM size (%(default)s)")
    p.add_argument("--batch", type=int, default=d.batch, help="sequences per step (%(default)s)")
    p.add_argument(
        "--lr-spread",
        type=float,
        default=d.lr_spread,
        help="random search: lr = the task's lr x 10^U(-S, S), drawn per seed (0: none)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (%(default)s)")
    g = p.add_argument_group("the char-LM task (validation bits/char)")
    g.add_argument("--text", nargs="+", metavar="PATH", help="corpus (default: Python's stdlib)")
    g.add_argument("--embed", type=int, default=d.embed, help="(%(default)s)")
    g.add_argument("--layers", type=int, default=d.layers, help="(%(default)s)")
    g.add_argument("--seq-len", type=int, default=d.seq_len, help="(%(default)s)")
    g.add_argument("--eval-chars", type=int, default=d.eval_chars, help="(%(default)s)")
    g.add_argument("--charlm-lr", type=float, default=d.charlm_lr, help="(%(default)s)")
    g = p.add_argument_group("the memory tasks (test metric)")
    g.add_argument("--lag", type=int, default=d.lag, help="lag T; reber: chunk (%(default)s)")
    g.add_argument("--memory-lr", type=float, default=d.memory_lr, help="(%(default)s)")
    g.add_argument("--reber-test-steps", type=int, default=d.reber_test_steps, help="(%(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_gates)


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _config(args: argparse.Namespace) -> Any:
    from lstmkit.explain.study.gates import StudyConfig

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha: expected a number in (0, 1), got {args.alpha}")
    try:
        return StudyConfig(
            variants=_names(args.variants),
            tasks=_names(args.tasks),
            seeds=args.seeds,
            minutes=None if args.no_time_limit else args.minutes,
            steps=args.steps,
            hidden=args.hidden,
            batch=args.batch,
            lr_spread=args.lr_spread,
            text=args.text,
            embed=args.embed,
            layers=args.layers,
            seq_len=args.seq_len,
            eval_chars=args.eval_chars,
            charlm_lr=args.charlm_lr,
            lag=args.lag,
            memory_lr=args.memory_lr,
            reber_test_steps=args.reber_test_steps,
        )
    except ValueError as e:
        raise UserError(str(e)) from None


def _check_inputs(config: Any) -> None:
    """What would fail only later: scipy missing, a --text that is not there, a model too big."""
    try:
        import scipy.stats  # noqa: F401
    except ModuleNotFoundError:
        raise UserError("scipy is missing: pip install 'lstmkit[study]'") from None
    if "charlm" in config.tasks and config.text:
        from lstmkit.text.corpus import collect_files

        try:
            collect_files(config.text)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
    steps = max(config.seq_len, config.lag)
    check_memory(SimpleNamespace(hidden=config.hidden, batch=config.batch, seq_len=steps))


def _progress(r: dict[str, Any]) -> None:
    value = "diverged" if r["diverged"] else f"{r['metric']} {r['value']:.4g}"
    print(
        f"  {r['task']} {r['variant']} seed {r['seed']}: {value} "
        f"({r['steps']} steps, {r['seconds']:.1f} s, lr {r['lr']:.3g})",
        file=sys.stderr,
        flush=True,
    )


def _gates(args: argparse.Namespace) -> int:
    from lstmkit.explain.study import gates, report, stats
    from lstmkit.train import files

    config = _config(args)
    _check_inputs(config)
    out = output_folder(args.out, "--out", create=True)
    try:
        records = gates.run(config, out, on_record=_progress)
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # RunFolderBusy too
        raise UserError(str(e)) from None
    rows = stats.compare(records, gates.BASE, args.alpha)
    table, found = report.format_table(rows), report.findings(rows, gates.BASE, args.alpha)
    summary = json_safe(
        {"settings": config.settings(), "rows": rows, "findings": found, "records": records}
    )
    files.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    files.write_text(out / "table.txt", table + "\n")
    png = report.plot_boxes(records, rows, out / "boxplot.png")
    files.write_text(out / "report.md", _markdown(table, found, _command(config, args)))
    if args.json:
        print(json.dumps({k: summary[k] for k in ("rows", "findings")}))
    else:
        print(table + "\n\n" + found)
        print(f"\nwrote {out / 'summary.json'}, {out / 'table.txt'}, {out / 'report.md'} and {png}")
    return 0


def _command(config: Any, args: argparse.Namespace) -> str:
    """The command line that runs this study again, every setting spelled out."""
    words = ["lstmkit study gates", f"--out {shlex.quote(str(args.out))}"]
    words += [f"--variants {','.join(config.variants)}", f"--tasks {','.join(config.tasks)}"]
    for name, value in config.settings().items():
        if name == "minutes" and value is None:
            words.append("--no-time-limit")
        elif name == "text" and value:
            words.append("--text " + " ".join(map(shlex.quote, value)))
        elif value is not None and name != "text":
            words.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(words + [f"--seeds {config.seeds}", f"--alpha {args.alpha}"])


def _markdown(table: str, found: str, command: str) -> str:
    return f"# The gate study\n\nReproduce with:\n\n    {command}\n\n```\n{table}\n```\n\n{found}\n"
