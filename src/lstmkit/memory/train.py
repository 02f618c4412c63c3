"""Train RNN, GRU and LSTM models on the long-lag tasks within a time budget.

One run = one (task, model, lag, seed): a recurrent layer and a linear read-out trained
with Adam on fresh batches from the generator until the task is solved on a validation
batch, the step limit is reached or the budget of seconds is spent; then scored on a
separate test batch against the task's memoryless baseline.

    from lstmkit.memory import train
    record = train.run_one("adding", "lstm", lag=50, seed=0, config=train.MemoryConfig())
    records = train.sweep("adding", ["rnn", "lstm"], [10, 50], seeds=1, config=...)
    print(train.format_table(records)); train.plot_metric_vs_lag(records, "out/")
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.memory.tasks import TASKS, Batch, make_task
from lstmkit.nn import init as lk_init
from lstmkit.nn.feedforward import Linear
from lstmkit.nn.losses import mse, softmax_cross_entropy
from lstmkit.nn.model import Model
from lstmkit.nn.recurrent import GRU, LSTM, RNN
from lstmkit.train import files, variant
from lstmkit.train.trainer import Evaluation, Options, Task, Trainer, TrainingError, check_options

__all__ = [
    "INITS",
    "MODELS",
    "MemoryConfig",
    "SequenceModel",
    "format_table",
    "plot_learning_curves",
    "plot_metric_vs_lag",
    "run_one",
    "sweep",
    "train_model",
]

# "lstm-noforget" is the 1997 cell (no forget gate: f = 1), for the Reber stream.
MODELS = ("rnn", "gru", "lstm", "lstm-noforget")
INITS = ("default", "forget1", "chrono")


@dataclass
class MemoryConfig:
    hidden: int = 64
    batch: int = 32
    lr: float = 1e-2
    clip: float = 1.0
    budget_seconds: float = 20.0
    max_steps: int | None = None
    eval_every: int = 25
    eval_size: int = 256  # sequences in the validation and the test batch
    reber_test_steps: int = 10_000  # length of each of the 4 test streams (Reber task)
    # chrono (Tallec & Ollivier 2018): forget-gate time scales spread up to the lag; on a
    # 2-core CPU budget it solved temporal order at T = 50 and 100 where forget1 did not
    init: str = "chrono"
    # the LSTM models' options away from torch's ({"peepholes": True}; see train.variant)
    variant: dict[str, Any] = field(default_factory=dict)
    # Adam's learning rate: "constant", or "cosine" from lr to 0 at max_steps (which it needs)
    schedule: str = "constant"
    # a curriculum over the lag (None: train at the task's lag): see :class:`Curriculum`
    curriculum: int | None = None

    @property
    def steps(self) -> int | None:
        """The step limit under the name :func:`check_options` reads for the schedule."""
        return self.max_steps

    def __post_init__(self) -> None:
        self.variant = variant.normalise(self.variant)
        if self.schedule == "cosine" and not self.max_steps:
            raise ValueError("--schedule cosine needs --max-steps (where the lr reaches 0)")
        positive: tuple[str, ...] = (
            "hidden",
            "batch",
            "lr",
            "clip",
            "budget_seconds",
            "max_steps",
            "eval_every",
            "curriculum",
        )
        check_options(self, positive + ("eval_size", "reber_test_steps"))


class SequenceModel(Model):
    """A recurrent layer (rnn, gru, lstm, lstm-noforget) and a linear read-out.

    ``variant``: the LSTM's options away from torch's (``{"peepholes": True}``; the LSTMs
    only: "lstm-noforget" adds forget_gate=False).

    ``scored="last"`` reads out the last step only: x (T, N, I) -> out (N, C);
    ``scored="every"`` reads out every step: x (T, N, I) -> out (T, N, C).
    """

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden: int,
        output_size: int,
        scored: str = "last",
        seed: int | np.random.Generator | None = None,
        dtype: Any = np.float32,
        variant: dict[str, Any] | None = None,
    ):
        super().__init__()
        if kind not in MODELS:
            raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {kind!r}")
        if scored not in ("last", "every"):
            raise ValueError(f"scored: expected 'last' or 'every', got {scored!r}")
        rng = np.random.default_rng(seed)
        self.kind = kind
        self.scored = scored
        rnn: Any
        if kind == "rnn":
            rnn = RNN(input_size, hidden, dtype=dtype, seed=rng)
        elif kind == "gru":
            rnn = GRU(input_size, hidden, dtype=dtype, seed=rng)
        else:
            options = {**(variant or {}), **({"forget_gate": False} if kind != "lstm" else {})}
            rnn = LSTM(input_size, hidden, dtype=dtype, seed=rng, **options)
        self.rnn = self.add("rnn", rnn)
        self.head = self.add("head", Linear(hidden, output_size, dtype=dtype, seed=rng))
        self._T = 0

    @property
    def is_lstm(self) -> bool:
        return self.kind.startswith("lstm")

    def forward(self, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        x = np.asarray(x, dtype=self.rnn.dtype)  # the generators' float32 data
        y, state = self.rnn(x, state)  # (T, N, H)
        self._T = y.shape[0]
        return self.head(y[-1] if self.scored == "last" else y), state

    def backward(self, dout: np.ndarray) -> None:
        dh = self.head.backward(dout)
        if self.scored == "last":
            dy = np.zeros((self._T,) + dh.shape, dtype=dh.dtype)
            dy[-1] = dh
        else:
            dy = dh
        self.rnn.backward(dy)


def initialise(model: SequenceModel, scheme: str, lag: int | None, rng: Any) -> str:
    """Apply ``scheme`` to the model's recurrent layer; returns what was actually applied.

    "forget1" and "chrono" only concern gated memories with a forget gate (the LSTM);
    other models keep torch's default and are reported as "default".
    """
    if scheme not in INITS:
        raise ValueError(f"init: expected one of {', '.join(INITS)}, got {scheme!r}")
    if scheme == "default" or model.kind != "lstm":
        return "default"
    if scheme == "forget1":
        lk_init.forget_bias_(model.rnn, 1.0)
    else:
        lk_init.chrono_(model.rnn, T_max=max(3.0, float(lag or 50)), rng=rng)
    return scheme


def _loss(task: Any, out: np.ndarray, batch: Batch) -> tuple[float, np.ndarray]:
    if task.loss == "mse":
        return mse(out, batch.y)
    return softmax_cross_entropy(out, batch.y)


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """The matrices here are tiny: extra BLAS threads cost far more than they save."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the run is only slower
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _evaluate(task: Any, model: SequenceModel, batch: Batch) -> tuple[dict[str, float], Any]:
    """The task's metrics on ``batch`` (from a zero state) and the final state."""
    model.eval()
    out, state = model(batch.x)
    model.train()
    return task.evaluate(out, batch), state


