"""lstmkit's LSTM, GRU and RNN against torch.nn and ONNX Runtime on the CPU, side by side.

Run from the repository root::

    python benchmarks/bench_lstm.py                 # full table (a few minutes)
    python benchmarks/bench_lstm.py --quick         # small shapes, few repeats
    python benchmarks/bench_lstm.py --json out.json # also write every number as JSON
    python benchmarks/bench_lstm.py --cells LSTM    # only the LSTM's rows (default: all three)

One process runs every implementation on the same float32 data with the same number of
threads (``--threads``, 2 by default: torch.set_num_threads, ONNX Runtime's
intra_op_num_threads and threadpoolctl for NumPy's BLAS). Each implementation is measured
in its own block: a warm-up of at least 0.3 s (which also lets the previous block's
threads stop spinning: OpenMP, OpenBLAS and ONNX Runtime keep idle threads busy-waiting
for a while, which slows whatever runs next on a 2-core machine), then its share of the
repeats (at least ``--repeats`` and 0.5 s in all); the blocks run in three rounds
(lstmkit, torch, ONNX Runtime, lstmkit, ...), so that the machine's drifts (a shared
2-core machine's speed moves by up to ~1.5x from minute to minute) reach every
implementation alike. The table shows medians (the JSON also the minimum).

Rows:

* train: forward + backward of the layer, loss = sum of the outputs, every gradient
  (parameters and x); lstmkit (fused, and the plain reference path) vs torch.nn.LSTM
  (GRU, RNN: their rows "train GRU", ... against torch.nn.GRU, torch.nn.RNN);
* infer: forward over the whole sequence (lstmkit with ``inference=True``, nothing recorded
  for backward); vs torch under no_grad and ONNX Runtime running
  the same weights exported with :func:`lstmkit.io.onnx.export`;
* stream: one step at a time with the state carried (N = 1), latency per step; vs
  torch.nn.LSTMCell and ONNX Runtime on a one-step sequence;
* charlm: one training step of a char-level language model end to end (embedding,
  2-layer LSTM, head, cross-entropy, clipping, Adam) vs the same script in torch;
* memory: the peak memory that one training step adds, each implementation in a fresh
  subprocess (peak RSS above the RSS before the step, after a warm-up on a tiny shape;
  for lstmkit also tracemalloc's peak, which NumPy's allocations report to).

Columns: median time, tokens/s (N*T per second; steps/s for streaming), GFLOP/s (the
matrix products' 2*m*n*k; training counts 3x the forward, the usual forward + 2x
backward), the ratio peer time / lstmkit time (> 1: lstmkit is faster), and the fraction
of this machine's float32 GEMM rate measured in the same run. *target needs*: the share of
the cores' multiply-add peak (also measured in the run, :func:`fma_peak`) at which
lstmkit would meet the speed issue's target on that row; above 100% no implementation
can. (The GEMM rate is no such ceiling: oneDNN's LSTM and ONNX Runtime have measured
above it, e.g. torch's inference at (64, 100, 256, 512) at 111% of it.)

OpenBLAS: environments that set ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE`` pin NumPy's
BLAS to an older, slower kernel. The benchmark re-runs itself with both unset (they are
read when NumPy loads) unless ``--keep-blas-env``; the report says which, and which kernel
NumPy ran (threadpoolctl). Tests and CI leave them alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_UNSET_MARK = "_LSTMKIT_BENCH_UNSET_BLAS_ENV"  # set in the re-executed child

# (N, T, I, H, num_layers, bidirectional)
SHAPES: list[tuple[int, int, int, int, int, bool]] = [
    (1, 100, 32, 64, 1, False),
    (16, 100, 64, 128, 1, False),
    (32, 100, 128, 256, 1, False),
    (64, 100, 256, 512, 1, False),
    (64, 50, 1024, 1024, 1, False),
    (16, 100, 128, 256, 2, True),
]
QUICK_SHAPES = SHAPES[:2] + [(4, 20, 16, 32, 2, True)]
STREAM_H = (64, 128, 256, 512)
# the speed issue's targets: training throughput against torch's, inference against the
# faster of torch and ONNX Runtime
TRAIN_TARGET, INFER_TARGET = 1.0, 1.0
CELLS = ("LSTM", "GRU", "RNN")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


# ---- environment ----------------------------------------------------------------------


def _reexec_without_blas_env(argv: list[str]) -> None:
    """Replace this process by one running the same script without BLAS_ENV (must run
    before NumPy is imported)."""
    present = {k: os.environ[k] for k in BLAS_ENV if k in os.environ}
    if not present or _UNSET_MARK in os.environ:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    env[_UNSET_MARK] = json.dumps(present)
    os.execve(sys.executable, [sys.executable, os.path.abspath(sys.argv[0]), *argv], env)


def add_blas_env_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-blas-env",
        action="store_true",
        help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (by default they are unset)",
    )


def parse_args_without_blas_env(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """The script's arguments (``parser`` gets ``--keep-blas-env``), after re-running it
    without BLAS_ENV unless that flag is given. For the small benchmark scripts."""
    add_blas_env_flag(parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if not args.keep_blas_env:
        _reexec_without_blas_env(argv)
    return args


def blas_env_note(keep: bool) -> str:
    if _UNSET_MARK in os.environ:
        return f"unset by the benchmark (the environment had {os.environ[_UNSET_MARK]})"
    present = {k: os.environ[k] for k in BLAS_ENV if k in os.environ}
    if present:
        return f"kept (--keep-blas-env): {present}" if keep else f"set: {present}"
    return "not set"


def set_threads(n: int) -> dict[str, Any]:
    """n threads for torch and NumPy's BLAS; returns NumPy's BLAS as threadpoolctl sees it."""
    import threadpoolctl
    import torch

    torch.set_num_threads(n)
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    info = [i for i in threadpoolctl.threadpool_info() if "numpy" in i.get("filepath", "")]
    blas = info[0] if info else {}
    return {
        k: blas.get(k)
        for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    } | {"library": os.path.basename(blas.get("filepath", "?"))}


# ---- timing -----------------------------------------------------------------------------


def time_each(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup_s: float = 0.3,
    min_s: float = 0.5,
    rounds: int = 3,
) -> dict[str, list[float]]:
    """Seconds per call of each fn: ``rounds`` rounds, each measuring one fn after the
    other in its own block (see the module doc), so that a drift of the machine's speed
    during a row reaches every implementation alike; in all, at least ``repeats`` calls
    and ``min_s`` seconds per fn."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    per_round = -(-repeats // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            while time.perf_counter() - start < warmup_s:
                fn()
            runs = times[name]
            goal = len(runs) + per_round
            begun = time.perf_counter()
            while len(runs) < goal or (
                time.perf_counter() - begun < min_s / rounds and len(runs) < 1000
            ):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in times.items()}


