"""``lstmkit bench``: the speed benchmark against PyTorch and ONNX Runtime.

It runs ``benchmarks/bench_lstm.py`` of the source checkout (the benchmark needs the test
extras — torch, onnxruntime — which the library itself never imports), passing every
argument through: ``lstmkit bench --quick --json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from lstmkit.cli.errors import UserError

_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_lstm.py"


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time lstmkit's LSTM against torch and ONNX Runtime (benchmarks/bench_lstm.py)",
        description="Run benchmarks/bench_lstm.py; arguments after `bench` go to it "
        "(e.g. --quick, --json, --keep-blas-env, --no-memory; `lstmkit bench -- --help`).",
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    if not _SCRIPT.is_file():
        raise UserError(f"{_SCRIPT} not found: run from a source checkout (pip install -e .)")
    passed = [a for a in args.args if a != "--"]
    return subprocess.call([sys.executable, str(_SCRIPT), *passed])
