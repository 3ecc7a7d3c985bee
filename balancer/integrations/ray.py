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
        for batch in loader:
            ...  # ray.train.report(..., checkpoint=...) with loader.state_dict() in it
"""

from __future__ import annotations

from typing import Any

from balancer.loader import BalancedDataLoader
from balancer.streams import BalancedStreamLoader

__all__ = ["prepare_data_loader"]

_FORWARDED = ("set_epoch", "state_dict", "load_state_dict", "total_batches")


def prepare_data_loader(loader: BalancedDataLoader, *, move_to_device: bool = True,
                        auto_transfer: bool = True) -> Any:
    """``ray.train.torch.prepare_data_loader(loader)``, keeping the balanced loader's controls.

    The returned loader iterates like Ray's (batches on the worker's device) and has the
    balanced loader's ``set_epoch``, ``state_dict``, ``load_state_dict`` and ``total_batches``;
    ``balanced`` is the balanced loader itself (``.epoch``, ``.phase``). Its ``state_dict()``
    counts the batches the loop received, not the one Ray's wrapper holds ahead of it.
    """
    import ray.train.torch  # the framework, only when asked for

    if isinstance(loader, BalancedStreamLoader):
        raise TypeError(
            "loader is a balanced stream (balance() of a DataLoader over an IterableDataset), "
            "which is not supported under Ray Train yet: each rank balances its own share of "
            "the stream and makes as many batches as that share needs, and this adapter has no "
            "way to keep the ranks in step (nor to checkpoint every rank's position). Train it "
            "with Lightning or Accelerate (balancer.integrations.lightning.balance, "
            "balancer.integrations.accelerate.prepare), or give Ray a map-style dataset"
        )
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


def _state_behind(loader: BalancedDataLoader, prepared: Any) -> dict[str, Any]:
    held = 0 if getattr(prepared, "next_batch", None) is None else 1
    return loader.batch_sampler.state_at(loader.batches_received - held)