def gemm_rate(n: int, repeats: int) -> dict[str, float]:
    """float32 GEMM GFLOP/s of NumPy's BLAS and torch on (n, n) @ (n, n)."""
    import numpy as np
    import torch

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b, out = a.copy(), np.empty_like(a)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tout = torch.empty_like(ta)
    t = medians(
        time_each(
            {
                "numpy": lambda: np.matmul(a, b, out=out),
                "torch": lambda: torch.matmul(ta, tb, out=tout),
            },
            repeats,
        )
    )
    return {name: 2.0 * n**3 / sec / 1e9 for name, sec in t.items()}


def fma_peak(threads: int, seconds: float = 0.3) -> float | None:
    """The cores' float32 multiply-add peak in GFLOP/s: ``threads`` threads at once, each
    running a compiled loop of fused multiply-adds on 256 independent accumulators (so no
    addition waits for another: the cores' issue rate, not their latency). No
    implementation's products run faster. None without numba."""
    try:
        import numba
    except ImportError:
        return None
    import threading

    import numpy as np

    @numba.njit(nogil=True, fastmath=True)
    def loop(n: int, a: float, b: float) -> float:
        x = np.arange(256).astype(np.float32) * np.float32(1e-3)
        for _ in range(n):
            for j in range(256):
                x[j] = x[j] * a + b
        return float(x.sum())

    a, b = np.float32(0.999), np.float32(1e-3)
    loop(10, a, b)  # compile
    start = time.perf_counter()
    loop(10_000, a, b)
    n = max(1, int(10_000 * seconds / (time.perf_counter() - start)))
    best = 0.0
    for _ in range(3):
        workers = [threading.Thread(target=loop, args=(n, a, b)) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, threads * 2.0 * 256 * n / (time.perf_counter() - start) / 1e9)
    return best


