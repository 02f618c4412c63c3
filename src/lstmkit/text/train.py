"""Training a char-LM with truncated BPTT, resumable exactly from its latest checkpoint.

The training text is read as ``batch`` parallel streams; step k trains on window k of
every stream (``seq_len`` characters) with the recurrent state carried over from window
k - 1, so the model learns dependencies longer than one window. Everything a step depends
on (parameters, Adam's moments, the carried state, the dropout generators, the step
number, which fixes the window) is in the checkpoint, so a run killed at any moment and
resumed ends with exactly the parameters of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit import checkpoint
from lstmkit.losses import softmax_cross_entropy
from lstmkit.optim import Adam, clip_grad_norm
from lstmkit.runs import Run, progress
from lstmkit.schedules import Constant, WarmupCosine
from lstmkit.tbptt import num_windows, windows
from lstmkit.text.corpus import Corpus, Vocab, load_corpus
from lstmkit.text.evaluate import bits_per_char
from lstmkit.text.model import CharLM, CharLMConfig

KIND = "charlm"
_MODEL_KEYS = ("embed", "hidden", "layers", "dropout")


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, mismatched resume); the message says why."""


class _Interrupts:
    """SIGINT and SIGTERM raise KeyboardInterrupt, but never inside :meth:`hold`.

    A signal that arrives during a held block (a parameter update, saving the best
    checkpoint) is raised when the block ends, so the checkpoint saved on interrupt never
    holds half-updated parameters and ``--resume`` stays exact. Handlers are installed only
    in the main thread and not over an inherited SIG_IGN.
    """

    def __init__(self) -> None:
        self.holding = False
        self.pending = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(sig)
                if current is not signal.SIG_IGN and current is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@dataclass
class TrainConfig:
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    seq_len: int = 128
    batch: int = 64
    steps: int | None = 2000
    minutes: float | None = None
    lr: float = 2e-3
    warmup: int = 0
    schedule: str = "constant"  # or "cosine" (needs steps)
    clip: float = 5.0
    eval_every: int = 200
    eval_chars: int = 200_000
    seed: int = 0


def corpus_fingerprint(corpus: Corpus) -> str:
    h = hashlib.sha256(corpus.train.encode("utf-8", "replace"))
    return h.hexdigest()[:16]


