"""Data-parallel training on one host: 1 process x 2 threads vs 2 MPI processes x 1 thread.

The char-LM configuration of the training issue (embedding 64, 2x256 LSTM, seq 128,
batch 64, Adam 2e-3, clip 5) on the default corpus, trained by ``lstmkit.text.train`` —
the same code path as ``lstmkit text train`` — in both layouts, plus 1 process x 1 thread
as the per-core reference ("threads": OMP/OpenBLAS/MKL/NUMBA_NUM_THREADS). Reports training
tokens/s, the share of step time spent in the gradient Allreduce (including waiting for the
slower rank), the cost of one bare Allreduce of the gradient buffer, and from that cost, on
paper, the expected scaling to K nodes over a network link (see :func:`scaling`).

    .venv/bin/python benchmarks/bench_mpi.py --steps 20 [--repeats 2] [--json]

Needs the MPI extra (``pip install 'lstmkit[mpi]'``: mpi4py and MPICH's mpiexec).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMBED, HIDDEN, LAYERS, SEQ, BATCH = 64, 256, 2, 128, 64
LINKS_GBIT = (10.0, 25.0, 100.0)  # network links for the scaling estimate, Gbit/s
LATENCY = 20e-6  # s per message hop over a network (typical TCP/Ethernet order)


def worker(steps: int) -> None:
    """Run under mpiexec (or alone): warm up, train ``steps`` steps, time a bare Allreduce."""
    import numpy as np
    from threadpoolctl import threadpool_info

    from lstmkit.text.train import TrainConfig, train
    from lstmkit.train import distributed

    comm = distributed.from_environment(timeout=None)
    folder = comm.broadcast(tempfile.mkdtemp(prefix="bench_mpi_") if comm.rank == 0 else None)
    config = TrainConfig(
        embed=EMBED, hidden=HIDDEN, layers=LAYERS, seq_len=SEQ, batch=BATCH, lr=2e-3, clip=5.0,
        eval_every=10**9, eval_chars=4096,
    )  # fmt: skip
    quiet = lambda s: None  # noqa: E731
    try:
        config.steps = 2  # warm-up: JIT kernels, BLAS buffers, page cache of the corpus
        train(config, Path(folder) / "warm", show_progress=False, log=quiet, comm=comm)
        comm.allreduce_seconds = 0.0
        config.steps = steps
        summary = train(config, Path(folder) / "run", show_progress=False, log=quiet, comm=comm)
    finally:
        comm.barrier()
        if comm.rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
    params = int(summary["parameters"])
    step_s = BATCH * SEQ / summary["tokens_per_s"]
    bare = np.zeros(params + 3, np.float32)  # the trainer's buffer: gradients + 3 scalars
    comm.barrier()
    started, repeats = time.perf_counter(), 20
    for _ in range(repeats):
        comm.allreduce_mean_(bare)
    bare_s = (time.perf_counter() - started) / repeats
    blas = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
    record = {
        "processes": comm.size,
        "blas_threads": blas[0] if blas else None,
        "steps": steps,
        "parameters": params,
        "tokens_per_s": summary["tokens_per_s"],
        "step_s": step_s,
        "allreduce_s_per_step": comm.allreduce_seconds / steps,
        "allreduce_share": comm.allreduce_seconds / steps / step_s,
        "bare_allreduce_s": bare_s,
        "bytes_per_step": int(bare.nbytes),
    }
    if comm.rank == 0:
        print("RESULT " + json.dumps(record), flush=True)


def _launch(processes: int, threads: int, steps: int, mpiexec: str | None) -> dict:
    env = {**os.environ}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    cmd = [sys.executable, __file__, "--worker", "--steps", str(steps)]
    if processes > 1:
        if mpiexec is None:
            raise SystemExit("no mpiexec found: pip install 'lstmkit[mpi]'")
        cmd = [mpiexec, "-n", str(processes), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict = json.loads(lines[-1][len("RESULT ") :])
    return result


def scaling(one: dict, two: dict) -> dict:
    """Expected efficiency on K nodes from the measured compute and the Allreduce model.

    Per step each rank computes its B/K streams (compute time proportional to the per-rank
    batch b: t_c = b * T * c, with c the per-token time of one core, measured in the
    2 x 1 run) and then all-reduces 4P bytes; a ring Allreduce moves 2(K-1)/K * 4P bytes
    per rank over its link: t_a = 2(K-1)/K * 4P / bandwidth + 2(K-1) * latency. The
    gradient buffer is reduced after backward (no overlap), so the step takes t_c + t_a and
    the efficiency is t_c / (t_c + t_a). b_50 and b_90: the per-rank batch (streams) at
    which communication is half of / a ninth of compute, i.e. where it stops being hidden.
    """
    nbytes = two["bytes_per_step"]
    per_rank = BATCH // two["processes"]
    compute = two["step_s"] - two["allreduce_s_per_step"]  # s per step for per_rank streams
    c = compute / (per_rank * SEQ)  # s per token on one core
    shm_bw = nbytes / two["bare_allreduce_s"]  # 2 ranks: each sends/receives ~ 4P/2 twice
    out: dict = {"per_token_core_s": c, "shared_memory_bytes_per_s": shm_bw, "links": {}}
    for gbit in LINKS_GBIT:
        bw = gbit * 1e9 / 8
        rows = []
        for K in (2, 4, 8, 16, 32):
            t_a = 2 * (K - 1) / K * nbytes / bw + 2 * (K - 1) * LATENCY
            b = BATCH // K if BATCH % K == 0 else BATCH / K
            t_c = b * SEQ * c
            rows.append(
                {
                    "nodes": K,
                    "allreduce_s": t_a,
                    "efficiency_batch64": t_c / (t_c + t_a),
                    "b_50": t_a / (SEQ * c),
                    "b_90": 9 * t_a / (SEQ * c),
                }
            )
        out["links"][gbit] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="measured steps per layout")
    parser.add_argument("--repeats", type=int, default=2, help="alternate runs, keep the best")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps)
        return
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    layouts = {"1x2": (1, 2), "2x1": (2, 1), "1x1": (1, 1)}  # 1x1: the per-core reference
    runs: dict[str, list[dict]] = {name: [] for name in layouts}
    for _ in range(args.repeats):  # alternating, so a busy moment hits every layout alike
        for name, (processes, threads) in layouts.items():
            runs[name].append(_launch(processes, threads, args.steps, mpiexec))
    best = {name: max(rs, key=lambda r: r["tokens_per_s"]) for name, rs in runs.items()}
    one, two, single = best["1x2"], best["2x1"], best["1x1"]
    model = scaling(one, two)
    if args.json:
        print(json.dumps({**best, "scaling": model}, indent=2))
        return
    print(f"char-LM E={EMBED} 2x{HIDDEN} LSTM, seq {SEQ}, batch {BATCH}: {one['parameters']:,} "
          f"parameters, {two['bytes_per_step']:,} bytes all-reduced per step")  # fmt: skip
    named = [("1 process x 2 threads", one), ("2 processes x 1 thread", two)]
    for name, r in named + [("(1 process x 1 thread)", single)]:
        print(f"  {name:24s} {r['tokens_per_s']:8.0f} tokens/s  step {r['step_s'] * 1e3:7.1f} ms"
              f"  allreduce {r['allreduce_s_per_step'] * 1e3:6.2f} ms/step "
              f"({100 * r['allreduce_share']:.1f}% of the step)")  # fmt: skip
    print(f"  speed-up 2x1 over 1x2: {two['tokens_per_s'] / one['tokens_per_s']:.2f}; bare "
          f"Allreduce of the buffer {two['bare_allreduce_s'] * 1e3:.2f} ms "
          f"({model['shared_memory_bytes_per_s'] / 1e9:.2f} GB/s shared memory)")  # fmt: skip
    print(f"  compute per token on one core: {model['per_token_core_s'] * 1e6:.1f} us")
    for gbit, rows in model["links"].items():
        print(f"  over {gbit:g} Gbit/s links (ring Allreduce, {LATENCY * 1e6:g} us latency):")
        for r in rows:
            print(f"    K={r['nodes']:2d}: allreduce {r['allreduce_s'] * 1e3:6.2f} ms, "
                  f"efficiency at batch {BATCH} {100 * r['efficiency_batch64']:5.1f}%, "
                  f"per-rank streams for 50%/90%: {r['b_50']:.2f} / {r['b_90']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
