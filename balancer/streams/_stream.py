"""``BalancedStream``: the circular per-class buffers over a stream (an ``IterableDataset``).

The buffer algorithm is :class:`~balancer.streams._buffers.StreamBuffers`; this module reads the
source (this rank's and this worker's share of it), labels each item as it arrives, runs the
phases of a :class:`~balancer.FineTuneSchedule`, and keeps the position for checkpoints.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from balancer import _rng
from balancer._distributed import shared_seed
from balancer._schedule import FineTuneSchedule, Phase
from balancer._validation import check_bool, check_int
from balancer.labels import ItemLabels
from balancer.streams._buffers import StreamBuffers

__all__ = ["BalancedStream", "Share", "Split"]

Split = Literal["auto", "position", "source"]
SPLITS: tuple[Split, ...] = ("auto", "position", "source")
_STATE_VERSION = 1
_DEFAULT_BUFFER_SIZE = 256
_DEFAULT_LOOKAHEAD = 4
# The epoch's first batches, which a rank that ran out re-serves while other ranks finish
# (BalancedStreamLoader).
REPEAT_BATCHES = 4

# webdataset's own splitters, recognised by name in a pipeline's stages.
_WDS_NODE_SPLITTERS = frozenset({"split_by_node"})
_WDS_WORKER_SPLITTERS = frozenset({"split_by_worker"})
_WDS_SINGLE_NODE = "single_node_only"


@dataclass(frozen=True)
class Share:
    """Which part of the stream one process reads: a rank of the job, a worker of its loader.

    Each level (ranks, workers) is split either by the source itself (webdataset shards, Hugging
    Face ``datasets`` shards) or by position: the share keeps the items whose position in what it
    reads is ``offset`` modulo ``step``.
    """

    rank: int
    num_replicas: int
    worker: int
    num_workers: int
    nodes_by_source: bool
    workers_by_source: bool

    @property
    def index(self) -> int:
        """This share's number among all ``num_replicas * num_workers`` shares."""
        return self.rank * self.num_workers + self.worker

    @property
    def step_offset(self) -> tuple[int, int]:
        step, offset = 1, 0
        if not self.nodes_by_source:
            step, offset = self.num_replicas, self.rank
        if not self.workers_by_source:
            step, offset = step * self.num_workers, offset * self.num_workers + self.worker
        return step, offset

    def describe(self) -> str:
        parts = []
        if self.num_replicas > 1:
            parts.append(f"rank {self.rank} of {self.num_replicas}")
        if self.num_workers > 1:
            parts.append(f"worker {self.worker} of {self.num_workers}")
        if not parts:
            return "the stream"
        step, offset = self.step_offset
        how = f"positions {offset} mod {step}" if step > 1 else "the source's own shards"
        return f"the stream's share for {', '.join(parts)} ({how})"


class Tagged(NamedTuple):
    """What a stream yields to :class:`~balancer.streams.BalancedStreamLoader`'s workers: one
    batch (``batch is None``: the worker's pass ended), which worker made it, how many batches
    it made before it in this pass, and the most items its buffers have held so far."""

    worker: int
    number: int
    peak_held: int
    batch: Any


