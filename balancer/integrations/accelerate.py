"""Balanced batches under Hugging Face Accelerate: ``balancer.integrations.accelerate.prepare``.

``accelerator.prepare(loader)`` shards whatever batch sampler it finds with its own
``BatchSamplerShard`` (process ``p`` takes batches ``p, p + P, ...``) and never calls a batch
sampler's ``set_epoch``. Given an already sharded balanced loader (``balance()`` under a process
group) it would shard a second time, each process serving ``1/P`` of its shard; that loader
refuses it at the first pass with an error naming this module's :func:`prepare`. (On one process
``accelerator.prepare(balance(loader))`` is exact: nothing is sharded, and Accelerate sets the
epoch at every pass.) :func:`prepare` hands Accelerate the *global* plan instead, laid out so
that Accelerate's own sharding gives every process exactly its balanced shard, and it reaches
the sampler's ``set_epoch`` the way Accelerate drives epochs.

Example::

    from accelerate import Accelerator
    from balancer import FineTuneSchedule
    from balancer.integrations.accelerate import prepare

    accelerator = Accelerator()
    loader = prepare(accelerator, DataLoader(train_set, batch_size=32, shuffle=True),
                     schedule=FineTuneSchedule(10, 2))
    model, optimizer = accelerator.prepare(model, optimizer)
    for epoch in range(loader.iteration, 10):  # 0, or the epoch load_state restored
        loader.set_epoch(epoch)
        loader.train_mode(model)  # model.train(), BatchNorm per the schedule's batchnorm
        for batch in loader:
            ...
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from balancer._distributed import is_distributed
from balancer._schedule import Phase, set_train_mode
from balancer.integrations.torchrun import EvenStreamLoader
from balancer.loader import balance, dataloader_settings
from balancer.samplers import PlanBatchSampler, sampler_kind
from balancer.streams import BalancedStreamLoader

__all__ = ["AcceleratedStreamLoader", "GlobalPlan", "prepare"]


class GlobalPlan:
    """The global balanced plan, position by position, as Accelerate's ``BatchSamplerShard`` reads it.

    ``BatchSamplerShard`` gives global batch ``g`` to process ``g % P``, the rule the balanced
    sampler shards by, so this yields, at every position ``g`` that belongs to this process, its
    next balanced batch, and at the other positions the same list again as a stand-in that
    ``BatchSamplerShard`` skips (it never copies a batch of another position: with several
    processes every epoch is a whole number of full rounds of ``P`` full batches, so its
    end-of-epoch padding never runs). Nothing is generated for other processes' batches.

    ``set_epoch`` and ``sampler.set_epoch`` both reach the balanced sampler: Accelerate's
    ``DataLoaderShard.set_epoch`` (called by the loader itself at every iteration) looks for
    ``batch_sampler.batch_sampler.sampler.set_epoch``.
    """

    def __init__(self, sampler: PlanBatchSampler) -> None:
        self.balanced = sampler
        self.sampler = self  # where DataLoaderShard.set_epoch looks, through BatchSamplerShard
        self.batch_size = sampler.batch_size
        self.drop_last = sampler.drop_last

    def set_epoch(self, epoch: int) -> None:
        self.balanced.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.balanced) * self.balanced.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        replicas = self.balanced.num_replicas
        for batch in self.balanced:
            # Position `rank` of each round is this process's batch; BatchSamplerShard serves
            # only that one and skips the stand-ins at the other positions.
            for _ in range(replicas):
                yield batch


class _EpochState:
    """Registered with ``accelerator.register_for_checkpointing``: the epoch a checkpoint is in.

    Accelerate checkpoints the position inside the epoch (with a ``StatefulDataLoader``) but not
    which epoch it is, so ``load_state`` alone would restart the plan at epoch 0.
    """

    def __init__(self, prepared: Any, plan: GlobalPlan) -> None:
        self._prepared = prepared
        self._plan = plan

    def state_dict(self) -> dict[str, int]:
        # DataLoaderShard counts finished passes in `iteration` and sets it from set_epoch.
        return {"epoch": int(getattr(self._prepared, "iteration", self._plan.balanced.epoch))}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch = int(state["epoch"])
        self._plan.set_epoch(epoch)
        self._prepared.iteration = epoch


def prepare(accelerator: Any, loader: DataLoader, labels: Any = None, *, schedule: Any = None,
            seed: int | None = 0, samples_per_epoch: int | None = None,
            drop_last: bool | None = None, batch_type: str | None = None,
            sampler: str | type = "balanced", **sampler_options: Any) -> Any:
    """``accelerator.prepare`` for a plain ``DataLoader``, with balanced batches.

    Builds one balanced batch sampler per process (``num_replicas`` and ``rank`` from the
    accelerator) over ``loader.dataset`` with ``loader``'s batch size and settings, and
    returns Accelerate's prepared loader (device placement, ``skip_first_batches``,
    ``save_state``/``load_state`` all as usual). Every process gets an equal number of full
    batches; together they are the global plan, each batch on exactly one process.

    The returned loader also has ``balanced_sampler`` (this process's sampler) and
    ``total_batches(epochs=None)`` (batches per process over the run, for LR schedules); its
    ``iteration`` (Accelerate's epoch counter) is the epoch to start from: 0, or the epoch
    ``accelerator.load_state`` restored. Its ``train_mode(model)`` is
    :meth:`balancer.BalancedDataLoader.train_mode` for the epoch the next pass serves (its
    ``iteration``): call it where the loop would call ``model.train()``. Accelerate never sets
    the model's mode, so with ``FineTuneSchedule(..., batchnorm="frozen")`` this call is what
    keeps BatchNorm in eval mode in the fine-tune epochs; nothing can check that the loop makes it.

    Resume: ``accelerator.save_state(dir)`` records the epoch; with
    ``Accelerator(dataloader_config=DataLoaderConfiguration(use_stateful_dataloader=True))`` it also
    records the position inside the epoch, and after ``accelerator.load_state(dir)`` the loader
    serves exactly the batches that were left. Without a stateful loader use
    ``accelerator.skip_first_batches(loader, steps_done_in_epoch)`` on the resumed epoch.

    Args:
        accelerator: an ``accelerate.Accelerator`` (anything else is a ``TypeError``).
        loader: a ``DataLoader`` with a ``batch_size`` over a map-style dataset (see
            :func:`balancer.balance`).
        labels, schedule, seed, samples_per_epoch, drop_last, batch_type: as for
            :func:`balancer.balance` (``batch_type=None`` hands index arrays to a dataset that
            declares ``supports_index_arrays = True``).
        sampler, **sampler_options: the kind of sampler, as for :func:`balancer.balance`:
            ``"balanced"`` (one class per item), ``"label-balanced"`` or ``"repeat-factor"``
            (multi-label targets, read with ``labels_of(..., multilabel=True)``), and further
            keywords of that sampler (e.g. ``threshold=0.1``).

    A ``loader`` over an ``IterableDataset`` (a stream) gives an
    :class:`AcceleratedStreamLoader` instead: ``classes=`` is then required (and
    ``buffer_size=``, ``wait=``, ``split=`` are the stream's), each process balances its own
    share of the stream, and the processes stay in step. Accelerate's own handling of an
    iterable loader is not used (it would read the whole stream on process 0 and dispatch its
    batches, or have every process read all of it), so ``dispatch_batches`` does not matter;
    batches are moved to ``accelerator.device``, and ``save_state``/``load_state`` record and
    restore the position (registered with ``register_for_checkpointing``).
    """
    from accelerate import Accelerator  # the framework, only when asked for

    if not isinstance(accelerator, Accelerator):
        raise TypeError(f"accelerator should be an accelerate.Accelerator, but got "
                        f"accelerator={accelerator!r} ({type(accelerator).__name__}); build "
                        f"accelerator = Accelerator() first and pass it: "
                        f"prepare(accelerator, loader, ...)")
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader should be a torch.utils.data.DataLoader, but got "
                        f"{type(loader).__name__}; pass the DataLoader you would give "
                        f"accelerator.prepare")
    if getattr(loader, "_is_accelerate_prepared", False):
        raise ValueError("loader was already prepared by Accelerate; pass the plain DataLoader, "
                         "before accelerator.prepare")
    if isinstance(loader.dataset, IterableDataset):
        return _prepare_stream(accelerator, loader, labels, schedule=schedule, seed=seed,
                               samples_per_epoch=samples_per_epoch, drop_last=drop_last,
                               batch_type=batch_type, sampler=sampler, options=sampler_options)
    # torch types it Sampler | Iterable | None; a batch sampler with batch_size and drop_last
    # (a BatchSampler, or one that mirrors it) is what this reads.
    batch_sampler: Any = loader.batch_sampler
    if batch_sampler is None or batch_sampler.batch_size is None:
        raise ValueError("loader has no batch_size; build the DataLoader with batch_size=N")
    if getattr(loader, "in_order", True) is False:
        raise ValueError("loader has in_order=False, with which a resumed run cannot know which "
                         "batches were served; build the DataLoader with in_order=True")
    if accelerator.split_batches:
        raise ValueError("Accelerator(split_batches=True) splits each batch across processes, "
                         "which breaks the per-process class balance; use the default "
                         "split_batches=False")
    if getattr(accelerator, "dispatch_batches", None):
        raise ValueError("Accelerator(dispatch_batches=True) builds batches on process 0 only; "
                         "use dispatch_batches=False with a map-style dataset")
    if samples_per_epoch is not None:
        sampler_options["samples_per_epoch"] = samples_per_epoch
    # A bad name or an option of another sampler fails before any label is read.
    kind = sampler_kind(sampler, sampler_options)
    if drop_last is None:
        drop_last = batch_sampler.drop_last
    # Built as balance() builds it, for Accelerate's processes instead of the process group's.
    balanced = kind.build(
        loader.dataset, labels, batch_sampler.batch_size, seed=seed, drop_last=drop_last,
        schedule=schedule, num_replicas=accelerator.num_processes,
        rank=accelerator.process_index, batch_type=batch_type, options=sampler_options)
    plan = GlobalPlan(balanced)
    prepared = accelerator.prepare(DataLoader(loader.dataset, batch_sampler=plan,
                                              **dataloader_settings(loader)))
    prepared.balanced_sampler = balanced
    prepared.total_batches = balanced.total_batches
    prepared.train_mode = partial(_train_mode, prepared, balanced)
    accelerator.register_for_checkpointing(_EpochState(prepared, plan))
    return prepared


def _train_mode(prepared: Any, balanced: PlanBatchSampler, model: nn.Module) -> nn.Module:
    # The epoch of the next pass: Accelerate sets the sampler's epoch only when a pass starts,
    # after the loop has set the model's mode, so the sampler's own epoch may still be the last.
    epoch = int(getattr(prepared, "iteration", balanced.epoch))
    schedule = balanced.schedule
    # set_train_mode checks what a schedule's phase() returned.
    phase: Phase = "balanced" if schedule is None else schedule.phase(epoch)
    return set_train_mode(model, phase, batchnorm=getattr(schedule, "batchnorm", "train"))


class AcceleratedStreamLoader(EvenStreamLoader):
    """A balanced stream under Accelerate, from :func:`prepare`: an
    :class:`~balancer.integrations.torchrun.EvenStreamLoader` whose batches are moved to the
    accelerator's device, with ``iteration`` (the epoch to start from: 0, or the epoch
    ``accelerator.load_state`` restored), as on Accelerate's prepared loaders."""

    @property
    def iteration(self) -> int:
        return self.epoch


def _prepare_stream(accelerator: Any, loader: DataLoader, labels: Any, *, schedule: Any,
                    seed: int | None, samples_per_epoch: int | None, drop_last: bool | None,
                    batch_type: str | None, sampler: str | type,
                    options: dict[str, Any]) -> AcceleratedStreamLoader:
    """:func:`prepare` for a ``DataLoader`` over an ``IterableDataset``."""
    from accelerate.utils import send_to_device

    if accelerator.num_processes > 1 and not is_distributed():
        raise RuntimeError(f"the accelerator runs {accelerator.num_processes} processes but no "
                           f"torch.distributed process group is initialised; launch with "
                           f"accelerate launch or torchrun")
    balanced = balance(loader, labels, schedule=schedule, seed=seed,
                       samples_per_epoch=samples_per_epoch, drop_last=drop_last,
                       batch_type=batch_type, sampler=sampler, **options)
    assert isinstance(balanced, BalancedStreamLoader)  # balance() of an IterableDataset
    device = accelerator.device
    stream = AcceleratedStreamLoader(balanced,
                                     transfer=lambda batch: send_to_device(batch, device))
    accelerator.register_for_checkpointing(stream)
    return stream