class Curriculum:
    """Training lags that grow as the model learns (Zaremba & Sutskever 2014's "mixed"
    curriculum, over the lag): each training batch has a lag drawn uniformly from
    [max(task's shortest, L // 2), L], L starting at ``start``; each time the model solves
    a validation batch at lag L (the task's own criterion), L grows by ``GROWTH`` (at most
    to the task's lag, where it stays). Validation, test and "solved" stay at the task's
    lag: the curriculum changes only what the model trains on.
    """

    GROWTH = 1.5

    def __init__(self, task: Any, start: int, rng: np.random.Generator, eval_size: int):
        if getattr(task, "stateful", False):
            raise ValueError(f"--curriculum: the {task.name} task has no lag to grow")
        self.task, self.rng, self.eval_size = task, rng, eval_size
        self.history: list[list[int]] = []  # [step, L] at the start and at every change
        self._set(0, max(task.min_lag, min(start, task.lag)))

    def _set(self, step: int, lag: int) -> None:
        self.lag = lag
        self.at_lag = make_task(self.task.name, lag)
        self.val_batch = self.at_lag.sample(self.eval_size, self.rng)
        self.history.append([step, lag])

    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        """A training batch of n sequences at a lag drawn from [L // 2, L]."""
        low = max(self.task.min_lag, self.lag // 2)
        return make_task(self.task.name, int(rng.integers(low, self.lag + 1))).sample(n, rng)

    def update(self, step: int, model: SequenceModel) -> None:
        """Grow L if the model solves its validation batch at lag L."""
        if self.lag >= self.task.lag:
            return
        metrics, _ = _evaluate(self.at_lag, model, self.val_batch)
        if self.at_lag.solved(metrics, self.at_lag.baseline(self.val_batch)):
            self._set(step, min(self.task.lag, math.ceil(self.lag * self.GROWTH)))


class _Fresh(Task):
    """Fresh batches from the task's generator at every step (the Reber stream: the next
    chunk, the recurrent state carried across chunks); solved at two evaluations in a row."""

    model: SequenceModel

    def __init__(
        self,
        task: Any,
        model: SequenceModel,
        config: MemoryConfig,
        rng: np.random.Generator,
        on_eval: Callable[[int, dict[str, float]], None] | None,
    ):
        self.task, self.model, self.rng, self.on_eval = task, model, rng, on_eval
        self.batch = config.batch
        self.stateful = getattr(task, "stateful", False)
        if self.stateful:
            self.stream = task.stream(config.batch, rng)
            self.val_batch = task.stream(4, rng).next_chunk(1000)
        else:
            self.val_batch = task.sample(config.eval_size, rng)
        self.val_baseline = task.baseline(self.val_batch)
        self.state: Any = None
        self.streak = 0
        self.curriculum = None
        if config.curriculum is not None:  # its own generator: the stream above is unchanged
            curriculum_rng = np.random.default_rng(rng.integers(2**63))
            self.curriculum = Curriculum(task, config.curriculum, curriculum_rng, config.eval_size)

    def loss(self, step: int) -> tuple[float, np.ndarray]:
        """The task's loss and dL/dout, (N, C) or (T, N, C)."""
        if self.stateful:
            batch = self.stream.next_chunk(self.task.T)
        elif self.curriculum is not None:
            batch = self.curriculum.sample(self.batch, self.rng)
        else:
            batch = self.task.sample(self.batch, self.rng)
        out, self.state = self.model(batch.x, self.state if self.stateful else None)
        return _loss(self.task, out, batch)

    def evaluate(self, step: int) -> Evaluation:
        metrics, _ = _evaluate(self.task, self.model, self.val_batch)
        solved = self.task.solved(metrics, self.val_baseline)
        self.streak = self.streak + 1 if solved else 0
        if self.curriculum is not None:
            self.curriculum.update(step, self.model)
            metrics = {**metrics, "train_lag": self.curriculum.lag}  # the lag from here on
        if self.on_eval is not None:
            self.on_eval(step, metrics)
        return Evaluation(metrics, solved=self.streak >= 2)


def train_model(
    task: Any,
    model: SequenceModel,
    config: MemoryConfig,
    rng: np.random.Generator,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[int, float, bool]:
    """Train in place until solved on a validation batch, out of steps or out of time.

    Solved means solved at two evaluations in a row, so a metric that merely touches the
    threshold once does not stop training. Returns (steps, seconds, solved on validation).
    Stateful tasks (the Reber stream) carry the recurrent state across consecutive chunks
    of one endless stream. A diverged run stops and keeps its step count.
    """
    options = Options(
        config.lr,
        config.clip,
        config.eval_every,
        config.max_steps,
        config.budget_seconds,
        schedule=config.schedule,
    )
    trainer = Trainer(_Fresh(task, model, config, rng, on_eval), options)
    try:
        done = trainer.fit()
    except TrainingError:  # diverged: report the test metric as it is
        return trainer.step, trainer.elapsed(), False
    return done.steps, done.seconds, done.evaluation is not None and done.evaluation.solved


def run_one(
    task_name: str,
    model_name: str,
    lag: int,
    seed: int,
    config: MemoryConfig,
) -> tuple[dict[str, Any], SequenceModel]:
    """Train one model on one task; returns (the result record, the trained model)."""
    task = make_task(task_name, lag)
    rng = np.random.default_rng([seed, lag])
    model = SequenceModel(
        model_name,
        task.input_size,
        config.hidden,
        task.output_size,
        task.scored,
        seed=rng,
        variant=config.variant,
    )
    init_used = initialise(model, config.init, task.lag, rng)
    # [step, seconds, validation metric(, copy accuracy)(, the curriculum's training lag)]
    curve: list[list[float]] = []
    extra = ["copy_accuracy"] if task_name == "copying" else []
    extra += ["train_lag"] if config.curriculum is not None else []
    started = time.monotonic()

    def on_eval(step: int, metrics: dict[str, float]) -> None:
        point = [step, round(time.monotonic() - started, 2), metrics[task.metric_name]]
        curve.append(point + [metrics[k] for k in extra])

    with single_blas_thread():
        steps, seconds, _ = train_model(task, model, config, rng, on_eval)
        test_rng = np.random.default_rng([seed, lag, 2**31 - 1])  # disjoint from training
        stateful = getattr(task, "stateful", False)
        if stateful:
            test = task.stream(4, test_rng).next_chunk(config.reber_test_steps)
        else:
            test = task.sample(config.eval_size, test_rng)
        metrics, state = _evaluate(task, model, test)
    baseline = task.baseline(test)
    metric = metrics[task.metric_name]
    record: dict[str, Any] = {
        "task": task_name,
        "model": model_name,
        "lag": task.lag,
        "seed": seed,
        "metric_name": task.metric_name,
        "test_metric": metric,
        "baseline": baseline,
        "solved": bool(task.solved(metrics, baseline)),
        "steps": steps,
        "seconds": round(seconds, 2),
        "init": init_used,
        "curriculum": config.curriculum,  # the first training lag (None: the task's lag)
        "variant": config.variant if model.is_lstm else {},
        "ratio": metric / baseline if baseline else float("nan"),
        "steps_per_s": round(steps / seconds, 2) if seconds > 0 else float("nan"),
        # the validation metric every eval_every steps: [step, seconds, metric(, accuracy)]
        "curve_columns": ["step", "seconds", task.metric_name] + extra,
        "curve": curve,
    }
    record.update({k: v for k, v in metrics.items() if k != task.metric_name})
    if stateful and model.is_lstm:
        # Without a forget gate nothing ever shrinks c: it grows along the endless stream.
        c_prev = model.rnn.activations()["_l0"]["c_prev"]  # (T, N, H), c entering each step
        growth = np.abs(c_prev).max(axis=(1, 2))
        record["final_max_abs_c"] = float(np.abs(state[1]).max())
        stride = max(1, len(growth) // 100)
        record["max_abs_c_curve"] = [float(v) for v in growth[::stride]]
        record["max_abs_c_every"] = stride  # test steps between the curve's points
    return record, model


def sweep(
    task_name: str,
    models: Sequence[str],
    lags: Sequence[int],
    seeds: int,
    config: MemoryConfig,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """run_one for every lag, model and seed (in that nesting); returns the records."""
    records = []
    for lag in lags:
        for model_name in models:
            for seed in range(seeds):
                record, _ = run_one(task_name, model_name, lag, seed, config)
                records.append(record)
                if on_record is not None:
                    on_record(record)
    return records


# ---- reporting ------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _variant_cell(record: dict[str, Any]) -> str:
    """The LSTM variant's flags; "-" for the RNN and GRU, which have none."""
    if not record["model"].startswith("lstm"):
        return "-"
    return variant.describe(record.get("variant") or {})


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A plain-text table, one row per run."""
    header = ["task", "model", "lag", "seed", "metric", "test", "baseline", "ratio"]
    header += ["solved", "steps", "seconds", "steps/s", "init"]
    extra = [k for k in ("copy_accuracy", "final_max_abs_c") if any(k in r for r in records)]
    header += extra
    variants = any(r.get("variant") for r in records)
    header += ["variant"] if variants else []
    rows = [header]
    for r in records:
        rows.append(
            [
                r["task"],
                r["model"],
                "-" if r["lag"] is None else str(r["lag"]),
                str(r["seed"]),
                r["metric_name"],
                _fmt(r["test_metric"]),
                _fmt(r["baseline"]),
                _fmt(r["ratio"]),
                "yes" if r["solved"] else "no",
                str(r["steps"]),
                f"{r['seconds']:.1f}",
                _fmt(r["steps_per_s"]) if "steps_per_s" in r else "-",
                r["init"],
            ]
            + [_fmt(r[k]) if k in r else "-" for k in extra]
            + ([_variant_cell(r)] if variants else [])
        )
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_metric_vs_lag(
    records: Sequence[dict[str, Any]], out_dir: str | Path, init: str = "default"
) -> Path:
    """metric_vs_lag.png: the test metric against the lag, one line per model (mean over
    seeds, each seed a dot), the memoryless baseline dashed. Returns the file's path.

    The Reber stream has no lag: reber.png shows each model's metric and, for LSTMs, how
    max |c| evolves along the test stream instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if all(r["lag"] is None for r in records):
        return _plot_reber(records, out / "reber.png", init)
    path = out / "metric_vs_lag.png"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    models = list(dict.fromkeys(r["model"] for r in records))
    lag_of = {r["lag"]: (r["lag"] if r["lag"] is not None else 0) for r in records}
    for model_name in models:
        rows = [r for r in records if r["model"] == model_name]
        lags = sorted({lag_of[r["lag"]] for r in rows})
        means = [np.mean([r["test_metric"] for r in rows if lag_of[r["lag"]] == L]) for L in lags]
        (line,) = ax.plot(lags, means, marker="o", label=model_name)
        ax.scatter(
            [lag_of[r["lag"]] for r in rows],
            [r["test_metric"] for r in rows],
            color=line.get_color(),
            alpha=0.35,
            s=14,
        )
    lags = sorted(set(lag_of.values()))
    base = [np.mean([r["baseline"] for r in records if lag_of[r["lag"]] == L]) for L in lags]
    ax.plot(lags, base, "k--", label="memoryless baseline")
    first = records[0]
    threshold = TASKS[first["task"]].threshold
    if threshold is not None:
        ax.axhline(threshold, color="0.4", ls=":", label=f"solved threshold ({threshold:g})")
    if first["metric_name"] in ("mse", "xent"):
        ax.set_yscale("log")
    ax.set_xlabel("lag T")
    ax.set_ylabel(f"test {first['metric_name']}")
    ax.set_title(f"{first['task']}: test {first['metric_name']} vs lag (LSTM init: {init})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(records: Sequence[dict[str, Any]], out_dir: str | Path) -> Path | None:
    """learning_curves.png: each run's validation metric against the training steps (left)
    and the seconds (right), the memoryless baseline dashed; None if no run has a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in records if r.get("curve")]
    if not runs:
        return None
    path = Path(out_dir) / "learning_curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    first = runs[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for k, r in enumerate(runs):
        curve = np.asarray([p[:3] for p in r["curve"]], dtype=np.float64)
        lag = "" if r["lag"] is None else f" T={r['lag']}"
        rate = _fmt(r.get("steps_per_s", math.nan))
        label = f"{r['model']}{lag} seed {r['seed']} ({rate} steps/s)"
        for ax, col in zip(axes, (0, 1)):
            ax.plot(curve[:, col], curve[:, 2], color=f"C{k % 10}", lw=1.2, label=label)
    base = float(np.mean([r["baseline"] for r in runs]))
    threshold = TASKS[first["task"]].threshold
    for ax, xlabel in zip(axes, ("training step", "seconds (shared machine)")):
        ax.axhline(base, color="k", ls="--", lw=1, label="memoryless baseline")
        if threshold is not None and first["metric_name"] == "mse":
            ax.axhline(threshold, color="0.4", ls=":", label=f"solved ({threshold:g})")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    if first["metric_name"] in ("mse", "xent"):
        axes[0].set_yscale("log")
    axes[0].set_ylabel(f"validation {first['metric_name']}")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{first['task']}: learning curves")
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def _plot_reber(records: Sequence[dict[str, Any]], path: Path, init: str) -> Path:
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in records))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    means = [np.mean([r["test_metric"] for r in records if r["model"] == m]) for m in models]
    left.bar(models, means, color=[f"C{k}" for k in range(len(models))])
    left.axhline(np.mean([r["baseline"] for r in records]), color="k", ls="--", label="baseline")
    left.axhline(0.99, color="0.4", ls=":", label="solved threshold (0.99)")
    left.set_ylim(0, 1.05)
    left.set_ylabel(f"test {records[0]['metric_name']}")
    left.set_title(f"continual embedded Reber (LSTM init: {init})")
    left.legend(fontsize=8, loc="lower right")
    for k, m in enumerate(models):
        for r in records:
            if r["model"] == m and "max_abs_c_curve" in r:
                curve = np.asarray(r["max_abs_c_curve"])
                t = np.arange(len(curve)) * r["max_abs_c_every"]
                right.plot(t, curve, color=f"C{k}", lw=1, label=m)
    right.set_yscale("log")
    right.set_xlabel("test stream step (no state reset)")
    right.set_ylabel("max |c| over cells and streams")
    right.set_title("cell state along the endless stream")
    handles, labels = right.get_legend_handles_labels()
    if handles:
        right.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys())
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
