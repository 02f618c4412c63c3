"""The automatic (and the global) forecaster's search and refits shared among MPI ranks.

:func:`lstmkit.series.auto.fit_auto` trains many small, independent models: one per
candidate in the search (each from ``config.seed``), one per refitted member (each from
``config.seed + 1000 k``). None reads another's result except through the validation table,
so they split across ranks without changing any of them: :class:`Shared`, the memo
``fit_auto`` takes as ``progress``, is told each round of candidates before the search runs
it (``validate_all``) and every member before the refits (``refit_all``); rank r computes
the jobs r, r + K, r + 2K, ... of the list, the results are gathered on every rank
(``allgather``), and ``fit_auto`` then replays them in its usual order. Every rank ends with
the ensemble of a one-process fit, bit for bit where the time budget does not bind (the
jobs are the same computations; when it binds, each rank's clock cuts its own jobs).

:func:`lstmkit.series.many.fit_global` announces its rounds and members the same way; its
members are :class:`~lstmkit.series.covariates.CovariateLSTM`s (``model``: what makes an
untrained one). The calibration models of the automatic forecaster's earlier cuts (a few,
after the refits) are trained by every rank. The communicator is
:mod:`lstmkit.train.distributed`'s (``rank``, ``size``, ``allgather``, ``broadcast``,
``on_all``); this module never imports MPI.

With ``inner``, a :class:`~lstmkit.series.auto_progress.Progress` held by rank 0 (None on
the others), the run is resumable as before: rank 0 saves every row and member as
``fit_auto`` replays it, and a resumed run starts every rank from rank 0's saved work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lstmkit.series.auto import Candidate
from lstmkit.series.model import Forecaster

__all__ = ["Shared"]

Job = tuple[Any, Callable[[], Any]]  # (key, the computation)


class Shared:
    """A memo for :func:`~lstmkit.series.auto.fit_auto` (or ``fit_global``) whose work is
    split among the ranks of ``comm``; ``model(c)``: an untrained member of candidate c
    (default the automatic forecaster's); see the module docstring."""

    def __init__(self, comm: Any, inner: Any = None, model: Any = None) -> None:
        self.comm, self.inner = comm, inner
        self._model: Callable[[Candidate], Any] = model or _forecaster
        self.path = None if inner is None else inner.path  # rank 0's progress file
        saved = None
        if inner is not None:
            members = {k: m.state_dict() for k, m in inner.members.items()}
            saved = (inner.spent, dict(inner.rows), members)
        spent, rows, members = comm.broadcast(saved) or (0.0, {}, {})
        self.spent: float = spent
        self.rows: dict[Candidate, Any] = rows
        self.members: dict[tuple[Candidate, int], Any] = {
            key: self._loaded(key[0], state) for key, state in members.items()
        }

    def __repr__(self) -> str:
        return f"Shared({self.comm!r}, rows={len(self.rows)}, members={len(self.members)})"

    def validate_all(self, jobs: list[Job]) -> None:
        """Compute the validations (candidate, run) not known yet, split among the ranks."""
        self.rows.update(self._split([(c, run) for c, run in jobs if c not in self.rows]))

    def refit_all(self, jobs: list[Job]) -> None:
        """Compute the members ((candidate, seed), run) not known yet, split among the
        ranks (they travel as state dicts)."""
        todo = [(key, run) for key, run in jobs if key not in self.members]
        states = self._split([(key, _state(run)) for key, run in todo])
        self.members.update({key: self._loaded(key[0], s) for key, s in states.items()})

    def saved(self, c: Candidate) -> bool:
        """Whether candidate c's validation is known (it is replayed whatever the clock)."""
        return c in self.rows

    def validated(self, c: Candidate, run: Callable[[], Any]) -> Any:
        """Candidate c's validation (computed here if no round announced it)."""
        if c not in self.rows:
            self.rows[c] = run()
        if self.inner is not None:
            self.inner.validated(c, lambda: self.rows[c])  # rank 0 saves it
        return self.rows[c]

    def refitted(self, c: Candidate, seed: int, run: Callable[[], Any]) -> Any:
        """Candidate c's member for ``seed`` (computed here if not announced)."""
        if (c, seed) not in self.members:
            self.members[(c, seed)] = run()
        if self.inner is not None:
            self.inner.refitted(c, seed, lambda: self.members[(c, seed)])
        return self.members[(c, seed)]

    def remove(self) -> None:
        """Delete rank 0's progress file (the finished run's file holds everything)."""
        if self.inner is not None:
            self.inner.remove()

    def _split(self, jobs: list[Job]) -> dict[Any, Any]:
        """Job k on rank k mod K; every rank returns all the results."""
        rank, size = self.comm.rank, self.comm.size

        def mine() -> dict[Any, Any]:
            return {key: run() for k, (key, run) in enumerate(jobs) if k % size == rank}

        out: dict[Any, Any] = {}
        for part in self.comm.allgather(self.comm.on_all(mine)):
            out.update(part)
        return {key: out[key] for key, _ in jobs}  # the jobs' order

    def _loaded(self, c: Candidate, state: dict[str, Any]) -> Any:
        model = self._model(c)
        model.load_state_dict(state)
        return model


def _state(run: Callable[[], Any]) -> Callable[[], dict[str, Any]]:
    return lambda: run().state_dict()


def _forecaster(c: Candidate) -> Forecaster:
    """An untrained member of candidate c (the automatic forecaster's model)."""
    return Forecaster(c.model_config(), inputs=c.inputs())
