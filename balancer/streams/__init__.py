"""Balanced batches from streams: the circular per-class buffers for an ``IterableDataset``.

- ``_buffers``: :class:`~balancer.streams._buffers.StreamBuffers`, the buffer algorithm (pure
  Python and numpy): fresh queues, bounded reuse buffers, quotas, warm-up;
- ``_stream``: :class:`BalancedStream`, the ``IterableDataset`` that reads a source's share
  (rank, worker), labels items as they arrive, runs the schedule's phases and checkpoints;
- ``_loader``: :class:`BalancedStreamLoader`, the ``DataLoader`` that :func:`balancer.balance`
  returns for a stream, counting the batches the loop receives from each worker.
"""

from balancer.streams._loader import BalancedStreamLoader
from balancer.streams._stream import BalancedStream, Share, Split

__all__ = ["BalancedStream", "BalancedStreamLoader", "Share", "Split"]