def lstm_flops(
    N: int, T: int, I: int, H: int, layers: int, bidirectional: bool, gates: int = 4
) -> float:
    """Forward FLOPs of the matrix products (2 per multiply-add), all layers and directions;
    ``gates``: 4 for the LSTM, 3 for the GRU, 1 for the RNN."""
    D = 2 if bidirectional else 1
    total = 0.0
    for layer in range(layers):
        layer_in = I if layer == 0 else D * H
        total += D * 2.0 * T * N * gates * H * (layer_in + H)
    return total


# ---- the implementations -------------------------------------------------------------


def make_models(
    shape: tuple[int, int, int, int, int, bool], seed: int = 0, cell: str = "LSTM"
) -> dict[str, Any]:
    """lstmkit layer (fused), its reference twin, torch twin, and the float32 input."""
    import numpy as np
    import torch

    import lstmkit as lk

    N, T, I, H, L, bi = shape
    layer = getattr(lk, cell)(I, H, num_layers=L, bidirectional=bi, seed=seed)
    reference = getattr(lk, cell)(I, H, num_layers=L, bidirectional=bi, seed=seed)
    reference.impl = "reference"
    module = getattr(torch.nn, cell)(I, H, num_layers=L, bidirectional=bi)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = np.random.default_rng(seed + 1).standard_normal((T, N, I)).astype(np.float32)
    return {"lstmkit": layer, "reference": reference, "torch": module, "x": x}


def _train_fn(layer: Any, x: Any) -> Callable[[], Any]:
    import numpy as np

    def run() -> None:
        layer.zero_grad()
        y, _ = layer(x)
        layer.backward(np.ones_like(y))

    return run


def _torch_train_fn(module: Any, x: Any) -> Callable[[], Any]:
    import torch

    xt = torch.from_numpy(x).requires_grad_(True)

    def run() -> None:
        module.zero_grad()
        xt.grad = None
        y, _ = module(xt)
        y.sum().backward()

    return run


def _onnx_session(layer: Any, threads: int) -> Any:
    """An ONNX Runtime session running ``layer``'s weights (inputs x, h0, c0)."""
    import onnxruntime as ort

    from lstmkit.io.onnx import export

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lstm.onnx")
        export(layer, path, sequence_lens=False)
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _row(
    kind: str,
    shape: Any,
    runs: dict[str, list[float]],
    flops: float,
    tokens: int,
    gemm: float,
    cell: str = "LSTM",
) -> dict[str, Any]:
    times = medians(runs)
    base = times["lstmkit"]
    row: dict[str, Any] = {"kind": kind, "cell": cell, "shape": shape, "ms": {}, "ratio": {}}
    row["ms_min"] = {name: min(ts) * 1e3 for name, ts in runs.items()}
    for name, sec in times.items():
        row["ms"][name] = sec * 1e3
        if name != "lstmkit":
            row["ratio"][name] = sec / base
    row["tokens_per_s"] = {name: tokens / sec for name, sec in times.items()}
    row["gflops"] = {name: flops / sec / 1e9 for name, sec in times.items()}
    row["gemm_fraction"] = {name: flops / sec / 1e9 / gemm for name, sec in times.items()}
    return row


def train_row(
    shape: tuple[int, int, int, int, int, bool],
    repeats: int,
    gemm: float,
    reference: bool = True,
    peak: float | None = None,
    cell: str = "LSTM",
    **timing: float,
) -> dict[str, Any]:
    """One training row; ``target_needs`` as a share of ``peak`` (GFLOP/s), or of the GEMM
    rate without one."""
    m = make_models(shape, cell=cell)
    fns = {"lstmkit": _train_fn(m["lstmkit"], m["x"]), "torch": _torch_train_fn(m["torch"], m["x"])}
    if reference:
        fns["reference"] = _train_fn(m["reference"], m["x"])
    runs = time_each(fns, repeats, **timing)
    N, T = shape[0], shape[1]
    row = _row("train", shape, runs, 3 * lstm_flops(*shape, GATES[cell]), N * T, gemm, cell)
    row["target_needs"] = TRAIN_TARGET * row["gflops"]["torch"] / (peak or gemm)
    return row