class BalancedStream(IterableDataset[Any]):
    r"""Equal-frequency batches from a stream, through bounded circular per-class buffers.

    ``BalancedStream(source, batch_size=B, classes=C, labels=...)`` is an ``IterableDataset``
    whose items come in groups of ``B``: every group is one balanced batch, so
    ``DataLoader(stream, batch_size=B, num_workers=W)`` collates each group into one batch in
    each worker, with your ``collate_fn``, ``pin_memory`` and so on (give the ``DataLoader`` the
    stream's ``batch_size`` and ``drop_last=False``, or its batches straddle the groups).
    :func:`balancer.balance` builds one for a ``DataLoader`` over an ``IterableDataset`` and adds
    exact checkpoints.

    Each pass (epoch) reads the source once. Every item read is served once as a *fresh* item;
    each class also keeps its last ``buffer_size`` served items in a *reuse* buffer, from which it
    fills its share of a batch while its fresh items are short (a rare class's items come back,
    a common class's items mostly pass once).

    A batch is served when some class holds ``lookahead`` (``L``) times its share of fresh items,
    taking each class's share from its fresh items first: so the most frequent class sets the
    pace, as in the map-style :class:`~balancer.BalancedBatchSampler` (whose balanced epoch
    serves ``C * n_max`` items), and the other classes are padded from their buffers only when
    they are really short. Batches per pass against the map-style epoch's ``C * n_max / B``,
    measured on 20,000 items in random order (equal frequencies, or one class 10x rarer): with
    ``L = 4``, 1.00x for 2 classes (``B = 64``), 1.05-1.06x for 10 classes (``B = 64``) and
    1.00-1.01x for 10 classes with ``B = 256``; ``L = 1`` (a batch as soon as any class has its
    share) serves 1.00-1.11x, 2.0x and 1.35x.

    Under a process group, :class:`~balancer.streams.BalancedStreamLoader` (what
    :func:`~balancer.balance` returns) also makes every rank serve the same number of batches.

    Guarantees (for ``C`` classes, ``n`` of them active -- all ``C`` once each has been seen,
    see the warm-up):

    - **Balance, from the first batch.** Every balanced batch holds exactly ``q_c`` items of each
      active class ``c``, with ``q_c`` = :math:`\lfloor B/n \rfloor` or
      :math:`\lceil B/n \rceil`; the ``B mod n`` larger shares rotate over the active classes in
      a seeded order, so over any ``n`` consecutive batches with the same active classes each
      class gets exactly ``B mod n`` of them. With ``B < n`` (more classes than items per
      batch), each batch holds one item of each of ``B`` classes and every class has its slot in
      each ``n`` consecutive batches ``B`` times (measured: 100 classes with a long tail,
      ``B = 32``, ``L = 4``: 1.004x the map-style epoch's batches). No batch is short; the item
      order inside a batch is shuffled.
    - **Warm-up.** Nothing is served before ``T = max(B, min(s, wait))`` items have been read,
      ``s`` being the number read when every class has been seen and ``wait`` defaulting to
      ``max(B, C * buffer_size)``; the first batch comes at the latest when
      ``max(T, L * max(B, C))`` items have been read (or at the end of a shorter pass). If every
      class appears among the first ``wait`` items read, every batch of the pass balances all
      ``C`` classes. If not, one ``UserWarning`` names the missing classes, batches balance the
      classes seen, and a missing class joins at its first item.
    - **Every item once per pass.** Each item read is served fresh exactly once in the pass; at
      the end of a finite pass the remaining fresh items are served in full, balanced batches
      (padded from the reuse buffers), so nothing read is dropped. A pass that reads ``N``
      items serves at least ``N / B`` batches, and with ``B >= C`` at most
      ``N / floor(B / C) + 2L - 1``. A pass that reads fewer than ``B`` items raises
      ``ValueError`` before serving anything.
    - **Memory.** The items held (fresh plus reuse buffers, :attr:`items_held`) never exceed
      ``C * buffer_size + max(wait, L * max(B, C))``; after the warm-up,
      ``C * buffer_size + L * max(B, C)``.
      :attr:`peak_held` is the most held in this process's last pass.
    - **Repeats.** A class's reuse buffer is served round robin, least recently served first: a
      buffered item is served again only after every other item that stays in its class's
      buffer meanwhile has been (an item leaves the buffer only when ``buffer_size`` newer ones
      push it out). So a rare item is never hammered to make up its class's share: while a
      class's buffer holds the same ``m`` items, ``k`` draws from it serve each of them
      ``floor(k / m)`` or ``ceil(k / m)`` times.
    - **Fine-tune epochs** (``schedule``): the stream as it comes, in batches of ``B`` in stream
      order (the last one shorter unless ``drop_last``).
    - **Determinism.** The batches are a pure function of ``(seed, epoch, rank, worker)`` and
      the items the share reads; ranks and workers read disjoint shares whose union is the
      stream (``split``).
    - **Resume.** :meth:`state_dict` records the epoch and the items served in it;
      :meth:`load_state_dict` makes the next pass re-read the epoch from its start, re-run the
      buffers without serving, and continue with exactly the items not served, provided the
      source yields the same items for the same epoch and share. torchdata's
      ``StatefulDataLoader`` saves and restores it in each worker.

    Multi-label items are refused: a balanced batch holds a fixed number of items per class,
    which needs one class per item (label sets have no cheap counterpart of the per-class
    buffers); use a map-style dataset with ``balance(..., sampler="label-balanced")``.

    Args:
        source: a re-iterable stream of items (an ``IterableDataset``, a webdataset pipeline, a
            Hugging Face ``datasets.IterableDataset``, ...): each ``iter(source)`` starts a pass.
        batch_size: ``B``, items per batch.
        classes: the number of classes ``C`` (labels ``0 .. C-1``) or the list of label values.
        labels: where each item's class is: a key or index of the item, a function of the item,
            or ``None`` (a dict key among ``label``, ``labels``, ``target``, ``targets``,
            ``cls``, ``class``, ``y``, or the second element of a pair).
        buffer_size: items each class keeps for reuse (default 256).
        wait: items read before the warm-up gives up on a class not yet seen (default
            ``max(B, C * buffer_size)``; at least ``B``).
        lookahead: ``L``, the fresh items (in batches' worth of each class's share) a class may
            hold before a batch is served (default 4; 1 serves a batch as soon as any class has
            its share).
        seed: the batches are a pure function of ``(seed, epoch, rank, worker)``; ``None`` draws
            one shared by every rank.
        schedule: optional :class:`~balancer.FineTuneSchedule`; its fine-tune epochs are plain
            passes at the true frequencies.
        drop_last: drop the short last batch of a fine-tune pass (balanced passes have none).
        num_replicas, rank: the ranks sharing the stream (default: the initialised process
            group, else one).
        split: how ranks and workers divide the stream. ``"auto"``: webdataset pipelines keep
            their own ``split_by_node`` / ``split_by_worker`` stages (a level without one is split
            by position); Hugging Face ``datasets`` streams are split by node with
            ``datasets.distributed.split_dataset_by_node`` and by worker over their shards (the
            library's own rule); anything else by position (every share reads the whole stream
            and keeps every ``R * W``-th item). ``"position"``: always by position.
            ``"source"``: the source already gives each rank and worker its own part.

    Example:
        >>> from torch.utils.data import DataLoader, IterableDataset
        >>> class Pairs(IterableDataset):
        ...     def __iter__(self):  # 90 items of class 0, 10 of class 1
        ...         return ((float(i), int(i % 10 == 0)) for i in range(100))
        >>> stream = BalancedStream(Pairs(), batch_size=8, classes=2, labels=1, buffer_size=4)
        >>> batches = list(DataLoader(stream, batch_size=8))
        >>> [batch[1].bincount().tolist() for batch in batches[:3]]
        [[4, 4], [4, 4], [4, 4]]
        >>> len(batches)  # the 90 common items pass once, four per batch (the last one padded)
        23
    """

    def __init__(self, source: Iterable[Any], *, batch_size: int, classes: Any,
                 labels: Any = None, buffer_size: int = _DEFAULT_BUFFER_SIZE,
                 wait: int | None = None, lookahead: int = _DEFAULT_LOOKAHEAD,
                 seed: int | None = 0,
                 schedule: FineTuneSchedule | None = None, drop_last: bool = False,
                 num_replicas: int | None = None, rank: int | None = None,
                 split: Split = "auto") -> None:
        _check_source(source)
        self.source = source
        self.labels = ItemLabels(labels, classes)
        self.batch_size = check_int("batch_size", batch_size, minimum=1,
                                    fix="pass a positive number of items per batch")
        count = self.labels.num_classes
        self.buffer_size = check_int("buffer_size", buffer_size, minimum=1,
                                     fix="pass the number of items each class keeps for reuse "
                                         f"(default {_DEFAULT_BUFFER_SIZE})")
        if wait is None:
            wait = max(self.batch_size, count * self.buffer_size)
        self.wait = check_int("wait", wait, minimum=self.batch_size,
                              fix="pass the number of items to read before giving up on an "
                                  "unseen class; it must be at least batch_size")
        self.lookahead = check_int("lookahead", lookahead, minimum=1,
                                   fix=f"pass how many batches' worth of fresh items a class may "
                                       f"hold (default {_DEFAULT_LOOKAHEAD})")
        if schedule is not None and not isinstance(schedule, FineTuneSchedule):
            raise TypeError(f"schedule should be a balancer.FineTuneSchedule or None, but got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.drop_last = check_bool("drop_last", drop_last)
        if split not in SPLITS:
            raise ValueError(f"split should be one of {list(SPLITS)}, but got split={split!r}")
        self.split: Split = split
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.seed = shared_seed(seed)
        self.epoch = 0
        self._resume_items = 0
        self._resume_finished = False
        # Loader mode: where each worker starts, in shared memory so that persistent workers
        # see it too: [epoch, batches made by worker 0..W-1, worker 0..W-1 ended (0/1), the
        # most batches each worker makes in this pass (0: no limit)].
        self._start: torch.Tensor | None = None
        self._tagged = False
        self._served = 0
        self._finished = False
        self._buffers: StreamBuffers | None = None

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next pass serves; call it before every epoch, like
        ``DistributedSampler.set_epoch``. A different epoch discards a pending resume position;
        the same epoch keeps it (so ``for epoch in range(start, n)`` resumes)."""
        if self._tagged:
            _refuse_accelerate(sys._getframe(1))
        epoch = check_int("epoch", epoch, minimum=0,
                          fix="pass the 0-based number of the epoch about to start")
        if self.schedule is not None:
            self.schedule.phase(epoch)  # rejects an epoch outside the schedule
        if epoch != self.epoch or self._finished:
            self._clear_position()
        self.epoch = epoch

    @property
    def phase(self) -> Phase:
        """``"balanced"`` or ``"finetune"``: the phase of the current epoch."""
        if self.schedule is None or self.epoch >= self.schedule.total_epochs:
            return "balanced"
        return self.schedule.phase(self.epoch)

    @property
    def num_classes(self) -> int:
        return self.labels.num_classes

    @property
    def items_held(self) -> int:
        """Items the buffers of this process's current (or last) pass hold now."""
        return 0 if self._buffers is None else self._buffers.items_held

    @property
    def peak_held(self) -> int:
        """The most items the buffers of this process's current (or last) pass have held."""
        return 0 if self._buffers is None else self._buffers.peak_held

    # ------------------------------------------------------------------ sharing
    def share(self, worker: int = 0, num_workers: int = 1) -> Share:
        """The share of the stream that ``worker`` of ``num_workers`` reads on this rank;
        raises ``ValueError`` where the source cannot be split so."""
        nodes_by_source = workers_by_source = False
        kind = _source_kind(self.source)
        if self.split == "source":
            nodes_by_source = workers_by_source = True
        elif kind == "datasets":
            # Hugging Face streams split over their shards inside every DataLoader worker,
            # whatever is asked: that level always belongs to the source.
            workers_by_source = True
            nodes_by_source = self.split == "auto"
            if self.split == "position" and num_workers > 1:
                raise ValueError(
                    "split='position' with a Hugging Face datasets stream and num_workers > 1: "
                    "datasets gives each DataLoader worker its own shards whatever the wrapper "
                    "does, so a position split on top would drop items; use split='auto'"
                )
            shards = _hf_shards(self.source, self.num_replicas if nodes_by_source else 1,
                                self.rank)
            if num_workers > shards:
                raise ValueError(
                    f"the Hugging Face datasets stream has {shards} shard(s) for this rank but "
                    f"the loader has num_workers={num_workers}: datasets gives each worker whole "
                    f"shards, so {num_workers - shards} worker(s) would read nothing; use "
                    f"num_workers <= {shards}, or a stream with more shards "
                    f"(more files, or dataset.reshard())"
                )
        elif kind == "webdataset" and self.split == "auto":
            stages = _stage_names(self.source)
            workers_by_source = bool(stages & _WDS_WORKER_SPLITTERS)
            nodes_by_source = bool(stages & _WDS_NODE_SPLITTERS)
            if nodes_by_source:
                _check_wds_ranks(self.num_replicas, self.rank)
            if _WDS_SINGLE_NODE in stages and self.num_replicas > 1:
                raise ValueError(
                    f"the webdataset pipeline splits by node with single_node_only, which "
                    f"refuses num_replicas={self.num_replicas}; build it with "
                    f"nodesplitter=wds.split_by_node (or None, and the stream is split by "
                    f"position)"
                )
        return Share(self.rank, self.num_replicas, worker, num_workers, nodes_by_source,
                     workers_by_source)

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        if self._tagged:
            return self._tagged_pass(worker, num_workers)
        return self._item_pass(worker, num_workers)

    def _item_pass(self, worker: int, num_workers: int) -> Iterator[Any]:
        # Read (and clear) the resume position now, not at the first next(): a DataLoader
        # without workers calls iter() when its own iterator is made.
        skip, self._resume_items = self._resume_items, 0
        done, self._resume_finished = self._resume_finished, False
        self._served, self._finished = skip, done
        if done:  # restored after this pass had ended: nothing is left of it
            return iter(())
        return self._items_from(worker, num_workers, skip)

    def _items_from(self, worker: int, num_workers: int, skip: int) -> Iterator[Any]:
        served = 0
        for batch in self._batches(worker, num_workers):
            for item in batch:
                served += 1
                if served <= skip:
                    continue
                self._served = served  # before the yield: a snapshot after a batch counts it
                yield item
        self._finished = True

    def _tagged_pass(self, worker: int, num_workers: int) -> Iterator[Tagged]:
        skip, ended, limit = 0, False, 0
        if self._start is not None:
            start = self._start.tolist()
            self.epoch = start[0]  # a persistent worker's copy hears of set_epoch only here
            skip, ended = start[1 + worker], bool(start[1 + num_workers + worker])
            limit = start[1 + 2 * num_workers]
        return self._tagged_from(worker, num_workers, skip, ended, limit)

    def _tagged_from(self, worker: int, num_workers: int, skip: int, ended: bool,
                     limit: int) -> Iterator[Tagged]:
        number = skip
        if not ended:
            for made, batch in enumerate(self._batches(worker, num_workers)):
                if limit and made >= limit:  # the loader re-reads the epoch's first batches
                    break
                if made < skip:
                    continue
                yield Tagged(worker, number, self.peak_held, batch)
                number += 1
        yield Tagged(worker, number, self.peak_held, None)

    def _batches(self, worker: int, num_workers: int) -> Iterator[list[Any]]:
        """This share's batches of the current epoch, from the start of the pass."""
        share = self.share(worker, num_workers)
        where = share.describe()
        epoch = self.epoch
        items = self._read(share, epoch)
        if self.phase == "finetune":
            self._buffers = None
            yield from _in_stream_order(items, self.batch_size, self.drop_last)
            return
        rng = _rng.Streams(self.seed).get(_rng.STREAM, epoch, share.index)
        buffers = StreamBuffers(self.labels.names, self.batch_size, self.buffer_size,
                                self.wait, rng, where, self.lookahead)
        self._buffers = buffers
        code, add = self.labels.code, buffers.add
        for position, item in items:
            ready = add(item, code(item, position, where))
            if ready:  # most items complete no batch
                yield from ready
        yield from buffers.finish()

    def _read(self, share: Share, epoch: int) -> Iterator[tuple[int, Any]]:
        """``(position, item)`` for this share's items: the position in what it reads."""
        source = self.source
        if _source_kind(source) == "datasets" and share.nodes_by_source \
                and share.num_replicas > 1:
            from datasets.distributed import split_dataset_by_node
            source = split_dataset_by_node(source, rank=share.rank,
                                           world_size=share.num_replicas)
        set_epoch = getattr(source, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)  # the source's own shuffling, where it has one, follows the epoch
        step, offset = share.step_offset
        if step == 1:  # the whole source is this share's (no test per item)
            yield from enumerate(source)
            return
        for position, item in enumerate(source):
            if position % step == offset:
                yield position, item

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The epoch, the items of it this process has served and whether its pass has ended,
        with the settings that shape the batches.

        The end of a pass is recorded as such, not as the start of the next epoch: under
        torchdata's ``StatefulDataLoader`` each worker saves its own state, and a worker that
        finished early must stay finished when the others resume. Restored, a finished pass
        serves nothing; ``set_epoch(epoch + 1)`` then starts the next one.
        """
        return {"version": _STATE_VERSION, "epoch": self.epoch, "items_done": self._served,
                "finished": self._finished, "settings": self._settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next pass serves exactly the
        items of the saved epoch that had not been served."""
        self._check_state(state, "items_done")
        self.epoch = int(state["epoch"])
        self._clear_position()
        self._resume_items = check_int("state['items_done']", state["items_done"], minimum=0,
                                       fix="pass the dict state_dict() returned, unchanged")
        self._resume_finished = bool(state.get("finished", False))

    def _check_state(self, state: Any, count_key: str) -> None:
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"state should be a dict from {name}.state_dict(), but got "
                            f"{type(state).__name__}")
        missing = {"version", "epoch", count_key, "settings"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass a dict from "
                             f"state_dict() of a balanced stream")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"state has version {state['version']!r}; this stream reads "
                             f"version {_STATE_VERSION}")
        ours = self._settings()
        saved = state["settings"] if isinstance(state["settings"], dict) else {}
        differing = {k: (saved.get(k), v) for k, v in ours.items() if saved.get(k) != v}
        if differing:
            described = ", ".join(f"{k}: saved {before!r}, here {here!r}"
                                  for k, (before, here) in differing.items())
            raise ValueError(f"state was taken from a stream with other settings ({described}); "
                             f"build the stream with the saved settings before loading it")
        check_int("state['epoch']", state["epoch"], minimum=0,
                  fix="pass the dict state_dict() returned, unchanged")

    def _settings(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "classes": self.labels.names,
                "buffer_size": self.buffer_size, "wait": self.wait, "lookahead": self.lookahead,
                "num_replicas": self.num_replicas, "rank": self.rank, "split": self.split,
                "schedule": None if self.schedule is None else self.schedule.state_dict()}

    def _clear_position(self) -> None:
        self._resume_items = 0
        self._resume_finished = False
        self._served = 0
        self._finished = False

    def _tagged_copy(self) -> BalancedStream:
        """A copy yielding :class:`Tagged` batches, for a loader that tracks its workers."""
        tagged = copy.copy(self)
        tagged._tagged = True
        tagged._clear_position()
        return tagged

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source={type(self.source).__name__}, "
                f"batch_size={self.batch_size}, classes={self.num_classes}, "
                f"buffer_size={self.buffer_size}, wait={self.wait}, lookahead={self.lookahead}, "
                f"epoch={self.epoch}, "
                f"num_replicas={self.num_replicas}, rank={self.rank}, split={self.split!r})")


