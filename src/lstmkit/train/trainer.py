"""The one training loop (:class:`Trainer`) and what every trainer shares around it.

A task (char-LM, forecaster, memory task) hands the trainer a :class:`Task`: its model, the
loss of step k's batch, an evaluation and its own checkpoint fields. The trainer owns the
rest: the step loop, the data-parallel all-reduce, clipping, the lr schedule, evaluation
every ``eval_every`` steps, best/latest checkpoints and resume, metrics.jsonl, the progress
bar, divergence (NaN/inf) and Ctrl-C/SIGTERM.

A trained model's checkpoint holds its parameters as ``model/<name>`` arrays, Adam's
buffers as ``optim/<name>`` and, in the JSON header, ``kind`` (which model class reads it),
``model`` (that class's config), the task's own fields (``train_config``, ...), and the
trainer's: ``optimizer`` (Adam's scalars), ``rng`` (the modules' own generators), ``noise`` (how
dropout masks are drawn: :data:`NOISE`), ``step`` and the best score under the task's
``best_key``.

Dropout masks are keyed by (seed, step, example) (:class:`lstmkit.nn.noise.KeyedNoise`):
K ranks draw exactly the masks of one process, and a resume on any K continues them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.nn.model import Model
from lstmkit.nn.noise import KeyedNoise
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.nn.schedules import Constant, WarmupCosine
from lstmkit.train import checkpoint, distributed, schema
from lstmkit.train.errors import TrainingError
from lstmkit.train.run_folder import Run, progress
from lstmkit.train.signals import StopRequests, held

Checkpoint = tuple[dict[str, np.ndarray], dict[str, Any]]  # (arrays, header)
NOISE = "keyed-1"  # dropout masks from KeyedNoise(seed) keyed by (step, draw, example)


# ---- options ----------------------------------------------------------------------------


def check_options(
    config: Any, positive: Iterable[str] = (), at_least_zero: Iterable[str] = ()
) -> None:
    """Refuse option values no run can use (ValueError naming the command-line flag).

    ``positive`` and ``at_least_zero`` name fields that, unless None, must be > 0 and >= 0;
    ``dropout`` (if the config has one) must be a probability and ``schedule`` "cosine"
    needs ``steps``.
    """
    for name in positive:
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected > 0, got {value}")
    for name in at_least_zero:
        value = getattr(config, name)
        if value is not None and not value >= 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= 0, got {value}")
    dropout = getattr(config, "dropout", 0.0)
    if not 0 <= dropout < 1:
        raise ValueError(f"--dropout: expected a probability in [0, 1), got {dropout}")
    schedule = getattr(config, "schedule", "constant")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"--schedule: expected constant or cosine, got {schedule!r}")
    if schedule == "cosine" and not config.steps:
        raise ValueError("--schedule cosine needs --steps")


@dataclass(frozen=True)
class Options:
    """How the loop runs. ``steps``, ``seconds`` and ``deadline`` (None: no limit) end it, as
    may the task.

    The two clocks differ in when they are read: ``seconds`` (counted from :meth:`Trainer.fit`)
    before a step, so none starts after it; ``deadline`` (an instant of ``time.monotonic()``,
    shared by several fits, e.g. an automatic forecaster's candidates) after a step, so at
    least one step runs and the step that ends past it is the last one (and, with
    ``evaluate_last``, evaluated). A run folder always evaluates its last step (its final
    checkpoint); without one, ``evaluate_last`` asks for that evaluation too.
    """

    lr: float
    clip: float
    eval_every: int
    steps: int | None = None
    seconds: float | None = None
    warmup: int = 0
    schedule: str = "constant"  # or "cosine" (to ``steps``)
    seed: int = 0  # keys the dropout masks (with the step and the example)
    save_first: bool = False  # a new run writes latest.npz before its first step
    deadline: float | None = None  # time.monotonic() past which no further step runs
    evaluate_last: bool = False  # without a run folder too: evaluate the last step

    @classmethod
    def of(cls, config: Any, save_first: bool = False) -> Options:
        """From a trainer's config (fields lr, clip, eval_every, steps, minutes, ...)."""
        seconds = 60 * config.minutes if config.minutes else None
        names = ("lr", "clip", "eval_every", "steps", "warmup", "schedule", "seed")
        return cls(seconds=seconds, save_first=save_first, **{k: getattr(config, k) for k in names})


def lr_schedule(
    lr: float, schedule: str, warmup: int, steps: int | None
) -> Constant | WarmupCosine:
    """The learning rate per step: constant, or cosine to ``steps``, after a linear warm-up."""
    if schedule == "cosine":
        return WarmupCosine(lr, warmup, steps or 0)  # check_options asked for steps
    if warmup:
        return WarmupCosine(lr, warmup, 2**62, min_lr=lr)  # warm-up, then constant
    return Constant(lr)


# ---- checkpoints and run folders --------------------------------------------------------


def save_model(
    run: Run,
    name: str,
    kind: str,
    model: Any,
    meta: dict[str, Any],
    extra_arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``model``'s parameters, config and ``meta`` as the run's checkpoint ``name``."""
    arrays = {f"model/{k}": v for k, v in model.parameters().items()}
    arrays.update(extra_arrays or {})
    return run.save(name, arrays, {"kind": kind, "model": model.config.to_dict(), **meta})


def load_model_checkpoint(
    path: str | Path, kind: str, what: str, check: checkpoint.Check | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
    """(all arrays, header, model parameters) of a checkpoint holding a ``kind`` model.

    ``path`` is a checkpoint file or a run folder (its best, else latest, checkpoint);
    ``what`` names the kind for the error message ("a char-LM"); ``check(meta, manifest)``
    is the kind's header schema, applied before any array is read. Every float array other
    than the model's parameters (optimizer buffers, carried state) must be finite; the
    parameters are checked by ``load_state_dict`` after the cast to the model's dtype.
    """
    path = checkpoint_file(path)

    def checked(meta: dict[str, Any], manifest: schema.Manifest) -> None:
        if meta.get("kind") != kind:
            raise checkpoint.CheckpointError(
                f"holds a {schema._show(meta.get('kind'))} model, expected {what} ({kind!r})"
            )
        if check is not None:
            check(meta, manifest)

    arrays, meta = checkpoint.load(path, checked)
    for name, a in arrays.items():
        if not name.startswith("model/") and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise checkpoint.CheckpointError(f"{path}: array {name!r}: holds NaN or inf")
    params = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    return arrays, meta, params


def checkpoint_file(path: str | Path) -> Path:
    """``path``, or for a run folder its best (else latest) checkpoint."""
    path = Path(path)
    if path.is_dir():
        run = Run(path)
        path = run.checkpoint_path("best" if run.exists("best") else "latest")
    return path


def load_parameters(
    path: Path, model: Model, params: dict[str, np.ndarray], meta: dict[str, Any]
) -> None:
    """``model.load_state_dict(params)``, and the header's generator states (``rng``, each
    of ``rng_ranks``) named for exactly the model's dropout layers; a refusal (non-finite
    after the cast to the model's dtype, other names) is a CheckpointError naming the file."""
    try:
        model.load_state_dict(params)
        names = sorted(model.rng_state())
        for where, states in [("rng", meta.get("rng"))] + [
            (f"rng_ranks[{r}]", states) for r, states in enumerate(meta.get("rng_ranks", []))
        ]:
            if states is not None and sorted(states) != names:
                raise ValueError(f"{where}: expected generator states for {names}, "
                                 f"got {sorted(states)}")  # fmt: skip
    except (ValueError, TypeError) as e:
        raise checkpoint.CheckpointError(f"{checkpoint_file(path)}: {e}") from None


def open_run(out: str | Path, resume: bool, comm: distributed.SingleProcess) -> Run:
    """The run folder ``out`` as rank 0 sees it (other hosts may not share it): a new run
    needs no checkpoint there, a resumed one its latest.npz. Rank 0 holds the folder's lock
    (another process training into it is refused, naming its pid) until ``run.release()``."""
    run = Run(out)

    def check() -> None:
        run.lock()
        try:
            if run.exists() and not resume:
                raise TrainingError(f"{out} already holds a run; pass --resume to continue it")
            if resume and not run.exists():
                raise TrainingError(f"{out}: nothing to resume (no latest.npz)")
        except BaseException:
            run.release()
            raise

    comm.on_root(check)
    return run


def check_same_options(stored: dict[str, Any], config: Any, keys: Iterable[str]) -> None:
    """Refuse to resume with options (among ``keys``) that differ from the stored config."""
    keys = set(keys)
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


def check_same_data(comm: distributed.SingleProcess, fingerprint: str, message: str) -> None:
    """Every rank read the same data (same ``fingerprint``), else TrainingError(message)."""
    if len(set(comm.allgather(fingerprint))) > 1:
        raise TrainingError(message)


def diverged(what: str, step: int, run: Run | None) -> TrainingError:
    """The error that stops a run whose loss, gradients or parameters became non-finite."""
    last = run.checkpoint_path("latest") if run is not None else None
    kept = (
        f"The last good checkpoint is {last}"
        if last is not None and last.is_file()
        else "There is no checkpoint yet"
    )
    return TrainingError(f"{what} at step {step + 1}; stopped. {kept}. Try a lower --lr or --clip")


# ---- the loop ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of the model."""

    record: dict[str, float] = field(default_factory=dict)  # logged to metrics.jsonl
    score: float | None = None  # lower is better: picks best.npz (None: no best.npz)
    message: str | None = None  # shown under the progress bar ("validation 2.1 bits/char")
    solved: bool = False  # the task is done: training stops


class Task:
    """What a task gives :class:`Trainer`. Subclasses set ``model`` and define ``loss`` and
    ``evaluate``; with a run folder also ``kind``, ``best_key`` and ``checkpoint``."""

    model: Model
    kind = ""  # the checkpoint's model kind ("charlm")
    best_key = "best_val_loss"  # the header field holding the best score
    tokens_per_step = 0  # > 0: log and show tokens/s

    def loss(self, step: int) -> tuple[float, np.ndarray]:
        """Forward this rank's share of step ``step``'s batch (``step`` counts from 0):
        (mean loss, dloss/doutput) with the model's output shape, e.g. (T, B/K, V)."""
        raise NotImplementedError

    def step_done(self) -> None:
        """The step's update is applied: keep what carries over to the next (state)."""

    def evaluate(self, step: int) -> Evaluation:
        """Score the model after ``step`` steps; every rank calls it and must agree."""
        raise NotImplementedError

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The task's header fields and arrays for a checkpoint. Every rank calls it (it may
        gather); rank 0's result is written."""
        return {}, {}


