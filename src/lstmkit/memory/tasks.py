"""Long-lag benchmark tasks: adding, copying, temporal order, continual embedded Reber.

Every generator is seeded by the ``rng`` it is given, takes the lag ``T`` and returns
time-major :class:`Batch` arrays. Each task also knows its *memoryless baseline*: the
metric of the best predictor that ignores the inputs (or, for the Reber stream, the
long-lag part of them), computed from the batch it is scored on, so a result can always
be read against it.

==================  ===================  ==========================  ==================
task                x                    y                           scored at
==================  ===================  ==========================  ==================
adding              (T, N, 2)            (N, 1) float                the last step
copying             (T+20, N, 10)        (T+20, N) int in [0, 9)     every step
temporal order      (T, N, 8)            (N,) int in [0, 4)          the last step
Reber stream        (T, N, 7)            (T, N) int in [0, 7)        every step
==================  ===================  ==========================  ==================
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "TASKS",
    "AddingTask",
    "Batch",
    "CopyingTask",
    "ReberStream",
    "ReberTask",
    "TemporalOrderTask",
    "make_task",
]


class Batch(NamedTuple):
    x: np.ndarray  # (T, N, I) float32 inputs, time-major
    y: np.ndarray  # targets, shape per task (see the module table)
    info: dict[str, np.ndarray]  # generator facts: marker positions, legal next symbols, ...


def _rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    return np.random.default_rng(rng)


def _check_lag(T: Any, low: int, what: str) -> int:
    if not isinstance(T, int | np.integer) or isinstance(T, bool) or T < low:
        label = what if ":" in what else f"{what}: lag T"
        raise ValueError(f"{label}: expected an integer >= {low}, got {T!r}")
    return int(T)


def _one_hot(ids: np.ndarray, size: int) -> np.ndarray:
    return np.eye(size, dtype=np.float32)[ids]


# ---- adding ---------------------------------------------------------------------------


class AddingTask:
    """The adding problem (Hochreiter & Schmidhuber 1997; modern form of Le et al. 2015).

    Channel 0 holds values ~ U[0, 1], channel 1 is 1 at two marker positions, one in
    [0, T/2) and one in [T/2, T), and 0 elsewhere. The target is the sum of the two
    marked values; predicting the constant mean 1 gives MSE Var(u1 + u2) = 1/6.
    """

    name = "adding"
    min_lag = 2  # the shortest lag it is defined for
    input_size = 2
    output_size = 1
    scored = "last"
    loss = "mse"
    metric_name = "mse"
    higher_is_better = False
    threshold = 0.01  # solved below it

    def __init__(self, T: int):
        self.T = _check_lag(T, self.min_lag, self.name)
        self.lag = self.T

    def sample(self, n: int, rng: int | np.random.Generator | None = None) -> Batch:
        rng = _rng(rng)
        T, half = self.T, self.T // 2
        values = rng.random((T, n))
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, T, size=n)
        markers = np.zeros((T, n))
        cols = np.arange(n)
        markers[first, cols] = 1.0
        markers[second, cols] = 1.0
        x = np.stack([values, markers], axis=2).astype(np.float32)  # (T, N, 2)
        y = (values[first, cols] + values[second, cols])[:, None].astype(np.float32)  # (N, 1)
        return Batch(x, y, {"first": first, "second": second})

    def baseline(self, batch: Batch) -> float:
        """MSE of the best constant prediction, the targets' mean (about 1/6)."""
        return float(np.var(batch.y.astype(np.float64)))

    def evaluate(self, pred: np.ndarray, batch: Batch) -> dict[str, float]:
        """pred (N, 1) -> {"mse": ...}."""
        return {"mse": float(np.mean((pred.astype(np.float64) - batch.y) ** 2))}

    def solved(self, metrics: dict[str, float], baseline: float) -> bool:
        return metrics["mse"] < self.threshold


# ---- copying --------------------------------------------------------------------------