def _refuse_accelerate(caller: Any) -> None:
    """``accelerator.prepare(balance(stream_loader))`` rebuilds a loader from the balanced
    loader's ``dataset`` (this stream's copy that yields tagged batches to its own loader) and
    sets its epoch at every pass, on every process, before any batch: refuse there, with the fix.
    """
    owner = type(caller.f_locals.get("self")).__module__
    if owner.split(".")[0] == "accelerate":
        raise RuntimeError(
            "accelerator.prepare() was given a balanced stream loader (balance() of a DataLoader "
            "over an IterableDataset): Accelerate rebuilds the loader from its dataset and would "
            "serve the stream's internal records. Give Accelerate the plain DataLoader instead: "
            "loader = balancer.integrations.accelerate.prepare(accelerator, DataLoader(stream, "
            "batch_size=...), labels, classes=..., schedule=...), and accelerator.prepare only "
            "the model and optimizer"
        )


def _in_stream_order(items: Iterator[tuple[int, Any]], batch_size: int,
                     drop_last: bool) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for _, item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch and not drop_last:
        yield batch


def _check_source(source: Any) -> None:
    if isinstance(source, Dataset) and not isinstance(source, IterableDataset) \
            and hasattr(source, "__len__"):
        raise TypeError(
            f"source is a map-style Dataset ({type(source).__name__}); balance its DataLoader "
            f"with balancer.balance(DataLoader(dataset, batch_size=...)), which picks items by "
            f"index, instead of streaming it"
        )
    if not hasattr(source, "__iter__"):
        raise TypeError(f"source should be an iterable stream of items (an IterableDataset, a "
                        f"webdataset pipeline, ...), but got {type(source).__name__}")
    # An iterator (it has __next__) is read once; iter() is not called to find out, as a
    # stream's __iter__ may open files or connections.
    if isinstance(source, Iterator):
        raise TypeError(
            f"source is an iterator ({type(source).__name__}), which can be read only once; "
            f"pass a re-iterable whose __iter__ starts a new pass (an IterableDataset), so that "
            f"every epoch and a resume can read it again"
        )


