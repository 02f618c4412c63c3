"""Training a char-LM with truncated BPTT, resumable exactly from its latest checkpoint.

The training text is read as ``batch`` parallel streams; step k trains on window k of
every stream (``seq_len`` characters) with the recurrent state carried over from window
k - 1, so the model learns dependencies longer than one window. Everything a step depends
on (parameters, Adam's moments, the carried state, the dropout generators, the step
number, which fixes the window) is in the checkpoint, so a run killed at any moment and
resumed ends with exactly the parameters of an uninterrupted run. The loop itself is
:class:`lstmkit.train.trainer.Trainer`; this module supplies the char-LM's pieces.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.nn.losses import softmax_cross_entropy
from lstmkit.text.corpus import Corpus, Vocab, load_corpus
from lstmkit.text.evaluate import bits_per_char
from lstmkit.text.model import CharLM, CharLMConfig, State
from lstmkit.text.tbptt import num_windows, windows
from lstmkit.train import distributed, schema, trainer, variant
from lstmkit.train.config import LoopConfig
from lstmkit.train.run_folder import Run
from lstmkit.train.trainer import Evaluation, TrainingError

KIND = "charlm"
_MODEL_KEYS: tuple[str, ...] = ("embed", "hidden", "layers", "dropout", "dtype")


@dataclass
class TrainConfig(LoopConfig):
    """A char-LM's options: the loop's (:class:`~lstmkit.train.config.LoopConfig`, with
    this trainer's defaults), the model's sizes, the BPTT window and the validation text."""

    embed: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    seq_len: int = 128
    eval_chars: int = 200_000
    batch: int = 64  # parallel streams
    steps: int | None = 2000
    lr: float = 2e-3
    clip: float = 5.0
    eval_every: int = 200

    _positive = ("embed", "hidden", "layers", "seq_len", "eval_chars")


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


def check_header(meta: dict[str, Any], manifest: schema.Manifest) -> None:
    """A char-LM checkpoint's header: its model config, vocabulary, training state, and the
    arrays they imply (shapes, the model's dtype); HeaderError naming the field."""
    m = schema.mapping(meta, "model")
    schema.model_keys(m, {f.name for f in fields(CharLMConfig)} - {"variant"}, {"variant"})
    options = schema.lstm_variant(m)
    V = schema.integer(m, "vocab_size", "model.", 1, 0x110001)  # every code point + <unk>
    E = schema.integer(m, "embed", "model.", 1)
    H = schema.integer(m, "hidden", "model.", 1)
    L = schema.integer(m, "layers", "model.", 1)
    schema.number(m, "dropout", "model.", 0.0, 1.0, hi_open=True)
    dtype = schema.string(m, "dtype", "model.", schema.MODEL_DTYPES)
    assert dtype is not None
    vocab = schema.field(meta, "vocab")
    if (
        not isinstance(vocab, list)
        or not all(isinstance(c, str) and len(c) == 1 for c in vocab)
        or len(set(vocab)) != len(vocab)
    ):
        raise schema.HeaderError("vocab: expected a list of distinct single characters")
    if len(vocab) + 1 != V:
        raise schema.HeaderError(
            f"vocab: {len(vocab)} characters (+ <unk>), but model.vocab_size is {V}"
        )
    shapes = {"embed.weight": (V, E), **schema.lstm_shapes("lstm.", E, H, L, manifest, options)}
    shapes.update({"head.weight": (V, H), "head.bias": (V,)})
    extra: dict[str, tuple[int, ...]] = {}
    if "train_config" in meta or "step" in meta:
        tc = schema.mapping(meta, "train_config")
        B = schema.integer(tc, "batch", "train_config.", 1)
        if "step" in meta:  # a training run's checkpoint carries the state of its streams
            extra = {"carry/h": (L, B, H), "carry/c": (L, B, H)}
            if options.gate_recurrence:  # the previous step's gates, a third state
                extra["carry/a"] = (L, B, 3 * H)
    schema.model_arrays(manifest, shapes, dtype, extra)
    schema.trainer_fields(meta, "best_val_bpc")
    if "step" in meta or "corpus" in meta:  # a training run's names its corpus (resume)
        schema.string(meta, "corpus")
    if "corpus_selection" in meta:  # runs written before it was kept have none
        schema.string(meta, "corpus_selection")


def load_model(path: str | Path) -> tuple[CharLM, Vocab, dict[str, Any], dict[str, np.ndarray]]:
    """A char-LM from a checkpoint file or run folder (its best, else latest, checkpoint)."""
    arrays, meta, params = trainer.load_model_checkpoint(path, KIND, "a char-LM", check_header)
    model = CharLM(CharLMConfig(**meta["model"]))
    trainer.load_parameters(Path(path), model, params, meta)
    return model, Vocab(meta["vocab"]), meta, arrays


def _check_resume(
    meta: dict[str, Any], config: TrainConfig, fingerprint: str, selection: str
) -> None:
    variant.check_resume(meta["model"].get("variant"), config.variant)
    keys = _MODEL_KEYS + ("seq_len", "batch", "seed", "lr", "clip", "schedule", "warmup")
    if config.schedule == "cosine":
        keys += ("steps",)  # the length of the cosine: another --steps changes every lr
    trainer.check_same_options(meta["train_config"], config, keys)
    if meta.get("corpus") != fingerprint:
        raise TrainingError(
            "cannot resume: the training text differs from the run's (its vocabulary and "
            "data order would not match); pass the same --text as the original run"
        )
    stored = meta.get("corpus_selection")  # runs written before it was kept have none
    if stored is not None and stored != selection:
        raise TrainingError(
            "cannot resume: the corpus changed since the run started (files added, removed, "
            "renamed or edited; the validation part and so best.npz would not match); "
            "restore the --text files or start a new run with another --out"
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


class CharLMTask(trainer.Task):
    """Window k of the ``batch`` streams at step k, the recurrent state carried across
    windows (reset at each new pass over the text); scored in bits per character."""

    model: CharLM

    kind, best_key = KIND, "best_val_bpc"

    def __init__(
        self,
        model: CharLM,
        vocab: Vocab,
        corpus: Corpus,
        config: TrainConfig,
        comm: distributed.SingleProcess,
        carry: State | None = None,
    ):
        self.model, self.vocab, self.config, self.comm = model, vocab, config, comm
        self.fingerprint = corpus_fingerprint(corpus)
        self.selection = corpus.selection
        self.streams = comm.shard(config.batch)  # this rank's columns of every (T, B) window
        self.train_ids = vocab.encode(corpus.train)
        self.per_epoch = num_windows(len(self.train_ids), config.batch, config.seq_len, True)
        if self.per_epoch < 1:  # each of the --batch streams must hold one --seq-len window
            need = config.batch * config.seq_len + 1
            raise ValueError(
                f"the training text has {len(self.train_ids)} characters, too few for one "
                f"--batch {config.batch} x --seq-len {config.seq_len} window (needs {need}); "
                "give more text or a smaller --batch or --seq-len"
            )
        self.val_ids = vocab.encode(corpus.val[: config.eval_chars])
        self.state = model.initial_state(self.streams.stop - self.streams.start)
        if carry is not None:  # the global (L, B, ·) state of a checkpoint
            self.state = tuple(s[:, self.streams] for s in carry)
        self.next_state = self.state
        self.tokens_per_step = config.batch * config.seq_len
        self.batches: Iterator[tuple[np.ndarray, np.ndarray]] | None = None

    def _batches_from(self, k: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Windows (T, B) from global step k on, wrapping around the text."""
        window = k % self.per_epoch
        while True:
            c = self.config
            yield from windows(self.train_ids, c.batch, c.seq_len, window, drop_last=True)
            window = 0

    def loss(self, step: int) -> tuple[float, np.ndarray]:
        """Mean cross-entropy of the next characters, and dL/dlogits (T, B/K, V)."""
        if self.batches is None:
            self.batches = self._batches_from(step)
        if step % self.per_epoch == 0:  # a new pass over the text starts from zero state
            self.state = self.model.initial_state(self.streams.stop - self.streams.start)
        x, y = next(self.batches)  # (T, B) inputs and next-character targets
        logits, self.next_state = self.model(x[:, self.streams], self.state)
        return softmax_cross_entropy(logits, y[:, self.streams])

    def step_done(self) -> None:
        self.state = self.next_state

    def evaluate(self, step: int) -> Evaluation:
        bpc = _validation_bpc(self.model, self.val_ids, self.config.seq_len, self.comm)
        record = {"val_bpc": bpc, "val_loss": bpc * math.log(2.0)}
        return Evaluation(record, bpc, f"validation {bpc:.3f} bits/char")

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The vocabulary, config, corpus fingerprint and the global (L, B, ·) state:
        ``carry/h``, ``carry/c`` (and ``carry/a`` with gate_recurrence)."""
        names = self.model.lstm.cell.state_names
        carry = {n: self.comm.gather_concat(s, axis=1) for n, s in zip(names, self.state)}
        meta = {"vocab": self.vocab.chars, "train_config": asdict(self.config)}
        meta["corpus"] = self.fingerprint
        if self.selection:
            meta["corpus_selection"] = self.selection
        arrays = {f"carry/{n}": s for n, s in carry.items() if s is not None}
        return meta, (arrays if len(arrays) == len(names) else {})


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
    run = trainer.open_run(out, resume, comm)
    try:
        comm.shard(config.batch)  # refuse a batch the ranks cannot share before any work
        corpus = comm.on_all(lambda: load_corpus(text, exclude=[run.folder]))
        fingerprint = corpus_fingerprint(corpus)
        trainer.check_same_data(
            comm,
            fingerprint,
            "the MPI processes read different training text; every host needs the same --text",
        )
        checkpoint, carry = None, None
        if resume:
            model, vocab, meta, arrays = comm.on_root(lambda: load_model(run.checkpoint_path()))
            _check_resume(meta, config, fingerprint, corpus.selection)
            names = model.lstm.cell.state_names
            checkpoint, carry = (arrays, meta), tuple(arrays[f"carry/{n}"] for n in names)
        else:
            vocab = Vocab.build(corpus.train)
            model_config = CharLMConfig(
                len(vocab),
                config.embed,
                config.hidden,
                config.layers,
                config.dropout,
                config.dtype,
                config.variant,
            )
            model = CharLM(model_config, seed=config.seed)
        task = CharLMTask(model, vocab, corpus, config, comm, carry)
        fit = trainer.Trainer(
            task, trainer.Options.of(config), run, comm, checkpoint, show_progress, log
        )
        done = fit.fit()
        assert done.evaluation is not None  # a run folder always ends with one
        return {
            "run": str(run.folder),
            "steps": done.steps,
            "val_bpc": done.evaluation.score,
            "best_val_bpc": fit.best,
            "tokens_per_s": done.steps_per_s * task.tokens_per_step,
            "vocab_size": len(vocab),
            "parameters": model.num_parameters(),
            "processes": comm.size,
        }
    finally:
        run.release()
