"""The streaming form of the circular per-class buffers: balanced batches from items read once.

Pure Python and numpy (no torch): :class:`StreamBuffers` takes items one at a time with their
class codes and hands back balanced batches; :mod:`balancer.streams._stream` feeds it from a
stream and serves its batches through a ``DataLoader``.

# Design note: fresh queues, reuse buffers, quotas (issue 23)
# Per class c: `fresh[c]`, the items read and not yet served, and `reuse[c]`, at most
# `buffer_size` items already served, least recently served at the left. Batch k gives class c
# q_c(k) slots, floor(B/n) or ceil(B/n) for the n active classes; the B mod n extra slots go to a
# window that slides along a seeded permutation of the active classes, so over any n consecutive
# batches (with the same active classes) every class takes exactly B mod n extras.
# After each item read, while some active class has fresh >= L * q_c (L = `lookahead`), a batch
# is emitted: each class gives up to q_c fresh items (appended, once served, at the right of its reuse buffer,
# which drops its left end beyond buffer_size) and fills the rest of q_c by taking the left item
# of its reuse buffer and putting it back at the right. Hence, after every read is processed,
# fresh[c] < L * q_c for every active class (a change of quotas is followed by the same loop):
# fewer than L * max(B, n) fresh items wait, and every item read is served fresh exactly once.
# With B < n classes, a batch gives one slot to each of B classes (q_c is 0 or 1) and a class
# without a slot forces batches at L fresh items: the slots rotate, so each class is served
# within ceil(n / B) batches; the most frequent class sets the pace, as in the map-style epoch
# of C * n_max items.
# Why L > 1 (the coordinator's design had L = 1, a batch as soon as any class reaches its
# quota): with L = 1 every class that happens to be ahead triggers a batch while the others are
# short, so even a perfectly balanced stream is served about twice over (10 classes, B = 64:
# 2.04x the batches of the map-style epoch of C * n_max items; 1.05x with L = 4, 1.01x with
# L = 8, measured on 20,000 items in random order). With L > 1 the most frequent class sets the pace, as in
# the map-style sampler, and the others are padded from their buffers only when really short. Round robin in the reuse buffer means an
# item is served again only after every other item then in its class's buffer: a late rare
# item is not hammered to catch up.
# Warm-up: nothing is emitted until at least `batch_size` items have been read and either
# every class has been seen or `wait` items have been read; then a missing class is warned
# about once and batches split over the classes seen, a class joining at its first item.
# Holding the first batch until B items are read makes a pass shorter than one batch an error
# before anything is served, and gives the first batches fresh items rather than repeats.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["StreamBuffers"]


class StreamBuffers:
    """Balanced batches of ``batch_size`` items from items added one at a time.

    Args:
        class_names: the classes, as the user names them (for warnings); codes are positions.
        batch_size: items per batch, ``B``.
        buffer_size: items each class keeps for reuse, ``S`` (at least 1).
        wait: items read before the warm-up gives up on classes not seen yet (at least ``B``).
        lookahead: ``L``: a batch is served when a class holds ``L`` times its share of fresh
            items, so that the most frequent class sets the pace.
        rng: the seeded generator of the pass (quota rotation and in-batch order).
        where: names this pass's share of the stream in warnings and errors.
    """

    def __init__(self, class_names: Sequence[Any], batch_size: int, buffer_size: int, wait: int,
                 rng: np.random.Generator, where: str = "the stream", lookahead: int = 1) -> None:
        assert batch_size >= 1 and buffer_size >= 1 and wait >= batch_size and lookahead >= 1
        self.class_names = list(class_names)
        self.batch_size = batch_size
        self.buffer_size = buffer_size
        self.wait = wait
        self.lookahead = lookahead
        self._rng = rng
        self._where = where
        count = len(self.class_names)
        self._fresh: list[deque[Any]] = [deque() for _ in range(count)]
        self._reuse: list[deque[Any]] = [deque(maxlen=buffer_size) for _ in range(count)]
        # Plain lists and running counters, not numpy arrays or sums over the classes: the hot
        # path (one `add` per item) costs O(1) whatever the number of classes.
        self._seen = [False] * count
        self._unseen = count
        self._active: list[int] = []  # classes taking part in batches, in code order
        self._quota = [0] * count
        # The fresh items at which a class forces a batch: L * max(q_c, 1).
        self._trigger = [lookahead] * count
        self._order: list[int] = []  # the extras' rotation
        self._extra_at = 0
        self._warming = True
        self.items_read = 0
        self.batches = 0
        self.fresh_held = 0
        self._reuse_held = 0
        self.peak_held = 0
        self.fresh_served = 0
        self.reused = 0
        self.missing_warned: list[Any] = []

    # ------------------------------------------------------------------ reading
    @property
    def items_held(self) -> int:
        """Items held now: fresh ones waiting plus those in the reuse buffers."""
        return self.fresh_held + self._reuse_held

    @property
    def warming_up(self) -> bool:
        return self._warming

    def add(self, item: Any, code: int) -> list[list[Any]]:
        """Take one item of class ``code``; return the batches it completes (often none)."""
        fresh = self._fresh[code]
        fresh.append(item)
        self.fresh_held += 1
        self.items_read += 1
        held = self.fresh_held + self._reuse_held
        if held > self.peak_held:
            self.peak_held = held
        first_of_class = not self._seen[code]
        if first_of_class:
            self._seen[code] = True
            self._unseen -= 1
        if self._warming:
            if self.items_read < self.batch_size:
                return _NONE
            if self._unseen and self.items_read < self.wait:
                return _NONE
            self._end_warm_up()
            return self._emit_ready()
        if first_of_class:  # a class joining after the warm-up: new quotas for everyone
            self._set_active()
            return self._emit_ready()
        if len(fresh) >= self._trigger[code]:
            return self._emit_ready()
        return _NONE

    def finish(self) -> Iterator[list[Any]]:
        """End of the pass: the batches that serve every fresh item left (full-size, balanced)."""
        if self.items_read < self.batch_size:
            raise ValueError(
                f"{self._where} gave only {self.items_read} item(s) in this pass, fewer than one "
                f"batch (batch_size={self.batch_size}); use a smaller batch_size, fewer workers "
                f"or ranks, or a longer stream"
            )
        if self._warming:
            self._end_warm_up()
        while self.fresh_held:
            yield self._batch()

    # ------------------------------------------------------------------ internals
    def _end_warm_up(self) -> None:
        self._warming = False
        missing = [self.class_names[c] for c, seen in enumerate(self._seen) if not seen]
        if missing:
            self.missing_warned = missing
            warnings.warn(
                f"{self._where}: no item of class(es) {missing} among the first "
                f"{self.items_read} items read (wait={self.wait}); batches are balanced over the "
                f"{len(self._seen) - self._unseen} classes seen until each missing class's "
                f"first item arrives. Raise wait= (or buffer_size=) to wait longer, or check "
                f"classes=",
                UserWarning, stacklevel=4)
        self._set_active()

    def _set_active(self) -> None:
        self._active = [c for c, seen in enumerate(self._seen) if seen]
        self._order = self._rng.permutation(np.asarray(self._active, dtype=np.int64)).tolist()
        self._extra_at = 0
        self._set_quotas()

    def _set_quotas(self) -> None:
        # Once per batch: O(C) in plain Python, no arrays allocated.
        count = len(self._active)
        base, extra = divmod(self.batch_size, count)
        quota, trigger, lookahead = self._quota, self._trigger, self.lookahead
        for c in self._active:
            quota[c] = base
        order, at = self._order, self._extra_at
        for step in range(extra):
            quota[order[(at + step) % count]] += 1
        for c in self._active:
            trigger[c] = lookahead * max(quota[c], 1)

    def _emit_ready(self) -> list[list[Any]]:
        # A class without a slot in this batch (B < n) still forces batches once it holds L
        # items: the slots rotate, so it gets one within ceil(n / B) batches.
        fresh, trigger, active = self._fresh, self._trigger, self._active
        batches: list[list[Any]] = []
        while any(len(fresh[c]) >= trigger[c] for c in active):
            batches.append(self._batch())
        return batches

    def _batch(self) -> list[Any]:
        batch: list[Any] = []
        room = self.buffer_size
        quotas, all_fresh, all_reuse = self._quota, self._fresh, self._reuse
        taken = reused = 0
        for c in self._active:
            quota = quotas[c]
            fresh, reuse = all_fresh[c], all_reuse[c]
            take = quota if quota <= len(fresh) else len(fresh)
            if take:
                items = [fresh.popleft() for _ in range(take)]
                batch += items
                # The deque drops its left end beyond buffer_size.
                self._reuse_held += min(take, room - len(reuse))
                reuse.extend(items)
            need = quota - take
            if need:  # the rest from the reuse buffer's left end, put back at its right
                if need <= len(reuse):
                    items = [reuse.popleft() for _ in range(need)]
                    reuse.extend(items)
                    batch += items
                else:  # fewer items than slots: round robin through them, one at a time
                    for _ in range(need):
                        item = reuse.popleft()
                        reuse.append(item)
                        batch.append(item)
                reused += need
            taken += take
        self.fresh_held -= taken
        self.fresh_served += taken
        self.reused += reused
        self.batches += 1
        count = len(self._active)
        self._extra_at = (self._extra_at + self.batch_size % count) % count
        self._set_quotas()
        return [batch[i] for i in self._rng.permutation(len(batch)).tolist()]


_NONE: list[list[Any]] = []  # shared, never appended to: most items complete no batch
