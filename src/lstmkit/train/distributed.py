"""Data-parallel training on MPI: a small communicator, and one process when MPI is absent.

``mpirun -n K python -m lstmkit text train ...`` starts K processes (ranks). Each takes a
disjoint shard of every global batch, computes its gradients, and the gradients are averaged
with one ``Allreduce`` on a single preallocated buffer per step, so every rank applies the
same update and keeps identical parameters. A trainer gets its communicator from
:func:`from_environment`:

* started without an MPI launcher (and without ``--distributed``): :class:`SingleProcess`,
  whose collectives do nothing; ``mpi4py`` is never imported and training is unchanged;
* under ``mpirun``/``mpiexec`` (MPICH, Open MPI, Intel MPI) or ``srun`` with K > 1
  processes: :class:`MPICommunicator`, over ``mpi4py``'s ``COMM_WORLD``.

One step of a data-parallel trainer::

    flat = FlatGradients(model.grads, scalars=1)           # preallocated once
    streams = comm.shard(B)                                # this rank's columns of (T, B)
    logits, state = model(x[:, streams], state)            # carried state stays on the rank
    loss, dlogits = softmax_cross_entropy(logits, y[:, streams])
    model.backward(dlogits)
    (loss,) = flat.allreduce_mean(comm, model.grads, loss)  # global mean loss and gradient
    clip_grad_norm(model.grads, clip)                      # the global norm: same on every rank
    optimizer.step()

Failures never hang the job: a process that dies makes the MPI launcher stop every other
one (MPICH's hydra and Open MPI's mpirun both do, with their own message); an exception on
one rank only goes through :meth:`abort`; and :meth:`watchdog` aborts the job when a rank
stops making progress (a hung process or network) for ``timeout`` seconds.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import numpy as np

__all__ = [
    "DistributedError",
    "FlatGradients",
    "MPICommunicator",
    "SingleProcess",
    "Watchdog",
    "add_arguments",
    "from_arguments",
    "from_environment",
    "launcher_size",
]

R = TypeVar("R")

# Set by the launchers for each process: Open MPI, MPICH/Intel MPI (hydra, PMI-1/2), PMIx.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
DEFAULT_TIMEOUT = 300.0  # seconds without progress before the watchdog aborts the job


class DistributedError(RuntimeError):
    """MPI was asked for but cannot be used (mpi4py missing, batch not divisible, ...)."""


def launcher_size(environ: Mapping[str, str] | None = None) -> int | None:
    """How many processes an MPI launcher started (1 if it started one), None without one."""
    environ = os.environ if environ is None else environ
    for name in _SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    if any(name in environ for name in _RANK_VARIABLES):
        return 0  # launched, size unknown until MPI is initialised
    return None


def from_environment(
    force: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> SingleProcess | MPICommunicator:
    """The communicator for this process.

    :class:`SingleProcess` unless an MPI launcher started several processes (or ``force``,
    the CLI's ``--distributed``); then :class:`MPICommunicator`, which imports mpi4py.
    A job of one MPI process is a :class:`SingleProcess` too, so it runs as before.
    ``timeout``: seconds a rank may go without progress before :meth:`watchdog` aborts the
    job (None or 0: no watchdog).
    """
    size = launcher_size(environ)
    if not force and (size is None or size == 1):
        return SingleProcess()
    try:
        from mpi4py import MPI  # noqa: F401  (initialises MPI)
    except ImportError as e:
        started = f"started by an MPI launcher with {size} processes" if size else "--distributed"
        raise DistributedError(
            f"{started}, but mpi4py cannot be imported ({e}); install the MPI extra: "
            "pip install 'lstmkit[mpi]' (or run without mpirun)"
        ) from None
    comm = MPICommunicator(timeout=timeout)
    if size and comm.size != size:
        raise DistributedError(
            f"the MPI launcher started {size} processes but MPI sees {comm.size}: its mpiexec "
            "belongs to another MPI library than mpi4py's; use the mpiexec of the MPI that "
            "mpi4py was built with (python -m mpi4py --mpi-library shows it)"
        )
    if comm.size == 1:
        return SingleProcess()
    return comm


def add_arguments(parser: Any) -> None:
    """The trainers' MPI options: ``--distributed`` and ``--mpi-timeout``."""
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over MPI (automatic under mpirun -n K; needs lstmkit[mpi])",
    )
    parser.add_argument(
        "--mpi-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="under MPI: abort the job when a rank makes no progress this long, the first step "
        "included (%(default)s; 0: never)",
    )


