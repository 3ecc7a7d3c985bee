"""Counter-based random streams: every random draw is a pure function of ``(seed, purpose, a, b)``.

# Design note: why Philox counters
# The sampler must produce epoch ``e`` without replaying epochs ``0 .. e-1`` and resume mid-epoch
# in a fresh process. A counter-based generator makes that cheap: each stream (a class's k-th
# reshuffle, an epoch's class order, ...) is addressed by placing its coordinates in the high
# words of Philox's 256-bit counter, with the seed as the key. Draws advance only the lowest word,
# so two streams can never overlap, and re-addressing a stream costs a state assignment
# (about a microsecond) instead of hashing a new SeedSequence.
"""

from __future__ import annotations

import numpy as np

# Purposes: the second counter word. Values are part of the on-disk contract (same seed, same
# batches across versions), so never renumber them.
CYCLE = 1  # a class's circular-buffer reshuffles: (class, group)
ORDER = 2  # the order of classes inside one balanced epoch: (epoch, 0)
EXTRAS = 3  # which classes take the extra draws when an epoch is not a whole number of rounds
INBATCH = 4  # the order of samples inside batches: (epoch, group of batches)
FINETUNE = 5  # the permutation of a true-frequency epoch: (epoch, 0)
INBATCH_POOL = 6  # the pool of in-batch orders of one epoch: (epoch, 0)
CHAIN = 7  # the permutation whose prefixes are the heads of a chain of straddling cycles
STRADDLE = 8  # the order inside a cycle that straddles an epoch boundary: (class, cycle)
# Multi-label plans (16 on, leaving 9-15 to the single-label sampler).
LABEL_CYCLE = 16  # a multi-label bucket's circular-buffer reshuffles: (bucket, group)
RFS_ORDER = 17  # repeat-factor sampling: the order fractional parts are laid out in, and u_0
RFS_EPOCH = 18  # repeat-factor sampling: the permutation of an epoch's copies: (epoch, 0)
# Streams (balancer.streams).
STREAM = 19  # one pass of a balanced stream: quota rotation and in-batch order: (epoch, share)

_KEY_TAG = 0x62616C616E636572  # "balancer": second key word, so seeds do not collide with other uses


class Streams:
    """A reusable generator re-addressed to ``(purpose, a, b)`` on each :meth:`get` call."""

    def __init__(self, seed: int) -> None:
        self._bitgen = np.random.Philox(key=np.array([seed, _KEY_TAG], dtype=np.uint64))
        self._generator = np.random.Generator(self._bitgen)
        self._state = self._bitgen.state

    def get(self, purpose: int, a: int = 0, b: int = 0) -> np.random.Generator:
        state = self._state
        state["state"]["counter"][:] = (0, purpose, a, b)
        state["buffer_pos"] = 4  # discard buffered output from the previous stream
        state["has_uint32"] = 0
        self._bitgen.state = state
        return self._generator
