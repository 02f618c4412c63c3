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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.nn.losses import softmax_cross_entropy
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.text.corpus import Corpus, Vocab, load_corpus
from lstmkit.text.evaluate import bits_per_char
from lstmkit.text.model import CharLM, CharLMConfig
from lstmkit.text.tbptt import num_windows, windows
from lstmkit.train import distributed, trainer
from lstmkit.train.run_folder import Run, StopRequests, progress
from lstmkit.train.trainer import TrainingError

KIND = "charlm"
_MODEL_KEYS: tuple[str, ...] = ("embed", "hidden", "layers", "dropout", "dtype")


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
    dtype: str = "float32"  # "float64": data-parallel runs then equal one process to rounding


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
    meta = {"vocab": vocab.chars, "train_config": asdict(config), **(extra_meta or {})}
    return trainer.save_model(run, name, KIND, model, meta, extra_arrays)


def load_model(path: str | Path) -> tuple[CharLM, Vocab, dict[str, Any], dict[str, np.ndarray]]:
    """A char-LM from a checkpoint file or run folder (its best, else latest, checkpoint)."""
    arrays, meta, params = trainer.load_model_checkpoint(path, KIND, "a char-LM")
    model = CharLM(CharLMConfig(**meta["model"]))
    model.load_state_dict(params)
    return model, Vocab(meta["vocab"]), meta, arrays


def _check_resume(meta: dict[str, Any], config: TrainConfig, fingerprint: str) -> None:
    keys = _MODEL_KEYS + ("seq_len", "batch", "seed", "lr", "clip", "schedule", "warmup")
    if config.schedule == "cosine":
        keys += ("steps",)  # the length of the cosine: another --steps changes every lr
    trainer.check_same_options(meta["train_config"], config, keys)
    if meta.get("corpus") != fingerprint:
        raise TrainingError(
            "cannot resume: the training text differs from the run's (its vocabulary and "
            "data order would not match); pass the same --text as the original run"
        )