class CopyingTask:
    """Copying memory (Arjovsky, Shah & Bengio 2016).

    Input symbols: 0 blank, 1..8 data, 9 delimiter. A sequence of length T + 20 is ten
    data symbols, T - 1 blanks, the delimiter, then ten blanks; the target is blank for
    the first T + 10 steps, then the ten data symbols in order. The memoryless predictor
    (blank, then uniform over the 8 symbols) scores a cross-entropy of 10 ln 8 / (T + 20)
    per step. ``n_copy`` and ``n_symbols`` (10 and 8 in the paper) make smaller variants:
    K symbols from an alphabet of S give length T + 2K and baseline K ln S / (T + 2K).
    """

    name = "copying"
    min_lag = 1  # the shortest lag it is defined for
    scored = "every"
    loss = "xent"
    metric_name = "xent"
    higher_is_better = False
    threshold = None  # solved: relative to the baseline, and by accuracy

    def __init__(self, T: int, n_copy: int = 10, n_symbols: int = 8):
        self.T = _check_lag(T, self.min_lag, self.name)
        self.lag = self.T
        self.n_copy = _check_lag(n_copy, 1, "copying: n_copy")
        self.n_symbols = _check_lag(n_symbols, 1, "copying: n_symbols")
        self.input_size = self.n_symbols + 2  # blank, the symbols, the delimiter
        self.output_size = self.n_symbols + 1  # blank and the symbols

    def sample(self, n: int, rng: int | np.random.Generator | None = None) -> Batch:
        rng = _rng(rng)
        T, K = self.T, self.n_copy
        length = T + 2 * K
        data = rng.integers(1, self.n_symbols + 1, size=(K, n))
        inputs = np.zeros((length, n), dtype=np.int64)
        inputs[:K] = data
        inputs[T + K - 1] = self.n_symbols + 1  # the delimiter
        y = np.zeros((length, n), dtype=np.int64)
        y[T + K :] = data
        return Batch(_one_hot(inputs, self.input_size), y, {"inputs": inputs})

    def baseline(self, batch: Batch) -> float:
        """Cross-entropy per step of the best predictor that sees only the position t:
        the entropy of the targets' distribution at each t, averaged over t."""
        total = 0.0
        for y_t in batch.y:
            p = np.bincount(y_t, minlength=self.output_size) / y_t.size
            p = p[p > 0]
            total -= float(np.sum(p * np.log(p)))
        return total / batch.y.shape[0]

    def evaluate(self, logits: np.ndarray, batch: Batch) -> dict[str, float]:
        """logits (T+20, N, 9) -> cross-entropy per step and accuracy on the copied part."""
        z = logits.astype(np.float64)
        z = z - z.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, batch.y[..., None], axis=-1)[..., 0]
        copied = slice(self.T + self.n_copy, None)
        accuracy = np.mean(logits[copied].argmax(axis=-1) == batch.y[copied])
        return {"xent": float(-picked.mean()), "copy_accuracy": float(accuracy)}

    def solved(self, metrics: dict[str, float], baseline: float) -> bool:
        """Well below the baseline (ratio < 0.1) and > 99 % of the symbols copied right."""
        return metrics["xent"] < 0.1 * baseline and metrics["copy_accuracy"] > 0.99


# ---- temporal order -------------------------------------------------------------------

# The alphabet of Hochreiter & Schmidhuber's experiment 6a.
TEMPORAL_SYMBOLS = ("a", "b", "c", "d", "B", "E", "X", "Y")


