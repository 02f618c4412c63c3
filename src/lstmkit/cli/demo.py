"""``lstmkit demo``: the main job in a few minutes — train a char-LM on Python's stdlib."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import check_at_least, check_memory, output_folder

# What a run folder holds: checkpoints, metrics, plots, and temporary or lock files.
_RUN_FILES = (".npz", ".jsonl", ".png", ".json", ".tmp", ".lock")


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train a small char-LM on the stdlib for a few minutes, then sample from it",
        description="Train a char-LM on this interpreter's standard library sources "
        "(no download), print validation bits/char and a generated sample.",
    )
    p.add_argument("--out", default="runs/demo", help="run folder (%(default)s)")
    p.add_argument("--minutes", type=float, default=2.0, help="training time (%(default)s)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import shutil

    from lstmkit.text.sample import generate
    from lstmkit.text.train import TrainConfig, load_model, train

    try:  # the config checks its options
        config = TrainConfig(
            embed=64,
            hidden=args.hidden,
            layers=1,
            seq_len=64,
            batch=32,
            steps=None,
            minutes=args.minutes,
            lr=3e-3,
            eval_every=100,
            eval_chars=100_000,
            seed=args.seed,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    check_at_least(args, 0, "seed")
    check_memory(config)
    out = output_folder(args.out, "--out")
    if out.exists():
        if not _is_run_folder(out):
            raise UserError(
                f"--out: {out} is not empty and holds more than a run (the demo starts by "
                "deleting --out): choose another folder, or empty it yourself"
            )
        shutil.rmtree(out)  # the demo always starts fresh
    output_folder(out, "--out", create=True)  # before the corpus is read and trained on
    print(
        f"Training a 1x{args.hidden} LSTM char-LM on Python's standard library for "
        f"{args.minutes:g} minutes...",
        file=sys.stderr,
    )
    summary = train(config, out, None, log=lambda s: print(s, file=sys.stderr))
    print(
        f"\nvalidation: {summary['val_bpc']:.3f} bits/char after {summary['steps']} steps "
        f"({summary['tokens_per_s']:.0f} chars/s, {summary['parameters']} parameters)"
    )
    model, vocab, _, _ = load_model(out)
    print("\nsample (temperature 0.8, top-k 20):\n")
    sys.stdout.write("def ")
    for ch in generate(model, vocab, "def ", 400, temperature=0.8, top_k=20, seed=args.seed):
        sys.stdout.write(ch)
    print(f"\n\nrun folder: {out}  (metrics.jsonl, loss.png, best.npz, latest.npz)")
    print(f"more: lstmkit text sample --run {out} --prime 'class ' --length 500")
    return 0


def _is_run_folder(path: Path) -> bool:
    """An empty folder, or one holding only a run's files (a checkpoint among them)."""
    entries = list(path.iterdir())
    if not entries:
        return True
    if any(not e.is_file() or e.is_symlink() or e.suffix not in _RUN_FILES for e in entries):
        return False
    return any(e.name in ("latest.npz", "best.npz") for e in entries)
