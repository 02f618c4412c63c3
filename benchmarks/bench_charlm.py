"""Char-LM quality for equal wall-clock time: lstmkit vs an equivalent PyTorch model.

Both train the configuration of the training issue — embedding 64, 2x256 LSTM, seq 128,
batch 64, Adam 2e-3, global-norm clip 5 — on the default corpus (Python's stdlib), with
the same truncated-BPTT windows and carried state, for the same number of minutes each,
single process, 2 threads. Both are then scored by the same function on the same
validation text (bits per character). Also prints training tokens/s for both.

    .venv/bin/python benchmarks/bench_charlm.py --minutes 10 [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from lstmkit.nn.losses import softmax_cross_entropy
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.text.corpus import Vocab, load_corpus
from lstmkit.text.evaluate import bits_per_char
from lstmkit.text.model import CharLM, CharLMConfig
from lstmkit.text.tbptt import windows

EMBED, HIDDEN, LAYERS, SEQ, BATCH, LR, CLIP = 64, 256, 2, 128, 64, 2e-3, 5.0


def train_lstmkit(ids: np.ndarray, V: int, seconds: float, seed: int) -> tuple[CharLM, int]:
    model = CharLM(CharLMConfig(V, EMBED, HIDDEN, LAYERS), seed=seed)
    opt = Adam(model.parameters(), model.grads, lr=LR)
    state, steps, end = None, 0, time.perf_counter() + seconds
    for x, y in windows(ids, BATCH, SEQ, drop_last=True):
        if time.perf_counter() > end:
            break
        logits, state = model(x, state)
        _, dlogits = softmax_cross_entropy(logits, y)
        model.zero_grad()
        model.backward(dlogits)
        clip_grad_norm(model.grads, CLIP)
        opt.step()
        steps += 1
    return model, steps


def train_torch(ids: np.ndarray, V: int, seconds: float, seed: int) -> tuple[object, int]:
    import torch

    torch.manual_seed(seed)

    class TorchLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(V, EMBED)
            self.lstm = torch.nn.LSTM(EMBED, HIDDEN, LAYERS)
            self.head = torch.nn.Linear(HIDDEN, V)

        def forward(self, x, state=None):  # type: ignore[no-untyped-def]
            y, state = self.lstm(self.embed(x), state)
            return self.head(y), state

    model = TorchLM()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    state, steps, end = None, 0, time.perf_counter() + seconds
    for x, y in windows(ids, BATCH, SEQ, drop_last=True):
        if time.perf_counter() > end:
            break
        logits, state = model(torch.from_numpy(x.astype(np.int64)), state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(y.astype(np.int64)).reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        steps += 1
    return model, steps


def torch_to_lstmkit(model: object, V: int) -> CharLM:
    """Copy the torch model's weights into a CharLM so both are scored by the same code."""
    lm = CharLM(CharLMConfig(V, EMBED, HIDDEN, LAYERS))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    lm.load_state_dict(sd)
    return lm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="budget per library")
    parser.add_argument("--eval-chars", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    corpus = load_corpus(None)
    vocab = Vocab.build(corpus.train)
    train_ids, val_ids = vocab.encode(corpus.train), vocab.encode(corpus.val[: args.eval_chars])
    V, seconds = len(vocab), 60 * args.minutes
    results = {}
    with threadpool_limits(args.threads):
        for name, fn in [("lstmkit", train_lstmkit), ("torch", train_torch)]:
            t0 = time.perf_counter()
            model, steps = fn(train_ids, V, seconds, args.seed)
            elapsed = time.perf_counter() - t0
            lm = model if isinstance(model, CharLM) else torch_to_lstmkit(model, V)
            bpc = bits_per_char(lm, val_ids, seq_len=SEQ)
            results[name] = {
                "steps": steps,
                "seconds": elapsed,
                "tokens_per_s": steps * SEQ * BATCH / elapsed,
                "val_bpc": bpc,
            }
            if not args.json:
                print(
                    f"{name:8s} {steps:6d} steps  {results[name]['tokens_per_s']:8.0f} tok/s  "
                    f"validation {bpc:.3f} bits/char"
                )
    ratio = results["lstmkit"]["tokens_per_s"] / results["torch"]["tokens_per_s"]
    summary = {"minutes": args.minutes, "results": results, "speed_ratio_lstmkit_over_torch": ratio}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        better = results["lstmkit"]["val_bpc"] <= results["torch"]["val_bpc"]
        print(
            f"throughput ratio lstmkit/torch: {ratio:.2f}x; lstmkit "
            f"{'reaches' if better else 'does NOT reach'} torch's bits/char "
            f"({results['lstmkit']['val_bpc']:.3f} vs {results['torch']['val_bpc']:.3f})"
        )
    if not math.isfinite(results["lstmkit"]["val_bpc"]):
        raise SystemExit("lstmkit diverged")


if __name__ == "__main__":
    main()
