"""``BalancedStreamLoader``: the ``DataLoader`` :func:`balancer.balance` returns for a stream.

# Design note: counting batches per worker (issue 23)
# A stream cannot seek, so a resume re-reads the epoch and re-runs the buffers without serving
# (BalancedStream). With DataLoader workers, each worker serves its own share, and the loop
# receives their batches round robin, a worker dropping out of the cycle when its pass ends.
# To resume exactly, the loop-side position must say how many batches the loop received from
# each worker, which workers had ended, and whose turn was next. So the workers yield Tagged
# batches (worker, number, batch; batch None marks the end of the worker's pass) through
# DataLoader(batch_size=None) with the user's collate_fn applied to the batch inside the worker,
# and this loader's iterator hands the loop the batches in the canonical round-robin order:
# a fresh iteration arrives in that order already; a resumed one (whose DataLoader restarts
# its cycle at worker 0) or one with in_order=False is put back in it, holding at most a few
# batches per worker.

# Design note: ranks in lock-step, in this loader only (issue 23)
# Ranks' shares make different numbers of batches (36 and 39 happen), and DDP steps in
# lock-step, so before every batch the ranks all-reduce one flag, "I still have a batch of my
# own", and a rank that has run out re-serves batches until no rank has one. Which batches: the
# epoch's first REPEAT_BATCHES, in turn, not the most recent ones. The first ones are a pure
# function of the epoch (re-read from the epoch's start, each worker stopping after
# REPEAT_BATCHES batches, which cannot change the loop's order before that point), so the
# position needs one more count, `padded`, to resume among them exactly, with any number of
# workers; the most recent ones would need every worker to re-make its whole pass and their
# last batches put back in the loop's round-robin order. The frameworks' layer
# (integrations/torchrun.py EvenStreamLoader) adds no step agreement of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torch.utils.data._utils.collate import default_collate

from balancer._schedule import BatchNormPolicy, Phase, set_train_mode
from balancer.streams._stream import REPEAT_BATCHES, BalancedStream, Tagged

__all__ = ["BalancedStreamLoader"]


class _Position:
    """Where the loop stands in an epoch: batches received per worker, ended workers, turn."""

    def __init__(self, num_workers: int) -> None:
        self.received = [0] * num_workers
        self.ended: set[int] = set()
        self.turn = 0
        self.finished = False

    def copy(self) -> _Position:
        other = _Position(len(self.received))
        other.received = list(self.received)
        other.ended = set(self.ended)
        other.turn = self.turn
        other.finished = self.finished
        return other

    def advance(self) -> None:
        """Pass the turn to the next worker still serving (if any)."""
        count = len(self.received)
        for step in range(1, count + 1):
            candidate = (self.turn + step) % count
            if candidate not in self.ended:
                self.turn = candidate
                return


class _TagCollate:
    """The user's ``collate_fn``, applied in the worker to the batch inside a :class:`Tagged`."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any]) -> None:
        self.collate_fn = collate_fn

    # Typed Any: DataLoader types collate_fn as taking a list (of items), this takes a Tagged.
    def __call__(self, tagged: Any) -> Any:
        if tagged.batch is None:
            return tagged
        return tagged._replace(batch=self.collate_fn(tagged.batch))


