"""``lstmkit text train | sample | eval``: the character-level language model."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import (
    add_run_option,
    add_training_options,
    check_at_least,
    check_positive,
    load_run,
    run_trainer,
    training_config,
)


def add_commands(subparsers: Any) -> None:

    text = subparsers.add_parser("text", help="character-level language model")
    sub = text.add_subparsers(dest="text_command", metavar="ACTION", required=True)

    from lstmkit.text.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a char-LM",
        description="Train a char-LM on text files/folders (default: Python's own stdlib).",
    )
    p.add_argument("--text", nargs="+", metavar="PATH", help="files or folders (default: stdlib)")
    add_training_options(p, d, "parallel streams")
    p.add_argument("--embed", type=int, default=d.embed, help="embedding size (%(default)s)")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="BPTT window (%(default)s)")
    p.add_argument("--eval-chars", type=int, default=d.eval_chars, help="validation characters")
    p.set_defaults(func=_train)

    p = sub.add_parser("sample", help="generate text from a trained run")
    add_run_option(p)
    p.add_argument("--prime", default="def ", help="text to start from (%(default)r)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (%(default)s)")
    p.add_argument(
        "--temperature", type=float, default=0.8, help="< 1 safer, > 1 wilder (%(default)s)"
    )
    p.add_argument("--top-k", type=int, default=None, help="draw from the k likeliest only")
    p.add_argument("--seed", type=int, default=None, help="for a reproducible sample")
    p.set_defaults(func=_sample)

    p = sub.add_parser("eval", help="bits per character on held-out text")
    add_run_option(p)
    p.add_argument(
        "--text",
        nargs="+",
        metavar="PATH",
        help="text to score (default: the validation part of the default corpus)",
    )
    p.add_argument("--max-chars", type=int, default=None, help="score at most this many")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from lstmkit.text.train import TrainConfig, train

    config = training_config(TrainConfig, args)
    summary = run_trainer(args, train, config, args.text)
    if summary is None:
        return 0  # not rank 0
    where = f" on {summary['processes']} MPI processes" if summary["processes"] > 1 else ""
    print(
        f"trained {summary['steps']} steps{where}: validation {summary['val_bpc']:.3f} bits/char "
        f"(best {summary['best_val_bpc']:.3f}), {summary['tokens_per_s']:.0f} chars/s; "
        f"run folder {summary['run']}"
    )
    return 0


def _load(run: str) -> Any:
    from lstmkit.text.train import load_model

    return load_run(load_model, run)


def _sample(args: argparse.Namespace) -> int:
    from lstmkit.text.sample import generate

    model, vocab, _, _ = _load(args.run)
    check_positive(args, "temperature", "top_k")
    check_at_least(args, 0, "seed")
    if args.length < 0:
        raise UserError(f"--length: expected >= 0, got {args.length}")
    sys.stdout.write(args.prime)
    for ch in generate(
        model, vocab, args.prime, args.length, args.temperature, args.top_k, args.seed
    ):
        sys.stdout.write(ch)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from lstmkit.text.corpus import load_corpus
    from lstmkit.text.evaluate import bits_per_char

    check_positive(args, "max_chars")
    model, vocab, _, _ = _load(args.run)
    try:
        text = load_corpus(args.text).val if not args.text else _read_all(args.text)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    if args.max_chars:
        text = text[: args.max_chars]
    ids = vocab.encode(text)
    if len(ids) < 2:
        raise UserError("the text to evaluate has fewer than 2 characters")
    bpc = bits_per_char(model, ids)
    unknown = int((ids == 0).sum())
    if args.json:
        print(json.dumps({"bits_per_char": bpc, "characters": len(ids), "unknown": unknown}))
    else:
        print(f"{bpc:.4f} bits/char over {len(ids)} characters ({unknown} outside the vocabulary)")
    return 0


def _read_all(paths: list[str]) -> str:
    from lstmkit.text.corpus import collect_files, read_text

    return "".join(read_text(p) for p in collect_files(paths))