class TemporalOrderTask:
    """Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a), at any length T.

    A sequence starts with B and ends with E; between them distractors a, b, c, d, except
    at t1 in [T/10, 2T/10] and t2 in [5T/10, 6T/10] which hold X or Y. The class is the
    order: XX, XY, YX, YY (0..3). For T = 100 this is the paper's setting with a fixed
    length. Guessing the majority class is right about 25 % of the time.
    """

    name = "temporal"
    min_lag = 10  # the shortest lag it is defined for
    input_size = len(TEMPORAL_SYMBOLS)
    output_size = 4
    scored = "last"
    loss = "xent"
    metric_name = "accuracy"
    higher_is_better = True
    threshold = 0.99  # solved above it

    def __init__(self, T: int):
        self.T = _check_lag(T, self.min_lag, self.name)
        self.lag = self.T

    def positions(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The inclusive ranges of t1 and t2."""
        T = self.T
        return (max(1, T // 10), max(1, 2 * T // 10)), (5 * T // 10, min(T - 2, 6 * T // 10))

    def sample(self, n: int, rng: int | np.random.Generator | None = None) -> Batch:
        rng = _rng(rng)
        T = self.T
        (lo1, hi1), (lo2, hi2) = self.positions()
        ids = rng.integers(0, 4, size=(T, n))  # distractors a..d
        ids[0] = TEMPORAL_SYMBOLS.index("B")
        ids[-1] = TEMPORAL_SYMBOLS.index("E")
        t1 = rng.integers(lo1, hi1 + 1, size=n)
        t2 = rng.integers(lo2, hi2 + 1, size=n)
        s1 = rng.integers(0, 2, size=n)  # 0 = X, 1 = Y
        s2 = rng.integers(0, 2, size=n)
        cols = np.arange(n)
        ids[t1, cols] = TEMPORAL_SYMBOLS.index("X") + s1
        ids[t2, cols] = TEMPORAL_SYMBOLS.index("X") + s2
        y = (2 * s1 + s2).astype(np.int64)
        return Batch(_one_hot(ids, self.input_size), y, {"t1": t1, "t2": t2, "ids": ids})

    def baseline(self, batch: Batch) -> float:
        """Accuracy of always answering the batch's most frequent class."""
        return float(np.bincount(batch.y, minlength=4).max() / batch.y.size)

    def evaluate(self, logits: np.ndarray, batch: Batch) -> dict[str, float]:
        """logits (N, 4) -> {"accuracy": ...}."""
        return {"accuracy": float(np.mean(logits.argmax(axis=-1) == batch.y))}

    def solved(self, metrics: dict[str, float], baseline: float) -> bool:
        return metrics["accuracy"] > self.threshold


# ---- continual embedded Reber grammar -------------------------------------------------

REBER_SYMBOLS = ("B", "T", "P", "S", "X", "V", "E")
# The Reber grammar's transitions: node -> [(symbol, next node)], each taken with p = 1/2;
# node -1 is the end of the string. A string is B, a walk from node 0 to the end, then E.
_REBER_GRAPH = (
    (("T", 1), ("P", 2)),
    (("S", 1), ("X", 3)),
    (("T", 2), ("V", 4)),
    (("X", 2), ("S", 5)),
    (("P", 3), ("V", 5)),
    (("E", -1),),
)


def reber_string(rng: np.random.Generator) -> tuple[list[str], list[frozenset[str]]]:
    """One embedded Reber string and, after each symbol, the set of legal next symbols.

    B, a branch symbol (T or P), an inner Reber string, the same branch symbol again, E.
    The legal set after the inner string's E is the branch alone: predicting it needs the
    symbol seen at the start, the long lag. After the final E comes the next string's B.
    """
    branch = "T" if rng.random() < 0.5 else "P"
    symbols = ["B", branch, "B"]
    legal = [frozenset("TP"), frozenset("B"), frozenset(s for s, _ in _REBER_GRAPH[0])]
    node = 0
    while node != -1:
        options = _REBER_GRAPH[node]
        symbol, node = options[int(rng.integers(len(options)))]
        symbols.append(symbol)
        legal.append(frozenset(s for s, _ in _REBER_GRAPH[node]) if node != -1 else frozenset())
    legal[-1] = frozenset(branch)  # after the inner E: the remembered branch
    symbols += [branch, "E"]
    legal += [frozenset("E"), frozenset("B")]
    return symbols, legal


class ReberStream:
    """N endless streams of embedded Reber strings, read in consecutive chunks.

    Never reset: a chunk continues where the previous one stopped, so a model must carry
    its state across chunks, as in Gers, Schmidhuber & Cummins (2000).
    """

    def __init__(self, n: int, rng: int | np.random.Generator | None = None):
        self.n = int(n)
        self._rng = _rng(rng)
        self._buffers: list[list[tuple[int, np.ndarray, bool, int]]] = [[] for _ in range(n)]
        self._string_ids = [0] * n

    def _refill(self, k: int, needed: int) -> None:
        buf = self._buffers[k]
        while len(buf) < needed:
            symbols, legal = reber_string(self._rng)
            sid = self._string_ids[k]
            self._string_ids[k] += 1
            recall = len(symbols) - 3  # the step whose input is the inner E
            for t, (s, nxt) in enumerate(zip(symbols, legal)):
                mask = np.array([c in nxt for c in REBER_SYMBOLS])
                buf.append((REBER_SYMBOLS.index(s), mask, t == recall, sid))

    def next_chunk(self, T: int) -> Batch:
        """The next T symbols of every stream.

        x (T, N, 7) one-hot inputs; y (T, N) the next symbol's id; info["legal"] (T, N, 7)
        the legal next symbols, info["recall"] (T, N) True where the next symbol is the
        remembered branch, info["string"] (T, N) the string each input belongs to.
        """
        ids = np.empty((T + 1, self.n), dtype=np.int64)
        legal = np.empty((T, self.n, len(REBER_SYMBOLS)), dtype=bool)
        recall = np.empty((T, self.n), dtype=bool)
        string = np.empty((T, self.n), dtype=np.int64)
        for k, buf in enumerate(self._buffers):
            self._refill(k, T + 1)
            for t in range(T + 1):
                ids[t, k] = buf[t][0]
            for t in range(T):
                _, legal[t, k], recall[t, k], string[t, k] = buf[t]
            del buf[:T]
        x = _one_hot(ids[:-1], len(REBER_SYMBOLS))
        return Batch(x, ids[1:], {"legal": legal, "recall": recall, "string": string})


class ReberTask:
    """Next-symbol prediction on the continual embedded Reber stream.

    A step is predicted right when the symbols given probability > 1/4 are exactly the
    legal ones (legal sets hold one or two symbols, each with probability 1 or 1/2); a
    string is right when every step whose input belongs to it is. The metric is the
    fraction of complete strings predicted right. The baseline is a predictor perfect
    everywhere except that it cannot remember the branch and guesses the more frequent
    one: it gets right the fraction of strings whose branch is the majority one (~1/2).
    ``T`` is the length of the truncated-BPTT chunks; ``lag`` None (it varies).
    """

    name = "reber"
    min_lag = 2  # the shortest lag it is defined for
    input_size = len(REBER_SYMBOLS)
    output_size = len(REBER_SYMBOLS)
    scored = "every"
    loss = "xent"
    metric_name = "string_accuracy"
    higher_is_better = True
    threshold = 0.99  # solved above it
    stateful = True

    def __init__(self, T: int = 50):
        self.T = _check_lag(T, self.min_lag, self.name)
        self.lag = None

    def stream(self, n: int, rng: int | np.random.Generator | None = None) -> ReberStream:
        return ReberStream(n, rng)

    def baseline(self, batch: Batch) -> float:
        strings = _complete_strings(batch)
        if not strings:
            return float("nan")
        branches = [batch.y[t, k] for k, sid in strings for t in _recall_steps(batch, k, sid)]
        counts = np.bincount(np.asarray(branches, dtype=np.int64), minlength=self.output_size)
        return float(counts.max() / len(strings))

    def evaluate(self, logits: np.ndarray, batch: Batch) -> dict[str, float]:
        """logits (T, N, 7) -> string accuracy, step accuracy and branch-recall accuracy."""
        z = logits.astype(np.float64)
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        right = np.all((p > 0.25) == batch.info["legal"], axis=-1)  # (T, N)
        strings = _complete_strings(batch)
        string_ok = [
            bool(right[:, k][batch.info["string"][:, k] == sid].all()) for k, sid in strings
        ]
        recall = batch.info["recall"]
        return {
            "string_accuracy": float(np.mean(string_ok)) if string_ok else float("nan"),
            "step_accuracy": float(right.mean()),
            "recall_accuracy": float(right[recall].mean()) if recall.any() else float("nan"),
        }

    def solved(self, metrics: dict[str, float], baseline: float) -> bool:
        return metrics["string_accuracy"] > self.threshold


def _complete_strings(batch: Batch) -> list[tuple[int, int]]:
    """(stream, string id) of the strings wholly inside the batch (not cut at either end)."""
    string = batch.info["string"]
    out = []
    for k in range(string.shape[1]):
        ids = np.unique(string[:, k])
        out += [(k, int(sid)) for sid in ids if sid != string[0, k] and sid != string[-1, k]]
    return out


def _recall_steps(batch: Batch, k: int, sid: int) -> np.ndarray:
    return np.flatnonzero(batch.info["recall"][:, k] & (batch.info["string"][:, k] == sid))


TASKS: dict[str, type[Any]] = {
    "adding": AddingTask,
    "copying": CopyingTask,
    "temporal": TemporalOrderTask,
    "reber": ReberTask,
}


def make_task(name: str, T: int) -> Any:
    """The task called ``name`` at lag (or chunk length, for "reber") T."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name](T)
