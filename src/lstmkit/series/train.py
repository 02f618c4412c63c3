"""Training a forecaster on one series, resumable exactly from its latest checkpoint.

The training part of the series (see :mod:`lstmkit.series.data` for the split) is cut into
every window of ``lookback`` values; each step draws ``batch`` windows and scores the
prediction of the next value at every position (mean squared error in scaled units).
The windows of epoch e are visited in the order ``default_rng([seed, e]).permutation``, a
pure function of the step number; with the parameters, Adam's moments and the dropout
generators in the checkpoint, a run killed at any moment and resumed ends with exactly the
parameters of an uninterrupted run.

Every ``eval_every`` steps the model is scored on the validation part: ``val_loss`` is the
one-step-ahead MSE (scaled units, comparable to the training loss) and picks ``best.npz``;
``val_mae`` is the MAE in the series' units of a recursive forecast over the whole part.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.nn.losses import mse
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.series.data import Scaler, Series, Split, encode, fingerprint, make_windows
from lstmkit.series.forecast import forecast
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.train import distributed, trainer
from lstmkit.train.run_folder import Run, StopRequests, progress
from lstmkit.train.trainer import TrainingError

__all__ = ["KIND", "TrainConfig", "TrainingError", "load_model", "train"]

KIND = "forecaster"
# Options a resumed run must share with the original (the others may change).
_RESUME_KEYS = (
    "lookback", "holdout", "val", "difference", "hidden", "layers", "dropout", "batch",
    "lr", "warmup", "schedule", "clip", "seed", "dtype",
)  # fmt: skip


@dataclass
class TrainConfig:
    lookback: int = 24
    horizon: int = 12
    holdout: int | None = None  # None: horizon values kept out for `series eval`
    val: int | None = None  # None: horizon values before the holdout pick the best checkpoint
    difference: bool = False
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    batch: int = 32
    steps: int | None = 1000
    minutes: float | None = None
    lr: float = 3e-3
    warmup: int = 0
    schedule: str = "constant"  # or "cosine" (needs steps)
    clip: float = 1.0
    eval_every: int = 100
    seed: int = 0
    dtype: str = "float32"  # "float64": data-parallel runs then equal one process to rounding

    def resolved(self) -> TrainConfig:
        """holdout and val default to the horizon."""
        return replace(
            self,
            holdout=self.horizon if self.holdout is None else self.holdout,
            val=self.horizon if self.val is None else self.val,
        )


def load_model(path: str | Path) -> tuple[Forecaster, dict[str, Any], dict[str, np.ndarray]]:
    """A forecaster from a checkpoint file or run folder (its best, else latest, checkpoint)."""
    arrays, meta, params = trainer.load_model_checkpoint(path, KIND, "a forecaster")
    model = Forecaster(ForecasterConfig(**meta["model"]))
    model.load_state_dict(params)
    return model, meta, arrays


def _check_resume(meta: dict[str, Any], config: TrainConfig, data: dict[str, Any]) -> None:
    keys = _RESUME_KEYS + (("steps",) if config.schedule == "cosine" else ())
    trainer.check_same_options(meta["train_config"], config, keys)
    old = meta["data"]
    if (old["column"], old["fingerprint"]) != (data["column"], data["fingerprint"]):
        raise TrainingError(
            f"cannot resume: the training data differs from the run's (column {old['column']!r}, "
            f"{old['n']} values); pass the same --csv and --column as the original run"
        )


def train(
    config: TrainConfig,
    out: str | Path,
    series: Series,
    resume: bool = False,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    comm: distributed.SingleProcess | None = None,
) -> dict[str, Any]:
    """Train (or resume) a forecaster on ``series`` into the run folder ``out``.

    ``comm`` with K > 1 ranks (see :mod:`lstmkit.train.distributed`) trains data-parallel: rank r
    takes windows [r B/K, (r + 1) B/K) of every batch, one Allreduce per step averages the
    gradients and the loss; rank 0 alone reads and writes the run folder.
    """
    comm = comm or distributed.SingleProcess()
    root = comm.rank == 0
    config = config.resolved()
    assert config.holdout is not None and config.val is not None
    if config.schedule == "cosine" and not config.steps:
        raise TrainingError("--schedule cosine needs --steps")
    run = Run(out)

    def check_folder() -> None:  # rank 0's view: other hosts may not share the folder
        if run.exists() and not resume:
            raise TrainingError(f"{out} already holds a run; pass --resume to continue it")
        if resume and not run.exists():
            raise TrainingError(f"{out}: nothing to resume (no latest.npz)")

    comm.on_root(check_folder)
    try:
        split = Split.make(
            len(series), config.val, config.holdout, config.lookback, config.difference
        )
    except ValueError as e:
        raise TrainingError(str(e)) from None
    values = series.values
    seen = values[: split.n_fit + split.n_val]  # what training may look at
    data = {
        "column": series.column,
        "time_column": series.time_column,
        "source": series.source,
        "n": len(series),
        "split": asdict(split),
        "fingerprint": fingerprint(seen),
    }

    fit = values[: split.n_fit]
    scaler = Scaler.fit(np.diff(fit) if config.difference else fit)
    if len(set(comm.allgather(data["fingerprint"]))) > 1:
        raise TrainingError("the MPI processes read different data; every host needs the same")
    if resume:
        latest = run.checkpoint_path("latest")
        model, meta, arrays = comm.on_root(lambda: load_model(latest))
        _check_resume(meta, config, data)
        scaler = Scaler.from_dict(meta["scaler"])
    else:
        model_config = ForecasterConfig(config.hidden, config.layers, config.dropout, config.dtype)
        model = Forecaster(model_config, seed=config.seed)
        if root:
            run.create()
    comm.broadcast_arrays_(model.parameters().values())  # every rank starts from rank 0's

    X, Y = make_windows(encode(fit, scaler, config.difference), config.lookback)  # (L, M, 1)
    X, Y = X.astype(model.dtype), Y.astype(model.dtype)
    M = X.shape[1]
    B = min(config.batch, M)
    per_epoch = M // B
    mine = comm.shard(B, "--batch" if B == config.batch else f"the batch (all {M} windows)")
    optimizer = Adam(model.parameters(), model.grads, lr=config.lr)
    step, best = 0, math.inf
    if resume:
        optimizer.load_state_dict(
            {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")},
            meta["optimizer"],
        )
        model.set_rng_state(meta["rng"])
        step, best = meta["step"], meta["best_val_loss"]
        if root:
            run.truncate_log(step)
            log(f"resuming {out} at step {step}")
    if comm.size > 1:
        stored = meta.get("rng_ranks") if resume else None
        model.set_rng_state(distributed.rank_rng_state(model, comm, config.seed, step, stored))
    rng_good = model.rng_state()

    def save(name: str) -> None:
        rng_ranks = comm.gather(rng_good)
        if not root:
            return  # rank 0 writes
        opt_arrays, opt_scalars = optimizer.state_dict()
        meta = {
            "train_config": asdict(config),
            "scaler": scaler.to_dict(),
            "data": data,
            "optimizer": opt_scalars,
            "rng": rng_good,  # the generators as they were after the last completed step
            "step": step,
            "best_val_loss": best,
        }
        if comm.size > 1:
            meta["rng_ranks"] = rng_ranks
        optim = {f"optim/{k}": v for k, v in opt_arrays.items()}
        trainer.save_model(run, name, KIND, model, meta, optim)

    def validate() -> dict[str, float]:
        """Score the validation part, log it, save latest (and best if it improved)."""
        nonlocal best
        record: dict[str, float] = {"step": step}
        if split.n_val:
            # rank 0's scores for all: the ranks must agree on saving best.npz
            record.update(
                comm.on_root(lambda: validation_scores(model, values, split, scaler, config))
            )
            if record["val_loss"] < best:
                best = record["val_loss"]
                save("best")
            if root:
                run.log(record)
        save("latest")
        return record

    schedule = trainer.lr_schedule(config.lr, config.schedule, config.warmup, config.steps)

    if not resume:
        save("latest")  # a divergence in the first steps still leaves a good checkpoint
    deadline = time.monotonic() + 60 * config.minutes if config.minutes else math.inf
    total = config.steps
    bar = progress(total, "train", disable=not show_progress or not root)
    bar.update(step)
    started, start_step = time.monotonic(), step
    last: dict[str, float] = {}
    loss = math.nan
    updating, stop = False, StopRequests()
    # K ranks: the ranks agree (through the step's Allreduce) on the loss, on a stop request
    # and on rank 0's clock, so all leave the loop after the same step.
    flat = distributed.FlatGradients(model.grads, scalars=3) if comm.size > 1 else None
    stopping = late = False

    def out_of_time() -> bool:
        return late if flat is not None else time.monotonic() >= deadline

    try:
        with stop, comm.watchdog() as watchdog:
            while (total is None or step < total) and not out_of_time():
                if stopping if flat is not None else stop.requested:  # agreed by the ranks
                    raise KeyboardInterrupt
                epoch, j = divmod(step, per_epoch)
                order = np.random.default_rng([config.seed, epoch]).permutation(M)
                idx = order[j * B : (j + 1) * B][mine]  # this rank's windows (B/K)
                with np.errstate(over="ignore", invalid="ignore"):  # divergence reported below
                    pred, _ = model(X[:, idx])  # (L, B, 1)
                    loss, dpred = mse(pred, Y[:, idx])
                    if flat is None and not math.isfinite(loss):
                        raise trainer.diverged(f"the loss became {loss}", step, run)
                    model.zero_grad()
                    try:
                        model.backward(dpred)
                    except ValueError as e:  # the LSTM refuses a non-finite gradient
                        if flat is None:
                            raise trainer.diverged(
                                f"the gradient overflowed ({e})", step, run
                            ) from None
                        loss = math.nan  # the other ranks learn it through the Allreduce
                    if flat is not None:  # mean gradient and loss over the ranks, in place
                        now_late = root and time.monotonic() >= deadline
                        loss, asked, now = flat.allreduce_mean(
                            comm, model.grads, loss, stop.requested, now_late
                        )
                        stopping, late = asked > 0, now > 0
                        watchdog.beat()
                        if not math.isfinite(loss):
                            raise trainer.diverged(f"the loss became {loss}", step, run)
                    norm = clip_grad_norm(model.grads, config.clip)
                    if not math.isfinite(norm):
                        raise trainer.diverged(f"the gradient norm became {norm}", step, run)
                    optimizer.lr = schedule(step)
                    updating = True
                    optimizer.step()
                    updating = False
                step += 1
                rng_good = model.rng_state()
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if root and (step % 10 == 0 or step == 1):
                    run.log({"step": step, "train_loss": loss, "grad_norm": norm})
                if step % config.eval_every == 0:
                    last = validate()
                    if "val_loss" in last and root:
                        bar.write(
                            f"step {step}: validation loss {last['val_loss']:.4f}, "
                            f"{split.n_val}-step forecast MAE {last['val_mae']:.4g}"
                        )
    except KeyboardInterrupt:
        bar.close()
        if updating:  # half-updated parameters are not a state to resume from
            log(f"interrupted during an update; {run.checkpoint_path('latest')} is unchanged")
        else:
            save("latest")
            if root:
                log(
                    f"interrupted at step {step}; saved {run.checkpoint_path('latest')} "
                    "(--resume goes on)"
                )
        raise
    except Exception as e:
        if comm.size > 1 and not isinstance(e, TrainingError):  # one rank failed: end the job
            comm.abort(f"{type(e).__name__}: {e}")
        raise
    finally:
        bar.close()
    if step % config.eval_every != 0 or not last:
        last = validate()
    if root:
        run.plot_losses()
    elapsed = max(time.monotonic() - started, 1e-9)
    return {
        "run": str(run.folder),
        "steps": step,
        "train_loss": loss,
        "val_loss": last.get("val_loss", math.nan),
        "val_mae": last.get("val_mae", math.nan),
        "best_val_loss": best,
        "steps_per_s": (step - start_step) / elapsed,
        "windows": M,
        "split": asdict(split),
        "parameters": model.num_parameters(),
        "processes": comm.size,
    }


def validation_scores(
    model: Forecaster, values: np.ndarray, split: Split, scaler: Scaler, config: TrainConfig
) -> dict[str, float]:
    """One-step MSE (scaled) and recursive-forecast MAE (original units) on the val part."""
    off, L = int(config.difference), config.lookback
    end = split.n_fit + split.n_val
    z = encode(values[:end], scaler, config.difference)  # z[k] is the value at time k + off
    targets = np.arange(split.n_fit, end) - off  # indices into z
    contexts = targets[None, :] + np.arange(-L, 0)[:, None]  # (L, n_val)
    was_training = model.training
    model.eval()
    try:
        pred, _ = model(z[contexts][..., None].astype(model.dtype), inference=True)  # (L, n_val, 1)
    finally:
        model.train(was_training)
    val_loss, _ = mse(pred[-1, :, 0], z[targets].astype(model.dtype))
    rolled = forecast(model, values[: split.n_fit], split.n_val, scaler, L, config.difference)
    val_mae = float(np.mean(np.abs(rolled - values[split.n_fit : end])))
    return {"val_loss": val_loss, "val_mae": val_mae}
