"""Balanced streams in your own ``torchrun`` loop: :class:`EvenStreamLoader` checkpoints every
rank's position in one state, as frameworks that save from rank 0 need.

A balanced stream (``balancer.balance`` of a ``DataLoader`` over an ``IterableDataset``) splits
the stream between the ranks, and the stream loader keeps them in step by itself (the same
number of batches on every rank, a rank that ran out re-serving the first batches of its
epoch; see ``balancer.streams.BalancedStreamLoader``). Its ``state_dict()`` is this rank's
only, while frameworks write one checkpoint, from rank 0, for all ranks. Wrapped in an
:class:`EvenStreamLoader`, one state holds every rank's position. Wrap it where the process
group exists::

    loader = EvenStreamLoader(balance(DataLoader(stream, batch_size=64), "cls", classes=10,
                                      schedule=FineTuneSchedule(10, 1)))
    for epoch in range(loader.epoch, 10):
        loader.set_epoch(epoch)
        for batch in loader:
            ...   # torch.save(loader.state_dict(), ...) on rank 0, after every rank called it

The Lightning, Accelerate and Ray Train adapters build one for a stream themselves.

# Design note: what this layer adds (issue 23)
# Only the frameworks' side, through the stream loader's public API: the positions of all
# ranks gathered into one state (all_gather_object on a gloo group of its own), a position
# `held` batches behind what it handed out (Lightning fetches one batch ahead of the step that
# uses it), a `transfer` function and `sampler.set_epoch`. The lock-step itself (one all-reduce
# per step, what a rank that ran out serves, how a resume among the re-served batches
# continues) lives in BalancedStreamLoader alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from balancer._validation import check_int
from balancer.streams import BalancedStream, BalancedStreamLoader

__all__ = ["EvenStreamLoader"]

# 2: each rank's entry is its stream loader's state (1 had a second lock-step's repeats).
_STATE_VERSION = 2


class EvenStreamLoader:
    """A balanced stream loader with one checkpoint for all ranks.

    Serves the stream loader's batches unchanged (the stream loader already keeps the ranks in
    step), applying ``transfer``. It has the stream loader's controls (``set_epoch``,
    ``epoch``, ``phase``, ``train_mode``); ``state_dict`` gathers every rank's position and
    ``load_state_dict`` gives each rank its own; ``sampler.set_epoch`` is ``set_epoch`` too,
    where Lightning looks for it; ``dataset`` is the stream, so frameworks treat it as a loader
    over an ``IterableDataset`` (they do not add a ``DistributedSampler``).

    Args:
        loader: what ``balancer.balance`` returns for a ``DataLoader`` over an
            ``IterableDataset`` (a ``balancer.streams.BalancedStreamLoader``).
        held: batches the consumer holds ahead of the step it trains (Lightning: 1): the
            position :meth:`state_dict` records is that many batches behind what this loader
            handed out (0 or 1).
        transfer: a function applied to every batch (e.g. moving it to the device).
    """

    def __init__(self, loader: BalancedStreamLoader, *, held: int = 0,
                 transfer: Callable[[Any], Any] | None = None) -> None:
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
            if not loader.in_step:
                raise RuntimeError(
                    f"the stream is shared by num_replicas={self.num_replicas} ranks, which must "
                    f"agree on every step through an initialised torch.distributed process group "
                    f"of that size; build the loader where the framework has started it (e.g. "
                    f"in LightningModule.train_dataloader())"
                )
            # Every rank builds its loader at the same point, so this collective call matches.
            self._group = dist.new_group(backend="gloo")
        self._held = check_int("held", held, minimum=0, maximum=1,
                               fix="pass how many batches the consumer fetches ahead (0 or 1)")
        if transfer is not None and not callable(transfer):
            raise TypeError(f"transfer should be a function of a batch or None, but got "
                            f"{type(transfer).__name__}")
        self._transfer = transfer
        self.sampler = _EpochHook(self)
        self._before_last: dict[str, Any] | None = None  # the position before the last batch

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
        self._before_last = None
        self.loader.set_epoch(epoch)

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Any]:
        self._before_last = None
        inner = iter(self.loader)
        while True:
            state = self.loader.state_dict() if self._held else None
            try:
                batch = next(inner)
            except StopIteration:
                self._before_last = None  # every batch was trained: the next epoch's start
                return
            self._before_last = state
            yield batch if self._transfer is None else self._transfer(batch)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The position of the training loop on every rank, gathered from all of them.

        A collective call under several ranks: every rank calls it together (Lightning and
        Accelerate do, when they checkpoint; the file is then written by rank 0 alone, and every
        rank loads its own entry from it). Each rank's entry is its stream loader's
        ``state_dict()``, taken ``held`` batches back (before the last batch handed out).
        """
        local = self._before_last if self._before_last is not None \
            else self.loader.state_dict()
        ranks: list[Any] = [local]
        if self._group is not None:
            ranks = [None] * self.num_replicas
            dist.all_gather_object(ranks, local, group=self._group)
        return {"version": _STATE_VERSION, "ranks": ranks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next iteration serves exactly
        the batches the loop had not trained, re-served ones included."""
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
        self._before_last = None
        self.loader.load_state_dict(state["ranks"][self.rank])

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
