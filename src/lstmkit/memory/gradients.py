"""Vanishing gradients, measured: how ||dL/dh_t|| shrinks with the distance T - t.

With the loss at the last step only, every gradient reaching step t has travelled back
through T - 1 - t recurrent steps. The layers' backward pass records dL/dh_t (and, for
the LSTM, dL/dc_t, the gradient of the cell state leaving step t with h_t held fixed)
when ``record_state_grads`` is set; here they are reduced to batch-mean L2 norms and a
decay rate: the least-squares slope of the log-norm per step of distance.

    from lstmkit.memory import gradients
    rows, curves = gradients.measure(["rnn", "gru", "lstm"], "adding", lag=100, seed=0,
                                     config=gradients.GradientsConfig())
    print(gradients.format_table(rows)); gradients.plot_gradient_norms(curves, "out/")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.memory.tasks import Batch, make_task
from lstmkit.memory.train import (
    MemoryConfig,
    SequenceModel,
    initialise,
    single_blas_thread,
    train_model,
)
from lstmkit.nn.losses import mse, softmax_cross_entropy
from lstmkit.train import files

__all__ = [
    "GradientsConfig",
    "decay_rate",
    "format_table",
    "measure",
    "plot_gradient_norms",
    "state_gradient_norms",
]

# Tasks with one prediction at the last step (the loss there only, as the measurement needs).
LAST_STEP_TASKS = ("adding", "temporal")


@dataclass
class GradientsConfig:
    hidden: int = 64
    batch: int = 64  # sequences the norms are averaged over
    train_seconds: float = 20.0
    train_steps: int | None = None
    lr: float = 1e-2
    init: str = "forget1"


def state_gradient_norms(model: SequenceModel, task: Any, batch: Batch) -> dict[str, np.ndarray]:
    """Batch-mean ||dL/dh_t|| (and ||dL/dc_t|| for an LSTM) for t = 0..T-1, each (T,).

    L is each sequence's own loss at the last step (the batch's losses are summed, so the
    gradient reaching sequence n's states is that of its own loss). The model's grads are
    left zeroed.
    """
    if model.scored != "last":
        raise ValueError(f"model: expected a last-step read-out, got scored={model.scored!r}")
    rnn = model.rnn
    rnn.record_state_grads = True
    try:
        out, _ = model(batch.x)
        if task.loss == "mse":
            _, dout = mse(out, batch.y, reduction="sum")
        else:
            _, dout = softmax_cross_entropy(out, batch.y, reduction="sum")
        model.zero_grad()
        model.backward(dout)
        grads = dict(rnn.state_grads)
    finally:
        rnn.record_state_grads = False
        model.zero_grad()
    norms = {"h": np.linalg.norm(grads["h_l0"].astype(np.float64), axis=2).mean(axis=1)}
    if "c_l0" in grads:
        norms["c"] = np.linalg.norm(grads["c_l0"].astype(np.float64), axis=2).mean(axis=1)
    return norms


def decay_rate(norms: np.ndarray) -> float:
    """Slope of log(norm) against the distance T - 1 - t, per step (natural log).

    norms (T,) in time order. Zero entries (dL/dc at the last step, which only the cell's
    own output reads) and underflowed ones are left out; nan if fewer than two remain.
    A slope s means the gradient is multiplied by about exp(s) per step back in time.
    """
    distance = np.arange(len(norms))[::-1]  # T-1-t
    keep = np.isfinite(norms) & (norms > 0)
    if keep.sum() < 2:
        return float("nan")
    slope, _ = np.polyfit(distance[keep], np.log(norms[keep]), 1)
    return float(slope)


def measure(
    models: Sequence[str],
    task_name: str,
    lag: int,
    seed: int,
    config: GradientsConfig,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, np.ndarray]]]:
    """For each model: the norms at initialisation, then after a short training on the task.

    Returns (rows for the table, {(model, "init" | "trained"): {"h": (T,), "c": (T,)}}).
    """
    if task_name not in LAST_STEP_TASKS:
        raise ValueError(
            f"task: expected one of {', '.join(LAST_STEP_TASKS)} (the loss must be at the "
            f"last step only), got {task_name!r}"
        )
    task = make_task(task_name, lag)
    rows: list[dict[str, Any]] = []
    curves: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    train_config = MemoryConfig(
        hidden=config.hidden,
        lr=config.lr,
        budget_seconds=config.train_seconds,
        max_steps=config.train_steps,
        init=config.init,
    )
    for model_name in models:
        rng = np.random.default_rng([seed, lag])
        model = SequenceModel(
            model_name, task.input_size, config.hidden, task.output_size, "last", seed=rng
        )
        init_used = initialise(model, config.init, lag, rng)
        probe = task.sample(config.batch, np.random.default_rng([seed, lag, 1]))
        with single_blas_thread():
            curves[(model_name, "init")] = state_gradient_norms(model, task, probe)
            steps, seconds, _ = train_model(task, model, train_config, rng)
            curves[(model_name, "trained")] = state_gradient_norms(model, task, probe)
        for phase in ("init", "trained"):
            norms = curves[(model_name, phase)]
            rows.append(
                {
                    "model": model_name,
                    "phase": phase,
                    "task": task_name,
                    "lag": lag,
                    "init": init_used,
                    "train_steps": steps if phase == "trained" else 0,
                    "train_seconds": round(seconds, 2) if phase == "trained" else 0.0,
                    "h_decay_per_step": decay_rate(norms["h"]),
                    "h_norm_last": float(norms["h"][-1]),
                    "h_norm_first": float(norms["h"][0]),
                    "c_decay_per_step": decay_rate(norms["c"]) if "c" in norms else None,
                }
            )
    return rows, curves


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per (model, phase): decay rates per step and the end-to-end ratio."""

    def rate(value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "-"
        return f"{value:+.4f} (x{math.exp(value):.3f})"

    header = ["model", "phase", "steps", "dL/dh decay/step", "dL/dc decay/step"]
    header.append("||dh_0||/||dh_T-1||")
    table = [header]
    for r in rows:
        ratio = r["h_norm_first"] / r["h_norm_last"] if r["h_norm_last"] else float("nan")
        table.append(
            [
                r["model"],
                r["phase"],
                str(r["train_steps"]),
                rate(r["h_decay_per_step"]),
                rate(r["c_decay_per_step"]),
                f"{ratio:.3g}",
            ]
        )
    widths = [max(len(row[j]) for row in table) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_gradient_norms(
    curves: dict[tuple[str, str], dict[str, np.ndarray]], out_dir: str | Path, title: str = ""
) -> Path:
    """gradient_norms.png: ||dL/dh_t|| (solid) and ||dL/dc_t|| (dashed) against T - t on a
    log scale, at initialisation (left) and after training (right). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gradient_norms.png"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    models = list(dict.fromkeys(m for m, _ in curves))
    colors = {m: f"C{k}" for k, m in enumerate(models)}
    for ax, phase in zip(axes, ("init", "trained")):
        for model_name in models:
            norms = curves.get((model_name, phase))
            if norms is None:
                continue
            distance = np.arange(len(norms["h"]))[::-1] + 1  # T - t, 1 at the last step
            ax.plot(distance, norms["h"], color=colors[model_name], label=f"{model_name} dL/dh")
            if "c" in norms:
                c = np.where(norms["c"] > 0, norms["c"], np.nan)
                ax.plot(distance, c, "--", color=colors[model_name], label=f"{model_name} dL/dc")
        ax.set_yscale("log")
        ax.set_xlabel("distance T - t (steps back from the loss)")
        ax.set_title("at initialisation" if phase == "init" else "after training")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("batch-mean gradient norm")
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
