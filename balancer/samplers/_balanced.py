"""The ``"balanced"`` kind: equal-frequency minibatches drawn from circular per-class buffers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from balancer import _rng
from balancer._validation import check_int
from balancer.labels import encode_labels, labels_of
from balancer.samplers._base import BatchType, PlanBatchSampler
from balancer.samplers._buffers import GroupedCycles
from balancer.samplers._registry import SamplerKind, register

__all__ = ["BalancedBatchSampler"]


# Design note: how a balanced epoch is laid out
#
# Think of an epoch as a stream of "slots", each to be filled by one sample. Slots are arranged
# in rounds of C (one per class, in an order pi_e drawn once per epoch), so slot t belongs to
# class pi_e[t % C] and is that class's (t // C)-th draw of the epoch. Any B consecutive slots
# therefore hold floor(B/C) or ceil(B/C) samples of every class (B distinct classes when B < C),
# and batches are consecutive runs of B slots. When the epoch length S (after padding to whole
# batches per rank) is not a multiple of C, the last, partial round goes to the classes that
# come first in pi_e; those classes (the "extras", r = S % C of them) are taken in turn over
# epochs from a seeded ranking, so that every class gets S // C draws per epoch plus one every
# C / r epochs.
#
# Class c draws from its circular buffer: an endless concatenation of "cycles", each a
# permutation of its n_c indices. Because the number of draws a class made before epoch e has a
# closed form (from the number of balanced epochs before e, S and the ranking), and the k-th
# cycle of class c is addressed by a counter-based random stream (see _rng), any epoch -- and
# any batch inside it -- can be produced directly, without replaying what came before. That is
# what makes set_epoch, mid-epoch resume and distributed sharding exact and cheap.
#
# Whole-epoch coverage. An epoch draws d >= n_c samples of class c (d = S // C or one more),
# but it seldom starts at a cycle's start: it takes the tail of the cycle that straddles its
# first boundary, then whole cycles, then the head of the cycle straddling its last boundary.
# When it holds no whole cycle, it covers the class only if the head it ends with contains the
# head the previous epoch ended with (those samples are missing from its tail). So a cycle that
# straddles an epoch boundary, with h of its draws before it, is ordered as
#     [the set rho[:h] in random order, the rest in random order]
# where rho is one random permutation of the class shared by a whole "chain" of such cycles.
# Along a chain (consecutive boundaries whose epochs hold no whole cycle) h only grows, since
# d >= n_c, so the heads nest and every epoch covers every sample. The chain is known in closed
# form: for boundary b and its straddling cycle k, k - b is constant along a chain (each
# epoch moves to the next cycle) and grows when an epoch holds a whole cycle. Given the
# history, the samples that join a head are a uniformly random subset of those not in it.
# Every cycle is still a permutation, so use counts within a class never differ by more than
# one, across epochs too. The rule needs d >= n_c: with a samples_per_epoch cap it applies to
# the classes of at most S // C samples, and larger classes simply carry on through their
# cycles.
#
# Reshuffles of small classes are generated in groups of several cycles at once (one
# vectorised call instead of one per cycle), and the plan is built in blocks of rounds, so the
# memory in use is O(N + C * group size + block), never O(C * n_max).


class BalancedBatchSampler(PlanBatchSampler):
    r"""Batches with equal class frequencies, drawn from circular per-class buffers.

    Each class keeps its own buffer: a shuffled order of that class's sample indices. Every batch
    takes the same number of samples from every buffer. A buffer that runs out is reshuffled and
    restarted, so small classes repeat while large ones are still being worked through. With
    ``C`` classes and ``n_max`` samples in the largest, one balanced epoch draws ``n_max`` samples
    of every class (``C * n_max`` in all, plus the padding below).

    Guarantees, in every balanced epoch without ``samples_per_epoch``, for any number of
    replicas (counting the batches of all ranks together):

    - every sample of every class is drawn at least once; every sample of a largest class
      exactly once, plus at most the padding's extra draws of that class;
    - a class's draws are consecutive *cycles*, each using every sample of the class exactly
      once, continuing across epochs: after every global batch, the use counts of the samples of
      one class differ by at most one.

    Padding an epoch to whole batches per rank only continues the buffers, so it never breaks
    these in later epochs. With :class:`~balancer.FineTuneSchedule` (``schedule=``), fine-tune
    epochs instead yield one shuffled pass over all ``N`` samples at their true frequencies (the
    buffers pause meanwhile).

    Args:
        labels: one class label per dataset index: a list, tuple, numpy array, torch tensor or
            pandas Series of any hashable labels (ints need not be contiguous; strings work).
            A column vector ``(N, 1)`` is flattened; multi-label targets are rejected.
        batch_size: samples per batch. With ``batch_size >= C`` each full batch holds
            ``floor(batch_size / C)`` or ``ceil(batch_size / C)`` samples of every class; with
            ``batch_size < C`` it holds ``batch_size`` distinct classes, rotating so that per-epoch
            totals stay exact. Order inside a batch is shuffled.
        seed: the batches of an epoch are a pure function of ``(seed, epoch)``, the labels and the
            settings: the same on every machine, rank and run. ``None`` draws a fresh seed from
            the operating system (rank 0's, broadcast, under an initialised process group);
            :attr:`seed` and :meth:`state_dict` record it.
        drop_last: every batch is full. A balanced epoch is then extended to a whole number of
            batches by continuing the buffers (nothing is dropped); a fine-tune epoch drops its
            short last batch. Without it, a single replica's last batch may be short.
        schedule: optional :class:`~balancer.FineTuneSchedule` (anything with a
            ``phase(epoch) -> "balanced" | "finetune"`` method) deciding each epoch's phase.
        samples_per_epoch: length of a balanced epoch in samples (default ``C * n_max``), for
            when ``C * n_max`` is far above ``N``. Every buffer continues where it stopped, so a
            class with at most ``samples_per_epoch // C`` samples is still covered in every
            epoch, and larger classes use every sample once before any repeats.
        num_replicas: number of processes sharing the plan; defaults to the world size of the
            initialised ``torch.distributed`` process group, else 1.
        rank: this process's rank in ``[0, num_replicas)``; defaults to the process group's rank,
            else 0.
        batch_type: ``"list"`` (default: lists of ints, for any dataset), ``"numpy"`` or
            ``"tensor"`` (``int64`` index arrays, cheaper, for datasets with a ``__getitems__``
            that takes them).

    Distributed sharding: every rank builds the same global plan and takes whole batches in turn
    (rank ``r`` takes global batches ``r, r + R, r + 2R, ...``), so each rank's batches are
    balanced and the ranks' batches together are the global plan. With ``R > 1`` replicas every
    epoch is padded to a whole number of full batches per rank (balanced epochs continue the
    buffers; fine-tune epochs repeat the first samples of their pass, or drop the rest with
    ``drop_last``), so all ranks yield the same number of batches. Under an initialised process
    group, construction checks (one collective) that every rank built the same plan.

    Attributes:
        classes: the sorted distinct labels, shape ``(C,)``.
        class_counts: samples per class, aligned with :attr:`classes`.
        epoch: the current epoch, set by :meth:`set_epoch`.

    Example:
        >>> labels = [0] * 6 + [1] * 3 + [2] * 1
        >>> sampler = BalancedBatchSampler(labels, batch_size=3, seed=0)
        >>> len(sampler)  # 3 classes * 6 samples of the largest, in batches of 3
        6
        >>> [sorted(labels[i] for i in batch) for batch in sampler]
        [[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]]

    The method: Y. LeCun, lecture on loss functions, NYU Deep Learning (DS-GA 1008), 2020 --
    equal-frequency minibatches from per-class circular buffers, then a few epochs at the true
    frequencies.

    .. warning::
        Call :meth:`set_epoch` at the start of every epoch (before creating the DataLoader
        iterator). Otherwise every epoch repeats the same batches and, with a schedule, stays in
        the phase of epoch 0; iterating an epoch again after it ended without ``set_epoch``
        warns once.
    """

    # A class's reshuffles are generated in groups of at least N // C draws (the mean class
    # size), clipped to [_GROUP_MIN, _GROUP_MAX]: one vectorised sort for many permutations of a
    # small class. The groups held (one per class) total below N + C * max(N // C, 512)
    # indices, i.e. 2 N unless the mean class is smaller than 512, plus one reused uint64
    # scratch buffer the size of the largest group. Part of the plan's definition: changing
    # these changes batches for a given seed.
    _GROUP_MIN = 512
    _GROUP_MAX = 16384
    # Plan slots built per step once warmed up; bounds memory, does not change the plan.
    _BLOCK_SLOTS = 1 << 20

    def __init__(
        self,
        labels: Any,
        batch_size: int,
        *,
        seed: int | None = 0,
        drop_last: bool = False,
        schedule: Any = None,
        samples_per_epoch: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        batch_type: BatchType = "list",
    ) -> None:
        with self._built_together(num_replicas, seed):
            if isinstance(labels, Sampler):
                # What Lightning's use_distributed_sampler does to a loader built before the process
                # group existed: BalancedBatchSampler(DistributedSampler(...), batch_size=, drop_last=).
                raise TypeError(
                    f"labels should be one class label per item, but got a {type(labels).__name__}: a "
                    f"framework is rebuilding the batch sampler around its own sampler (Lightning's "
                    f"use_distributed_sampler does so to a balanced loader built with num_replicas=1, "
                    f"before the process group started). Build the loader where the process group is "
                    f"initialised (inside LightningModule.train_dataloader() or the per-worker train "
                    f"function), so that it shards itself, or pass num_replicas= and rank="
                )
            encoded = encode_labels(labels, "labels")
            super().__init__(num_samples=len(encoded.codes), batch_size=batch_size, seed=seed,
                             drop_last=drop_last, schedule=schedule, num_replicas=num_replicas,
                             rank=rank, batch_type=batch_type)
            self.classes: np.ndarray = encoded.classes
            self.class_counts: np.ndarray = encoded.counts
            self._codes = encoded.codes

            num_classes = len(self.classes)
            self._largest = int(self.class_counts.max())
            full_epoch = num_classes * self._largest
            if samples_per_epoch is None:
                self.samples_per_epoch = None
                self._balanced_samples = full_epoch
            else:
                self.samples_per_epoch = check_int(
                    "samples_per_epoch", samples_per_epoch, minimum=self.batch_size,
                    fix=f"a balanced epoch needs at least one batch of batch_size={self.batch_size} "
                        f"(the full balanced epoch here is C * n_max = {full_epoch})",
                )
                self._balanced_samples = self.samples_per_epoch
            self._check_layouts()

            # Sample indices grouped by class (a stable sort keeps each group in dataset order, so
            # the plan does not depend on how the labels were sorted internally).
            self._by_class = np.argsort(self._codes, kind="stable").astype(self._index_dtype(),
                                                                             copy=False)
            self._starts = np.concatenate(([0], np.cumsum(self.class_counts))).tolist()
            # Draws per class per balanced epoch, and the seeded ranking that hands out the extras.
            self._rounds, self._extras = divmod(
                self._layout_of(self._balanced_samples, "balanced")[0], num_classes)
            self._rank_of = np.empty(num_classes, dtype=np.int64)
            self._rank_of[_rng.Streams(self.seed).get(_rng.EXTRAS).permutation(num_classes)] = \
                np.arange(num_classes)
            self._rank_list = self._rank_of.tolist()
            self._num_classes = num_classes
            self._buffer_cache: ClassCycles | None = None
        self._agree_across_ranks()

    # ------------------------------------------------------------------ the plan
    def _balanced_length(self, epoch: int) -> int:
        return self._balanced_samples

    def _labels_digest(self) -> bytes:
        digest = hashlib.sha256(repr(self.classes.tolist()).encode())
        digest.update(np.ascontiguousarray(self._codes).tobytes())
        return digest.digest()

    def _kind_settings(self) -> dict[str, Any]:
        return {"samples_per_epoch": self.samples_per_epoch}

    def _class_draws_before(self, cls: int, balanced_epochs: int) -> int:
        """Draws class ``cls`` made in the first ``balanced_epochs`` balanced epochs: ``rounds``
        per epoch plus its turns at the extras (closed form)."""
        owed = balanced_epochs * self._extras - self._rank_list[cls]
        return balanced_epochs * self._rounds + max(0, -(-owed // self._num_classes))

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        """Yield the epoch's slots ``[slot_start, slot_end)`` as consecutive arrays of indices."""
        num_classes = len(self.classes)
        streams = _rng.Streams(self.seed)
        before = self._balanced_epochs_before(epoch)
        handed_out = before * self._extras
        drawn = [self._class_draws_before(cls, before) for cls in range(num_classes)]
        takes_extra = (self._rank_of - handed_out) % num_classes < self._extras
        generator = streams.get(_rng.ORDER, epoch)
        order = np.concatenate((generator.permutation(np.flatnonzero(takes_extra)),
                                generator.permutation(np.flatnonzero(~takes_extra)))).tolist()

        buffers = self._buffers()
        groups, group_ids, lengths = buffers.groups, buffers.group_ids, buffers.lengths
        total_rounds = -(-slot_end // num_classes)
        first_round = slot_start // num_classes
        skip = slot_start - first_round * num_classes
        # Start small so the first batch comes quickly, then grow to the steady block size.
        block = max(1, -(-self._ROWS_PER_GROUP * self.batch_size // num_classes))
        steady = max(64, self._BLOCK_SLOTS // num_classes)
        current = first_round
        # Every block is written into one buffer allocated once per iteration (a fresh
        # multi-megabyte array per block would page-fault on every first touch), so a yielded
        # view is valid only until the generator is advanced (see _SlotReader).
        arena = np.empty(min(max(block, steady), total_rounds - first_round) * num_classes,
                         dtype=self._by_class.dtype)
        while current < total_rounds:
            count = min(block, total_rounds - current)
            # Round-major, i.e. slot order: each class fills its column (a strided write is
            # several times cheaper than filling rows and transposing).
            by_round = arena[: count * num_classes].reshape(count, num_classes)
            for position, cls in enumerate(order):
                start = drawn[cls] + current
                group, offset = divmod(start, lengths[cls])
                if group_ids[cls] == group and offset + count <= lengths[cls]:  # the usual case
                    by_round[:, position] = groups[cls][offset: offset + count]
                else:
                    buffers.draw(cls, start, count, by_round[:, position])
            flat = by_round.reshape(-1)
            yield flat[skip: min(count * num_classes, slot_end - current * num_classes)]
            skip = 0
            current += count
            block = min(2 * block, steady)

    def _group_draws(self) -> int:
        mean_size = self._num_samples // len(self.classes)
        return min(max(mean_size, self._GROUP_MIN), self._GROUP_MAX)

    def _buffers(self) -> ClassCycles:
        # Every group of reshuffles is a pure function of (seed, class, group) and the settings,
        # so groups loaded in one epoch stay valid for the next: keeping them saves regenerating
        # the cycle each class is in the middle of at an epoch boundary. Holds one group per
        # class.
        if self._buffer_cache is None:
            self._buffer_cache = ClassCycles(self, _rng.Streams(self.seed),
                                                  self._group_draws())
        return self._buffer_cache

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(classes={len(self.classes)}, samples={self._num_samples}, "
                f"batch_size={self.batch_size}, seed={self.seed}, drop_last={self.drop_last}, "
                f"samples_per_epoch={self.samples_per_epoch}, schedule={self.schedule!r}, "
                f"num_replicas={self.num_replicas}, rank={self.rank})")


_TOP = np.uint64(1 << 63)
_NOT_TOP = ~_TOP


def _linked(start: int, end: int, size: int) -> bool:
    """Whether the epoch drawing positions ``[start, end)`` of a class's stream holds no whole
    cycle while both its boundaries fall inside cycles."""
    return bool(start % size and end % size and end // size == start // size + 1)


class ClassCycles(GroupedCycles):
    """Each class's endless stream of draws: cycle after cycle of its indices.

    The ``k``-th cycle of class ``c`` lives in group ``k // cycles[c]``, generated whole by the
    random stream ``(CYCLE, c, group)`` (cycles that straddle an epoch boundary are then
    reordered, see the design note above), so any draw can be addressed directly. Only one
    group per class is held at a time.
    """

    # Design note: reshuffles by sorting random keys
    # A reshuffle is a sort of 64-bit keys whose low bits hold the dataset index being shuffled
    # and whose high bits are random, straight from the stream's raw Philox output. Keys are
    # distinct, so the sort yields a permutation. When every index fits in 32 bits (N <= 2^32),
    # each raw 64-bit word gives the 32 random high bits of two keys (Philox output is the
    # costliest step); above that, each key takes 64 - bits random bits from a word of its own.
    # The permutation is uniform except that two indices whose random bits tie keep their
    # dataset order: with 32 random bits, a chance of 2^-32 per pair (about n^2 / 2^33 tied
    # pairs in a permutation of n: 0.25 for a class of 46,000). numpy's vectorised sort makes
    # this faster than its Fisher-Yates shuffle, which draws one bounded integer per element,
    # and the result depends only on Philox's raw output, which numpy fixes by
    # specification, not on how a numpy version implements shuffle. A cycle that straddles an
    # epoch boundary spends its keys' top bit on putting its head first, so its two parts
    # use one random bit fewer.
    _SPLIT_MAX_BITS = 32  # index bits up to which a raw word serves two keys

    def __init__(self, sampler: BalancedBatchSampler, streams: _rng.Streams,
                 group_draws: int) -> None:
        by_class, counts = sampler._by_class, sampler.class_counts
        self._sampler = sampler
        self._by_class = by_class
        self._starts = sampler._starts
        self._counts = counts.tolist()
        self._streams = streams
        cycles = np.maximum(1, -(-group_draws // counts))
        self._cycles = cycles.tolist()
        self.lengths = (cycles * counts).tolist()
        self.group_ids = [-1] * len(counts)
        self.groups: list[np.ndarray | None] = [None] * len(counts)
        # The rule is needed where an epoch draws a whole cycle's worth (so it can cover the
        # class) but may hold no whole cycle: with d >= 2 n - 1 draws every epoch holds one.
        rounds = sampler._rounds
        self._linked = ((counts <= rounds) & (2 * counts - 1 > rounds)).tolist()
        self._per_epoch = sampler._rounds + sampler._extras / len(counts)  # mean draws
        self._chain_high = [~np.uint64((1 << max(1, (n - 1).bit_length())) - 1)
                            for n in self._counts]
        bits = max(1, (len(by_class) - 1).bit_length())
        self._split = bits <= self._SPLIT_MAX_BITS
        if self._split:
            bits = 32
        self._low = np.uint64((1 << bits) - 1)
        self._high = ~self._low
        self._scratch = np.empty(0, dtype=np.uint64)
        self._unsigned = by_class.view(np.uint32 if by_class.dtype == np.int32 else np.uint64)

    def _load(self, cls: int, group: int) -> np.ndarray:
        start, end = self._starts[cls], self._starts[cls + 1]
        size = end - start
        bitgen = self._streams.get(_rng.CYCLE, cls, group).bit_generator
        total = size * self._cycles[cls]
        if self._split:
            half = -(-total // 2)
            raw = bitgen.random_raw(half)
            if self._scratch.size < 2 * half:
                self._scratch = np.empty(2 * half, dtype=np.uint64)
            keys = self._scratch[: 2 * half]  # reused: stays in cache from load to load
            np.bitwise_and(raw, self._high, out=keys[:half])  # each word's high 32 bits ...
            np.left_shift(raw, np.uint64(32), out=keys[half:])  # ... and its low 32, moved up
            keys = keys[:total]
        else:
            keys = bitgen.random_raw(total)
            keys &= self._high
        keys = keys.reshape(-1, size)
        if self._linked[cls]:
            for row, head, chain in self._straddling(cls, group):
                # The top key bit sorts the head's samples before the rest; below it the keys
                # stay random, so each part comes out in a random order.
                outside = ~self._head_members(cls, chain, head)
                keys[row] &= _NOT_TOP
                keys[row] |= outside.view(np.uint8).astype(np.uint64) << np.uint64(63)
        keys |= self._unsigned[start:end]
        keys.sort(axis=1)  # each row: one cycle of the class's indices, in the low bits
        keys &= self._low
        draws = keys.reshape(-1).astype(self._by_class.dtype)
        self.group_ids[cls] = group
        self.groups[cls] = draws
        return draws

    def _straddling(self, cls: int, group: int) -> Iterator[tuple[int, int, int]]:
        """(row in the group, draws before the boundary, chain) of every cycle of this group
        that straddles an epoch boundary."""
        size = self._counts[cls]
        first = group * self.lengths[cls]
        last = first + self.lengths[cls]
        draws_before = self._sampler._class_draws_before
        # Boundary b sits at draws_before(b) = b * (rounds + extras / C) within +-1, so this
        # estimate is at most a few boundaries short of the first one past `first`.
        boundary = max(0, int((first - 1) / self._per_epoch) - 1)
        position = draws_before(cls, boundary)
        while position <= first:
            boundary += 1
            position = draws_before(cls, boundary)
        # Consecutive boundaries are linked when the epoch between them holds no whole cycle
        # (it moves on by exactly one cycle and both straddle one); a boundary that is linked
        # to neither neighbour constrains nothing and keeps its plain cycle.
        previous = draws_before(cls, boundary - 1) if boundary else 0
        while position < last:  # at most one boundary per cycle, as an epoch draws >= size
            cycle, head = divmod(position, size)
            following = draws_before(cls, boundary + 1)
            if head and (_linked(previous, position, size) or _linked(position, following, size)):
                yield cycle - first // size, head, cycle - boundary
            boundary += 1
            previous, position = position, following

    def _head_members(self, cls: int, chain: int, head: int) -> np.ndarray:
        """Which of the class's samples (in dataset order) are in the first ``head`` of the
        chain's random order: those with the ``head`` smallest keys of the stream
        ``(CHAIN, class, chain)``. The keys end in the sample's position, so they are distinct
        and the set is unique."""
        size = self._counts[cls]
        keys = self._streams.get(_rng.CHAIN, cls, chain).bit_generator.random_raw(size)
        keys &= self._chain_high[cls]
        keys |= np.arange(size, dtype=np.uint64)
        return keys <= np.partition(keys, head - 1)[head - 1]


register(SamplerKind(name="balanced", sampler_class=BalancedBatchSampler, labels="single",
                     state_id=None, read_labels=labels_of))