@dataclass
class Summary:
    """What :meth:`Trainer.fit` did."""

    steps: int  # the global step reached
    loss: float  # the last step's training loss (NaN without a step)
    seconds: float  # spent in the loop
    steps_per_s: float
    evaluation: Evaluation | None  # the last one


class Trainer:
    """Trains ``task.model`` with Adam, one whole step at a time.

    A step: the task's loss on this rank's batch, backward, with K > 1 ranks one Allreduce
    (mean gradient, loss, stop request, rank 0's clock), gradient clipping to ``clip``, the
    scheduled lr, the update. Every ``eval_every`` steps: the task's evaluation, logged
    with best.npz (when the score improved) and latest.npz written. A non-finite loss,
    gradient norm or parameter stops with :func:`diverged` (latest.npz stays the last good
    one). Ctrl-C or SIGTERM lets the step finish, saves latest.npz and raises
    KeyboardInterrupt. Without a ``run`` folder nothing is logged or saved.

    ``resume``: the (arrays, header) of the run's latest checkpoint, from which the optimizer,
    the dropout generators, the step and the best score continue.
    """

    def __init__(
        self,
        task: Task,
        options: Options,
        run: Run | None = None,
        comm: distributed.SingleProcess | None = None,
        resume: Checkpoint | None = None,
        show_progress: bool = False,
        log: Callable[[str], None] = print,
    ):
        self.task, self.options, self.run, self.log = task, options, run, log
        self.comm = comm or distributed.SingleProcess()
        if options.deadline is not None and self.comm.size > 1:
            raise ValueError(
                "options.deadline: expected one process (each rank reads its own clock), got "
                f"{self.comm.size}; pass options.seconds (rank 0's clock decides for all)"
            )
        self.root, self.show_progress = self.comm.rank == 0, show_progress
        model = task.model
        self.comm.broadcast_arrays_(model.parameters().values())  # every rank from rank 0's
        self.optimizer = Adam(model.parameters(), model.grads, lr=options.lr)
        self.weights = list(self.optimizer.params.values())  # the live arrays it updates
        self.schedule = lr_schedule(options.lr, options.schedule, options.warmup, options.steps)
        self.step, self.best, self.fresh = 0, math.inf, resume is None
        if resume is not None:
            self._restore(*resume)
        elif run is not None and self.root:
            run.create()
            run.metrics_path.unlink(missing_ok=True)  # of a run killed before its 1st checkpoint
        self.noise = KeyedNoise(options.seed)
        model.set_noise(self.noise)  # masks by (seed, step, example): the same on any K
        self.rng_good = model.rng_state()  # the generators after the last whole step
        self.flat = (
            distributed.FlatGradients(model.grads, scalars=3) if self.comm.size > 1 else None
        )
        self.whole = True  # the live state is the one after step ``self.step``
        self.stopping = self.late = False
        self.reported = False  # fit sets it: a progress bar or metrics.jsonl to report to
        self.deadline, self.started, self.first, self.loss = math.inf, 0.0, 0, math.nan

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        optim = {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")}
        where = self.run.checkpoint_path() if self.run is not None else "the checkpoint"
        try:  # the header's fields were checked by the task's schema as it was read
            self.optimizer.load_state_dict(optim, meta["optimizer"])
            self.task.model.set_rng_state(meta["rng"])
            self.step, self.best = meta["step"], meta[self.task.best_key]
        except (KeyError, TypeError, ValueError) as e:
            raise TrainingError(
                f"{where}: cannot resume from it ({type(e).__name__}: {e})"
            ) from None
        if self.run is not None and self.root:
            self.run.truncate_log(self.step)
            self.log(f"resuming {self.run.folder} at step {self.step}")
            if meta.get("noise") != NOISE:
                self.log(
                    "note: this checkpoint predates dropout masks keyed by (seed, step, "
                    "example); with dropout the masks from here on differ from those the "
                    "lstmkit that wrote it would draw"
                )

    def fit(self) -> Summary:
        """Train until ``steps``, the time budget, a solved task or a stop request."""
        shown = self.show_progress and self.root
        bar = progress(self.options.steps, "train", disable=not shown)
        self.reported = shown or (self.run is not None and self.root)  # _report has a reader
        try:
            with StopRequests() as stop, self.comm.watchdog() as watchdog:
                try:
                    if self.fresh and self.options.save_first:
                        self.save("latest")  # a divergence in the first steps leaves one too
                    seconds = self.options.seconds
                    self.deadline = time.monotonic() + seconds if seconds else math.inf
                    bar.update(self.step)
                    self.first, self.started = self.step, time.monotonic()
                    last = self._steps(bar, stop, watchdog)
                    seconds = self.elapsed()
                    if self._last_unevaluated(last):
                        last = self._evaluate(None)  # with a run folder: the final checkpoint
                except KeyboardInterrupt:
                    bar.close()
                    stop.quiet = True  # saving now: further signals change nothing
                    self._interrupted(stop.forced)
                    raise
        except Exception as e:
            if self.comm.size > 1 and not isinstance(e, TrainingError):  # one rank failed
                self.comm.abort(f"{type(e).__name__}: {e}")
            raise
        finally:
            bar.close()
        if self.run is not None and self.root:
            self.run.plot_losses()
        rate = (self.step - self.first) / max(seconds, 1e-9)
        return Summary(self.step, self.loss, seconds, rate, last)

    def elapsed(self) -> float:
        """Seconds since :meth:`fit` started its loop."""
        return time.monotonic() - self.started

    def _steps(
        self, bar: Any, stop: StopRequests, watchdog: distributed.Watchdog
    ) -> Evaluation | None:
        """Whole steps (each evaluated every ``eval_every``) until the end; the last
        evaluation (an :class:`Evaluation`, or None)."""
        steps, deadline, last = self.options.steps, self.options.deadline, None
        while (steps is None or self.step < steps) and not self._out_of_time():
            if self.stopping if self.flat is not None else stop.requested:
                raise KeyboardInterrupt  # between whole steps: the checkpoint is exact
            self.whole = False  # a forced interrupt from here on saves nothing
            self.loss, norm = self._update(stop, watchdog)
            past = deadline is not None and time.monotonic() > deadline  # read after the step
            if self.reported:
                self._report(bar, norm)
            if self.step % self.options.eval_every == 0:
                last = self._evaluate(bar)
                if last.solved:
                    break
            if past:
                break
        return last

    def _out_of_time(self) -> bool:
        return self.late if self.flat is not None else time.monotonic() >= self.deadline

    def _last_unevaluated(self, last: Evaluation | None) -> bool:
        """Whether the loop ended on a step it did not evaluate and should: with a run folder
        any (also none taken: ``last`` None, the final checkpoint), with ``evaluate_last``
        one taken after the last multiple of ``eval_every``."""
        unevaluated = self.step % self.options.eval_every != 0
        if self.run is not None:
            return unevaluated or last is None
        return self.options.evaluate_last and unevaluated

    def _update(self, stop: StopRequests, watchdog: distributed.Watchdog) -> tuple[float, float]:
        """One whole step: (loss, gradient norm before clipping), both means over the ranks.

        The first signal only asks to stop after the step (StopRequests); a second one may
        break into the forward or backward (then the trainer saves nothing), but not into
        the update: from the optimizer's step until the step is counted, signals are held.
        What a step adds to the task's forward and backward is kept small (the automatic
        forecaster's models take ~0.5 ms a step): the held signals swap no handler, the
        parameters' finiteness is checked on the optimizer's list of arrays, the
        generators' states are copied only for a run folder's checkpoints, and nothing is
        reported with neither a progress bar nor a run folder.
        """
        model, step = self.task.model, self.step
        self.noise.start(step, self.comm.rank)  # this rank's columns of step ``step``
        with np.errstate(over="ignore", invalid="ignore"):  # a divergence is reported below
            loss, dout = self.task.loss(step)
            if self.flat is None:
                self._check(loss, f"the loss became {loss}")
            model.zero_grad()
            try:
                model.backward(dout)
            except ValueError as e:  # the LSTM refuses a non-finite gradient
                if self.flat is None:
                    raise diverged(f"the gradient overflowed ({e})", step, self.run) from None
                loss = math.nan  # the other ranks learn it through the Allreduce
            if self.flat is not None:  # mean gradient and loss over the ranks, in place
                late = self.root and time.monotonic() >= self.deadline
                loss, stops, now = self.flat.allreduce_mean(
                    self.comm, model.grads, loss, stop.requested, late
                )
                self.stopping, self.late = stops > 0, now > 0  # agreed by the ranks
                watchdog.beat()
                self._check(loss, f"the loss became {loss}")
            norm = clip_grad_norm(model.grads, self.options.clip)
            self._check(norm, f"the gradient norm became {norm}")
            self.optimizer.lr = self.schedule(step)
            with stop.hold():  # the update and its bookkeeping happen whole, or not at all
                self.optimizer.step()
                if not all(np.isfinite(w).all() for w in self.weights):
                    raise diverged("the parameters overflowed to inf/NaN", step, self.run)
                self.step += 1
                if self.run is not None:  # only a checkpoint reads them
                    self.rng_good = model.rng_state()
                self.task.step_done()
                self.whole = True
        return loss, norm

    def _check(self, value: float, what: str) -> None:
        if not math.isfinite(value):
            raise diverged(what, self.step, self.run)

    def _report(self, bar: Any, norm: float) -> None:
        """The progress bar, and metrics.jsonl at steps 1, 10, 20, ..."""
        record = {"step": self.step, "train_loss": self.loss, "grad_norm": norm}
        postfix = {"loss": f"{self.loss:.4f}"}
        if self.task.tokens_per_step:
            steps_per_s = (self.step - self.first) / self.elapsed()
            record["tok_s"] = steps_per_s * self.task.tokens_per_step
            postfix["tok_s"] = f"{record['tok_s']:.0f}"
        bar.update(1)
        bar.set_postfix(**postfix)
        if self.run is not None and self.root and (self.step % 10 == 0 or self.step == 1):
            self.run.log(record)

    def _evaluate(self, bar: Any) -> Evaluation:
        """The task's evaluation, logged; best.npz if it improved, then latest.npz."""
        result = self.task.evaluate(self.step)
        if self.run is None:
            return result
        if result.record and self.root:
            self.run.log({"step": self.step, **result.record})
        if result.score is not None and result.score < self.best:
            self.best = result.score
            self.save("best")
        self.save("latest")
        if bar is not None and result.message and self.root:
            bar.write(f"step {self.step}: {result.message}")
        return result

    def save(self, name: str) -> None:
        """Checkpoint ``name`` of the state after the last whole step. Every rank calls it
        (it gathers); rank 0 writes. Signals arriving meanwhile act after it."""
        with held():
            self._save(name)

    def _save(self, name: str) -> None:
        meta, arrays = self.task.checkpoint()
        if self.run is None or not self.root:
            return
        opt_arrays, opt_scalars = self.optimizer.state_dict()
        arrays = {**{f"optim/{k}": v for k, v in opt_arrays.items()}, **arrays}
        meta = {**meta, "optimizer": opt_scalars, "rng": self.rng_good, "noise": NOISE}
        meta["step"] = self.step
        meta[self.task.best_key] = self.best
        save_model(self.run, name, self.task.kind, self.task.model, meta, arrays)

    def _interrupted(self, forced: bool) -> None:
        """Ctrl-C: save latest.npz, unless a second (``forced``) one broke into a step
        (its state is half-computed) or, with K > 1 ranks, anywhere (the ranks may be at
        different points, and saving gathers from all of them)."""
        if self.run is None:
            return
        latest = self.run.checkpoint_path("latest")
        if forced and (not self.whole or self.comm.size > 1):
            if self.root:
                self.log(f"interrupted again during step {self.step + 1}; {latest} is unchanged")
            return
        self.save("latest")
        if self.root:
            self.log(f"interrupted at step {self.step}; saved {latest} (--resume goes on)")
