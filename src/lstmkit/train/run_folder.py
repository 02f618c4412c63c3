"""A run folder: checkpoints (``latest.npz``, ``best.npz``), ``metrics.jsonl`` and figures.

Shared by every trainer (char-LM, forecaster, memory tasks) so a run looks the same
whatever was trained::

    runs/NAME/
        latest.npz      the newest checkpoint (atomic writes, see lstmkit.train.checkpoint)
        best.npz        the checkpoint with the best validation metric so far
        metrics.jsonl   one JSON object per logged event ({"step": .., "train_loss": ..})
        loss.png        the loss curve
        .lock           while a process trains into the folder: its flock, and its pid

Every write goes through :mod:`lstmkit.train.files` (a fresh ``O_EXCL | O_NOFOLLOW``
temporary file, fsync, rename; appends with ``O_NOFOLLOW``), so a symlink planted in the
folder is never written through, and a kill never leaves a half-written file in place.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.train import checkpoint, files
from lstmkit.train.signals import StopRequests  # noqa: F401  (moved there)

try:
    import fcntl
except ImportError:  # not POSIX: no run-folder lock
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as it is (a planted symlink, another process in it)."""


class RunFolderBusy(RunFolderError):
    """Another process holds the run folder's lock."""


def _no_link(path: Path, e: OSError) -> OSError | RunFolderError:
    """ELOOP from an O_NOFOLLOW open: a symlink where lstmkit keeps a file."""
    if e.errno == errno.ELOOP:
        return RunFolderError(
            f"{path} is a symbolic link; lstmkit does not read or write run files through "
            "links: remove it"
        )
    return e


class Run:
    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self._lock_fd: int | None = None
        self._created = False

    def create(self) -> Run:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    # ---- one process at a time ----------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return self.folder / LOCK_NAME

    def lock(self) -> Run:
        """Take the folder's lock (creating the folder), or raise :class:`RunFolderBusy`
        naming the holder's pid. The lock is the kernel's (``flock``): a killed holder
        releases it, so a stale ``.lock`` file never blocks. Also removes the temporary
        files a killed writer left behind."""
        if self._lock_fd is not None:
            return self
        try:
            self._lock()
        except OSError as e:  # unwritable, not a folder, a file in the way, a link at .lock
            reason = e.strerror or type(e).__name__
            raise RunFolderError(
                f"{self.folder}: cannot use it as a run folder ({reason})"
            ) from None
        files.clean_temp_files(self.folder)
        return self

    def _lock(self) -> None:
        self._created = not self.folder.exists()
        self.create()
        if fcntl is not None:
            while True:
                flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(self.lock_path, flags, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = _read_pid(fd)
                    os.close(fd)
                    raise RunFolderBusy(
                        f"{self.folder} is in use by another lstmkit process (pid {holder}); "
                        "wait for it to finish or stop it, or pass another --out"
                    ) from None
                try:  # the file we locked must still be the one at the path (see release)
                    same = (
                        os.stat(self.lock_path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
                    )
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._lock_fd = fd

    def release(self) -> None:
        """Let go of the lock and remove ``.lock`` (a run folder looks as it did before
        locks); a folder this run created and left empty is removed again."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:  # unlinked while still locked: a process waiting on this inode re-checks it
            if os.stat(self.lock_path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                self.lock_path.unlink()
            if self._created and not any(self.folder.iterdir()):
                self.folder.rmdir()
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> Run:
        return self.lock()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.jsonl"

    def checkpoint_path(self, name: str = "latest") -> Path:
        return self.folder / f"{name}.npz"

    def exists(self, name: str = "latest") -> bool:
        return self.checkpoint_path(name).is_file()

    def save(self, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        path = self.checkpoint_path(name)
        checkpoint.save(path, arrays, meta)
        return path

    def load(self, name: str = "latest") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return checkpoint.load(self.checkpoint_path(name))

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (flushed at once; never through a symlink)."""
        try:
            f = files.open_append(self.metrics_path)
        except OSError as e:
            raise _no_link(self.metrics_path, e) from None
        with f:
            f.write(json.dumps(record) + "\n")

    def truncate_log(self, after_step: int) -> None:
        """Drop records past ``after_step`` (a resumed run re-logs them)."""
        if not self.metrics_path.is_file():
            return
        kept = [r for r in self.read_log() if r.get("step", 0) <= after_step]
        text = "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8")
        files.atomic_write(self.metrics_path, lambda f: f.write(text))

    def read_log(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        try:
            text = files.read_text_nofollow(self.metrics_path)
        except OSError as e:
            raise _no_link(self.metrics_path, e) from None
        lines = [s for s in text.splitlines() if s.strip()]
        records = []
        for k, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if k < len(lines) - 1:
                    raise
                # a last line cut short (a crash mid-write): what was logged before stands
        return records

    def plot_losses(self, keys: tuple[str, ...] = ("train_loss", "val_loss")) -> Path | None:
        """loss.png from metrics.jsonl: each key against step. None if nothing to plot."""
        records = self.read_log()
        series = {k: [(r["step"], r[k]) for r in records if k in r] for k in keys}
        if not any(series.values()):
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for key, points in series.items():
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=key, marker="." if len(points) < 50 else None)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        path = self.folder / "loss.png"
        try:
            files.save_figure(fig, path, dpi=100, bbox_inches="tight")
        finally:
            plt.close(fig)
        return path


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


PROGRESS_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal


def progress(total: int | None, desc: str, disable: bool = False) -> Any:
    """A tqdm progress bar on stderr when stderr is a terminal; otherwise (a log file, a
    pipe) one plain line every :data:`PROGRESS_EVERY` seconds; a silent stand-in if tqdm is
    missing or ``disable``."""
    if disable:
        return _NoBar()
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if not terminal:
        return LineProgress(total, desc)
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _NoBar()
    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=True)


class LineProgress:
    """Progress as a line on stderr at most every ``every`` seconds (and one at ``close``)."""

    def __init__(self, total: int | None, desc: str, every: float = PROGRESS_EVERY):
        self.total, self.desc, self.every = total, desc, every
        self.n, self.postfix = 0, ""
        self.started = self.last = time.monotonic()
        self.first: int | None = None  # the count after the first update
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.first is None:  # the trainer's first update jumps to a resumed run's step
            self.first = self.n
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def _line(self, now: float) -> None:
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        rate = (self.n - (self.first or 0)) / max(now - self.started, 1e-9)
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} steps, {rate:.3g} steps/s{extra}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.closed and self.first is not None:
            self._line(time.monotonic())
        self.closed = True

    def write(self, s: str) -> None:
        print(s)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...
    def close(self) -> None: ...
    def write(self, s: str) -> None:
        print(s)