class BalancedStreamLoader(DataLoader):
    """A ``DataLoader`` over a :class:`~balancer.BalancedStream`, with exact checkpoints.

    Built by :func:`balancer.balance` for a ``DataLoader`` over an ``IterableDataset``. Each
    worker (or the main process, without workers) serves balanced batches of its share of the
    stream, collated by the original ``collate_fn`` in the worker; the loop receives them in
    the ``DataLoader``'s round-robin order over workers. Controls on the loader:

    - ``loader.set_epoch(epoch)``: call before every epoch; ``loader.epoch``, ``loader.phase``;
      ``loader.sampler.set_epoch(epoch)`` is the same call, where Lightning's ``Trainer`` makes
      it (so ``trainer.fit(model, balance(stream_loader, ...))`` runs its epochs and fine-tune
      epochs without an adapter);
    - ``loader.batches_received``: batches the loop has received this epoch (all workers);
    - ``loader.state_dict()`` / ``loader.load_state_dict(state)``: the position of the loop --
      batches received from each worker, the workers whose pass had ended and whose turn was
      next -- so that a loader restored from it serves exactly the batches the loop had not
      received, in the same order (each worker re-reads its share of the epoch and re-runs its
      buffers without serving up to its count);
    - ``loader.peak_items_held``: the most items each worker's buffers held in this epoch, as
      reported with its batches.

    Under an initialised process group whose size is the stream's ``num_replicas``
    (``loader.in_step`` is then true), every rank serves the same number of batches in an
    epoch, as DDP needs (ranks whose shares give fewer batches would otherwise leave the others
    waiting): at each step the ranks agree, with one small all-reduce on a CPU (gloo) group,
    whether any still has a batch of its own; a rank that has run out re-serves the first
    ``REPEAT_BATCHES`` (4) batches of its epoch, in turn (``loader.padded_batches`` counts
    them), until every rank has served all of its own, so no rank drops an item. The
    position then counts the re-served batches too, and a loader restored from it continues
    the repeats exactly: it reads the epoch's first batches again (each worker makes at most 4
    batches of its pass and stops) and serves from the next repeat on. This is the only
    lock-step: :class:`balancer.integrations.torchrun.EvenStreamLoader` and the framework
    adapters rely on it.

    Epoch length is unknown in advance (``len(loader)`` raises ``TypeError``). Persistent
    workers (``persistent_workers=True``) are supported: the epoch and the resume position
    reach their copies of the stream through shared memory.
    """

    dataset: BalancedStream

    def __init__(self, stream: BalancedStream, *,
                 collate_fn: Callable[[list[Any]], Any] | None = None,
                 **settings: Any) -> None:
        if not isinstance(stream, BalancedStream):
            raise TypeError(f"stream should be a balancer.BalancedStream, but got "
                            f"{type(stream).__name__}; use balancer.balance(loader)")
        for name in ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"):
            if name in settings:
                raise TypeError(f"BalancedStreamLoader got {name}=, but the stream makes the "
                                f"batches; set batch_size and drop_last on the BalancedStream")
        self._collate = collate_fn if collate_fn is not None else default_collate
        tagged = stream._tagged_copy()
        workers = max(int(settings.get("num_workers", 0)), 1)
        # Shared before any worker starts: forked workers share the pages, spawned ones receive
        # a handle (torch's multiprocessing reductions).
        tagged._start = torch.zeros(2 + 2 * workers, dtype=torch.int64).share_memory_()
        super().__init__(tagged, batch_size=None, collate_fn=_TagCollate(self._collate),
                         **settings)
        self.stream_num_workers = workers
        self._position = _Position(self.stream_num_workers)
        self._resume: _Position | None = None
        self._generation = 0
        self.peak_items_held: dict[int, int] = {}
        self.padded_batches = 0
        # Ranks read shares of different lengths; without agreeing on the number of steps, a
        # DDP rank that ran out would leave the others waiting in an all-reduce for ever. The
        # agreement runs on a CPU (gloo) group, whatever the training backend.
        self._in_step = False
        self._group: Any = None
        stream_ranks = self.dataset.num_replicas
        if stream_ranks > 1 and dist.is_available() and dist.is_initialized() \
                and dist.get_world_size() == stream_ranks:
            self._in_step = True
            if dist.get_backend() != "gloo":
                self._group = dist.new_group(backend="gloo")  # collective: every rank builds it
        # DataLoader forbids setting `sampler` after __init__, and Lightning's Trainer calls
        # set_epoch only on `loader.sampler`: the hook stands in for the DataLoader's own
        # sampler of an IterableDataset (endless Nones, which the fetcher ignores).
        object.__setattr__(self, "sampler", _EpochHook(self))
        # Errors in the settings (an unseen split, too few Hugging Face shards) before any
        # worker starts.
        self.dataset.share(0, self.stream_num_workers)

    @property
    def stream(self) -> BalancedStream:
        """The loader's :class:`~balancer.BalancedStream` (a copy of the one it was built on)."""
        return self.dataset

    # DataLoader.__iter__ returns a _BaseDataLoaderIter; this one puts its batches in order.
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        start = self._resume if self._resume is not None else _Position(self.stream_num_workers)
        if self._resume is None:
            self.padded_batches = 0  # an iteration from the epoch's start
        self._resume = None
        self._position = start.copy()
        stream = self.dataset
        shared = stream._start
        assert shared is not None
        count = self.stream_num_workers
        shared[0] = stream.epoch
        shared[1:1 + count] = torch.tensor(start.received)
        shared[1 + count:1 + 2 * count] = torch.tensor([int(w in start.ended)
                                                        for w in range(count)])
        shared[1 + 2 * count] = 0  # no limit on the batches each worker makes
        # The workers read the start when they begin their pass, which this call asks for.
        return _OrderedIterator(super().__iter__(), self)

    # ------------------------------------------------------------------ controls
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next iteration serves; see :meth:`BalancedStream.set_epoch`."""
        previous = self.dataset.epoch
        self.dataset.set_epoch(epoch)
        if epoch != previous or self._position.finished:
            self._position = _Position(self.stream_num_workers)
            self._resume = None
            self._generation += 1
            self.peak_items_held = {}
            self.padded_batches = 0

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    @property
    def phase(self) -> Phase:
        return self.dataset.phase

    @property
    def seed(self) -> int:
        return self.dataset.seed

    @property
    def in_step(self) -> bool:
        """Whether this loader keeps the ranks in step (see the class docstring)."""
        return self._in_step

    @property
    def batches_received(self) -> int:
        """Batches the loop has received in the current epoch, over all workers."""
        return sum(self._position.received)

    def train_mode(self, model: nn.Module) -> nn.Module:
        """``model`` in training mode for the current :attr:`phase`; see
        :meth:`balancer.BalancedDataLoader.train_mode`."""
        schedule = self.dataset.schedule
        batchnorm: BatchNormPolicy = "train" if schedule is None else schedule.batchnorm
        return set_train_mode(model, self.phase, batchnorm=batchnorm)

    def state_dict(self) -> dict[str, Any]:
        """The loop's position: the epoch, the batches received from each worker, the workers
        whose pass had ended, whose turn is next and how many batches were re-served since
        (``padded``, ranks kept in step only). After the last batch of an epoch (the iteration
        ended), the start of the next epoch."""
        position = self._position
        epoch, padded = self.dataset.epoch, self.padded_batches
        if position.finished:
            epoch, position, padded = epoch + 1, _Position(self.stream_num_workers), 0
        return {"version": 1, "epoch": epoch, "num_workers": self.stream_num_workers,
                "batches_done": list(position.received), "ended": sorted(position.ended),
                "turn": position.turn, "padded": padded, "settings": self.dataset._settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next iteration serves exactly
        the batches of the saved epoch the loop had not received, in the same order."""
        stream = self.dataset
        stream._check_state(state, "batches_done")
        if state.get("num_workers") != self.stream_num_workers:
            raise ValueError(
                f"state was saved by a loader with num_workers={state.get('num_workers')} "
                f"(counting the main process as one), but this one has "
                f"{self.stream_num_workers}: each worker reads its own share of the stream, so "
                f"the position cannot move to another number of workers; build the DataLoader "
                f"with the saved number of workers"
            )
        done, ended, turn = state["batches_done"], state.get("ended", []), state.get("turn", 0)
        padded = state.get("padded", 0)
        count = self.stream_num_workers
        if not (isinstance(done, list) and len(done) == count
                and all(isinstance(n, int) and n >= 0 for n in done)
                and all(isinstance(w, int) and 0 <= w < count for w in ended)
                and isinstance(turn, int) and 0 <= turn < count
                and isinstance(padded, int) and padded >= 0
                and (padded == 0 or len(set(ended)) == count)):
            raise ValueError("state['batches_done'], ['ended'], ['turn'] or ['padded'] is not "
                             "what state_dict() writes; pass the dict it returned, unchanged")
        stream.epoch = int(state["epoch"])
        stream._clear_position()
        position = _Position(count)
        position.received, position.ended, position.turn = list(done), set(ended), turn
        self._position = position.copy()
        self._resume = position
        self.padded_batches = padded
        self._generation += 1

    def _anyone_has(self, mine: bool) -> bool:
        """Whether any rank still has a batch of its own (``mine``: this one has)."""
        flag = torch.tensor([int(mine)], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return bool(flag[0])

    def _first_batches(self) -> list[Any]:
        """The epoch's first ``REPEAT_BATCHES`` batches in the loop's order, read again through
        the workers (a stream cannot seek; each worker makes at most that many and stops)."""
        shared = self.dataset._start
        assert shared is not None
        count = self.stream_num_workers
        shared[0] = self.dataset.epoch
        shared[1:] = 0
        shared[1 + 2 * count] = REPEAT_BATCHES
        # A worker stopped after REPEAT_BATCHES batches changes the turns only after the
        # first REPEAT_BATCHES batches of the loop, so these are the epoch's first ones.
        reader = _OrderedIterator(super().__iter__(), self, _Position(count))
        first: list[Any] = []
        while len(first) < REPEAT_BATCHES:
            batch = reader._next_batch()
            if batch is _END:
                break
            first.append(batch)
        return first

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_workers={self.num_workers}, stream={self.dataset!r})"