def _validation_bpc(
    model: CharLM, ids: np.ndarray, seq_len: int, comm: distributed.SingleProcess
) -> float:
    """:func:`bits_per_char`, its streams split over the ranks (sums and counts reduced)."""
    if comm.size == 1:
        return bits_per_char(model, ids, seq_len=seq_len)
    batch = max(1, min(32, (len(ids) - 1) // 2))  # bits_per_char's streams
    mine = np.array_split(np.arange(batch), comm.size)[comm.rank]
    sums = np.zeros(2)  # [sum of -ln p, characters]
    was_training = model.training
    model.eval()
    try:
        state = None
        for x, y in windows(ids, batch, seq_len) if mine.size else ():  # (T, batch) each
            cols = slice(int(mine[0]), int(mine[-1]) + 1)
            logits, state = model(x[:, cols], state, inference=True)
            loss, _ = softmax_cross_entropy(logits, y[:, cols], reduction="sum")
            sums += (loss, y[:, cols].size)
    finally:
        model.train(was_training)
    loss_sum, count = comm.allreduce_sum(sums)
    return float(loss_sum / count / math.log(2.0))


def train(
    config: TrainConfig,
    out: str | Path,
    text: Sequence[str] | None = None,
    resume: bool = False,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    comm: distributed.SingleProcess | None = None,
) -> dict[str, Any]:
    """Train (or resume) a char-LM into the run folder ``out``; returns a summary.

    ``comm`` (from :func:`lstmkit.train.distributed.from_environment`) with K > 1 ranks trains
    data-parallel: rank r takes streams [r B/K, (r + 1) B/K) of every window and keeps
    their carried state; one Allreduce per step averages the gradients (and the loss), so
    every rank applies the same update. Rank 0 alone reads and writes the run folder; its
    checkpoints hold the global state, so ``resume`` works with any K dividing B.
    """
    comm = comm or distributed.SingleProcess()
    root = comm.rank == 0
    if config.schedule == "cosine" and not config.steps:
        raise TrainingError("--schedule cosine needs --steps")
    run = Run(out)

    def check_folder() -> None:  # rank 0's view: other hosts may not share the folder
        if run.exists() and not resume:
            raise TrainingError(f"{out} already holds a run; pass --resume to continue it")
        if resume and not run.exists():
            raise TrainingError(f"{out}: nothing to resume (no latest.npz)")

    comm.on_root(check_folder)
    streams = comm.shard(config.batch)  # this rank's columns of every (T, B) window
    corpus = comm.on_all(lambda: load_corpus(text))
    fingerprint = corpus_fingerprint(corpus)
    if len(set(comm.allgather(fingerprint))) > 1:
        raise TrainingError(
            "the MPI processes read different training text; every host needs the same --text"
        )

    if resume:
        latest = run.checkpoint_path("latest")
        model, vocab, meta, arrays = comm.on_root(lambda: load_model(latest))
        _check_resume(meta, config, fingerprint)
    else:
        vocab = Vocab.build(corpus.train)
        model_config = CharLMConfig(
            len(vocab), config.embed, config.hidden, config.layers, config.dropout, config.dtype
        )
        model = CharLM(model_config, seed=config.seed)
        if root:
            run.create()
            run.metrics_path.unlink(missing_ok=True)  # a run killed before its 1st checkpoint
    comm.broadcast_arrays_(model.parameters().values())  # every rank starts from rank 0's

    train_ids = vocab.encode(corpus.train)
    per_epoch = num_windows(len(train_ids), config.batch, config.seq_len, drop_last=True)
    val_ids = vocab.encode(corpus.val[: config.eval_chars])
    optimizer = Adam(model.parameters(), model.grads, lr=config.lr)
    state = model.initial_state(streams.stop - streams.start)
    step, best = 0, math.inf
    if resume:
        optimizer.load_state_dict(
            {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")},
            meta["optimizer"],
        )
        model.set_rng_state(meta["rng"])
        state = (arrays["carry/h"][:, streams], arrays["carry/c"][:, streams])  # (L, B/K, H)
        step, best = meta["step"], meta["best_val_bpc"]
        if root:
            run.truncate_log(step)
            log(f"resuming {out} at step {step}")
    if comm.size > 1:
        stored = meta.get("rng_ranks") if resume else None
        model.set_rng_state(distributed.rank_rng_state(model, comm, config.seed, step, stored))

    def save(name: str) -> None:
        h, c = (comm.gather_concat(s, axis=1) for s in state)  # the global (L, B, H) state
        rng_ranks = comm.gather(model.rng_state())
        if h is None or c is None:
            return  # not rank 0: rank 0 writes
        opt_arrays, opt_scalars = optimizer.state_dict()
        extra = {f"optim/{k}": v for k, v in opt_arrays.items()}
        extra.update({"carry/h": h, "carry/c": c})
        meta = {
            "optimizer": opt_scalars,
            "rng": model.rng_state(),
            "step": step,
            "best_val_bpc": best,
            "corpus": fingerprint,
        }
        if comm.size > 1:
            meta["rng_ranks"] = rng_ranks
        save_model(run, name, model, vocab, config, meta, extra)

    def validate() -> float:
        nonlocal best
        bpc = _validation_bpc(model, val_ids, config.seq_len, comm)
        if root:
            run.log({"step": step, "val_bpc": bpc, "val_loss": bpc * math.log(2.0)})
        if bpc < best:
            best = bpc
            save("best")
        save("latest")
        return bpc

    schedule = trainer.lr_schedule(config.lr, config.schedule, config.warmup, config.steps)

    def batches_from(k: int) -> Any:
        """Windows from global step k on; each new pass over the text starts from zero state."""
        window = k % per_epoch
        while True:
            yield from windows(train_ids, config.batch, config.seq_len, window, drop_last=True)
            window = 0

    deadline = time.monotonic() + 60 * config.minutes if config.minutes else math.inf
    total = config.steps
    bar = progress(total, "train", disable=not show_progress or not root)
    bar.update(step)
    tokens_per_step = config.batch * config.seq_len
    started, start_step, val_bpc = time.monotonic(), step, math.nan
    # Ctrl-C and SIGTERM (e.g. from a scheduler) end the run: save, then stop.
    # K ranks: signals only set a flag, and the ranks agree (through the step's Allreduce) on
    # the loss, on stopping and on rank 0's clock, so all leave the loop after the same step.
    stop = StopRequests()
    flat = distributed.FlatGradients(model.grads, scalars=3) if comm.size > 1 else None
    stopping = late = False

    def out_of_time() -> bool:
        return late if flat is not None else time.monotonic() >= deadline

    batches = batches_from(step)
    try:
        with stop, comm.watchdog() as watchdog:
            while (total is None or step < total) and not out_of_time():
                if stopping if flat is not None else stop.requested:  # agreed by the ranks
                    raise KeyboardInterrupt  # between whole steps: the checkpoint is exact
                # One whole step or none: the forward draws dropout masks (RNG state), the
                # update moves parameters and Adam; a signal waits until the step is done.
                if step % per_epoch == 0:
                    state = model.initial_state(streams.stop - streams.start)
                x, y = next(batches)  # (T, B) inputs and next-character targets
                x, y = x[:, streams], y[:, streams]  # this rank's streams (T, B/K)
                logits, new_state = model(x, state)
                loss, dlogits = softmax_cross_entropy(logits, y)
                if flat is None and not math.isfinite(loss):
                    raise trainer.diverged(f"the loss became {loss}", step, run)
                model.zero_grad()
                model.backward(dlogits)
                if flat is not None:  # mean gradient and loss over the ranks, in place
                    now_late = root and time.monotonic() >= deadline
                    loss, stops, now = flat.allreduce_mean(
                        comm, model.grads, loss, stop.requested, now_late
                    )
                    stopping, late = stops > 0, now > 0
                    watchdog.beat()
                    if not math.isfinite(loss):
                        raise trainer.diverged(f"the loss became {loss}", step, run)
                norm = clip_grad_norm(model.grads, config.clip)
                if not math.isfinite(norm):
                    raise trainer.diverged(f"the gradient norm became {norm}", step, run)
                optimizer.lr = schedule(step)
                optimizer.step()
                if not all(np.isfinite(w).all() for w in model.parameters().values()):
                    raise trainer.diverged("the parameters overflowed to inf/NaN", step, run)
                state, step = new_state, step + 1
                rate = (step - start_step) * tokens_per_step / (time.monotonic() - started)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.3f}", bpc=f"{loss / math.log(2):.3f}", tok_s=f"{rate:.0f}"
                )
                if root and (step % 10 == 0 or step == 1):
                    run.log({"step": step, "train_loss": loss, "grad_norm": norm, "tok_s": rate})
                if step % config.eval_every == 0:
                    val_bpc = validate()
                    if root:
                        bar.write(f"step {step}: validation {val_bpc:.3f} bits/char")
            elapsed = time.monotonic() - started
            if step % config.eval_every != 0 or math.isnan(val_bpc):
                val_bpc = validate()
    except KeyboardInterrupt:
        bar.close()
        save("latest")
        if root:
            latest = run.checkpoint_path("latest")
            log(f"interrupted at step {step}; saved {latest} (--resume goes on)")
        raise
    except Exception as e:
        if comm.size > 1 and not isinstance(e, TrainingError):  # one rank failed: end the job
            comm.abort(f"{type(e).__name__}: {e}")
        raise
    finally:
        bar.close()
    if root:
        run.plot_losses()
    return {
        "run": str(run.folder),
        "steps": step,
        "val_bpc": val_bpc,
        "best_val_bpc": best,
        "tokens_per_s": (step - start_step) * tokens_per_step / max(elapsed, 1e-9),
        "vocab_size": len(vocab),
        "parameters": model.num_parameters(),
        "processes": comm.size,
    }
