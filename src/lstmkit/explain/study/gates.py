"""The gate study: every LSTM variant of Greff et al. (2017) on a few tasks, many seeds each.

    from lstmkit.explain.study import gates
    config = gates.StudyConfig(variants=["vanilla", "NFG"], tasks=["adding"], seeds=5,
                               minutes=1.0)
    records = gates.run(config, "runs/study-gates", on_record=print)

The variants (Greff's names) are the full cell, "vanilla" (Greff's vanilla LSTM has
peepholes), and the cell with one part changed: no input gate (NIG), no forget gate (NFG),
no output gate (NOG), no input activation (NIAF), no output activation (NOAF), no peepholes
(NP: torch's LSTM), coupled input and forget gates (CIFG) and full gate recurrence (FGR).

A run is one (task, variant, seed) trained from scratch within the same budget (``minutes``
of wall time, ``steps`` if given; with ``steps`` alone the runs are reproducible); its
record (the task's test metric) is appended to ``results.jsonl`` as soon as it ends, so an
interrupted study, started again with the same command, goes on with the runs it lacks.
The char-LM's runs are run folders under ``runs/`` (``lstmkit text sample`` reads them).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.memory import train as memory
from lstmkit.memory.tasks import TASKS as MEMORY_TASKS
from lstmkit.text import train as text
from lstmkit.train import files
from lstmkit.train.run_folder import Run
from lstmkit.train.trainer import TrainingError

__all__ = ["TASKS", "VARIANTS", "StudyConfig", "load_records", "plan", "run", "run_one"]

FULL = {"peepholes": True}  # Greff's vanilla LSTM: the full cell, peepholes included
VARIANTS: dict[str, dict[str, Any]] = {
    "vanilla": FULL,
    "NIG": {**FULL, "input_gate": False},
    "NFG": {**FULL, "forget_gate": False},
    "NOG": {**FULL, "output_gate": False},
    "NIAF": {**FULL, "input_activation": False},
    "NOAF": {**FULL, "output_activation": False},
    "NP": {},
    "CIFG": {**FULL, "coupled_gates": True},
    "FGR": {**FULL, "gate_recurrence": True},
}
BASE = "vanilla"  # every variant is compared with it
# task -> (metric, lower is better); "charlm": validation bits/char on the corpus
TASKS: dict[str, tuple[str, bool]] = {"charlm": ("val_bpc", True)}
TASKS.update({k: (t.metric_name, not t.higher_is_better) for k, t in MEMORY_TASKS.items()})
RESULTS, SETTINGS = "results.jsonl", "settings.json"


@dataclass
class StudyConfig:
    """What the study runs. ``variants``, ``tasks`` and ``seeds`` choose the runs; the other
    fields are each run's settings, which every run of one study folder shares."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    tasks: list[str] = field(default_factory=lambda: ["charlm", "adding", "reber"])
    seeds: int = 5
    minutes: float | None = 1.0  # per run (wall time)
    steps: int | None = None  # per run; None: the time budget alone
    hidden: int = 64
    batch: int = 32
    lr_spread: float = 0.0  # > 0: lr = default * 10**U(-spread, spread), drawn per seed
    # the char-LM's
    text: list[str] | None = None  # files or folders; None: the default corpus
    embed: int = 32
    layers: int = 1
    seq_len: int = 64
    eval_chars: int = 20_000
    charlm_lr: float = 3e-3
    # the memory tasks'
    lag: int = 50  # adding, copying, temporal; the Reber stream's chunk length
    memory_lr: float = 1e-2
    reber_test_steps: int = 10_000

    def __post_init__(self) -> None:
        choices: list[tuple[str, list[str], list[str]]] = [
            ("--variants", list(VARIANTS), self.variants),
            ("--tasks", list(TASKS), self.tasks),
        ]
        for name, allowed, given in choices:
            bad = [v for v in given if v not in allowed]
            if bad or not given or len(set(given)) != len(given):
                raise ValueError(
                    f"{name}: expected distinct names from {', '.join(allowed)}, got {given}"
                )
        if self.minutes is None and self.steps is None:
            raise ValueError("a run needs a budget: expected --minutes or --steps")
        positive: tuple[str, ...] = ("seeds", "minutes", "steps", "hidden", "batch", "embed")
        positive += ("layers", "seq_len", "eval_chars", "charlm_lr", "lag", "memory_lr")
        positive += ("reber_test_steps",)
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"--{name.replace('_', '-')}: expected > 0, got {value}")
        if not 0 <= self.lr_spread <= 3:
            raise ValueError(f"--lr-spread: expected a number in [0, 3], got {self.lr_spread}")

    def settings(self) -> dict[str, Any]:
        """What every run of the study shares (all but the choice of runs)."""
        chosen = ("variants", "tasks", "seeds")
        return {k: v for k, v in asdict(self).items() if k not in chosen}


def plan(config: StudyConfig) -> Iterator[tuple[str, str, int]]:
    """The runs (task, variant, seed), seed by seed, so an early stop still compares all
    variants on the seeds it finished."""
    for task in config.tasks:
        for seed in range(config.seeds):
            for name in config.variants:
                yield task, name, seed


def learning_rate(config: StudyConfig, task: str, seed: int) -> float:
    """The task's learning rate, or with ``lr_spread`` a draw log-uniform around it from the
    seed (Greff's random search, paired: every variant gets the same lr at a seed)."""
    lr = config.charlm_lr if task == "charlm" else config.memory_lr
    if not config.lr_spread:
        return lr
    u = np.random.default_rng([seed, 0x1A5]).uniform(-config.lr_spread, config.lr_spread)
    return float(lr * 10.0**u)


