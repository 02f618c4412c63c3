"""Writing files in a run folder without trusting what is already there.

Every write goes to a new temporary file created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in
the target's folder (a random name, so nothing planted can be opened in its place), is
fsync'ed, then renamed over the target. ``rename`` replaces a symlink at the target rather
than writing through it, so a link planted at ``loss.png`` or ``latest.npz`` is never
followed. Appends (``metrics.jsonl``) open with ``O_NOFOLLOW``. Temporary files left by a
killed process (``.NAME.XXXX.tmp``) are removed by :func:`clean_temp_files`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """``write(f)`` into a fresh temporary file next to ``path``, fsync, rename over ``path``.

    On any failure (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left as it was. The new file gets the usual permissions (0666 & ~umask).
    """
    path = Path(path)
    # mkstemp opens with O_RDWR | O_CREAT | O_EXCL (| O_NOFOLLOW where the OS has it)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; ours are ordinary files
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_append(path: str | os.PathLike[str]) -> IO[str]:
    """``path`` opened for appending text, refusing to follow a symlink (OSError ELOOP)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
    try:
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def read_text_nofollow(path: str | os.PathLike[str]) -> str:
    """A file's text, refusing to follow a symlink."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def is_temp_file(name: str) -> bool:
    """Our temporary files: ``.NAME.XXXX.tmp`` (and ``metrics.tmp`` of older versions)."""
    return (name.startswith(".") and name.endswith(TEMP_SUFFIX)) or name == "metrics.tmp"


def clean_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed writer left in ``folder`` (links are unlinked, not
    followed); the removed paths."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if is_temp_file(entry.name) and not entry.is_dir(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed


def save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """``fig.savefig`` through :func:`atomic_write` (format from the suffix): a link planted
    at ``path`` is replaced, not written through, and a kill leaves no half image."""
    path = Path(path)
    image = io.BytesIO()
    fig.savefig(image, format=path.suffix.lstrip(".") or "png", **kwargs)
    atomic_write(path, lambda f: f.write(image.getbuffer()))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """``path``'s new contents ``text`` (UTF-8) through :func:`atomic_write`."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
