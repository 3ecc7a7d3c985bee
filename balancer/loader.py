"""Loader wrapping: add balanced batches to an existing ``DataLoader`` in one line.

:func:`balance` builds a :class:`BalancedDataLoader` (a ``DataLoader`` whose batch sampler is a
balancer sampler, with the sampler's controls on the loader); :class:`RankShardSampler` is what
such a loader shows training frameworks as its ``sampler`` when it is sharded.
:func:`dataloader_settings` is the allow-list of settings carried over, which the framework
adapters share.
"""

from __future__ import annotations

import copy
import inspect
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast, overload

from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

from balancer._schedule import BatchNormPolicy, Phase, set_train_mode
from balancer._validation import check_bool, check_int
from balancer.samplers import BalancedBatchSampler, PlanBatchSampler, sampler_kind, sampler_kinds
from balancer.streams import BalancedStream, BalancedStreamLoader

__all__ = ["BalancedDataLoader", "RankShardSampler", "balance", "balanced_loader",
           "dataloader_settings"]

# DataLoader settings that carry over unchanged to the balanced loader (like accelerate, an
# allow-list: anything about which indices are drawn -- batch_size, shuffle, sampler,
# batch_sampler, drop_last -- is replaced by the BalancedBatchSampler).
_COPIED_SETTINGS = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn",
                    "multiprocessing_context", "generator", "prefetch_factor",
                    "persistent_workers", "pin_memory_device", "in_order")
_DATALOADER_PARAMETERS = frozenset(inspect.signature(DataLoader.__init__).parameters)
# Samplers balance() may replace: the defaults behind shuffle=False/True, and DistributedSampler
# (the balanced sampler shards by itself, with the same num_replicas and rank).
_REPLACEABLE_SAMPLERS = (SequentialSampler, RandomSampler, DistributedSampler)
_SAMPLER_OPTIONS = ("schedule", "seed", "samples_per_epoch", "drop_last", "batch_type")