def from_arguments(args: Any) -> SingleProcess | MPICommunicator:
    """:func:`from_environment` for the options of :func:`add_arguments`."""
    if args.mpi_timeout < 0:
        raise DistributedError(f"--mpi-timeout: expected seconds >= 0, got {args.mpi_timeout}")
    return from_environment(args.distributed, args.mpi_timeout or None)


class SingleProcess:
    """The communicator of a lone process: rank 0 of 1; every collective returns its input."""

    rank = 0
    size = 1
    timeout: float | None = None
    allreduce_seconds = 0.0

    def allreduce_mean_(self, buffer: np.ndarray) -> None:
        """Average ``buffer`` over the ranks, in place (here: nothing to do)."""

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        return np.array(values, copy=True)

    def broadcast(self, obj: R) -> R:
        return obj

    def broadcast_arrays_(self, arrays: Iterable[np.ndarray]) -> None:
        """Overwrite ``arrays`` on every rank with rank 0's (here: nothing to do)."""

    def gather(self, obj: R) -> list[R] | None:
        return [obj]

    def allgather(self, obj: R) -> list[R]:
        return [obj]

    def gather_concat(self, array: np.ndarray, axis: int = 0) -> np.ndarray | None:
        return array

    def barrier(self) -> None:
        pass

    def shard(self, n: int, what: str = "--batch") -> slice:
        return slice(0, n)

    def on_root(self, fn: Callable[[], R]) -> R:
        return fn()

    def on_all(self, fn: Callable[[], R]) -> R:
        return fn()

    def abort(self, message: str, code: int = 1) -> NoReturn:
        raise SystemExit(message)

    @contextmanager
    def watchdog(self) -> Iterator[Watchdog]:
        """A watchdog for the block; call its ``beat()`` after each step (here: idle)."""
        yield Watchdog(self, None)

    def __repr__(self) -> str:
        return "SingleProcess()"


class MPICommunicator(SingleProcess):
    """K ranks over an mpi4py communicator (``COMM_WORLD`` by default).

    Python objects travel pickled (in memory, between our own processes); arrays go through
    mpi4py's buffer interface without copies. ``allreduce_seconds`` adds up the wall time
    spent in :meth:`allreduce_mean_` (including waiting for the slowest rank).
    """

    def __init__(self, comm: Any = None, timeout: float | None = DEFAULT_TIMEOUT):
        from mpi4py import MPI

        self._MPI = MPI
        self._comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = int(self._comm.Get_rank())
        self.size = int(self._comm.Get_size())
        self.timeout = timeout or None
        self.allreduce_seconds = 0.0

    def allreduce_mean_(self, buffer: np.ndarray) -> None:
        if not buffer.flags.c_contiguous:
            raise ValueError("buffer: expected a C-contiguous array (use FlatGradients)")
        started = time.perf_counter()
        self._comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)
        buffer /= buffer.dtype.type(self.size)
        self.allreduce_seconds += time.perf_counter() - started

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        out = np.array(values, copy=True, order="C")
        self._comm.Allreduce(self._MPI.IN_PLACE, out, op=self._MPI.SUM)
        return out

    def broadcast(self, obj: R) -> R:
        result: R = self._comm.bcast(obj, root=0)
        return result

    def broadcast_arrays_(self, arrays: Iterable[np.ndarray]) -> None:
        for a in arrays:
            if a.flags.c_contiguous:
                self._comm.Bcast(a, root=0)
            else:
                tmp = np.ascontiguousarray(a)
                self._comm.Bcast(tmp, root=0)
                a[...] = tmp

    def gather(self, obj: R) -> list[R] | None:
        result: list[R] | None = self._comm.gather(obj, root=0)
        return result

    def allgather(self, obj: R) -> list[R]:
        result: list[R] = self._comm.allgather(obj)
        return result

    def gather_concat(self, array: np.ndarray, axis: int = 0) -> np.ndarray | None:
        """The ranks' arrays joined along ``axis`` in rank order on rank 0; None elsewhere."""
        parts = self.gather(np.asarray(array))
        return None if parts is None else np.concatenate(parts, axis=axis)

    def barrier(self) -> None:
        self._comm.Barrier()

    def shard(self, n: int, what: str = "--batch") -> slice:
        """Rank r's share [r n/K, (r + 1) n/K) of n items (streams); n must divide by K."""
        if n % self.size:
            raise DistributedError(
                f"{what}: expected a multiple of the {self.size} MPI processes (each takes an "
                f"equal share of the streams), got {n}; pass e.g. {what} "
                f"{max(self.size, n - n % self.size)}"
            )
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def on_root(self, fn: Callable[[], R]) -> R:
        """``fn()`` run by rank 0 alone; every rank returns its result or raises its error."""
        result: Any = None
        error: BaseException | None = None
        if self.rank == 0:
            try:
                result = fn()
            except Exception as e:
                error = _picklable(e)
        result, error = self.broadcast((result, error))
        if error is not None:
            raise error
        return result

    def on_all(self, fn: Callable[[], R]) -> R:
        """``fn()`` on every rank; if any rank fails, every rank raises the first failure."""
        error: BaseException | None = None
        result: Any = None
        try:
            result = fn()
        except Exception as e:
            error = _picklable(e)
        for rank, failure in enumerate(self.allgather(error)):
            if failure is not None:
                if rank != 0:
                    failure.add_note(f"(on MPI rank {rank})")
                raise failure
        return result

    def abort(self, message: str, code: int = 1) -> NoReturn:
        """Print ``message`` (with this rank) and stop every process of the job."""
        print(f"lstmkit: MPI rank {self.rank} of {self.size}: {message}", file=sys.stderr)
        sys.stderr.flush()
        # The launcher forwards our stderr through a pipe; Abort makes it kill the job at
        # once, and under load it could do so before reading the line above: give it time.
        time.sleep(0.5)
        self._comm.Abort(code)
        os._exit(code)  # not reached: Abort does not return

    @contextmanager
    def watchdog(self) -> Iterator[Watchdog]:
        """A :class:`Watchdog` for the block (idle without a timeout); call ``beat()``."""
        dog = Watchdog(self, self.timeout)
        try:
            yield dog
        finally:
            dog.stop()

    def __repr__(self) -> str:
        return f"MPICommunicator(rank={self.rank}, size={self.size}, timeout={self.timeout})"


