"""Checkpoint files: arrays in one ``.npz`` plus a JSON header, written atomically.

A checkpoint is a single ``.npz`` (a zip archive, each member CRC-checked) holding

* the arrays under their names (``model/lstm.weight_ih_l0``, ``optim/exp_avg/...``);
* ``__meta__``: UTF-8 JSON as a uint8 array, with ``format`` (:data:`FORMAT`),
  ``version`` (:data:`VERSION`) and whatever the caller stores (config, vocabulary,
  scaler, optimizer scalars, step, RNG states).

It is read with ``allow_pickle=False``: nothing in a checkpoint can run code.
Writes go to a temporary file in the same folder, are fsync'ed, then renamed over
the target, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "lstmkit-checkpoint"
VERSION = 1
_META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupted or foreign."""


def save(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically write ``arrays`` and the JSON-able ``meta`` to ``path``."""
    path = Path(path)
    header = {"format": FORMAT, "version": VERSION, **meta}
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    if _META in arrays:
        raise ValueError(f"array name {_META!r} is reserved")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            members = {_META: blob, **{k: np.ascontiguousarray(v) for k, v in arrays.items()}}
            np.savez(f, **members)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`; raise :class:`CheckpointError` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not an lstmkit checkpoint (not a zip/npz archive: truncated, corrupted, "
            "or another format such as a torch .pt file)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if _META not in names:
                raise CheckpointError(f"{path}: an .npz without lstmkit's header: a foreign file")
            arrays = {name: npz[name] for name in names}
    except CheckpointError:
        raise
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise CheckpointError(f"{path}: refused: holds pickled objects ({e})") from e
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: corrupted or truncated checkpoint ({e})") from e
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted header ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an lstmkit checkpoint (format tag missing)")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('version')}, this lstmkit reads "
            f"version {VERSION}; use the lstmkit release that wrote it"
        )
    return arrays, meta


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A generator's state as JSON-able data (PCG64's 128-bit integers are exact in JSON)."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