def _replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is None:
        num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() \
            else 1
    num_replicas = check_int("num_replicas", num_replicas, minimum=1,
                             fix="pass the number of processes sharing the stream")
    if rank is None:
        rank = dist.get_rank() if num_replicas > 1 and dist.is_available() \
            and dist.is_initialized() else 0
    rank = check_int("rank", rank, minimum=0, maximum=num_replicas - 1,
                     fix=f"pass this process's rank in [0, num_replicas={num_replicas})")
    return num_replicas, rank


def _source_kind(source: Any) -> str:
    module = type(source).__module__.split(".")[0]
    if module == "datasets" and hasattr(source, "num_shards"):
        return "datasets"
    if module == "webdataset":
        return "webdataset"
    return "plain"


def _stage_names(source: Any) -> set[str]:
    names = set()
    for stage in getattr(source, "pipeline", []):
        while isinstance(stage, functools.partial):
            stage = stage.func
        names.add(getattr(stage, "__name__", ""))
    return names


def _hf_shards(source: Any, num_replicas: int, rank: int) -> int:
    if num_replicas > 1:
        from datasets.distributed import split_dataset_by_node
        source = split_dataset_by_node(source, rank=rank, world_size=num_replicas)
    return int(source.num_shards)


def _check_wds_ranks(num_replicas: int, rank: int) -> None:
    """webdataset's ``split_by_node`` finds the rank itself (``RANK``/``WORLD_SIZE`` or the
    process group): it must agree with this stream's, or ranks would read the same shards."""
    from webdataset.utils import pytorch_worker_info

    wds_rank, wds_world = pytorch_worker_info()[:2]
    if (wds_rank, wds_world) != (rank, num_replicas):
        raise ValueError(
            f"the webdataset pipeline splits by node with split_by_node, which sees rank "
            f"{wds_rank} of {wds_world} (it reads RANK/WORLD_SIZE from the environment, else the "
            f"process group, which DataLoader workers started by spawn do not have), but the "
            f"stream has rank={rank}, num_replicas={num_replicas}: ranks would read the same "
            f"shards. Launch with torchrun (which sets RANK and WORLD_SIZE) or set them in "
            f"os.environ, leave num_replicas and rank to the process group, or build the "
            f"pipeline with nodesplitter=None so that the stream splits ranks by position"
        )
