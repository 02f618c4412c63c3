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
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.nn.losses import mse
from lstmkit.series.data import Scaler, Series, Split, encode, fingerprint, make_windows
from lstmkit.series.forecast import forecast
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.train import distributed, schema, trainer, variant
from lstmkit.train.config import LoopConfig
from lstmkit.train.trainer import Evaluation, TrainingError

__all__ = ["KIND", "TrainConfig", "TrainingError", "load_model", "train"]

KIND = "forecaster"
# Options a resumed run must share with the original (the others may change).
_RESUME_KEYS = (
    "lookback", "holdout", "val", "difference", "hidden", "layers", "dropout", "batch",
    "lr", "warmup", "schedule", "clip", "seed", "dtype",
)  # fmt: skip


@dataclass
class TrainConfig(LoopConfig):
    """One forecaster's options: the loop's (:class:`~lstmkit.train.config.LoopConfig`, its
    defaults), the windows and split of the series, and the LSTM's size."""

    lookback: int = 24
    horizon: int = 12
    holdout: int | None = None  # None: horizon values kept out for `series eval`
    val: int | None = None  # None: horizon values before the holdout pick the best checkpoint
    difference: bool = False
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0

    _positive = ("horizon", "lookback", "hidden", "layers")
    _at_least_zero = ("holdout", "val")

    def resolved(self) -> TrainConfig:
        """holdout and val default to the horizon."""
        return replace(
            self,
            holdout=self.horizon if self.holdout is None else self.holdout,
            val=self.horizon if self.val is None else self.val,
        )


def check_header(meta: dict[str, Any], manifest: schema.Manifest) -> None:
    """A forecaster checkpoint's header: model config, scaler, training config and data
    description, and the arrays they imply; HeaderError naming the field."""
    m = schema.mapping(meta, "model")
    optional = {"variant", "highway"}  # checkpoints from before either have none
    schema.model_keys(m, {f.name for f in fields(ForecasterConfig)} - optional, optional)
    options = schema.lstm_variant(m)
    H = schema.integer(m, "hidden", "model.", 1)
    L = schema.integer(m, "layers", "model.", 1)
    schema.number(m, "dropout", "model.", 0.0, 1.0, hi_open=True)
    dtype = schema.string(m, "dtype", "model.", schema.MODEL_DTYPES)
    assert dtype is not None
    shapes = {
        **schema.lstm_shapes("lstm.", 1, H, L, manifest, options),
        "head.weight": (1, H),
        "head.bias": (1,),
    }
    q = schema.integer(m, "highway", "model.", 0) if "highway" in m else 0
    if q:
        shapes["highway.weight"] = (1, q)
    schema.model_arrays(manifest, shapes, dtype)
    schema.trainer_fields(meta, "best_val_loss")
    scaler = schema.mapping(meta, "scaler")
    schema.number(scaler, "mean", "scaler.")
    schema.number(scaler, "scale", "scaler.", 0.0, lo_open=True)
    tc = schema.mapping(meta, "train_config")
    schema.integer(tc, "lookback", "train_config.", 1)
    schema.boolean(tc, "difference", "train_config.")
    data = schema.mapping(meta, "data")
    schema.string(data, "column", "data.")
    schema.string(data, "time_column", "data.", optional=True)
    schema.string(data, "fingerprint", "data.")
    schema.string(data, "source", "data.", optional=True)
    schema.integer(data, "n", "data.", 0)
    split = schema.mapping(data, "split", "data.")
    for key in ("n_fit", "n_val", "n_holdout"):
        schema.integer(split, key, "data.split.", 0)


def load_model(path: str | Path) -> tuple[Forecaster, dict[str, Any], dict[str, np.ndarray]]:
    """A forecaster from a checkpoint file or run folder (its best, else latest, checkpoint)."""
    arrays, meta, params = trainer.load_model_checkpoint(path, KIND, "a forecaster", check_header)
    model = Forecaster(ForecasterConfig(**meta["model"]))
    trainer.load_parameters(Path(path), model, params, meta)
    return model, meta, arrays


def _check_resume(meta: dict[str, Any], config: TrainConfig, data: dict[str, Any]) -> None:
    variant.check_resume(meta["model"].get("variant"), config.variant)
    keys = _RESUME_KEYS + (("steps",) if config.schedule == "cosine" else ())
    trainer.check_same_options(meta["train_config"], config, keys)
    old = meta["data"]
    if (old["column"], old["fingerprint"]) != (data["column"], data["fingerprint"]):
        raise TrainingError(
            f"cannot resume: the training data differs from the run's (column {old['column']!r}, "
            f"{old['n']} values); pass the same --csv and --column as the original run"
        )