def infer_row(
    shape: tuple[int, int, int, int, int, bool],
    repeats: int,
    gemm: float,
    threads: int,
    peak: float | None = None,
    cell: str = "LSTM",
) -> dict[str, Any]:
    import numpy as np
    import torch

    m = make_models(shape, cell=cell)
    layer, module, x = m["lstmkit"], m["torch"], m["x"]
    layer.eval()
    xt = torch.from_numpy(x)

    def torch_run() -> None:
        with torch.no_grad():
            module(xt)

    N, T, I, H, L, bi = shape
    zeros = np.zeros((L * (2 if bi else 1), N, H), np.float32)
    session = _onnx_session(layer, threads)
    feeds = {"x": x, "h0": zeros, "c0": zeros} if cell == "LSTM" else {"x": x, "h0": zeros}
    fns = {
        "lstmkit": lambda: layer(x, inference=True),
        "torch": torch_run,
        "onnxruntime": lambda: session.run(None, feeds),
    }
    runs = time_each(fns, repeats)
    row = _row("infer", shape, runs, lstm_flops(*shape, GATES[cell]), N * T, gemm, cell)
    times = medians(runs)
    row["ratio"]["best_peer"] = min(times["torch"], times["onnxruntime"]) / times["lstmkit"]
    best = max(row["gflops"]["torch"], row["gflops"]["onnxruntime"])
    row["target_needs"] = INFER_TARGET * best / (peak or gemm)
    return row


def stream_row(H: int, steps: int, repeats: int, gemm: float, threads: int) -> dict[str, Any]:
    """Latency of one step (N = 1, I = H), the state carried from step to step."""
    import numpy as np
    import torch

    import lstmkit as lk

    I = H
    layer = lk.LSTM(I, H, seed=0).eval()
    cell = torch.nn.LSTMCell(I, H)
    sd = layer.state_dict()
    cell.load_state_dict({k[: -len("_l0")]: torch.from_numpy(v) for k, v in sd.items()})
    xs = np.random.default_rng(1).standard_normal((steps, 1, I)).astype(np.float32)
    xts = torch.from_numpy(xs)
    session = _onnx_session(layer, threads)

    def lk_run() -> None:
        state = None
        for t in range(steps):
            _, state = layer.step(xs[t], state)

    def torch_run() -> None:
        with torch.no_grad():
            hc = None
            for t in range(steps):
                hc = cell(xts[t], hc)

    def ort_run() -> None:
        h = c = np.zeros((1, 1, H), np.float32)
        for t in range(steps):
            _, h, c = session.run(None, {"x": xs[t : t + 1], "h0": h, "c0": c})

    fns = {"lstmkit": lk_run, "torch_cell": torch_run, "onnxruntime": ort_run}
    runs = {k: [t / steps for t in v] for k, v in time_each(fns, repeats).items()}
    row = _row("stream", (1, 1, I, H, 1, False), runs, lstm_flops(1, 1, I, H, 1, False), 1, gemm)
    row["us"] = {k: v * 1e6 for k, v in medians(runs).items()}
    return row


