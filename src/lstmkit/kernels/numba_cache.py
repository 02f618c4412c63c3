"""numba's on-disk cache of the kernels, kept in step with their sources.

numba reuses a cached function as long as *its own* file's time stamp and size are
unchanged; it does not look at the files of the functions it inlined. The LSTM cell
(:mod:`lstmkit.kernels.lstm_cell`) and the norms (:mod:`lstmkit.kernels.layer_norm`) are
inlined into the loops of :mod:`lstmkit.kernels.compiled` and
:mod:`lstmkit.kernels.cell_split`: after an edit or an upgrade that changes only the cell,
the loops would silently keep running the old one (seen while developing the layer norm).
So, before any kernel is imported (from the package's ``__init__``), :func:`check` hashes
the sources of every kernel module and, when the hash differs from the one stored beside
the cache, deletes the cache's files: numba compiles again, once.

Only the cache beside the sources (``kernels/__pycache__``, numba's default where that
folder is writable) is checked; with ``NUMBA_CACHE_DIR`` set, clear that folder after an
upgrade.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

KERNELS = Path(__file__).parent
STAMP = "lstmkit-kernels.sha256"


def sources_digest(folder: Path = KERNELS) -> str:
    """SHA-256 over the names and contents of the ``.py`` files in ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def check(folder: Path = KERNELS) -> bool:
    """Delete numba's cache files in ``folder/__pycache__`` if the sources changed since
    they were written; True if anything was deleted. Never raises on a read-only or
    missing cache folder (numba then caches elsewhere or not at all)."""
    cache = folder / "__pycache__"
    stamp = cache / STAMP
    digest = sources_digest(folder)
    with contextlib.suppress(OSError):
        if stamp.read_text() == digest:
            return False
    stale = [*cache.glob("*.nbi"), *cache.glob("*.nbc")] if cache.is_dir() else []
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink()
    with contextlib.suppress(OSError):
        cache.mkdir(exist_ok=True)
        tmp = cache / f"{STAMP}.{os.getpid()}.tmp"
        tmp.write_text(digest)
        tmp.replace(stamp)
    return bool(stale)