class BalancedDataLoader(DataLoader):
    """A ``DataLoader`` whose batches come from a :class:`~balancer.BalancedBatchSampler`.

    Built by :func:`balance` and :func:`balanced_loader`. It is an ordinary ``DataLoader``
    (``loader.batch_sampler`` is the sampler; ``len(loader)`` is the sampler's length, which
    follows the phase of the current epoch) with the sampler's controls on the loader itself:

    - ``loader.set_epoch(epoch)``: call at the start of every epoch, before iterating;
    - ``loader.phase`` / ``loader.epoch``: ``"balanced"`` or ``"finetune"``, and the current epoch;
    - ``loader.total_batches(epochs)``: batches this rank yields over the run (phases change
      ``len(loader)``), for LR schedules and step-based frameworks;
    - under several replicas, ``loader.sampler`` is a ``DistributedSampler`` holding this rank's
      share, so Lightning and Ray Train leave the loader as it is and call its ``set_epoch``;
      ``loader.batch_sampler.sampler`` forwards ``set_epoch`` to the loader too (where Lightning
      looks on a single device, and Accelerate in its prepared loader);
    - ``loader.batches_received``: batches the loop has received this epoch;
    - ``loader.state_dict()`` / ``loader.load_state_dict(state)``: the position in the plan, for
      checkpoints. The position counts the batches the training loop has *received* from the
      loader in the current epoch, not the batches the sampler has handed to the workers (with
      ``num_workers > 0`` the loader prefetches ahead), so a loader restored from it continues
      with exactly the batches the loop had not seen.

    Example::

        loader = balance(DataLoader(train_set, batch_size=64, num_workers=4))
        for epoch in range(loader.epoch, epochs):
            loader.set_epoch(epoch)
            for images, targets in loader:
                ...
    """

    # DataLoader types it ``Sampler | Iterable | None``; here it is always the balancer sampler
    # passed to __init__ (checked there), which DataLoader forbids replacing afterwards.
    batch_sampler: PlanBatchSampler

    def __init__(self, dataset: Dataset, batch_sampler: BalancedBatchSampler,
                 **kwargs: Any) -> None:
        if not isinstance(batch_sampler, PlanBatchSampler):
            first, *others = (kind.sampler_class.__name__ for kind in sampler_kinds())
            raise TypeError(f"batch_sampler should be a balancer.{first} (or "
                            f"{', '.join(others)}), but got "
                            f"{type(batch_sampler).__name__}; use balancer.balance(loader)")
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        if getattr(self, "in_order", True) is False and self.num_workers > 0:
            raise ValueError(
                "in_order=False with num_workers > 0: batches then arrive in whatever order the "
                "workers finish, so a checkpoint cannot tell which batches the loop received and "
                "a resume would skip some and repeat others; build the DataLoader with "
                "in_order=True (the default)"
            )
        # Batches the loop received in the current epoch, and where the next iteration starts
        # (non-zero only after load_state_dict; mirrors the sampler's own resume rules).
        self._consumed = 0
        self._resume_from = 0
        self._seed_was_drawn = False
        self._warned_trainer = False
        # Bumped when the position changes (set_epoch to another epoch, load_state_dict): an
        # iterator of the old position then no longer counts batches towards the new one.
        self._generation = 0
        # Lightning and Accelerate also call `batch_sampler.sampler.set_epoch`: on one process
        # (no RankShardSampler below) that is the only call Lightning makes. A plain attribute
        # on this loader's sampler, not a DistributedSampler: see _EpochHook.
        batch_sampler.sampler = _EpochHook(self)
        if batch_sampler.num_replicas > 1:
            # Frameworks that shard by sampler (Lightning, Ray Train) see a DistributedSampler
            # and leave this already-sharded loader as it is; see RankShardSampler. Set past
            # DataLoader's guard, which forbids changing `sampler` after construction.
            object.__setattr__(self, "sampler", RankShardSampler(self))

    # DataLoader.__iter__ returns a _BaseDataLoaderIter; this one wraps it in a counting iterator.
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        start, self._resume_from = self._resume_from, 0
        self._consumed = start
        # The iterator's length is fixed now: the batches this iteration yields.
        return _CountingIterator(super().__iter__(), self, len(self.batch_sampler))

    # ------------------------------------------------------------------ sampler controls
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next iteration yields; see :meth:`BalancedBatchSampler.set_epoch`."""
        if not self._warned_trainer:
            self._warned_trainer = _warn_equal_epochs_trainer(self, sys._getframe(1))
        previous = self.batch_sampler.epoch
        finished = self._consumed >= self.batch_sampler.batches_in_epoch(previous)
        self.batch_sampler.set_epoch(epoch)
        if epoch != previous or finished:
            self._consumed = 0
            self._resume_from = 0
            self._generation += 1

    @property
    def batches_received(self) -> int:
        """Batches the training loop has received from this loader in the current epoch (what
        :meth:`state_dict` records; a resumed iteration counts from the restored position)."""
        return self._consumed

    @property
    def epoch(self) -> int:
        """The current epoch (the last one set, or restored by :meth:`load_state_dict`)."""
        return self.batch_sampler.epoch

    @property
    def phase(self) -> Phase:
        """``"balanced"`` or ``"finetune"``: the phase of the current epoch."""
        return self.batch_sampler.phase

    @property
    def seed(self) -> int:
        """The sampler's seed (drawn at random, the same on every rank, when built with None)."""
        return self.batch_sampler.seed

    def total_batches(self, epochs: int | None = None) -> int:
        """Batches this rank yields over epochs ``0 .. epochs - 1`` (default: the schedule's
        ``total_epochs``); see :meth:`BalancedBatchSampler.total_batches`."""
        return self.batch_sampler.total_batches(epochs)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state, with ``batches_done`` = batches the loop received this epoch.

        After the last batch of an epoch it is the start of the next epoch, as for
        :meth:`BalancedBatchSampler.state_dict`.
        """
        return self.batch_sampler.state_at(self._consumed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next iteration of the saved
        epoch yields exactly the batches the loop had not received when it was saved."""
        saved_seed = state.get("settings", {}).get("seed") if isinstance(state, dict) else None
        if self._seed_was_drawn and saved_seed is not None and saved_seed != self.seed:
            raise ValueError(
                f"state was saved with seed={saved_seed}, but this loader was built with "
                f"seed=None and drew seed={self.seed}; rebuild it with "
                f"balance(..., seed=state['settings']['seed']) before loading the state"
            )
        self.batch_sampler.load_state_dict(state)
        self._consumed = self._resume_from = int(state["batches_done"])
        self._generation += 1

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dataset={type(self.dataset).__name__}, "
                f"num_workers={self.num_workers}, batch_sampler={self.batch_sampler!r})")

    def train_mode(self, model: nn.Module) -> nn.Module:
        """``model`` in training mode for the current epoch's :attr:`phase`, BatchNorm per the
        schedule's ``batchnorm`` (``"train"`` for a schedule without one); see
        :func:`~balancer.set_train_mode`. Call it after :meth:`set_epoch`, where you would call
        ``model.train()``."""
        # A schedule's own value (set_train_mode checks it), or "train" without one.
        batchnorm = cast(BatchNormPolicy,
                         getattr(self.batch_sampler.schedule, "batchnorm", "train"))
        return set_train_mode(model, self.phase, batchnorm=batchnorm)