class WindowsTask(trainer.Task):
    """Step k: ``batch`` windows (lookback L) in the order of epoch k // (M // batch),
    scored by the MSE of the next value at every position (scaled units)."""

    model: Forecaster

    kind = KIND

    def __init__(
        self,
        model: Forecaster,
        series: Series,
        split: Split,
        scaler: Scaler,
        config: TrainConfig,
        comm: distributed.SingleProcess,
    ):
        self.model, self.series, self.split, self.scaler = model, series, split, scaler
        self.config, self.comm, self.data = config, comm, _data(series, split)
        fit = series.values[: split.n_fit]
        X, Y = make_windows(encode(fit, scaler, config.difference), config.lookback)  # (L, M, 1)
        self.X, self.Y = X.astype(model.dtype), Y.astype(model.dtype)
        self.M = X.shape[1]
        self.B = min(config.batch, self.M)
        self.per_epoch = self.M // self.B
        what = "--batch" if self.B == config.batch else f"the batch (all {self.M} windows)"
        self.mine = comm.shard(self.B, what)  # this rank's windows of every batch (B/K)

    def loss(self, step: int) -> tuple[float, np.ndarray]:
        """MSE and dL/dprediction (L, B/K, 1)."""
        epoch, j = divmod(step, self.per_epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.M)
        idx = order[j * self.B : (j + 1) * self.B][self.mine]
        pred, _ = self.model(self.X[:, idx])  # (L, B/K, 1)
        return mse(pred, self.Y[:, idx])

    def evaluate(self, step: int) -> Evaluation:
        """Rank 0's scores of the validation part (the ranks must agree on best.npz)."""
        if not self.split.n_val:
            return Evaluation()
        values, split, scaler, config = self.series.values, self.split, self.scaler, self.config
        scores = self.comm.on_root(
            lambda: validation_scores(self.model, values, split, scaler, config)
        )
        message = (
            f"validation loss {scores['val_loss']:.4f}, "
            f"{split.n_val}-step forecast MAE {scores['val_mae']:.4g}"
        )
        return Evaluation(scores, scores["val_loss"], message)

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"train_config": asdict(self.config), "scaler": self.scaler.to_dict()}
        return {**meta, "data": self.data}, {}


def _data(series: Series, split: Split) -> dict[str, Any]:
    """Where the values came from, the split and a fingerprint of what training may see."""
    return {
        "column": series.column,
        "time_column": series.time_column,
        "source": series.source,
        "n": len(series),
        "split": asdict(split),
        "fingerprint": fingerprint(series.values[: split.n_fit + split.n_val]),
    }


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
    config = config.resolved()
    assert config.holdout is not None and config.val is not None
    run = trainer.open_run(out, resume, comm)
    try:
        try:
            split = Split.make(
                len(series), config.val, config.holdout, config.lookback, config.difference
            )
        except ValueError as e:
            raise TrainingError(str(e)) from None
        data = _data(series, split)
        fit = series.values[: split.n_fit]
        scaler = Scaler.fit(np.diff(fit) if config.difference else fit)
        message = "the MPI processes read different data; every host needs the same"
        trainer.check_same_data(comm, data["fingerprint"], message)
        checkpoint = None
        if resume:
            model, meta, arrays = comm.on_root(lambda: load_model(run.checkpoint_path()))
            _check_resume(meta, config, data)
            scaler, checkpoint = Scaler.from_dict(meta["scaler"]), (arrays, meta)
        else:
            model_config = ForecasterConfig(
                config.hidden, config.layers, config.dropout, config.dtype, config.variant
            )
            model = Forecaster(model_config, seed=config.seed)
        task = WindowsTask(model, series, split, scaler, config, comm)
        options = trainer.Options.of(config, save_first=True)
        fitted = trainer.Trainer(task, options, run, comm, checkpoint, show_progress, log)
        done = fitted.fit()
        last = done.evaluation.record if done.evaluation else {}
        return {
            "run": str(run.folder),
            "steps": done.steps,
            "train_loss": done.loss,
            "val_loss": last.get("val_loss", math.nan),
            "val_mae": last.get("val_mae", math.nan),
            "best_val_loss": fitted.best,
            "steps_per_s": done.steps_per_s,
            "windows": task.M,
            "split": asdict(split),
            "parameters": model.num_parameters(),
            "processes": comm.size,
        }
    finally:
        run.release()


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