def charlm_row(repeats: int, gemm: float, batch: int = 64, seq_len: int = 128) -> dict[str, Any]:
    """One char-LM training step end to end (embedding, 2-layer LSTM 256, linear head,
    softmax cross-entropy, gradient clipping at 5, Adam; the state carried between steps),
    with :mod:`lstmkit.text`'s model and optimizer, against the same script in torch."""
    import numpy as np
    import torch

    from lstmkit.nn.losses import softmax_cross_entropy
    from lstmkit.nn.optim import Adam, clip_grad_norm
    from lstmkit.text.model import CharLM, CharLMConfig

    V, E, H, L = 96, 64, 256, 2
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, size=(seq_len + 1, batch))
    x, targets = ids[:-1], ids[1:]
    model = CharLM(CharLMConfig(V, embed=E, hidden=H, layers=L), seed=0)
    optimizer = Adam(model.parameters(), model.grads, lr=2e-3)
    carry: dict[str, Any] = {"lk": None, "torch": None}

    def lk_step() -> None:
        logits, state = model(x, carry["lk"])
        _, dlogits = softmax_cross_entropy(logits, targets)
        model.zero_grad()
        model.backward(dlogits)
        clip_grad_norm(model.grads, 5.0)
        optimizer.step()
        carry["lk"] = state

    embed, lstm, head = torch.nn.Embedding(V, E), torch.nn.LSTM(E, H, L), torch.nn.Linear(H, V)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    t_opt = torch.optim.Adam(params, lr=2e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(targets)

    def torch_step() -> None:
        y, state = lstm(embed(tx), carry["torch"])
        loss = torch.nn.functional.cross_entropy(head(y).reshape(-1, V), ty.reshape(-1))
        t_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        t_opt.step()
        carry["torch"] = tuple(s.detach() for s in state)

    runs = time_each({"lstmkit": lk_step, "torch": torch_step}, repeats)
    shape = (batch, seq_len, E, H, L, False)
    flops = 3 * (lstm_flops(*shape) + 2.0 * seq_len * batch * H * V)
    return _row("charlm", shape, runs, flops, batch * seq_len, gemm)


# ---- memory (subprocesses) -----------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(impl: str, shape: tuple[int, int, int, int, int, bool]) -> dict[str, Any]:
    """One training step in this (fresh) process; the peak memory it adds, in MiB."""
    import tracemalloc

    import torch

    torch.set_num_threads(2)
    # warm up (load the compiled kernels) on one time step of the same sizes: the same code
    # paths as the measured step (they depend on N, I, H, not T), next to no memory
    tiny = (shape[0], 1, *shape[2:])
    for s in (tiny, shape):
        m = make_models(s)
        if impl == "torch":
            for prm in m["torch"].parameters():
                prm.grad = torch.zeros_like(prm)  # lstmkit allocates its grads up front too
            fn = _torch_train_fn(m["torch"], m["x"])
        else:
            fn = _train_fn(m[impl], m["x"])
        if s == tiny:
            fn()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = _rss_kib("VmRSS")
    tracemalloc.start()
    fn()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = {"rss_mib": (_rss_kib("VmHWM") - before) / 1024}
    if impl != "torch":
        out["tracemalloc_mib"] = traced / 2**20
    return out


def memory_row(shape: tuple[int, int, int, int, int, bool]) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": "memory", "shape": shape}
    for impl in ("lstmkit", "torch"):
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", impl, json.dumps(shape)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ.copy(),
        )
        row[impl] = json.loads(out.stdout.strip().splitlines()[-1])
    row["ratio"] = {"torch": row["torch"]["rss_mib"] / max(row["lstmkit"]["rss_mib"], 1e-9)}
    return row


# ---- report -------------------------------------------------------------------------------


def _fmt_shape(shape: Any) -> str:
    N, T, I, H, L, bi = shape
    return f"N={N} T={T} I={I} H={H}" + (f" L={L}" if L > 1 else "") + (" bi" if bi else "")


