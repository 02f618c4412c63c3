"""The char-LM training step by phase: lstmkit against torch, one thread, CPU time.

The reference configuration of bench_charlm.py (embedding 64, 2x256 LSTM, seq 128,
batch 64, Adam, global-norm clip 5) on the default corpus (Python's stdlib; its
vocabulary sets the size of the output layer and the softmax), window after window.
Each phase of a step is timed with ``time.process_time`` (CPU time of the process, which
at one thread is unaffected by other jobs taking the other core; with ``--threads 2``
wall time instead), in interleaved rounds of steps for each library; medians per phase.
torch's step is cut at the layer boundaries with ``detach()`` so that its backward can
be timed piece by piece (the same work as one backward call).

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_charlm_phases.py \
        [--rounds 5 --steps 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from itertools import islice

import numpy as np

from lstmkit.nn.losses import softmax_cross_entropy
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.text.corpus import Vocab, load_corpus
from lstmkit.text.model import CharLM, CharLMConfig
from lstmkit.text.tbptt import windows

EMBED, HIDDEN, LAYERS, SEQ, BATCH, LR, CLIP = 64, 256, 2, 128, 64, 2e-3, 5.0
PHASES = (
    "embed fwd",
    "lstm fwd",
    "head fwd",
    "loss fwd+bwd",
    "zero_grad",
    "head bwd",
    "lstm bwd",
    "embed bwd",
    "clip",
    "adam",
)
Step = Callable[[np.ndarray, np.ndarray], dict[str, float]]


class _Clock:
    """Per-phase seconds of one step: ``clock("phase")`` closes the phase just run.
    ``now``: ``time.process_time`` (one thread) or ``time.perf_counter`` (more)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.times: dict[str, float] = {}
        self.last = now()

    def __call__(self, phase: str) -> None:
        now = self.now()
        self.times[phase] = now - self.last
        self.last = now


def lstmkit_step(V: int, seed: int, now: Callable[[], float]) -> Step:
    model = CharLM(CharLMConfig(V, EMBED, HIDDEN, LAYERS), seed=seed)
    opt = Adam(model.parameters(), model.grads, lr=LR)
    state = None

    def step(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        nonlocal state
        clock = _Clock(now)
        e = model.embed(x)  # (T, N, E)
        clock("embed fwd")
        h, state = model.lstm(e, state)  # (T, N, H)
        clock("lstm fwd")
        logits = model.head(model.drop(h))  # (T, N, V)
        clock("head fwd")
        _, dlogits = softmax_cross_entropy(logits, y)
        clock("loss fwd+bwd")
        model.zero_grad()
        clock("zero_grad")
        dh = model.drop.backward(model.head.backward(dlogits))
        clock("head bwd")
        de, _ = model.lstm.backward(dh)
        clock("lstm bwd")
        model.embed.backward(de)
        clock("embed bwd")
        clip_grad_norm(model.grads, CLIP)
        clock("clip")
        opt.step()
        clock("adam")
        return clock.times

    return step


def torch_step(V: int, seed: int, now: Callable[[], float]) -> Step:
    import torch

    torch.manual_seed(seed)
    embed = torch.nn.Embedding(V, EMBED)
    lstm = torch.nn.LSTM(EMBED, HIDDEN, LAYERS)
    head = torch.nn.Linear(HIDDEN, V)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=LR)
    state = None

    def step(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        nonlocal state
        clock = _Clock(now)
        xt, yt = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
        e = embed(xt)
        clock("embed fwd")
        e_cut = e.detach().requires_grad_()
        h, state = lstm(e_cut, state)
        state = tuple(s.detach() for s in state)
        clock("lstm fwd")
        h_cut = h.detach().requires_grad_()
        logits = head(h_cut)
        clock("head fwd")
        logits_cut = logits.detach().requires_grad_()
        loss = torch.nn.functional.cross_entropy(logits_cut.reshape(-1, V), yt.reshape(-1))
        loss.backward()
        clock("loss fwd+bwd")
        opt.zero_grad()
        clock("zero_grad")
        logits.backward(logits_cut.grad)
        clock("head bwd")
        h.backward(h_cut.grad)
        clock("lstm bwd")
        e.backward(e_cut.grad)
        clock("embed bwd")
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        clock("clip")
        opt.step()
        clock("adam")
        return clock.times

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps per library per round")
    parser.add_argument(
        "--threads", type=int, default=1, help="> 1: wall time (noisy on a shared machine)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    now = time.process_time if args.threads == 1 else time.perf_counter

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    corpus = load_corpus(None)
    vocab = Vocab.build(corpus.train)
    data = list(islice(windows(vocab.encode(corpus.train), BATCH, SEQ, drop_last=True), 8))
    V = len(vocab)
    steps = {"lstmkit": lstmkit_step(V, 0, now), "torch": torch_step(V, 0, now)}
    times: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PHASES} for k in steps}
    with threadpool_limits(args.threads):
        for fn in steps.values():  # warm-up: compilation, first-step buffers
            fn(*data[0])
            fn(*data[1])
        k = 2
        for _ in range(args.rounds):
            for name, fn in steps.items():
                for j in range(args.steps):
                    x, y = data[(k + j) % len(data)]  # (T, N) inputs and targets
                    for phase, seconds in fn(x, y).items():
                        times[name][phase].append(seconds)
            k += args.steps
    medians = {k: {p: float(np.median(v)) * 1e3 for p, v in t.items()} for k, t in times.items()}
    for name in medians:  # the median step (not the sum of medians)
        totals = np.sum([times[name][p] for p in PHASES], axis=0)
        medians[name]["step"] = float(np.median(totals)) * 1e3
    if args.json:
        print(json.dumps({"vocab": V, "threads": args.threads, "ms": medians}, indent=2))
        return
    print(f"vocabulary {V}, {args.rounds} rounds of {args.steps} steps each, medians")
    what = "CPU, 1 thread" if args.threads == 1 else f"wall, {args.threads} threads"
    print(f"{'phase (ms ' + what + ')':26s} {'lstmkit':>8s} {'torch':>8s} {'torch/lk':>8s}")
    for phase in (*PHASES, "step"):
        a, b = medians["lstmkit"][phase], medians["torch"][phase]
        print(f"{phase:26s} {a:8.2f} {b:8.2f} {b / max(a, 1e-9):8.2f}")


if __name__ == "__main__":
    main()