_END = object()  # this rank's workers have all ended their passes


class _OrderedIterator:
    """The ``DataLoader``'s iterator, handing the loop batches in round-robin order over the
    workers and counting them in ``position``; for the loop's own iteration (``position`` is
    the loader's), every rank serves the same number of batches under a process group (see
    :class:`BalancedStreamLoader`)."""

    def __init__(self, inner: Iterator[Tagged], loader: BalancedStreamLoader,
                 position: _Position | None = None) -> None:
        self._inner = inner
        self._loader = loader
        self._generation = loader._generation
        self._position = loader._position if position is None else position
        self._queues: list[deque[Tagged]] = [deque() for _ in range(loader.stream_num_workers)]
        # The epoch's first batches, for re-serving: kept as they are served by an iteration
        # from the epoch's start, read again otherwise.
        start = self._position
        self._first: list[Any] = []
        self._from_start = not any(start.received) and not start.ended
        self._done = False

    def __iter__(self) -> _OrderedIterator:
        return self

    def __next__(self) -> Any:
        loader = self._loader
        if loader._generation != self._generation:
            raise RuntimeError(
                f"this iteration of the loader was ended by set_epoch({loader.epoch}) or "
                f"load_state_dict() while it was running; start a new one with iter(loader) "
                f"(a `for` loop does) for the new position instead of advancing the old one"
            )
        if self._done:
            raise StopIteration
        batch = self._next_batch()
        if loader._in_step:
            # One tiny all-reduce per step: does any rank still have a batch of its own?
            mine = batch is not _END
            if not loader._anyone_has(mine):
                self._finish()
            if not mine:
                if not self._from_start:
                    self._first, self._from_start = loader._first_batches(), True
                pad = self._first[loader.padded_batches % len(self._first)]
                loader.padded_batches += 1
                return pad
        elif batch is _END:
            self._finish()
        if self._from_start and len(self._first) < REPEAT_BATCHES:
            self._first.append(batch)
        return batch

    def _finish(self) -> None:
        self._done = True
        self._position.finished = True
        raise StopIteration

    def _next_batch(self) -> Any:
        """This rank's next batch in round-robin order over its workers, or ``_END``."""
        loader = self._loader
        position = self._position
        while True:
            if len(position.ended) == len(position.received):
                return _END
            queue = self._queues[position.turn]
            if not queue:
                try:
                    tagged = next(self._inner)
                except StopIteration:
                    raise RuntimeError(
                        f"the DataLoader ended before worker {position.turn} reported the end "
                        f"of its pass; a worker's stream must not be cut short"
                    ) from None
                self._queues[tagged.worker].append(tagged)
                held = loader.peak_items_held.get(tagged.worker, 0)
                loader.peak_items_held[tagged.worker] = max(held, tagged.peak_held)
                continue
            tagged = queue.popleft()
            if tagged.batch is None:
                position.ended.add(position.turn)
                position.advance()
                continue
            position.received[position.turn] += 1
            position.advance()
            return tagged.batch


class _EpochHook(Sampler[None]):
    """``loader.sampler``: ``set_epoch`` reaches the loader (Lightning's ``Trainer`` calls it
    there); iterated, endless ``None`` like the ``DataLoader``'s own sampler of an
    ``IterableDataset``, which the fetcher ignores."""

    def __init__(self, loader: BalancedStreamLoader) -> None:
        self._loader = loader

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None

    def set_epoch(self, epoch: int) -> None:
        self._loader.set_epoch(epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epoch={self._loader.epoch})"
