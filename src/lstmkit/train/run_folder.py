"""A run folder: checkpoints (``latest.npz``, ``best.npz``), ``metrics.jsonl`` and figures.

Shared by every trainer (char-LM, forecaster, memory tasks) so a run looks the same
whatever was trained::

    runs/NAME/
        latest.npz      the newest checkpoint (atomic writes, see lstmkit.train.checkpoint)
        best.npz        the checkpoint with the best validation metric so far
        metrics.jsonl   one JSON object per logged event ({"step": .., "train_loss": ..})
        loss.png        the loss curve
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.train import checkpoint
from lstmkit.train.signals import StopRequests  # noqa: F401  (moved there)


class Run:
    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)

    def create(self) -> Run:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.jsonl"

    def checkpoint_path(self, name: str = "latest") -> Path:
        return self.folder / f"{name}.npz"

    def exists(self, name: str = "latest") -> bool:
        return self.checkpoint_path(name).is_file()

    def save(self, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        path = self.checkpoint_path(name)
        checkpoint.save(path, arrays, meta)
        return path

    def load(self, name: str = "latest") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return checkpoint.load(self.checkpoint_path(name))

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (flushed at once)."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_log(self, after_step: int) -> None:
        """Drop records past ``after_step`` (a resumed run re-logs them)."""
        if not self.metrics_path.is_file():
            return
        kept = [r for r in self.read_log() if r.get("step", 0) <= after_step]
        tmp = self.metrics_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.metrics_path)

    def read_log(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        lines = [s for s in self.metrics_path.read_text(encoding="utf-8").splitlines() if s.strip()]
        records = []
        for k, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if k < len(lines) - 1:
                    raise
                # a last line cut short (a crash mid-write): what was logged before stands
        return records

    def plot_losses(self, keys: tuple[str, ...] = ("train_loss", "val_loss")) -> Path | None:
        """loss.png from metrics.jsonl: each key against step. None if nothing to plot."""
        records = self.read_log()
        series = {k: [(r["step"], r[k]) for r in records if k in r] for k in keys}
        if not any(series.values()):
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for key, points in series.items():
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=key, marker="." if len(points) < 50 else None)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        path = self.folder / "loss.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return path


def progress(total: int | None, desc: str, disable: bool = False) -> Any:
    """A tqdm progress bar on stderr (a silent stand-in if tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _NoBar()
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...
    def close(self) -> None: ...
    def write(self, s: str) -> None:
        print(s)
