"""Balanced batches in Ray Train: ``prepare_data_loader(balance(loader, ...))`` in the train function.

Ray starts the process group before it runs the per-worker train function, so a loader built
there with :func:`balancer.balance` shards itself. ``ray.train.torch.prepare_data_loader`` adds a
``DistributedSampler`` to any loader whose ``sampler`` is not one; a sharded balanced loader's
``sampler`` is one (it holds the rank's shard, see :class:`balancer.loader.RankShardSampler`),
so Ray keeps the balanced batches and only adds device placement, returning a wrapper without
the balanced loader's controls. :func:`prepare_data_loader` puts them back on the wrapper.

Example (inside the function given to ``TorchTrainer``)::

    from balancer import FineTuneSchedule, balance
    from balancer.integrations.ray import prepare_data_loader

    loader = prepare_data_loader(balance(DataLoader(train_set, batch_size=64, shuffle=True),
                                         schedule=FineTuneSchedule(10, 2)))
    if (checkpoint := ray.train.get_checkpoint()) is not None:
        ...  # model and optimizer, then loader.load_state_dict(saved["loader"])
    for epoch in range(loader.epoch, 10):
        loader.set_epoch(epoch)
        loader.train_mode(model)  # model.train(), BatchNorm per the schedule's batchnorm
        for batch in loader:
            ...  # ray.train.report(..., checkpoint=...) with loader.state_dict() in it
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch.utils._pytree import tree_map

from balancer.integrations.torchrun import EvenStreamLoader
from balancer.loader import BalancedDataLoader
from balancer.streams import BalancedStreamLoader

__all__ = ["prepare_data_loader"]

_FORWARDED = ("set_epoch", "state_dict", "load_state_dict", "total_batches", "train_mode")


def prepare_data_loader(loader: BalancedDataLoader | BalancedStreamLoader, *,
                        move_to_device: bool = True, auto_transfer: bool = True) -> Any:
    """``ray.train.torch.prepare_data_loader(loader)``, keeping the balanced loader's controls.

    The returned loader iterates like Ray's (batches on the worker's device) and has the
    balanced loader's ``set_epoch``, ``state_dict``, ``load_state_dict``, ``total_batches`` and
    ``train_mode``; ``balanced`` is the balanced loader itself (``.epoch``, ``.phase``). Its
    ``state_dict()`` counts the batches the loop received, not the one Ray's wrapper holds ahead
    of it.

    The train function is the user's own loop, which Ray never puts in train mode: with
    ``FineTuneSchedule(..., batchnorm="frozen")`` the loop must call ``loader.train_mode(model)``
    after ``loader.set_epoch(epoch)`` (the model as ``ray.train.torch.prepare_model`` returned it
    is fine) where it would call ``model.train()``; nothing can check that it does.

    A balanced stream (``balance()`` of a ``DataLoader`` over an ``IterableDataset``) gives a
    :class:`~balancer.integrations.torchrun.EvenStreamLoader` instead, which keeps the ranks in
    step and moves batches to Ray's device (``move_to_device``); its ``state_dict()`` is a
    collective call: every worker calls it, rank 0 saves it in the checkpoint it reports, and
    every worker loads it from ``ray.train.get_checkpoint()``.
    """
    import ray.train.torch  # the framework, only when asked for

    if isinstance(loader, BalancedStreamLoader):
        return _prepare_stream(loader, move_to_device=move_to_device)
    if not isinstance(loader, BalancedDataLoader):
        raise TypeError(f"loader should be a balancer.BalancedDataLoader (from balancer.balance), "
                        f"but got {type(loader).__name__}")
    prepared = ray.train.torch.prepare_data_loader(loader, move_to_device=move_to_device,
                                                   auto_transfer=auto_transfer)
    if prepared is not loader:
        for name in _FORWARDED:
            setattr(prepared, name, getattr(loader, name))
        # Ray's wrapper pulls one batch ahead of the loop (to overlap the copy to the device):
        # the position to save is one batch before what the balanced loader has handed out.
        prepared.state_dict = lambda: _state_behind(loader, prepared)
        prepared.balanced = loader
    else:
        loader.balanced = loader
    return prepared


def _prepare_stream(loader: BalancedStreamLoader, *, move_to_device: bool) -> EvenStreamLoader:
    """A balanced stream under Ray Train: Ray starts the process group before the train
    function runs, leaves a loader over an ``IterableDataset`` unsharded (the stream splits
    itself between the ranks), and would not keep the ranks in step; the
    :class:`~balancer.integrations.torchrun.EvenStreamLoader` does, moving batches to Ray's
    device."""
    import ray.train.torch  # the framework, only when asked for

    transfer = None
    if move_to_device:
        device = ray.train.torch.get_device()
        transfer = partial(_to_device, device=device)
    return EvenStreamLoader(loader, transfer=transfer)


def _to_device(batch: Any, *, device: Any) -> Any:
    return tree_map(lambda value: value.to(device) if isinstance(value, torch.Tensor) else value,
                    batch)


def _state_behind(loader: BalancedDataLoader, prepared: Any) -> dict[str, Any]:
    held = 0 if getattr(prepared, "next_batch", None) is None else 1
    return loader.batch_sampler.state_at(loader.batches_received - held)