class _EpochHook:
    """``loader.batch_sampler.sampler``: where frameworks look for ``set_epoch`` besides
    ``loader.sampler``.

    Lightning calls ``set_epoch`` on ``loader.sampler`` and on ``loader.batch_sampler.sampler``;
    a single-process balanced loader keeps the ``DataLoader``'s own ``SequentialSampler`` as
    ``loader.sampler`` (so that a framework running several processes does not mistake it for a
    sharded one), which has none, so without this hook every epoch would repeat epoch 0.

    It also notices the one framework path that cannot be exact: Accelerate's ``prepare`` wraps
    the batch sampler in its ``BatchSamplerShard``, which keeps every ``P``-th batch, and reaches
    this hook from the prepared loader's ``set_epoch`` at the start of every pass. An already
    sharded balanced loader would then be sharded a second time (each process serving ``1/P``
    of its own shard); that is refused here, naming the one-line fix.
    """

    def __init__(self, loader: BalancedDataLoader) -> None:
        self._loader = loader

    def set_epoch(self, epoch: int) -> None:
        _refuse_second_sharding(self._loader, sys._getframe(1))
        self._loader.set_epoch(epoch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epoch={self._loader.epoch})"


def _refuse_second_sharding(loader: BalancedDataLoader, caller: Any) -> None:
    sampler = loader.batch_sampler
    if sampler.num_replicas == 1:
        return  # an unsharded plan: a wrapper taking every P-th batch shards it once
    wrapper = getattr(caller.f_locals.get("self"), "batch_sampler", None)
    if getattr(wrapper, "batch_sampler", None) is not sampler:
        return
    raise RuntimeError(
        f"this balanced loader is already sharded across {sampler.num_replicas} processes "
        f"(rank {sampler.rank}), and {type(wrapper).__name__} (accelerator.prepare) shards it "
        f"again: each process would serve 1/{sampler.num_replicas} of its own balanced batches "
        f"and the phase would never change. Give Accelerate the plain DataLoader instead: "
        f"loader = balancer.integrations.accelerate.prepare(accelerator, DataLoader(...), "
        f"schedule=...), and accelerator.prepare only the model and optimizer"
    )


def _warn_equal_epochs_trainer(loader: BalancedDataLoader, caller: Any) -> bool:
    """Warn, once, when a plain ``transformers.Trainer`` drives a loader whose epochs differ.

    A ``Trainer`` subclass whose ``get_train_dataloader`` returns a balanced loader is the usual
    way to give the Trainer a custom loader. It sets the epoch and runs every epoch for its own
    length, but sizes ``max_steps`` (and so the LR schedule) as ``len(loader) * epochs`` from the
    first epoch: with a fine-tune phase the run ends short of its plan. Returns whether it warned
    (or never will for this loader).
    """
    transformers = sys.modules.get("transformers")
    trainer = caller.f_locals.get("self")
    if transformers is None or not isinstance(trainer, transformers.Trainer):
        return False
    sampler = loader.batch_sampler
    epochs = getattr(sampler.schedule, "total_epochs", None)
    if epochs is None:
        return True  # without a schedule every epoch has the same length
    planned, real = sampler.batches_in_epoch(0) * epochs, sampler.total_batches(epochs)
    if planned != real:
        warnings.warn(
            f"a transformers.Trainer is driving a balanced loader whose epochs differ in length "
            f"(balanced, then fine-tune): the Trainer plans len(loader) * epochs = {planned} "
            f"batches per process from the first epoch, but the schedule gives "
            f"loader.total_batches() = {real}, so the run ends early and the LR schedule never "
            f"reaches its end. Use balancer.integrations.transformers.BalancedTrainer(..., "
            f"train_dataset=..., finetune_epochs=k), which plans total_batches() steps and runs "
            f"every epoch for its own length",
            UserWarning, stacklevel=3)
    return True


