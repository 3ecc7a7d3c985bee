"""Balanced batches as the batch source of torchdata's ``StatefulDataLoader``.

``StatefulDataLoader`` checkpoints its position by asking its batch sampler for ``state_dict()``
(when it has one) at the batch the loop has received, workers included, and restores it with
``load_state_dict``; a :class:`~balancer.BalancedBatchSampler` has both, so a restored loader
continues with exactly the remaining batches of the saved epoch.

Example::

    from balancer.integrations.torchdata import stateful_loader

    loader = stateful_loader(DataLoader(train_set, batch_size=64, shuffle=True, num_workers=4),
                             schedule=FineTuneSchedule(10, 2))
    state = loader.state_dict()          # in a checkpoint, mid-epoch
    ...
    loader.load_state_dict(state)        # a new process: build it the same way, then load
    for epoch in range(loader.batch_sampler.epoch, 10):
        loader.set_epoch(epoch)
        loader.train_mode(model)  # model.train(), BatchNorm per the schedule's batchnorm
        for batch in loader:
            ...
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from balancer._schedule import set_train_mode
from balancer.loader import BalancedDataLoader, dataloader_settings
from balancer.loader import balance as _balance

__all__ = ["stateful_loader"]


def stateful_loader(loader: DataLoader, labels: Any = None, **options: Any) -> Any:
    """A ``torchdata.stateful_dataloader.StatefulDataLoader`` with ``loader``'s settings whose
    batches come from a :class:`~balancer.BalancedBatchSampler`.

    Args:
        loader: a ``DataLoader`` as :func:`balancer.balance` takes it.
        labels, **options: :func:`balancer.balance`'s ``labels`` and keywords (``schedule``,
            ``seed``, ``samples_per_epoch``, ``drop_last``).

    The returned loader's ``set_epoch(epoch)`` is the sampler's: call it at every epoch. After
    ``load_state_dict(state)``, ``loader.batch_sampler.epoch`` is the epoch to resume. Its
    ``train_mode(model)`` is :meth:`balancer.BalancedDataLoader.train_mode`: ``model.train()``
    with BatchNorm per the schedule's ``batchnorm`` in the fine-tune phase. Call it after
    ``set_epoch`` where the loop would call ``model.train()``; with
    ``FineTuneSchedule(..., batchnorm="frozen")`` only that call freezes the statistics, and
    nothing can check that the loop makes it.
    """
    from torchdata.stateful_dataloader import StatefulDataLoader  # only when asked for

    if isinstance(loader.dataset, IterableDataset):
        # balance() of a stream loader has no batch sampler to hand over: this would silently
        # be a plain StatefulDataLoader over the unbalanced stream.
        raise TypeError(
            f"loader.dataset is an IterableDataset ({type(loader.dataset).__name__}); a stream "
            f"is balanced by balancer.balance(loader, labels, classes=...), whose loader already "
            f"has exact state_dict()/load_state_dict() (or StatefulDataLoader(BalancedStream("
            f"...), batch_size=...), which saves the stream's state in every worker)"
        )

    if getattr(loader, "in_order", True) is False:
        raise ValueError("loader has in_order=False, with which a restored loader cannot know "
                         "which batches were served; build the DataLoader with in_order=True")
    balanced = _balance(loader, labels, **options)
    assert isinstance(balanced, BalancedDataLoader)  # a map-style dataset: streams are refused
    sampler = balanced.batch_sampler
    stateful = StatefulDataLoader(loader.dataset, batch_sampler=sampler, **dataloader_settings(loader))
    stateful.set_epoch = sampler.set_epoch
    stateful.train_mode = partial(_train_mode, sampler)
    restore = stateful.load_state_dict

    def load_state_dict(state: dict[str, Any]) -> None:
        # StatefulDataLoader applies a state at its next iteration; the sampler's part is applied
        # now as well, so that `batch_sampler.epoch` says which epoch to resume before the loop
        # calls set_epoch (the later, second application is the same state again).
        restore(state)
        inner = state.get("_index_sampler_state") or state.get("_snapshot", {}).get(
            "_main_snapshot", {}).get("_index_sampler_state")
        if inner is not None:
            sampler.load_state_dict(inner)

    stateful.load_state_dict = load_state_dict
    return stateful


def _train_mode(sampler: Any, model: nn.Module) -> nn.Module:
    # The same rule as BalancedDataLoader.train_mode: the phase of the epoch last set.
    return set_train_mode(model, sampler.phase,
                          batchnorm=getattr(sampler.schedule, "batchnorm", "train"))
