"""``loader.sampler`` of a sharded balanced loader: this rank's share of the plan, as indices.

Training frameworks decide whether to shard a ``DataLoader`` by looking at its ``sampler``:
Lightning (``use_distributed_sampler=True``, the default) and Ray Train
(``prepare_data_loader(add_dist_sampler=True)``) rebuild any loader whose ``sampler`` is not a
``DistributedSampler``, and they reach ``sampler.set_epoch`` at every epoch. A balanced loader
already holds one rank's shard of a global plan in its batch sampler, so under a process group
its ``sampler`` is a ``DistributedSampler`` that *is* that shard: the frameworks leave the loader
as it is and drive its epochs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING

from torch.utils.data import DistributedSampler

if TYPE_CHECKING:
    from balancer._loader import BalancedDataLoader

__all__ = ["RankShardSampler"]


class RankShardSampler(DistributedSampler):
    """The dataset indices a balanced loader serves on this rank in the current epoch.

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

    @property
    def num_samples(self) -> int:
        return len(self)

    @property
    def total_size(self) -> int:
        return len(self) * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """``loader.set_epoch(epoch)``: see :meth:`balancer.BalancedDataLoader.set_epoch`."""
        self._loader.set_epoch(epoch)

    def _whole_epoch(self):
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
        batches = sampler._batches_per_replica(sampler.epoch)
        # Under several replicas every batch is full (the epoch is padded to whole batches).
        return batches * sampler.batch_size

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(epoch={self.epoch}, num_replicas={self.num_replicas}, "
                f"rank={self.rank})")
