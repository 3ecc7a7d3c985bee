"""Balanced streams in your own ``torchrun`` loop: :class:`EvenStreamLoader` keeps the ranks
in step and checkpoints all of them in one state.

A balanced stream (``balancer.balance`` of a ``DataLoader`` over an ``IterableDataset``) splits
the stream between the ranks, and each rank makes as many batches as its share needs. The
stream loader keeps the ranks in step by itself, but its ``state_dict()`` is this rank's only,
while frameworks write one checkpoint, from rank 0, for all ranks. Wrapped in an
:class:`EvenStreamLoader`, one state holds every rank's position, and a rank that has run out
repeats the first batches of its epoch, which a resume among them rebuilds exactly. Wrap it
where the process group exists::

    loader = EvenStreamLoader(balance(DataLoader(stream, batch_size=64), "cls", classes=10,
                                      schedule=FineTuneSchedule(10, 1)))
    for epoch in range(loader.epoch, 10):
        loader.set_epoch(epoch)
        for batch in loader:
            ...   # torch.save(loader.state_dict(), ...) on rank 0, after every rank called it

The Lightning, Accelerate and Ray Train adapters build one for a stream themselves.

# Design note: ranks in lock-step (issue 23)
# A BalancedStream splits the stream between the ranks, and each rank's buffers make as many
# batches as its share needs: 36 on one rank and 39 on the other for the same epoch happens.
# Data-parallel training steps in lock-step (DDP all-reduces the gradients of every step), so a
# rank with more batches would pair its last steps with the other ranks' next epoch, or hang.
# No rank knows its count before its share ends, so before every batch the ranks all-reduce
# one flag, "I still have a batch" (MAX, on a gloo group of their own, no device sync: 0.56 ms
# per batch between 2 processes on the project's loaded 2-core machine, bench_stream.py): while any rank has one, every rank serves one, a rank
# whose share has ended re-serving the first batches of its epoch (each already balanced; the
# first ones, because a checkpoint taken among the repeats can rebuild them by reading the
# epoch's start again). When no rank has one, every rank ends the epoch.
# Frameworks that fetch ahead (Lightning holds one batch before the step that uses it) save a
# position one batch behind what this loader handed out: `held`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from balancer._distributed import is_distributed
from balancer._validation import check_int
from balancer.streams import BalancedStream, BalancedStreamLoader

__all__ = ["EvenStreamLoader"]

_STATE_VERSION = 1
_END = object()


class EvenStreamLoader:
    """A balanced stream loader whose ranks serve equally many batches.

    Each epoch, every rank serves its own balanced batches, then -- while another rank still
    has batches -- repeats the first ``repeat_from`` batches of its epoch, so that all ranks
    end the epoch at the same step. It has the stream loader's controls (``set_epoch``,
    ``epoch``, ``phase``, ``state_dict``, ``load_state_dict``); ``sampler.set_epoch`` is
    ``set_epoch`` too, where Lightning looks for it; ``dataset`` is the stream, so frameworks
    treat it as a loader over an ``IterableDataset`` (they do not add a ``DistributedSampler``).

    Args:
        loader: what ``balancer.balance`` returns for a ``DataLoader`` over an
            ``IterableDataset`` (a ``balancer.streams.BalancedStreamLoader``).
        held: batches the consumer holds ahead of the step it trains (Lightning: 1), subtracted
            from the position :meth:`state_dict` records.
        transfer: a function applied to every batch (e.g. moving it to the device).
        repeat_from: how many of the epoch's first batches a rank keeps to repeat.
    """

    def __init__(self, loader: BalancedStreamLoader, *, held: int = 0,
                 transfer: Callable[[Any], Any] | None = None, repeat_from: int = 4) -> None:
        if not isinstance(loader, BalancedStreamLoader):
            raise TypeError(f"loader should be a balancer.streams.BalancedStreamLoader (from "
                            f"balancer.balance of a DataLoader over an IterableDataset), but got "
                            f"{type(loader).__name__}")
        self.loader = loader
        self.dataset: BalancedStream = loader.dataset
        self.num_replicas = self.dataset.num_replicas
        self.rank = self.dataset.rank
        self._group: Any = None
        if self.num_replicas > 1:
            if not is_distributed() or dist.get_world_size() != self.num_replicas:
                raise RuntimeError(
                    f"the stream is shared by num_replicas={self.num_replicas} ranks, which must "
                    f"agree on every step through an initialised torch.distributed process group "
                    f"of that size; build the loader where the framework has started it (e.g. "
                    f"in LightningModule.train_dataloader())"
                )
            # Every rank builds its loader at the same point, so this collective call matches.
            self._group = dist.new_group(backend="gloo")
            # The stream loader keeps ranks in step by itself too, re-serving its most recent
            # batches; this loader does it instead (re-serving the epoch's first batches, which
            # a checkpoint taken among the repeats can rebuild), so the steps are agreed once.
            loader._sync = False
        self._held = check_int("held", held, minimum=0,
                               fix="pass how many batches the consumer fetches ahead (0 or 1)")
        if transfer is not None and not callable(transfer):
            raise TypeError(f"transfer should be a function of a batch or None, but got "
                            f"{type(transfer).__name__}")
        self._transfer = transfer
        self._repeat_from = check_int("repeat_from", repeat_from, minimum=1,
                                      fix="pass how many first batches a rank keeps to repeat")
        self.sampler = _EpochHook(self)
        self._first: list[Any] = []
        self._first_from_start = False  # whether _first holds the epoch's first batches
        self._own_done = False  # this rank's batches of the epoch are all served
        self._repeated = 0  # batches repeated after them
        self._finished = False  # every rank has ended the epoch
        self._before_last: dict[str, Any] | None = None  # the position before the last batch
        self._resume_repeats: int | None = None

    # ------------------------------------------------------------------ controls
    @property
    def epoch(self) -> int:
        return self.loader.epoch

    @property
    def phase(self) -> str:
        return self.loader.phase

    @property
    def stream(self) -> BalancedStream:
        return self.dataset

    def train_mode(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in training mode for the current :attr:`phase`; see
        :meth:`balancer.BalancedDataLoader.train_mode`."""
        return self.loader.train_mode(model)

    @property
    def batch_size(self) -> int:
        return self.dataset.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next iteration serves (the same epoch keeps a restored position)."""
        if epoch != self.loader.epoch or self._finished:
            self._reset()
        self.loader.set_epoch(epoch)

    def _reset(self) -> None:
        self._first, self._own_done, self._repeated = [], False, 0
        self._first_from_start = False
        self._finished, self._before_last, self._resume_repeats = False, None, None

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Any]:
        if self._finished:
            self._reset()  # iterated again without set_epoch: the loader decides what follows
        if self._resume_repeats is not None:
            # Restored among the repeats: serve no more of this rank's own batches.
            self._own_done, self._repeated = True, self._resume_repeats
            self._resume_repeats = None
            inner: Iterator[Any] | None = None
        else:
            # Only an iteration from the epoch's start sees the first batches; a resumed one
            # reads them again if it needs them (_first_batches).
            self._first_from_start = self.loader.batches_received == 0
            inner = iter(self.loader)
        while True:
            batch = _END
            if inner is not None:
                state = self.loader.state_dict() if self._held else None
                batch = next(inner, _END)
                if batch is _END:
                    inner, self._own_done = None, True
                else:
                    self._before_last = state
                    if self._first_from_start and len(self._first) < self._repeat_from:
                        self._first.append(batch)
            if not self._anyone_has(batch is not _END):
                self._finished = True
                return
            if batch is _END:
                if not self._first_from_start:
                    self._first, self._first_from_start = self._first_batches(), True
                batch = self._first[self._repeated % len(self._first)]
                self._repeated += 1
            yield batch if self._transfer is None else self._transfer(batch)

    def _anyone_has(self, mine: bool) -> bool:
        if self._group is None:
            return mine
        flag = torch.tensor([int(mine)], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return bool(flag.item())

    def _first_batches(self) -> list[Any]:
        """The epoch's first ``repeat_from`` batches, read again from the epoch's start."""
        self.loader.load_state_dict(self._start_state(self.loader.epoch))
        first = []
        for batch in self.loader:
            first.append(batch)
            if len(first) == self._repeat_from:
                break
        return first

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The position of the training loop on every rank, gathered from all of them.

        A collective call under several ranks: every rank calls it together (Lightning and
        Accelerate do, when they checkpoint; the file is then written by rank 0 alone, and every
        rank loads its own entry from it). Each rank's position is ``held`` batches behind what
        this loader handed out: the stream loader's position, or -- once the rank's own batches
        of the epoch are all served -- the epoch and how many of its first batches were
        repeated since.
        """
        local = self._local_state()
        ranks: list[Any] = [local]
        if self._group is not None:
            ranks = [None] * self.num_replicas
            dist.all_gather_object(ranks, local, group=self._group)
        return {"version": _STATE_VERSION, "ranks": ranks}

    def _local_state(self) -> dict[str, Any]:
        if self._own_done and not self._finished:
            # Every own batch was handed out; `held` of the repeats (at most) are not trained.
            repeated = self._repeated - self._held
            if repeated >= 0:
                return {"loader": self._start_state(self.loader.epoch), "repeated": repeated}
        if self._finished:
            # The loader may have re-read the epoch's first batches since its own end.
            return {"loader": self._start_state(self.loader.epoch + 1), "repeated": None}
        if self._held and self._before_last is not None:
            return {"loader": self._before_last, "repeated": None}
        return {"loader": self.loader.state_dict(), "repeated": None}

    def _start_state(self, epoch: int) -> dict[str, Any]:
        """The stream loader's position at the start of ``epoch``."""
        state = dict(self.loader.state_dict())
        state.update(epoch=epoch, batches_done=[0] * len(state["batches_done"]), ended=[],
                     turn=0)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next iteration serves exactly
        the batches the loop had not trained, repeats included."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION \
                or not isinstance(state.get("ranks"), list):
            raise ValueError(f"state should be a dict from EvenStreamLoader.state_dict() "
                             f"(version {_STATE_VERSION}), but got {str(state)[:200]}")
        if len(state["ranks"]) != self.num_replicas:
            raise ValueError(
                f"state was saved by {len(state['ranks'])} rank(s), but this stream is shared by "
                f"num_replicas={self.num_replicas}: each rank reads its own share of the stream, "
                f"so the positions cannot move to another number of ranks; resume with "
                f"{len(state['ranks'])} rank(s)"
            )
        local = state["ranks"][self.rank]
        self._reset()
        self.loader.load_state_dict(local["loader"])
        if local.get("repeated") is not None:
            self._resume_repeats = int(local["repeated"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(rank={self.rank}, num_replicas={self.num_replicas}, "
                f"loader={self.loader!r})")


class _EpochHook:
    """``loader.sampler``: Lightning calls ``sampler.set_epoch(epoch)`` at every epoch."""

    def __init__(self, loader: EvenStreamLoader) -> None:
        self._loader = loader

    def set_epoch(self, epoch: int) -> None:
        self._loader.set_epoch(epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epoch={self._loader.epoch})"
