"""Circular buffers addressed by draw number: the cycling every balancer sampler shares.

A buffer is an endless stream of draws, cycle after cycle of its members, each cycle a seeded
permutation. Cycles are generated in *groups* (several cycles in one vectorised call) from a
counter-based random stream, so draw ``t`` of a buffer is found without producing the draws
before it; a subclass decides what one group holds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GroupedCycles"]


class GroupedCycles:
    """Circular buffers whose draws live in groups of whole cycles, one group held per buffer.

    Subclasses hold ``lengths[k]`` (draws per group), ``groups[k]`` / ``group_ids[k]`` (the
    group held and its number) and ``_load(k, group)``, which builds and holds a group.
    """

    lengths: list[int]
    groups: list[np.ndarray | None]
    group_ids: list[int]

    def _load(self, k: int, group: int) -> np.ndarray:
        raise NotImplementedError

    def draw(self, k: int, start: int, count: int, out: np.ndarray) -> None:
        """Write draws ``start .. start + count - 1`` of buffer ``k`` into ``out``."""
        length = self.lengths[k]
        done = 0
        while done < count:
            group, offset = divmod(start + done, length)
            draws = self.groups[k] if self.group_ids[k] == group else self._load(k, group)
            assert draws is not None  # a buffer's group id is set together with its group
            take = min(count - done, length - offset)
            out[done: done + take] = draws[offset: offset + take]
            done += take