def run_one(config: StudyConfig, task: str, name: str, seed: int, folder: Path) -> dict[str, Any]:
    """Train ``VARIANTS[name]`` on ``task`` with ``seed``; its record: the metric's ``value``
    (None if the run diverged), steps, seconds, lr. The char-LM's run folder is ``folder``."""
    metric, lower = TASKS[task]
    lr = learning_rate(config, task, seed)
    record: dict[str, Any] = {"task": task, "variant": name, "seed": seed, "metric": metric}
    record.update(lower_is_better=lower, lr=lr, options=VARIANTS[name])
    started = time.monotonic()
    if task == "charlm":
        record.update(_charlm(config, name, seed, lr, folder))
    else:
        record.update(_memory(config, task, name, seed, lr))
    record["seconds"] = round(time.monotonic() - started, 2)  # wall time, data included
    value = record["value"]
    record["diverged"] = value is None or not math.isfinite(value)
    if record["diverged"]:
        record["value"] = None
    return record


def _charlm(config: StudyConfig, name: str, seed: int, lr: float, folder: Path) -> dict[str, Any]:
    """The validation bits/char after the budget (the final model, not the best one); its
    baseline, the uniform guess's log2(vocabulary size)."""
    if folder.exists():  # the run was interrupted: it starts again, with its whole budget
        shutil.rmtree(folder)
    train_config = text.TrainConfig(
        embed=config.embed,
        hidden=config.hidden,
        layers=config.layers,
        seq_len=config.seq_len,
        batch=config.batch,
        steps=config.steps,
        minutes=config.minutes,
        lr=lr,
        eval_every=max(1, min(200, config.steps or 200)),
        eval_chars=config.eval_chars,
        seed=seed,
        variant=VARIANTS[name],
    )
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's validation lines
            s = text.train(train_config, folder, config.text, show_progress=False, log=_quiet)
    except TrainingError:  # diverged
        return {"value": None, "steps": None, "run": str(folder)}
    uniform = math.log2(s["vocab_size"])  # bits/char of guessing every character alike
    return {"value": s["val_bpc"], "steps": s["steps"], "run": str(folder), "baseline": uniform}


def _memory(config: StudyConfig, task: str, name: str, seed: int, lr: float) -> dict[str, Any]:
    """The task's test metric after the budget (on a fresh test batch or stream)."""
    memory_config = memory.MemoryConfig(
        hidden=config.hidden,
        batch=config.batch,
        lr=lr,
        budget_seconds=60 * config.minutes if config.minutes else math.inf,
        max_steps=config.steps,
        reber_test_steps=config.reber_test_steps,
        variant=VARIANTS[name],
    )
    r, _ = memory.run_one(task, "lstm", config.lag, seed, memory_config)
    return {"value": r["test_metric"], "steps": r["steps"], "baseline": r["baseline"]}


def _quiet(message: str) -> None:
    pass


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """The finished runs' records of a study folder (a line cut short by a kill is left
    out: that run had not finished)."""
    path = Path(out) / RESULTS
    if not path.is_file():
        return []
    records = []
    for line in files.read_text_nofollow(path).splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and {"task", "variant", "seed", "value"} <= set(record):
            records.append(record)
    return records


def _check_settings(out: Path, config: StudyConfig) -> None:
    """A study folder holds runs of one set of settings: refuse to mix in others."""
    path = out / SETTINGS
    now = config.settings()
    if path.is_file():
        try:
            was = json.loads(files.read_text_nofollow(path))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a study's settings ({e}); use another --out") from None
        if not isinstance(was, dict):
            raise ValueError(f"{path}: not a study's settings; use another --out")
        differ = [f"{k} {was.get(k)!r} (now {v!r})" for k, v in now.items() if was.get(k) != v]
        if differ:
            raise ValueError(
                f"{out} holds a study run with other settings: {', '.join(differ)}; "
                "pass the same options to go on, or another --out"
            )
    else:
        files.write_text(path, json.dumps(now, indent=1) + "\n")


def _append(path: Path, record: dict[str, Any]) -> None:
    """``record`` as a line of ``path``, on a line of its own after one cut short by a kill."""
    content = files.read_text_nofollow(path) if path.is_file() else ""
    cut = bool(content) and not content.endswith("\n")
    with files.open_append(path) as f:
        f.write(("\n" if cut else "") + json.dumps(record) + "\n")


def run(
    config: StudyConfig,
    out: str | Path,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every run of :func:`plan` that ``out`` has no record of, each record appended to
    ``out/results.jsonl`` as it finishes; returns the records of the planned runs."""
    out = Path(out)
    study = Run(out).lock()  # one process per study folder (RunFolderBusy names the other)
    try:
        _check_settings(out, config)
        done = {(r["task"], r["variant"], r["seed"]): r for r in load_records(out)}
        with memory.single_blas_thread():
            for task, name, seed in plan(config):
                if (task, name, seed) in done:
                    continue
                folder = out / "runs" / task / name / f"seed{seed}"
                record = run_one(config, task, name, seed, folder)
                _append(out / RESULTS, record)
                done[task, name, seed] = record
                if on_record is not None:
                    on_record(record)
    finally:
        study.release()
    return [done[key] for key in plan(config)]