def format_row(row: dict[str, Any]) -> str:
    shape = _fmt_shape(row["shape"])
    if row["kind"] == "memory":
        lk_, th = row["lstmkit"], row["torch"]
        return (
            f"memory {shape:28s} peak added by a training step: lstmkit "
            f"{lk_['rss_mib']:.1f} MiB RSS ({lk_['tracemalloc_mib']:.1f} MiB tracemalloc), "
            f"torch {th['rss_mib']:.1f} MiB RSS; torch/lstmkit {row['ratio']['torch']:.2f}"
        )
    unit, scale = ("us", 1e3) if row["kind"] == "stream" else ("ms", 1.0)
    cells = []
    for name, ms in row["ms"].items():
        ratio = f" (x{row['ratio'][name]:.2f})" if name in row["ratio"] else ""
        cells.append(
            f"{name} {ms * scale:.3g} {unit}{ratio} {row['gflops'][name]:.1f} GF/s "
            f"{100 * row['gemm_fraction'][name]:.0f}%"
        )
    if "target_needs" in row:
        cells.append(f"target needs {100 * row['target_needs']:.0f}%")
    tok = row["tokens_per_s"]["lstmkit"]
    kind = row["kind"] + ("" if row.get("cell", "LSTM") == "LSTM" else " " + row["cell"])
    return f"{kind:10s} {shape:28s} {tok:9.0f} tok/s | " + " | ".join(cells)


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"machine: {result['machine']}",
        f"threads: {result['threads']}; BLAS: {result['blas']}",
        f"OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE: {result['blas_env']}",
        "float32 GEMM rate: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in result["gemm_gflops"].items())
        + f" -> reference rate {result['gemm']:.0f} GFLOP/s",
        f"float32 multiply-add peak ({result['threads']} threads): "
        + (f"{result['peak']:.0f} GFLOP/s" if result["peak"] else "not measured (no numba)"),
        "",
    ]
    lines += [format_row(row) for row in result["rows"]]
    lines.append("")
    lines.append("(xR): peer time / lstmkit time, > 1 means lstmkit is faster; %: of GEMM rate")
    ceiling = "multiply-add peak" if result["peak"] else "GEMM rate (no peak measured)"
    lines.append(
        f"target needs: the share of the {ceiling} at which lstmkit would meet the issue's "
        f"target ({TRAIN_TARGET}x torch in training, {INFER_TARGET}x the faster peer in "
        "inference)" + ("; above 100% no implementation meets it" if result["peak"] else "")
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    blas = set_threads(args.threads)
    quick = args.quick
    shapes = QUICK_SHAPES if quick else SHAPES
    repeats = 3 if quick else args.repeats
    rates = gemm_rate(1024 if quick else 2048, 3 if quick else 7)
    gemm = max(rates.values())
    peak = fma_peak(args.threads)
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "threads": args.threads,
        "blas": blas,
        "blas_env": blas_env_note(args.keep_blas_env),
        "gemm_gflops": rates,
        "gemm": gemm,
        "peak": peak,
        "rows": [],
    }
    rows = result["rows"]
    cells = [c for c in CELLS if c in args.cells.split(",")]
    for cell in cells:
        for shape in shapes:
            n = max(3, repeats // 2) if shape[3] >= 512 else repeats
            rows.append(train_row(shape, n, gemm, args.reference, peak, cell))
            print(format_row(rows[-1]), flush=True)
        for shape in shapes:
            rows.append(infer_row(shape, repeats, gemm, args.threads, peak, cell))
            print(format_row(rows[-1]), flush=True)
    for H in STREAM_H[:2] if quick else STREAM_H:
        rows.append(stream_row(H, 50 if quick else 200, repeats, gemm, args.threads))
        print(format_row(rows[-1]), flush=True)
    rows.append(charlm_row(repeats, gemm, batch=16 if quick else 64, seq_len=32 if quick else 128))
    print(format_row(rows[-1]), flush=True)
    if not args.no_memory:
        for shape in shapes:
            rows.append(memory_row(shape))
            print(format_row(rows[-1]), flush=True)
    # both rates once more: a first measurement disturbed by another process on a core
    # would inflate every share (seen: 105 and 117 GFLOP/s against 192-197 and 223-231)
    again = gemm_rate(1024 if quick else 2048, 3 if quick else 7)
    rescale(result, max(gemm, *again.values()), max(peak or 0.0, fma_peak(args.threads) or 0.0))
    return result


def rescale(result: dict[str, Any], gemm: float, peak: float) -> None:
    """Restate the result's shares against new rates (GFLOP/s; a peak of 0: none)."""
    old_gemm, old_peak = result["gemm"], result["peak"]
    for row in result["rows"]:
        if "gemm_fraction" in row:
            row["gemm_fraction"] = {k: v * old_gemm / gemm for k, v in row["gemm_fraction"].items()}
        if "target_needs" in row:
            row["target_needs"] *= (old_peak or old_gemm) / (peak or gemm)
    result["gemm"], result["peak"] = gemm, peak or None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, 3 repeats")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    add_blas_env_flag(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument(
        "--no-reference", dest="reference", action="store_false", help="skip the plain path"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory rows")
    parser.add_argument(
        "--cells", default=",".join(CELLS), help="the layers' rows to run (default: %(default)s)"
    )
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        impl, shape = args.memory_child
        print(json.dumps(memory_child(impl, tuple(json.loads(shape)))))
        return
    if not args.keep_blas_env:
        _reexec_without_blas_env(argv)
    result = run(args)
    print()
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
