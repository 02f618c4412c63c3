"""Text corpora and the character vocabulary.

The default corpus is the running interpreter's own standard library: every ``.py``
file under ``sysconfig``'s stdlib folder, without ``site-packages`` and the test
suites (about 11 MB on CPython 3.11), present on every machine with Python.

Files are split into training and validation deterministically by a hash of their
path relative to the corpus root, so the same corpus always gives the same split.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNK = "<unk>"
_SKIP_DIRS = {"site-packages", "test", "tests", "__pycache__"}


def default_corpus_files() -> list[Path]:
    """The standard library's ``.py`` sources of this interpreter, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(
        p for p in root.rglob("*.py") if not _SKIP_DIRS.intersection(p.relative_to(root).parts)
    )


def collect_files(paths: Iterable[str | Path], exclude: Iterable[str | Path] = ()) -> list[Path]:
    """Files named directly, plus every file below each named folder (sorted, no dot-files),
    except those below an ``exclude`` folder (a run folder inside its own corpus)."""
    paths = list(paths)
    skip = [Path(e).resolve() for e in exclude]
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(  # skip dot-files and anything below a dot-folder (.git, ...)
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(s.startswith(".") for s in p.relative_to(path).parts)
                and not _below(p, skip)
            )
        else:
            raise FileNotFoundError(f"--text: no such file or folder: {path}")
    if not files:
        raise FileNotFoundError(f"--text: no files found in {', '.join(map(str, paths))}")
    return files


def _below(path: Path, folders: list[Path]) -> bool:
    if not folders:
        return False
    resolved = path.resolve()
    return any(resolved.is_relative_to(f) for f in folders)


def read_text(path: Path) -> str:
    """A file's text as UTF-8; undecodable bytes become U+FFFD (never a crash)."""
    return path.read_bytes().decode("utf-8", errors="replace")


def split_files(files: Sequence[Path], val_fraction: float = 0.05) -> tuple[list[Path], list[Path]]:
    """Deterministic split by path hash; a one-file corpus goes to training only."""
    if len(files) < 2:
        return list(files), []
    bucket = int(round(1.0 / val_fraction))
    # Hash the path relative to the files' common folder, so the split does not depend on
    # where the corpus lives or how its path was spelled (relative or absolute).
    absolute = [p.absolute() for p in files]
    root = Path(os.path.commonpath([p.parent for p in absolute]))
    val = [
        p
        for p, a in zip(files, absolute)
        if zlib.crc32(a.relative_to(root).as_posix().encode()) % bucket == 0
    ]
    if not val:  # small corpora: at least one validation file
        val = [files[-1]]
    if len(val) == len(files):
        val = val[-1:]
    val_set = set(val)
    train = [p for p in files if p not in val_set]
    return train, val


@dataclass
class Corpus:
    train: str
    val: str
    train_files: int
    val_files: int
    selection: str = ""  # a digest of the files chosen (relative paths and contents)


def load_corpus(
    paths: Sequence[str | Path] | None = None,
    val_fraction: float = 0.05,
    exclude: Iterable[str | Path] = (),
) -> Corpus:
    """The corpus from ``paths`` (files/folders), or the default corpus when None/empty;
    files below an ``exclude`` folder are left out.

    With a single file, the last ``val_fraction`` of its text is the validation part.
    """
    files = collect_files(paths, exclude) if paths else default_corpus_files()
    train_files, val_files = split_files(files, val_fraction)
    data = {p: p.read_bytes() for p in files}
    train = "".join(data[p].decode("utf-8", errors="replace") for p in train_files)
    val = "".join(data[p].decode("utf-8", errors="replace") for p in val_files)
    if not val_files:
        cut = int(len(train) * (1.0 - val_fraction))
        train, val = train[:cut], train[cut:]
    return Corpus(train, val, len(train_files), len(val_files), _selection(files, data))


def _selection(files: Sequence[Path], data: dict[Path, bytes]) -> str:
    """sha256 over each file's path (relative to the files' common folder) and contents."""
    absolute = [p.absolute() for p in files]
    root = Path(os.path.commonpath([p.parent for p in absolute]))
    h = hashlib.sha256()
    for p, a in zip(files, absolute):
        name = a.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
        h.update(len(name).to_bytes(8, "little") + name)
        h.update(hashlib.sha256(data[p]).digest())
    return h.hexdigest()[:16]


class Vocab:
    """Characters <-> ids. Id 0 is ``<unk>``: any character not seen in training maps to it."""

    def __init__(self, chars: Sequence[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("vocabulary: expected distinct single characters")
        self.chars = list(chars)
        self._points = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        self._order = np.argsort(self._points)

    @classmethod
    def build(cls, text: str, min_count: int = 1) -> Vocab:
        counts = Counter(text)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        """text -> ids (len(text),) int32; unknown characters -> 0."""
        # surrogatepass: lone surrogates (from undecodable argv/file names) are unknown, not errors
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if not self.chars:
            return np.zeros(points.shape, np.int32)
        sorted_points = self._points[self._order]
        pos = np.searchsorted(sorted_points, points)
        pos = np.minimum(pos, len(sorted_points) - 1)
        known = sorted_points[pos] == points
        return np.where(known, self._order[pos] + 1, 0).astype(np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> text; id 0 becomes U+FFFD."""
        table = ["\ufffd"] + self.chars
        return "".join(table[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps(self.chars)

    @classmethod
    def from_json(cls, data: str) -> Vocab:
        return cls(json.loads(data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))