class _CountingIterator:
    """The DataLoader's iterator, counting the batches it has handed to the loop."""

    def __init__(self, iterator: Iterator[Any], loader: BalancedDataLoader, length: int) -> None:
        self._iterator = iterator
        self._loader = loader
        self._length = length
        self._generation = loader._generation

    def __iter__(self) -> _CountingIterator:
        return self

    def __next__(self) -> Any:
        loader = self._loader
        if loader._generation != self._generation:
            raise RuntimeError(
                f"this iteration of the loader was ended by set_epoch({loader.epoch}) or "
                f"load_state_dict() while it was running; start a new one with iter(loader) "
                f"(a `for` loop does) for the new position instead of advancing the old one"
            )
        batch = next(self._iterator)
        loader._consumed += 1
        return batch

    def __len__(self) -> int:
        return self._length


# A stream needs `classes` and a map-style dataset refuses it, so the type checker can tell the
# two loaders apart by it.
@overload
def balance(loader: DataLoader, labels: Any = None, *, schedule: Any = None,
            seed: int | None = 0, samples_per_epoch: int | None = None,
            drop_last: bool | None = None, batch_type: str | None = None,
            sampler: str | type = "balanced", classes: None = None,
            **sampler_options: Any) -> BalancedDataLoader: ...


@overload
def balance(loader: DataLoader, labels: Any = None, *, schedule: Any = None,
            seed: int | None = 0, samples_per_epoch: int | None = None,
            drop_last: bool | None = None, batch_type: str | None = None,
            sampler: str | type = "balanced", classes: int | Sequence[Any],
            **sampler_options: Any) -> BalancedStreamLoader: ...


