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
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.train import files, schema, signals

FORMAT = "lstmkit-checkpoint"
VERSION = 1
_META = "__meta__"
_MANIFEST = "__arrays__"
MAX_BYTES = 16 * 2**30  # the arrays of one checkpoint, uncompressed
MAX_HEADER_BYTES = 64 * 2**20  # the JSON header
MAX_MEMBERS = 100_000
MAX_RATIO = 200  # deflated members (lstmkit writes none) inflate at most this much (+ 1 MiB)
_NPY_HEADER = 10_000  # numpy's own default limit on a .npy header
_DTYPES = {
    f"{order}{kind}{size}"
    for order in "<>|"
    for kind, sizes in (("b", (1,)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (2, 4, 8)))
    for size in sizes
}


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
    files.atomic_write(path, lambda f: np.savez(f, **{_META: blob}, **arrays))  # type: ignore[arg-type]


Check = Callable[[dict[str, Any], schema.Manifest], None]


def load(
    path: str | os.PathLike[str], check: Check | None = None, max_bytes: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`save`; raise :class:`CheckpointError` if unusable.

    Before a byte of any array is read: the zip's central directory (member sizes, at most
    ``max_bytes`` (:data:`MAX_BYTES`) in all, no zip bombs), the header (at most
    :data:`MAX_HEADER_BYTES`, valid JSON, format and version), its manifest (required:
    each array's numeric dtype and shape) against every member's ``.npy`` header and size,
    and then ``check(meta, manifest)`` (the loader's schema, which raises
    :class:`~lstmkit.train.schema.HeaderError` or ValueError). Every failure is one
    CheckpointError naming the file and what is wrong.
    """
    path = Path(path)
    limit = MAX_BYTES if max_bytes is None else max_bytes
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as f:
            if not zipfile.is_zipfile(f):
                raise CheckpointError(
                    f"{path}: not an lstmkit checkpoint (not a zip/npz archive: truncated, "
                    "corrupted, or another format such as a torch .pt file)"
                )
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                members = _members(zf, limit)
                found = _scan(zf, members)
                meta = _header(zf, members)
                manifest = _manifest(meta)
                _compare(found, manifest)
                if check is not None:
                    check(meta, manifest)
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in manifest}
    except CheckpointError as e:
        message = str(e)
        if not message.startswith(f"{path}:"):
            message = f"{path}: {message}"
        raise CheckpointError(message) from None
    except schema.HeaderError as e:
        raise CheckpointError(f"{path}: header field {e}") from None
    except (ValueError, TypeError, KeyError) as e:  # a loader's check, numpy's npy parser
        raise CheckpointError(f"{path}: corrupted checkpoint ({e})") from None
    except Exception as e:  # a damaged archive: BadZipFile, EOFError, OSError, ...
        raise CheckpointError(
            f"{path}: corrupted or truncated checkpoint ({type(e).__name__}: {e})"
        ) from None
    for name, (dtype, shape) in manifest.items():  # what was read is what was checked
        if arrays[name].dtype != dtype or arrays[name].shape != shape:
            raise CheckpointError(
                f"{path}: corrupted checkpoint: array {name!r} changed while read"
            )
    return arrays, meta


def _members(zf: zipfile.ZipFile, limit: int) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, from the central directory alone."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if f"{_META}.npy" not in names:
        torch = any(n.endswith("data.pkl") for n in names)
        raise CheckpointError(
            "a zip archive without lstmkit's header: a foreign file"
            + (" (a torch.save checkpoint, which holds pickles)" if torch else "")
        )
    if len(infos) > MAX_MEMBERS:
        raise CheckpointError(f"{len(infos)} archive members, at most {MAX_MEMBERS} accepted")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if not info.filename.endswith(".npy") or info.is_dir():
            raise CheckpointError(f"unexpected archive member {info.filename!r}: a foreign file")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise CheckpointError(f"archive member {info.filename!r} appears twice")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"archive member {info.filename!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise CheckpointError(
                    f"archive member {info.filename!r}: stored with {info.compress_size} bytes "
                    f"but declares {info.file_size}"
                )
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > MAX_RATIO * info.compress_size + 2**20:
                raise CheckpointError(
                    f"archive member {info.filename!r} inflates {info.compress_size} bytes to "
                    f"{info.file_size}: refused (a zip bomb)"
                )
        else:
            raise CheckpointError(
                f"archive member {info.filename!r}: compression method {info.compress_type} "
                "(expected stored or deflated)"
            )
        total += info.file_size
        members[name] = info
    if total > limit:
        raise CheckpointError(
            f"the arrays take {total} bytes, more than the limit of {limit} "
            "(lstmkit.train.checkpoint.MAX_BYTES)"
        )
    return members


def _npy_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, header length) of a member's .npy header, reading only the header."""
    with zf.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(m, max_header_size=_NPY_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(m, max_header_size=_NPY_HEADER)
        else:
            raise CheckpointError(f"array {info.filename!r}: .npy format version {version}")
        return dtype, tuple(shape), m.tell()


def _refuse_dtype(name: str, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise CheckpointError(f"refused: holds pickled objects (array {name!r}, dtype object)")
    if dtype.kind not in schema.NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
        raise CheckpointError(f"array {name!r}: dtype {dtype}, expected a numeric dtype")


def _header(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
    info = members[_META]
    if info.file_size > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"header of {info.file_size} bytes, at most {MAX_HEADER_BYTES} accepted"
        )
    dtype, shape, offset = _npy_header(zf, info)
    _refuse_dtype(_META, dtype)
    if dtype != np.uint8 or len(shape) != 1 or offset + shape[0] != info.file_size:
        raise CheckpointError(f"corrupted header (a {dtype} array of shape {shape})")
    with zf.open(info) as m:
        raw = m.read()  # at most MAX_HEADER_BYTES; the CRC is checked at the end
    try:
        meta = json.loads(raw[offset:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"corrupted header ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("not an lstmkit checkpoint (format tag missing)")
    if type(meta.get("version")) is not int or meta["version"] != VERSION:  # true == 1
        raise CheckpointError(
            f"checkpoint format version {schema._show(meta.get('version'))}, this lstmkit reads "
            f"version {VERSION}; use the lstmkit release that wrote it"
        )
    return meta


def _manifest(meta: dict[str, Any]) -> schema.Manifest:
    """The header's ``__arrays__`` (removed from ``meta``), each entry's dtype and shape checked."""
    raw = meta.pop(_MANIFEST, None)
    if raw is None:
        raise schema.HeaderError(
            f"{_MANIFEST}: missing (the list of the checkpoint's arrays, which every lstmkit "
            "checkpoint holds)"
        )
    if not isinstance(raw, dict):
        raise schema.HeaderError(f"{_MANIFEST}: expected an object, got {schema._show(raw)}")
    manifest: schema.Manifest = {}
    for name, entry in raw.items():
        where = f"{_MANIFEST}[{name!r}]"
        if name == _META:
            raise schema.HeaderError(f"{where}: the reserved name")
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], list)
        ):
            raise schema.HeaderError(f"{where}: expected [dtype, shape], got {schema._show(entry)}")
        if entry[0] not in _DTYPES:
            raise schema.HeaderError(f"{where}: dtype {schema._show(entry[0])} is not numeric")
        shape = entry[1]
        if len(shape) > 32 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 2**62 for n in shape
        ):
            raise schema.HeaderError(f"{where}: shape {schema._show(shape)} is not a shape")
        manifest[name] = (np.dtype(entry[0]), tuple(shape))
    return manifest


def _scan(
    zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]
) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Every array member's dtype and shape from its .npy header (numeric dtypes only), its
    size exactly that header plus the data: nothing larger than declared can be read."""
    found = {}
    for name, info in members.items():
        if name == _META:
            continue
        dtype, shape, offset = _npy_header(zf, info)
        _refuse_dtype(name, dtype)
        need = offset + dtype.itemsize * math.prod(shape)
        if info.file_size != need:
            raise CheckpointError(
                f"array {name!r}: its archive member holds {info.file_size} bytes, "
                f"its dtype and shape imply {need}"
            )
        found[name] = (dtype, shape)
    return found


def _compare(found: schema.Manifest, manifest: schema.Manifest) -> None:
    if found != manifest:
        missing = sorted(set(manifest) - set(found))
        changed = sorted(k for k in found if manifest.get(k, found[k]) != found[k])
        extra = sorted(set(found) - set(manifest))
        raise CheckpointError(
            "corrupted checkpoint: its arrays do not match its header "
            f"(missing {missing}, changed {changed}, unexpected {extra})"
        )


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A generator's state as JSON-able data (PCG64's 128-bit integers are exact in JSON)."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
