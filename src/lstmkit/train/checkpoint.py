"""Checkpoint files: arrays in one ``.npz`` plus a JSON header, written atomically.

A checkpoint is a single ``.npz`` (a zip archive, each member CRC-checked) holding

* the arrays under their names (``model/lstm.weight_ih_l0``, ``optim/exp_avg/...``);
* ``__meta__``: UTF-8 JSON as a uint8 array, with ``format`` (:data:`FORMAT`),
  ``version`` (:data:`VERSION`), ``__arrays__`` (each array's dtype and shape, so a
  damaged zip directory that hides a member is caught) and whatever the caller stores
  (config, vocabulary, scaler, optimizer scalars, step, RNG states).

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

from lstmkit.train import signals

FORMAT = "lstmkit-checkpoint"
VERSION = 1
_META = "__meta__"
_MANIFEST = "__arrays__"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupted or foreign."""


def save(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically write ``arrays`` and the JSON-able ``meta`` to ``path``. A Ctrl-C or
    SIGTERM arriving meanwhile acts once the write is complete (:func:`signals.held`)."""
    with signals.held():
        _save(path, arrays, meta)


def _save(
    path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> None:
    path = Path(path)
    if _META in arrays:
        raise ValueError(f"array name {_META!r} is reserved")
    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}  # 0-d stays 0-d
    objects = [k for k, v in arrays.items() if v.dtype.hasobject]
    if objects:  # np.savez would pickle them, and load refuses pickles
        raise ValueError(f"arrays: expected numeric arrays, got object arrays for {objects}")
    manifest = {k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()}
    header = {"format": FORMAT, "version": VERSION, **meta, _MANIFEST: manifest}
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: blob}, **arrays)  # type: ignore[arg-type]
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
                torch = any(n.endswith("data.pkl") for n in names)
                raise CheckpointError(
                    f"{path}: a zip archive without lstmkit's header: a foreign file"
                    + (" (a torch.save checkpoint, which holds pickles)" if torch else "")
                )
            arrays = {name: npz[name] for name in names}
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):  # object arrays need pickle, which we refuse
            raise CheckpointError(f"{path}: refused: holds pickled objects ({e})") from e
        raise CheckpointError(f"{path}: corrupted checkpoint ({e})") from e
    except Exception as e:  # a damaged archive: BadZipFile, EOFError, OSError, ...
        raise CheckpointError(
            f"{path}: corrupted or truncated checkpoint ({type(e).__name__}: {e})"
        ) from e
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
    manifest = meta.pop(_MANIFEST, None)
    if manifest is not None:
        found = {k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()}
        if found != manifest:
            missing = sorted(set(manifest) - set(found))
            changed = sorted(k for k in found if manifest.get(k, found[k]) != found[k])
            extra = sorted(set(found) - set(manifest))
            raise CheckpointError(
                f"{path}: corrupted checkpoint: its arrays do not match its header "
                f"(missing {missing}, changed {changed}, unexpected {extra})"
            )
    return arrays, meta


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A generator's state as JSON-able data (PCG64's 128-bit integers are exact in JSON)."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