def _picklable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling (to travel to the other ranks), else a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")
    return e


class Watchdog:
    """Aborts the job when ``beat()`` is not called for ``timeout`` seconds.

    A rank waiting in a collective for a peer that hangs (stopped, deadlocked, cut off)
    would wait forever; this daemon thread ends the whole job instead, with a message.
    A peer that dies outright is the launcher's job (it stops the others at once).
    """

    def __init__(self, comm: SingleProcess, timeout: float | None):
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout: expected seconds > 0 or None, got {timeout!r}")
        self.comm, self.timeout = comm, timeout
        self._last = time.monotonic()
        self._stopped = threading.Event()
        if timeout is not None:  # None: idle, beat() does nothing
            threading.Thread(target=self._watch, args=(timeout,), daemon=True).start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self, timeout: float) -> None:
        while not self._stopped.wait(min(1.0, timeout / 4)):
            idle = time.monotonic() - self._last
            if idle > timeout:
                self.comm.abort(
                    f"no progress for {idle:.0f} s (another rank hung or the network failed; "
                    f"--mpi-timeout is {timeout:g} s); aborting the job. The last "
                    "checkpoint is intact: --resume continues from it",
                    code=124,
                )


class FlatGradients:
    """Every gradient in one preallocated contiguous buffer (plus a few scalars at the end),
    so a data-parallel step needs exactly one ``Allreduce``.

    ``grads`` fixes the names, shapes and order once; all gradients share one float dtype.
    """

    def __init__(self, grads: Mapping[str, np.ndarray], scalars: int = 0):
        dtypes = {g.dtype for g in grads.values()}
        if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
            raise TypeError(f"grads: expected one float dtype, got {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop()
        self.shapes = {name: g.shape for name, g in grads.items()}
        self.count = sum(int(g.size) for g in grads.values())
        self.buffer = np.zeros(self.count + int(scalars), self.dtype)  # (P + scalars,)
        self._views: dict[str, np.ndarray] = {}
        offset = 0
        for name, g in grads.items():
            self._views[name] = self.buffer[offset : offset + g.size].reshape(g.shape)
            offset += g.size

    @property
    def nbytes(self) -> int:
        """Bytes each rank contributes per step."""
        return int(self.buffer.nbytes)

    def allreduce_mean(
        self, comm: SingleProcess, grads: Mapping[str, np.ndarray], *scalars: float
    ) -> tuple[float, ...]:
        """Replace ``grads`` (in place) by their mean over the ranks; return the scalars' means."""
        n = self.buffer.size - self.count
        if len(scalars) != n:
            raise ValueError(f"scalars: expected {n}, got {len(scalars)}")
        if {name: g.shape for name, g in grads.items()} != self.shapes:
            raise ValueError("grads: expected the names and shapes FlatGradients was built with")
        for name, view in self._views.items():
            np.copyto(view, grads[name])
        self.buffer[self.count :] = scalars
        comm.allreduce_mean_(self.buffer)
        for name, view in self._views.items():
            np.copyto(grads[name], view)
        return tuple(float(s) for s in self.buffer[self.count :])