def save_model(
    run: Run,
    name: str,
    model: CharLM,
    vocab: Vocab,
    config: TrainConfig,
    extra_meta: dict[str, Any] | None = None,
    extra_arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    arrays = {f"model/{k}": v for k, v in model.parameters().items()}
    arrays.update(extra_arrays or {})
    meta = {
        "kind": KIND,
        "model": model.config.to_dict(),
        "vocab": vocab.chars,
        "train_config": asdict(config),
        **(extra_meta or {}),
    }
    return run.save(name, arrays, meta)


def load_model(path: str | Path) -> tuple[CharLM, Vocab, dict[str, Any], dict[str, np.ndarray]]:
    """A char-LM from a checkpoint file or run folder (its best, else latest, checkpoint)."""
    path = Path(path)
    if path.is_dir():
        run = Run(path)
        path = run.checkpoint_path("best" if run.exists("best") else "latest")
    arrays, meta = checkpoint.load(path)
    if meta.get("kind") != KIND:
        raise checkpoint.CheckpointError(
            f"{path}: holds a {meta.get('kind')!r} model, expected a char-LM ({KIND!r})"
        )
    vocab = Vocab(meta["vocab"])
    model = CharLM(CharLMConfig(**meta["model"]))
    params = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    model.load_state_dict(params)
    return model, vocab, meta, arrays


def _check_resume(meta: dict[str, Any], config: TrainConfig, fingerprint: str) -> None:
    stored = meta["train_config"]
    keys: tuple[str, ...] = _MODEL_KEYS + ("seq_len", "batch", "seed", "lr", "clip", "schedule")
    keys += ("warmup",)
    if config.schedule == "cosine":
        keys += ("steps",)  # the length of the cosine: another --steps changes every lr
    differ = [
        f"--{f.name.replace('_', '-')} {stored.get(f.name)} (now {getattr(config, f.name)})"
        for f in fields(config)
        if f.name in keys and stored.get(f.name) != getattr(config, f.name)
    ]
    if differ:
        raise TrainingError(
            "cannot resume: the run was trained with "
            + ", ".join(differ)
            + "; pass the same options (or start a new run with another --out)"
        )
    if meta.get("corpus") != fingerprint:
        raise TrainingError(
            "cannot resume: the training text differs from the run's (its vocabulary and "
            "data order would not match); pass the same --text as the original run"
        )


def train(
    config: TrainConfig,
    out: str | Path,
    text: Sequence[str] | None = None,
    resume: bool = False,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) a char-LM into the run folder ``out``; returns a summary."""
    if config.schedule == "cosine" and not config.steps:
        raise TrainingError("--schedule cosine needs --steps")
    run = Run(out)
    if run.exists() and not resume:
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it")
    if resume and not run.exists():
        raise TrainingError(f"{out}: nothing to resume (no latest.npz)")
    corpus = load_corpus(text)
    fingerprint = corpus_fingerprint(corpus)

    if resume:
        model, vocab, meta, arrays = load_model(run.checkpoint_path("latest"))
        _check_resume(meta, config, fingerprint)
    else:
        vocab = Vocab.build(corpus.train)
        model_config = CharLMConfig(
            len(vocab), config.embed, config.hidden, config.layers, config.dropout
        )
        model = CharLM(model_config, seed=config.seed)
        run.create()
        run.metrics_path.unlink(missing_ok=True)  # from a run killed before its 1st checkpoint

    train_ids = vocab.encode(corpus.train)
    per_epoch = num_windows(len(train_ids), config.batch, config.seq_len, drop_last=True)
    val_ids = vocab.encode(corpus.val[: config.eval_chars])
    optimizer = Adam(model.parameters(), model.grads, lr=config.lr)
    state = model.initial_state(config.batch)
    step, best = 0, math.inf
    if resume:
        optimizer.load_state_dict(
            {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")},
            meta["optimizer"],
        )
        model.set_rng_state(meta["rng"])
        state = (arrays["carry/h"], arrays["carry/c"])
        step, best = meta["step"], meta["best_val_bpc"]
        run.truncate_log(step)
        log(f"resuming {out} at step {step}")

    def save(name: str) -> None:
        opt_arrays, opt_scalars = optimizer.state_dict()
        extra = {f"optim/{k}": v for k, v in opt_arrays.items()}
        extra.update({"carry/h": state[0], "carry/c": state[1]})
        meta = {
            "optimizer": opt_scalars,
            "rng": model.rng_state(),
            "step": step,
            "best_val_bpc": best,
            "corpus": fingerprint,
        }
        save_model(run, name, model, vocab, config, meta, extra)

    def validate() -> float:
        nonlocal best
        bpc = bits_per_char(model, val_ids, seq_len=config.seq_len)
        run.log({"step": step, "val_bpc": bpc, "val_loss": bpc * math.log(2.0)})
        with interrupts.hold():  # best and best.npz change together
            if bpc < best:
                best = bpc
                save("best")
        save("latest")
        return bpc

    def diverged(what: str) -> TrainingError:
        last = run.checkpoint_path("latest")
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint yet"
        return TrainingError(
            f"{what} at step {step + 1}; training stopped ({kept}). Try a lower --lr or --clip"
        )

    schedule: Constant | WarmupCosine = Constant(config.lr)
    if config.schedule == "cosine":
        assert config.steps is not None
        schedule = WarmupCosine(config.lr, config.warmup, config.steps)
    elif config.warmup:
        schedule = WarmupCosine(config.lr, config.warmup, 2**62, min_lr=config.lr)

    def batches_from(k: int) -> Any:
        """Windows from global step k on; each new pass over the text starts from zero state."""
        window = k % per_epoch
        while True:
            yield from windows(train_ids, config.batch, config.seq_len, window, drop_last=True)
            window = 0

    deadline = time.monotonic() + 60 * config.minutes if config.minutes else math.inf
    total = config.steps
    bar = progress(total, "train", disable=not show_progress)
    bar.update(step)
    tokens_per_step = config.batch * config.seq_len
    started, start_step, val_bpc = time.monotonic(), step, math.nan
    # Ctrl-C and SIGTERM (e.g. from a scheduler) end the run: save, then stop.
    interrupts = _Interrupts()
    batches = batches_from(step)
    try:
        with interrupts:
            while (total is None or step < total) and time.monotonic() < deadline:
                # One whole step or none: the forward draws dropout masks (RNG state), the
                # update moves parameters and Adam; a signal waits until the step is done.
                with interrupts.hold():
                    if step % per_epoch == 0:
                        state = model.initial_state(config.batch)
                    x, y = next(batches)  # (T, B) inputs and next-character targets
                    logits, new_state = model(x, state)
                    loss, dlogits = softmax_cross_entropy(logits, y)
                    if not math.isfinite(loss):
                        raise diverged(f"the loss became {loss}")
                    model.zero_grad()
                    model.backward(dlogits)
                    norm = clip_grad_norm(model.grads, config.clip)
                    if not math.isfinite(norm):
                        raise diverged(f"the gradient norm became {norm}")
                    optimizer.lr = schedule(step)
                    optimizer.step()
                    if not all(np.isfinite(w).all() for w in model.parameters().values()):
                        raise diverged("the parameters overflowed to inf/NaN")
                    state, step = new_state, step + 1
                rate = (step - start_step) * tokens_per_step / (time.monotonic() - started)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.3f}", bpc=f"{loss / math.log(2):.3f}", tok_s=f"{rate:.0f}"
                )
                if step % 10 == 0 or step == 1:
                    run.log({"step": step, "train_loss": loss, "grad_norm": norm, "tok_s": rate})
                if step % config.eval_every == 0:
                    val_bpc = validate()
                    bar.write(f"step {step}: validation {val_bpc:.3f} bits/char")
            elapsed = time.monotonic() - started
            if step % config.eval_every != 0 or math.isnan(val_bpc):
                val_bpc = validate()
    except KeyboardInterrupt:
        bar.close()
        save("latest")
        log(f"interrupted at step {step}; saved {run.checkpoint_path('latest')} (--resume goes on)")
        raise
    finally:
        bar.close()
    run.plot_losses()
    return {
        "run": str(run.folder),
        "steps": step,
        "val_bpc": val_bpc,
        "best_val_bpc": best,
        "tokens_per_s": (step - start_step) * tokens_per_step / max(elapsed, 1e-9),
        "vocab_size": len(vocab),
        "parameters": model.num_parameters(),
    }
