"""A bulk numpy reference of one balanced epoch of ``BalancedBatchSampler``'s plan.

The sampler streams an epoch in blocks, so its first batch comes at once and its memory stays
O(N): it cuts every block into batches, shuffles them and turns them into lists as the loop
asks. This reference builds the same epoch the direct way: it materialises all ``C * n_max``
slots, shuffles every batch with the same random draws in one vectorised gather and converts
the whole epoch at once. It yields exactly the sampler's batches
(``tests/test_reference_plan.py`` checks this), so ``benchmarks/bench_sampler.py`` can time the
sampler's per-batch machinery against the least a numpy program needs to produce the same plan.
It is a test oracle, so it lives under ``tests/``; the benchmark borrows it from there.

Single process, balanced epochs only: the reference for a speed figure, not a second sampler.
"""

from __future__ import annotations

import numpy as np

from balancer import BalancedBatchSampler, _rng


def reference_epoch(sampler: BalancedBatchSampler, epoch: int) -> np.ndarray:
    """The full batches of balanced epoch ``epoch`` as one ``(batches, batch_size)`` array.

    A short last batch (``drop_last=False`` with a single replica) is returned separately by
    :func:`reference_tail`.
    """
    if sampler.num_replicas != 1 or sampler._phase_of(epoch) != "balanced":
        raise ValueError("the reference covers single-process balanced epochs only")
    _, slots, _ = sampler._layout(epoch)
    flat = np.concatenate([chunk.copy() for chunk in sampler._balanced_slots(epoch, 0, slots)])
    size = sampler.batch_size
    full = slots // size
    streams = _rng.Streams(sampler.seed)
    pool = sampler._order_pool(epoch, streams)
    per_group = sampler._ROWS_PER_GROUP
    if pool is None:  # very large batches: one independent shuffle per batch
        rows = flat[: full * size].reshape(full, size).copy()
        for group in range(-(-full // per_group)):
            block = rows[group * per_group: (group + 1) * per_group]
            streams.get(_rng.INBATCH, epoch, group).permuted(block, axis=1, out=block)
        return rows
    picks, offsets = [], []
    for group in range(-(-full // per_group)):
        generator = streams.get(_rng.INBATCH, epoch, group)
        picks.append(generator.integers(0, sampler._ORDER_POOL, size=per_group))
        offsets.append(generator.integers(0, size, size=per_group))
    positions = pool[np.concatenate(picks)[:full], np.concatenate(offsets)[:full]]
    positions += (np.arange(full) * size)[:, None]
    return flat[: full * size].take(positions)


def reference_tail(sampler: BalancedBatchSampler, epoch: int) -> np.ndarray:
    """The short last batch of the epoch (empty when every batch is full)."""
    _, slots, _ = sampler._layout(epoch)
    flat = np.concatenate([chunk.copy() for chunk in sampler._balanced_slots(epoch, 0, slots)])
    tail = flat[slots // sampler.batch_size * sampler.batch_size:].copy()
    if tail.size:
        _rng.Streams(sampler.seed).get(_rng.INBATCH_POOL, epoch, 1).shuffle(tail)
    return tail