def balance(
    loader: DataLoader,
    labels: Any = None,
    *,
    schedule: Any = None,
    seed: int | None = 0,
    samples_per_epoch: int | None = None,
    drop_last: bool | None = None,
    batch_type: str | None = None,
    sampler: str | type = "balanced",
    classes: int | Sequence[Any] | None = None,
    **sampler_options: Any,
) -> BalancedDataLoader | BalancedStreamLoader:
    """The same ``DataLoader``, drawing equal-frequency batches from circular per-class buffers.

    Returns a new :class:`BalancedDataLoader` over ``loader.dataset`` with ``loader``'s settings
    (``num_workers``, ``collate_fn``, ``pin_memory``, ``timeout``, ``worker_init_fn``,
    ``multiprocessing_context``, ``generator``, ``prefetch_factor``, ``persistent_workers``,
    ``pin_memory_device`` and ``in_order`` where this torch has them) and a
    :class:`~balancer.BalancedBatchSampler` with ``loader.batch_size`` as its ``batch_size``.
    Under an initialised ``torch.distributed`` process group each rank gets its shard of one
    global plan (a ``DistributedSampler`` on ``loader`` lends its ``num_replicas`` and ``rank``).

    Args:
        loader: a ``DataLoader`` over a map-style dataset with a ``batch_size`` and the default
            sampler (``shuffle=True`` or ``False``) or a ``DistributedSampler``.
        labels: the class of every item, or where to find it; see :func:`~balancer.labels_of`
            (``None``: the dataset's ``targets``/``labels``/``y``, ImageFolder ``samples``, ...).
        schedule: optional :class:`~balancer.FineTuneSchedule` for the true-frequency epochs.
        seed: the batches are a pure function of ``(seed, epoch)``. ``None`` draws a fresh seed
            from the operating system; under a process group rank 0's is broadcast to every
            rank, so all call ``balance`` together. Save ``loader.seed`` to resume such a run.
        samples_per_epoch: optional length of a balanced epoch; see the sampler.
        drop_last: drop a short last batch; ``None`` keeps ``loader.drop_last``.
        batch_type: what the sampler hands the dataset for each batch: ``"list"`` of ints,
            ``"numpy"`` or ``"tensor"`` (``int64`` index arrays, cheaper to make). ``None``
            chooses ``"numpy"`` for a dataset that declares ``supports_index_arrays = True``
            (its ``__getitems__`` takes an index array, as :class:`~balancer.MedMNIST`'s does)
            and ``"list"`` otherwise: a ``__getitems__`` written for lists can misread an array
            (``indices + [i]`` adds instead of appending).
        sampler: the kind of sampler: ``"balanced"`` (:class:`~balancer.BalancedBatchSampler`,
            one class per item), ``"label-balanced"`` (:class:`~balancer.MultiLabelBalancedSampler`)
            or ``"repeat-factor"`` (:class:`~balancer.RepeatFactorSampler`), or one of those
            classes. The multi-label ones read ``labels`` with
            ``labels_of(..., multilabel=True)`` (repeat-factor also takes one class per item).
        classes: for a stream only: the number of classes or the list of label values.
        **sampler_options: further keywords of that sampler, e.g. ``threshold=0.1`` for
            repeat-factor sampling or ``min_bucket_share=`` for label-balanced batches; for a
            stream, :class:`~balancer.BalancedStream`'s ``buffer_size``, ``wait``, ``lookahead``,
            ``split``, and ``num_replicas`` and ``rank`` (default: the process group).

    A ``DataLoader`` over an ``IterableDataset`` (a stream: webdataset, Hugging Face
    ``datasets`` in streaming mode, ...) gives a :class:`~balancer.streams.BalancedStreamLoader`
    over a :class:`~balancer.BalancedStream` of it, which reads the stream once per epoch
    through bounded per-class buffers (see there for its guarantees): ``labels`` is then a key of
    each item or a function of it, and ``classes`` is required. Its ``collate_fn`` and worker
    settings are kept; ``drop_last`` applies to fine-tune epochs.

    Example:
        >>> from balancer import MedMNIST
        >>> loader = DataLoader(MedMNIST("pneumoniamnist"), batch_size=64, shuffle=True)
        >>> loader = balance(loader)  # labels read from dataset.labels, no image loaded
        >>> len(loader)  # 2 classes * 3494 samples of the largest, in batches of 64
        110
        >>> images, targets = next(iter(loader))
        >>> targets.bincount().tolist()
        [32, 32]
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"loader should be a torch.utils.data.DataLoader, but got {type(loader).__name__}; "
            f"to start from a dataset, use balancer.balanced_loader(dataset, batch_size)"
        )
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset):
        return _balance_stream(loader, labels, classes=classes, schedule=schedule, seed=seed,
                               samples_per_epoch=samples_per_epoch, drop_last=drop_last,
                               batch_type=batch_type, sampler=sampler, options=sampler_options)
    if classes is not None:
        raise TypeError(
            f"balance() got classes={classes!r}, which only a stream (a DataLoader over an "
            f"IterableDataset) needs; a map-style dataset's classes are read from its labels, "
            f"so remove classes="
        )
    if isinstance(loader.batch_sampler, PlanBatchSampler):
        raise ValueError(
            f"loader is already balanced (its batch_sampler is a "
            f"{type(loader.batch_sampler).__name__}); use it as it is, or call balance() on the "
            f"original DataLoader to change settings"
        )
    if loader.batch_sampler is not None and type(loader.batch_sampler) is not BatchSampler:
        raise ValueError(
            f"loader has a custom batch_sampler ({type(loader.batch_sampler).__name__}), which "
            f"balance() would replace; build the DataLoader with batch_size=N instead of "
            f"batch_sampler=..., then balance() it"
        )
    if loader.batch_sampler is None:
        raise ValueError(
            "loader has batch_size=None (automatic batching disabled); balance() yields batches "
            "of indices, so build the DataLoader with batch_size=N"
        )
    index_sampler = loader.batch_sampler.sampler
    if not isinstance(index_sampler, _REPLACEABLE_SAMPLERS):
        raise ValueError(
            f"loader has a custom sampler ({type(index_sampler).__name__}), which balance() "
            f"would replace; build the DataLoader with shuffle=True (or no sampler), then "
            f"balance() it"
        )
    # A DataLoader built with batch_sampler=BatchSampler(...) reports batch_size=None.
    batch_size = loader.batch_sampler.batch_size
    if drop_last is None:
        drop_last = loader.batch_sampler.drop_last
    drop_last = check_bool("drop_last", drop_last)
    num_replicas = rank = None
    if isinstance(index_sampler, DistributedSampler):
        num_replicas, rank = index_sampler.num_replicas, index_sampler.rank

    if samples_per_epoch is not None:
        sampler_options["samples_per_epoch"] = samples_per_epoch
    kind = sampler_kind(sampler, sampler_options)
    batch_sampler = kind.build(
        dataset, labels, batch_size, seed=seed, drop_last=drop_last, schedule=schedule,
        num_replicas=num_replicas, rank=rank, batch_type=batch_type, options=sampler_options)
    loader_class, own_settings = _balanced_class(loader)
    balanced = loader_class(dataset, batch_sampler, **dataloader_settings(loader), **own_settings)
    balanced._seed_was_drawn = seed is None
    return balanced


_STREAM_OPTIONS = ("buffer_size", "wait", "lookahead", "split", "num_replicas", "rank")


def _balance_stream(loader: DataLoader, labels: Any, *, classes: Any, schedule: Any,
                    seed: int | None, samples_per_epoch: int | None, drop_last: bool | None,
                    batch_type: str | None, sampler: str | type,
                    options: dict[str, Any]) -> BalancedStreamLoader:
    """:func:`balance` for a ``DataLoader`` over an ``IterableDataset``."""
    dataset = loader.dataset
    if isinstance(dataset, BalancedStream):
        raise ValueError(
            "loader.dataset is already a BalancedStream; use the loader as it is, or balance() "
            "a DataLoader over the original stream"
        )
    refused: dict[str, Any] = {"samples_per_epoch": samples_per_epoch, "batch_type": batch_type}
    refused.update({k: v for k, v in options.items() if k not in _STREAM_OPTIONS})
    refused = {k: v for k, v in refused.items() if v is not None}
    if sampler != "balanced":
        refused["sampler"] = sampler
    if refused:
        raise TypeError(
            f"balance() got {', '.join(f'{k}={v!r}' for k, v in refused.items())} for a stream "
            f"(loader.dataset is an IterableDataset, {type(dataset).__name__}); a stream is "
            f"balanced by per-class buffers, which take only labels, classes, schedule, seed, "
            f"drop_last and {', '.join(_STREAM_OPTIONS)}"
        )
    if loader.batch_size is None:
        raise ValueError(
            "loader has batch_size=None (automatic batching disabled); a balanced stream "
            "serves batches, so build the DataLoader with batch_size=N"
        )
    if drop_last is None:
        drop_last = loader.drop_last
    stream = BalancedStream(cast(Iterable[Any], dataset), batch_size=loader.batch_size, classes=classes,
                            labels=labels, seed=seed, schedule=schedule, drop_last=drop_last,
                            **options)
    settings = dataloader_settings(loader)
    collate_fn = settings.pop("collate_fn", None)
    # DataLoader's default for batch_size=N is default_collate; keep whatever the user set.
    return BalancedStreamLoader(stream, collate_fn=collate_fn, **settings)


def balanced_loader(dataset: Dataset, batch_size: int, labels: Any = None,
                    **dataloader_kwargs: Any) -> BalancedDataLoader:
    """A balanced ``DataLoader`` over ``dataset``: ``balance(DataLoader(dataset, batch_size))``.

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch.
        labels: see :func:`~balancer.labels_of`.
        **dataloader_kwargs: ``DataLoader`` settings (``num_workers``, ``collate_fn``, ...) and
            :func:`balance`'s keywords (``schedule``, ``seed``, ``samples_per_epoch``,
            ``drop_last``).

    Example:
        >>> from balancer import FineTuneSchedule, MedMNIST
        >>> loader = balanced_loader(MedMNIST("pneumoniamnist"), 64, schedule=FineTuneSchedule(10, 2))
        >>> loader.set_epoch(9)
        >>> loader.phase, len(loader)  # one pass over the 4,708 images at their true frequencies
        ('finetune', 74)
    """
    if batch_size is None:
        raise ValueError("batch_size=None disables batching; balanced_loader needs batches, so "
                         "pass batch_size=N")
    batch_size = check_int("batch_size", batch_size, minimum=1,
                           fix="pass a positive number of samples per batch")
    chosen = sorted({"shuffle", "sampler", "batch_sampler"} & set(dataloader_kwargs))
    if chosen:
        raise TypeError(
            f"balanced_loader got {', '.join(f'{k}=' for k in chosen)}, but its batches come "
            f"from a BalancedBatchSampler (always shuffled); remove {', '.join(chosen)}"
        )
    options = {k: dataloader_kwargs.pop(k) for k in _SAMPLER_OPTIONS if k in dataloader_kwargs}
    unknown = sorted(set(dataloader_kwargs) - _DATALOADER_PARAMETERS)
    if unknown:
        raise TypeError(
            f"balanced_loader got unexpected keyword(s) {unknown}; pass DataLoader settings "
            f"(num_workers, collate_fn, ...) or {', '.join(_SAMPLER_OPTIONS)}"
        )
    plain = DataLoader(dataset, batch_size=batch_size, **dataloader_kwargs)
    return balance(plain, labels, **options)


# One balanced class per DataLoader subclass, so that a loader's type is stable across calls.
_BALANCED_CLASSES: dict[type, type] = {}


def _balanced_class(loader: DataLoader) -> tuple[type, dict[str, Any]]:
    """The class of ``balance(loader)`` and the settings of ``loader``'s own class it keeps.

    A ``DataLoader`` subclass whose ``__init__`` passes further keywords on to ``DataLoader``'s
    (MONAI's ``DataLoader`` and ``ThreadDataLoader``) is kept: the balanced loader is an
    instance of both it and :class:`BalancedDataLoader`, built with the subclass's own settings
    that it stores under their names (``ThreadDataLoader``'s ``buffer_size``, ...). Any other
    subclass gives a plain :class:`BalancedDataLoader`.
    """
    cls = type(loader)
    if cls is DataLoader or issubclass(cls, BalancedDataLoader):
        return BalancedDataLoader, {}
    parameters = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return BalancedDataLoader, {}
    own = {name: getattr(loader, name) for name, parameter in parameters.items()
           if name not in _DATALOADER_PARAMETERS and hasattr(loader, name)
           and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}
    required = [name for name, parameter in parameters.items()
                if name not in _DATALOADER_PARAMETERS and name not in own
                and parameter.default is inspect.Parameter.empty
                and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    if required:  # a setting it needs and does not keep under its name: it cannot be rebuilt
        return BalancedDataLoader, {}
    if own.get("repeats", 1) != 1:  # MONAI's ThreadDataLoader
        raise ValueError(
            f"loader is a {cls.__name__} with repeats={own['repeats']}, which serves every batch "
            f"{own['repeats']} times: the balanced plan (its per-class counts, its resume "
            f"position) counts each batch once; build the {cls.__name__} with repeats=1"
        )
    if cls not in _BALANCED_CLASSES:
        # monai.data.DataLoader -> BalancedMonaiDataLoader, ThreadDataLoader -> BalancedThreadDataLoader
        name = cls.__name__ if cls.__name__ != "DataLoader" else \
            f"{cls.__module__.split('.')[0].capitalize()}DataLoader"
        _BALANCED_CLASSES[cls] = type(f"Balanced{name}", (BalancedDataLoader, cls),
                                      {"__module__": __name__, "__doc__": BalancedDataLoader.__doc__})
    return _BALANCED_CLASSES[cls], own


def dataloader_settings(loader: DataLoader) -> dict[str, Any]:
    """The settings of ``loader`` that a balanced loader over its dataset keeps.

    An allow-list (``num_workers``, ``collate_fn``, ``pin_memory``, ... where this torch has
    them): the settings that choose indices (``batch_size``, ``shuffle``, ``sampler``,
    ``batch_sampler``, ``drop_last``) are the balanced sampler's instead.
    """
    settings = {}
    for name in _COPIED_SETTINGS:
        if name not in _DATALOADER_PARAMETERS or not hasattr(loader, name):
            continue
        value = getattr(loader, name)
        if name == "prefetch_factor" and loader.num_workers == 0:
            continue  # DataLoader rejects any prefetch_factor without workers
        if name == "pin_memory_device" and not value:
            continue  # deprecated; passing the default would only warn
        settings[name] = value
    return settings


class RankShardSampler(DistributedSampler):
    """``loader.sampler`` of a sharded balanced loader: this rank's share of the plan, as indices.

    Training frameworks decide whether to shard a ``DataLoader`` by looking at its ``sampler``:
    Lightning (``use_distributed_sampler=True``, the default) and Ray Train
    (``prepare_data_loader(add_dist_sampler=True)``) rebuild any loader whose ``sampler`` is not
    a ``DistributedSampler``, and they reach ``sampler.set_epoch`` at every epoch. A balanced
    loader already holds one rank's shard of the plan in its batch sampler, so under a process
    group its ``sampler`` is this ``DistributedSampler``, which *is* that shard: the frameworks
    leave the loader as it is and drive its epochs.

    Iterating it yields the indices of this rank's batches of the current epoch, in order (the
    whole epoch, whatever the loader's resume position); ``len()`` is their number.
    :meth:`set_epoch` is the loader's, so a framework that calls ``loader.sampler.set_epoch(e)``
    at every epoch (Lightning, Ray Train) moves the loader, phases included.

    It is a ``DistributedSampler`` by type only: the indices come from the loader's
    :class:`~balancer.BalancedBatchSampler`, not from ``DistributedSampler``'s rule. Its
    ``num_replicas``, ``rank``, ``seed`` and ``drop_last`` are the batch sampler's.
    """

    # DistributedSampler.__init__ is not called: it would need the process group and build
    # nothing used here. The attributes frameworks read are set from the batch sampler.
    def __init__(self, loader: BalancedDataLoader) -> None:
        sampler = loader.batch_sampler
        self._loader = loader
        self.dataset = loader.dataset
        self.num_replicas = sampler.num_replicas
        self.rank = sampler.rank
        self.seed = sampler.seed
        self.drop_last = sampler.drop_last
        self.shuffle = True

    @property
    def epoch(self) -> int:  # DistributedSampler's attribute, always the loader's epoch
        return self._loader.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._loader.set_epoch(value)

    # Read-only views of the loader (DistributedSampler's stubs type them as plain attributes).
    @property
    def num_samples(self) -> int:  # type: ignore[override]
        return len(self)

    @property
    def total_size(self) -> int:  # type: ignore[override]
        return len(self) * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """``loader.set_epoch(epoch)``: see :meth:`balancer.BalancedDataLoader.set_epoch`."""
        self._loader.set_epoch(epoch)

    def _whole_epoch(self) -> PlanBatchSampler:
        # A copy, so that reading the indices leaves the loader's own resume position and
        # iteration counters untouched (the copy shares only caches of pure functions).
        sampler = copy.copy(self._loader.batch_sampler)
        sampler._resume_from = sampler._started_at = sampler._yielded = 0
        sampler._finished_epoch = sampler._iterated_epoch = None  # a read repeats no epoch
        return sampler

    def __iter__(self) -> Iterator[int]:
        for batch in self._whole_epoch():
            yield from batch

    def __len__(self) -> int:
        sampler = self._loader.batch_sampler
        batches = sampler.batches_in_epoch()
        # Under several replicas every batch is full (the epoch is padded to whole batches).
        return batches * sampler.batch_size

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(epoch={self.epoch}, num_replicas={self.num_replicas}, "
                f"rank={self.rank})")
