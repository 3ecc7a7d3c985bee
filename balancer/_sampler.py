"""Equal-frequency minibatches drawn from circular per-class buffers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from balancer import _rng
from balancer._distributed import shared_seed
from balancer._schedule import Phase
from balancer._validation import check_bool, check_int, encode_labels

__all__ = ["BalancedBatchSampler"]

_STATE_VERSION = 1


# Design note: how a balanced epoch is laid out
#
# Think of an epoch as a stream of "slots", each to be filled by one sample. Slots are arranged
# in rounds of C (one per class, in an order pi_e drawn once per epoch), so slot t belongs to
# class pi_e[t % C] and is that class's (t // C)-th draw of the epoch. Any B consecutive slots
# therefore hold floor(B/C) or ceil(B/C) samples of every class (B distinct classes when B < C),
# and batches are consecutive runs of B slots. When the epoch length S is not a multiple of C,
# the last, partial round goes to the classes that come first in pi_e; those classes (the
# "extras", r = S % C of them) are taken in turn over epochs from a seeded ranking, so that
# every class gets S // C draws per epoch plus one every C / r epochs.
#
# Class c draws from its circular buffer: an endless concatenation of permutations of its
# indices. Because the number of draws a class made before epoch e has a closed form (from the
# number of balanced epochs before e, S and the ranking), and the k-th permutation of class c is
# addressed by a counter-based random stream (see _rng), any epoch -- and any batch inside it --
# can be produced directly, without replaying what came before. That is what makes set_epoch,
# mid-epoch resume and distributed sharding exact and cheap.
#
# Reshuffles of small classes are generated in groups of several permutations at once (one
# vectorised call instead of one per cycle), and the plan is built in blocks of rounds, so the
# memory in use is O(N + C * group size + block), never O(C * n_max).


class BalancedBatchSampler(Sampler[list[int]]):
    r"""Batches with equal class frequencies, drawn from circular per-class buffers.

    Each class keeps its own buffer: a shuffled order of that class's sample indices. Every batch
    takes the same number of samples from every buffer. A buffer that runs out is reshuffled and
    restarted, so small classes repeat while large ones are still being worked through. With
    ``C`` classes and ``n_max`` samples in the largest, one balanced epoch draws exactly ``n_max``
    samples of every class (``C * n_max`` in all): each sample of a largest class is used exactly
    once per epoch and no sample is ever left out.

    Buffers carry over between epochs: the draws of a class over consecutive epochs are a
    concatenation of full permutations of its indices, so no sample repeats before all samples
    of its class have been used.

    With a :class:`~balancer.FineTuneSchedule` (``schedule=``), fine-tune epochs instead yield one
    shuffled pass over all ``N`` samples at their true frequencies.

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
        drop_last: drop the last batch if it is short. With several replicas, batches are always
            full (see below) and ``drop_last`` rounds the epoch down instead of up.
        schedule: optional :class:`~balancer.FineTuneSchedule` (anything with a
            ``phase(epoch) -> "balanced" | "finetune"`` method) deciding each epoch's phase.
        samples_per_epoch: length of a balanced epoch in samples (default ``C * n_max``), for
            when ``C * n_max`` is far above ``N``. Every buffer, those of the largest classes
            included, continues where it stopped, so across consecutive epochs every sample of a
            largest class is still used once before any repeats.
        num_replicas: number of processes sharing the plan; defaults to the world size of the
            initialised ``torch.distributed`` process group, else 1.
        rank: this process's rank in ``[0, num_replicas)``; defaults to the process group's rank,
            else 0.

    Distributed sharding: every rank builds the same global plan and takes whole batches in turn
    (rank ``r`` takes global batches ``r, r + R, r + 2R, ...``), so each rank's batches are
    balanced and the ranks' batches together are the global plan. With ``R > 1`` replicas the
    epoch is extended to a whole number of full batches per rank by continuing the buffers
    (balanced epochs) or by repeating the first samples of the epoch's permutation (fine-tune
    epochs), so all ranks yield the same number of batches.

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
        the phase of epoch 0.
    """

    # A class's reshuffles are generated in groups of at least N // C draws (the mean class
    # size), clipped to [_GROUP_MIN, _GROUP_MAX]: one vectorised sort for many permutations of a
    # small class. The groups held (one per class) total below N + C * max(N // C, 512)
    # indices, i.e. 2 N unless the mean class is smaller than 512, plus one reused uint64
    # scratch buffer the size of the largest group. Part of the plan's definition: changing
    # these changes batches for a given seed.
    _GROUP_MIN = 512
    _GROUP_MAX = 16384
    # Batches whose in-batch order comes from one random stream; also part of the definition.
    _ROWS_PER_GROUP = 64
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
    ) -> None:
        if isinstance(labels, Sampler):
            # What Lightning's use_distributed_sampler does to a loader built before the process
            # group existed: BalancedBatchSampler(DistributedSampler(...), batch_size=, drop_last=).
            raise TypeError(
                f"labels should be one class label per item, but got a {type(labels).__name__}: a "
                f"framework is rebuilding the batch sampler around its own sampler, because the "
                f"balanced loader was built with num_replicas=1 before the process group "
                f"started. Build it where the process group is initialised (inside "
                f"LightningModule.train_dataloader() or the per-worker train function), or pass "
                f"num_replicas= and rank="
            )
        encoded = encode_labels(labels, "labels")
        self.classes: np.ndarray = encoded.classes
        self.class_counts: np.ndarray = encoded.counts
        self._codes = encoded.codes
        self.batch_size = check_int("batch_size", batch_size, minimum=1,
                                    fix="pass a positive number of samples per batch")
        self.seed = shared_seed(seed)
        self.drop_last = check_bool("drop_last", drop_last)
        if schedule is not None and not callable(getattr(schedule, "phase", None)):
            raise TypeError(
                f"schedule should have a phase(epoch) method, like balancer.FineTuneSchedule, "
                f"but got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.num_replicas, self.rank = _resolve_replicas(num_replicas, rank)

        num_classes = len(self.classes)
        self._num_samples = len(self._codes)
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
        for phase, samples in (("balanced", self._balanced_samples),
                               ("finetune", self._num_samples)):
            if phase == "finetune" and schedule is None:
                continue
            if self._layout_of(samples)[1] == 0:
                raise ValueError(
                    f"a {phase} epoch of {samples} samples gives no batch per replica with "
                    f"batch_size={self.batch_size}, num_replicas={self.num_replicas} and "
                    f"drop_last=True; lower batch_size, or pass drop_last=False"
                )

        # Sample indices grouped by class (a stable sort keeps each group in dataset order, so
        # the plan does not depend on how the labels were sorted internally).
        index_dtype = np.int32 if self._num_samples < 2**31 else np.int64
        self._by_class = np.argsort(self._codes, kind="stable").astype(index_dtype, copy=False)
        self._starts = np.concatenate(([0], np.cumsum(self.class_counts))).tolist()

        self.epoch = 0
        self._resume_from = 0  # where the next iteration starts (set by load_state_dict)
        self._started_at = 0  # where the pending or running iteration started, for len()
        self._yielded = 0
        self._fingerprint_cache: str | None = None
        self._buffer_cache: _CircularBuffers | None = None

    # ------------------------------------------------------------------ epochs and phases
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose batches the next iteration yields.

        The batches of an epoch depend only on ``(seed, epoch)``, the labels and the settings, so
        epoch 7 can be produced without producing 0-6, and iterating the same epoch twice gives
        the same batches. Setting a different epoch than the current one discards a pending
        resume position (see :meth:`load_state_dict`); setting the same epoch keeps it, so the
        usual ``for epoch in range(start, n): sampler.set_epoch(epoch)`` loop resumes correctly.
        """
        epoch = check_int("epoch", epoch, minimum=0,
                          fix="pass the 0-based number of the epoch about to start, as in "
                              "`for epoch in range(epochs): sampler.set_epoch(epoch)`")
        self._phase_of(epoch)  # a schedule rejects epochs outside its range
        if epoch != self.epoch:
            self._resume_from = self._started_at = self._yielded = 0
        self.epoch = epoch

    @property
    def phase(self) -> Phase:
        """The phase of the current epoch: ``"balanced"``, or ``"finetune"`` per the schedule."""
        return self._phase_of(self.epoch)

    def _phase_of(self, epoch: int) -> Phase:
        if self.schedule is None:
            return "balanced"
        phase = self.schedule.phase(epoch)
        if phase not in ("balanced", "finetune"):
            raise ValueError(
                f"schedule.phase({epoch}) returned {phase!r}; it should return 'balanced' or "
                f"'finetune'"
            )
        return phase

    def _balanced_epochs_before(self, epoch: int) -> int:
        if self.schedule is None:
            return epoch
        before = getattr(self.schedule, "balanced_epochs_before", None)
        if callable(before):
            return int(before(epoch))
        return sum(self._phase_of(e) == "balanced" for e in range(epoch))

    def _layout_of(self, samples: int) -> tuple[int, int]:
        """(slots, global batches) of an epoch of ``samples`` samples after rounding."""
        size, replicas = self.batch_size, self.num_replicas
        if replicas == 1 and not self.drop_last:
            return samples, -(-samples // size)
        per_round = size * replicas
        rounds = samples // per_round if self.drop_last else -(-samples // per_round)
        return rounds * per_round, rounds * replicas

    def _layout(self, epoch: int) -> tuple[Phase, int, int]:
        phase = self._phase_of(epoch)
        samples = self._balanced_samples if phase == "balanced" else self._num_samples
        return (phase, *self._layout_of(samples))

    def _batches_per_replica(self, epoch: int) -> int:
        return self._layout(epoch)[2] // self.num_replicas

    def total_batches(self, epochs: int | None = None) -> int:
        r"""Batches this rank yields over epochs ``0 .. epochs - 1``, whole epochs.

        The length of an epoch follows its phase (``C * n_max`` samples balanced, ``N``
        fine-tune, each rounded to whole batches per rank), so ``len(sampler) * epochs`` is wrong
        as soon as a schedule switches phase. This is the count to size a run or an LR schedule
        with (``OneCycleLR(total_steps=...)``, a framework's ``max_steps``):

        .. math::
            \text{total} = \sum_{e=0}^{E-1} \text{batches per rank of epoch } e

        Args:
            epochs: number of epochs from 0; ``None`` takes the schedule's ``total_epochs``.

        Example:
            >>> from balancer import FineTuneSchedule
            >>> labels = [0] * 6 + [1] * 3 + [2] * 1
            >>> sampler = BalancedBatchSampler(labels, 3, schedule=FineTuneSchedule(3, 1))
            >>> sampler.total_batches()  # two balanced epochs of 18 samples, one of 10
            16
        """
        if epochs is None:
            epochs = getattr(self.schedule, "total_epochs", None)
            if epochs is None:
                raise ValueError(
                    "total_batches() takes its number of epochs from schedule.total_epochs, but "
                    f"this sampler has schedule={self.schedule!r}; pass epochs=N"
                )
        epochs = check_int("epochs", epochs, minimum=0,
                           fix="pass the number of epochs the run trains, counted from epoch 0")
        # Two lengths at most (balanced, fine-tune): count epochs per phase, not per epoch.
        phases = [self._phase_of(epoch) for epoch in range(epochs)]
        lengths = {}
        for epoch, phase in enumerate(phases):
            if phase not in lengths:
                lengths[phase] = self._batches_per_replica(epoch)
        return sum(lengths[phase] for phase in phases)

    def __len__(self) -> int:
        """Batches this rank yields in its next (or running) iteration of the current epoch.

        That is the whole epoch, or, for an iteration resumed by :meth:`load_state_dict`, what
        remained of it when it was saved.
        """
        return self._batches_per_replica(self.epoch) - self._started_at

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self.epoch, self._resume_from
        self._resume_from = 0
        self._started_at = self._yielded = start
        phase, slots, batches = self._layout(epoch)
        size, replicas, rank = self.batch_size, self.num_replicas, self.rank
        per_group = self._ROWS_PER_GROUP
        first_global = start * replicas  # the first global batch this iteration may yield
        group = first_global // per_group
        if phase == "balanced":
            stream = self._balanced_slots(epoch, group * per_group * size, slots)
        else:
            stream = self._finetune_slots(epoch, group * per_group * size, slots)
        streams = _rng.Streams(self.seed)
        pool = self._order_pool(epoch, streams) if phase == "balanced" else None
        reader = _SlotReader(stream)
        while group * per_group < batches:
            base = group * per_group
            rows = min(per_group, batches - base)
            chunk = reader.take(min(rows * size, slots - base * size))
            need = chunk.size
            full = need // size
            matrix = chunk[: full * size].reshape(full, size)
            tail = chunk[full * size:]
            lowest = max(first_global, base)
            first = lowest + (rank - lowest) % replicas  # this rank's first batch in the group
            if phase == "balanced":
                mine = self._shuffle_rows(matrix, pool, streams, epoch, group, first - base)
                if tail.size:  # the short last batch of a single-replica epoch
                    streams.get(_rng.INBATCH_POOL, epoch, 1).shuffle(tail)
            else:
                mine = matrix[first - base:: replicas]
            for batch in mine.tolist():
                self._yielded += 1
                yield batch
            if tail.size and (base + full) % replicas == rank and base + full >= first_global:
                self._yielded += 1
                yield tail.tolist()
            group += 1
        if self._started_at == start and self.epoch == epoch:
            self._started_at = 0  # a finished resumed iteration: the next one is whole again

    # Slots come in the round-robin class order, so the order inside each balanced batch is
    # shuffled. An independent Fisher-Yates per batch costs as much as drawing the samples
    # themselves; instead each batch takes one of a pool of random permutations of its
    # positions (drawn once per epoch) and rotates it by a random offset. Every batch's order is
    # uniformly random, and two batches share a pattern with probability 1 / pool size.
    _ORDER_POOL = 256
    _ORDER_POOL_MAX_BATCH = 1 << 14  # above this, batches are shuffled one by one

    def _order_pool(self, epoch: int, streams: _rng.Streams) -> np.ndarray | None:
        size = self.batch_size
        if size > self._ORDER_POOL_MAX_BATCH:
            return None
        generator = streams.get(_rng.INBATCH_POOL, epoch)
        pool = np.tile(np.arange(size, dtype=np.intp), (self._ORDER_POOL, 1))
        generator.permuted(pool, axis=1, out=pool)
        # Every rotation of every permutation, as a (pool, size + 1, size) view without copies:
        # [k, r] is permutation k rotated left by r.
        doubled = np.concatenate((pool, pool), axis=1)
        return np.lib.stride_tricks.sliding_window_view(doubled, size, axis=1)

    def _shuffle_rows(self, rows: np.ndarray, pool: np.ndarray | None, streams: _rng.Streams,
                      epoch: int, group: int, first: int) -> np.ndarray:
        """Shuffle inside every row of a group's ``rows`` and return this rank's rows from
        ``first`` on. Random draws cover the whole group, so every rank and every resume
        position sees the same order for the same batch."""
        generator = streams.get(_rng.INBATCH, epoch, group)
        step = self.num_replicas
        if pool is None:
            rows = rows.copy()
            generator.permuted(rows, axis=1, out=rows)
            return rows[first::step]
        count = self._ROWS_PER_GROUP
        picks = generator.integers(0, self._ORDER_POOL, size=count)[first:: step]
        offsets = generator.integers(0, self.batch_size, size=count)[first:: step]
        rows = rows[first::step]
        size = self.batch_size
        positions = pool[picks[: len(rows)], offsets[: len(rows)]]  # (rows, size), a copy
        positions += (np.arange(len(rows)) * size)[:, None]
        return np.ascontiguousarray(rows).reshape(-1).take(positions)

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        """Yield the epoch's slots ``[slot_start, slot_end)`` as consecutive arrays of indices."""
        num_classes = len(self.classes)
        streams = _rng.Streams(self.seed)
        before = self._balanced_epochs_before(epoch)
        rounds, extras = divmod(self._layout_of(self._balanced_samples)[0], num_classes)
        # Rank of each class in the seeded rotation that hands out the partial round's slots.
        rank_of = np.empty(num_classes, dtype=np.int64)
        rank_of[streams.get(_rng.EXTRAS).permutation(num_classes)] = np.arange(num_classes)
        # Draws each class made in the balanced epochs before this one (closed form).
        handed_out = before * extras
        drawn = before * rounds + np.maximum(0, -((rank_of - handed_out) // num_classes))
        takes_extra = (rank_of - handed_out) % num_classes < extras
        generator = streams.get(_rng.ORDER, epoch)
        order = np.concatenate((generator.permutation(np.flatnonzero(takes_extra)),
                                generator.permutation(np.flatnonzero(~takes_extra)))).tolist()
        drawn = drawn.tolist()

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

    def _buffers(self) -> _CircularBuffers:
        # Every group of reshuffles is a pure function of (seed, class, group), so groups loaded
        # in one epoch stay valid for the next: keeping them saves regenerating the permutation
        # each class is in the middle of at an epoch boundary. Holds one group per class.
        if self._buffer_cache is None:
            self._buffer_cache = _CircularBuffers(self._by_class, self._starts, self.class_counts,
                                                  _rng.Streams(self.seed), self._group_draws())
        return self._buffer_cache

    def _finetune_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        """One permutation of all samples (wrapping around to pad whole batches per rank)."""
        permutation = _rng.Streams(self.seed).get(_rng.FINETUNE, epoch).permutation(
            self._num_samples).astype(self._by_class.dtype, copy=False)
        if slot_end > self._num_samples:
            permutation = np.resize(permutation, slot_end)
        yield permutation[slot_start:slot_end]

    # ------------------------------------------------------------------ checkpointing
    def _settings(self) -> dict[str, Any]:
        schedule = self.schedule
        return {
            "batch_size": self.batch_size,
            "seed": self.seed,
            "drop_last": self.drop_last,
            "samples_per_epoch": self.samples_per_epoch,
            "num_replicas": self.num_replicas,
            # A schedule without state_dict() is known by its type: its repr may hold an address.
            "schedule": schedule.state_dict() if callable(getattr(schedule, "state_dict", None))
            else None if schedule is None else type(schedule).__qualname__,
        }

    def _fingerprint(self) -> str:
        if self._fingerprint_cache is None:
            digest = hashlib.sha256(repr(self.classes.tolist()).encode())
            digest.update(np.ascontiguousarray(self._codes).tobytes())
            self._fingerprint_cache = digest.hexdigest()[:32]
        return self._fingerprint_cache

    def state_dict(self) -> dict[str, Any]:
        """The position of the next batch: an epoch and the batches of it already yielded.

        Restoring it with :meth:`load_state_dict` on a sampler built the same way (same labels
        and settings) makes the next iteration yield exactly the remaining batches of that epoch.
        Once every batch of an epoch has been yielded, the position is the start of the next
        epoch (``epoch + 1``, ``batches_done = 0``), so ``for epoch in range(sampler.epoch, n)``
        after a restore neither repeats a finished epoch nor skips one.

        The count is of batches *this sampler* handed out; a ``DataLoader`` with workers asks for
        a few batches ahead of the training loop, so checkpoint the count of batches your loop
        received (``balancer.balance`` loaders do that for you).
        """
        return self._state_at(self._yielded)

    def _state_at(self, batches_done: int) -> dict[str, Any]:
        epoch = self.epoch
        if batches_done >= self._batches_per_replica(epoch):
            epoch, batches_done = epoch + 1, 0
        return {
            "version": _STATE_VERSION,
            "epoch": epoch,
            "batches_done": batches_done,
            "labels_fingerprint": self._fingerprint(),
            "settings": self._settings(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by :meth:`state_dict` (see there)."""
        if not isinstance(state, dict):
            raise TypeError(f"state should be a dict from BalancedBatchSampler.state_dict(), but "
                            f"got {type(state).__name__}")
        missing = {"version", "epoch", "batches_done", "labels_fingerprint", "settings"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass a dict from "
                             f"BalancedBatchSampler.state_dict()")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"state has version {state['version']!r}; this sampler reads "
                             f"version {_STATE_VERSION}")
        if state["labels_fingerprint"] != self._fingerprint():
            raise ValueError(
                "state was taken from a sampler over different labels (their fingerprints differ); "
                "build the sampler on the same labels, in the same order, before loading it"
            )
        ours = self._settings()
        differing = {k: (state["settings"].get(k), v) for k, v in ours.items()
                     if state["settings"].get(k) != v}
        if differing:
            described = ", ".join(f"{k}: saved {saved!r}, here {here!r}"
                                  for k, (saved, here) in differing.items())
            raise ValueError(
                f"state was taken from a sampler with other settings ({described}); build the "
                f"sampler with the saved settings before loading it"
            )
        corrupt = "pass the dict that state_dict() returned, unchanged"
        epoch = check_int("state['epoch']", state["epoch"], minimum=0, fix=corrupt)
        done = check_int("state['batches_done']", state["batches_done"], minimum=0, fix=corrupt)
        if done:  # the start of an epoch is valid even just past a schedule's last epoch
            total = self._batches_per_replica(epoch)
            check_int("state['batches_done']", done, maximum=total - 1,
                      fix=f"epoch {epoch} has {total} batches per replica")
        self.epoch = epoch
        self._resume_from = self._started_at = self._yielded = done

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(classes={len(self.classes)}, samples={self._num_samples}, "
                f"batch_size={self.batch_size}, seed={self.seed}, drop_last={self.drop_last}, "
                f"samples_per_epoch={self.samples_per_epoch}, schedule={self.schedule!r}, "
                f"num_replicas={self.num_replicas}, rank={self.rank})")


class _CircularBuffers:
    """Each class's endless stream of draws: permutation after permutation of its indices.

    The ``k``-th permutation of class ``c`` lives in group ``k // cycles[c]``, generated whole by
    the random stream ``(CYCLE, c, group)``, so any draw can be addressed directly. Only one
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
    # this about twice as fast as its Fisher-Yates shuffle, which draws one bounded integer per
    # element, and the result depends only on Philox's raw output, which numpy fixes by
    # specification, not on how a numpy version implements shuffle.
    _SPLIT_MAX_BITS = 32  # index bits up to which a raw word serves two keys

    def __init__(self, by_class: np.ndarray, starts: list[int], counts: np.ndarray,
                 streams: _rng.Streams, group_draws: int) -> None:
        self._by_class = by_class
        self._starts = starts
        self._streams = streams
        cycles = np.maximum(1, -(-group_draws // counts))
        self._cycles = cycles.tolist()
        self.lengths = (cycles * counts).tolist()
        self.group_ids = [-1] * len(counts)
        self.groups: list[np.ndarray | None] = [None] * len(counts)
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
        bitgen = self._streams.get(_rng.CYCLE, cls, group).bit_generator
        total = (end - start) * self._cycles[cls]
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
        keys = keys.reshape(-1, end - start)
        keys |= self._unsigned[start:end]
        keys.sort(axis=1)  # each row: one permutation of the class's indices, in the low bits
        keys &= self._low
        draws = keys.reshape(-1).astype(self._by_class.dtype)
        self.group_ids[cls] = group
        self.groups[cls] = draws
        return draws

    def draw(self, cls: int, start: int, count: int, out: np.ndarray) -> None:
        """Write draws ``start .. start + count - 1`` of class ``cls`` into ``out``."""
        length = self.lengths[cls]
        done = 0
        while done < count:
            group, offset = divmod(start + done, length)
            draws = self.groups[cls] if self.group_ids[cls] == group else self._load(cls, group)
            take = min(count - done, length - offset)
            out[done: done + take] = draws[offset: offset + take]
            done += take


class _SlotReader:
    """Consecutive chunks of a stream of slot arrays, without copying whole blocks.

    A chunk inside one stream array is a view of it, valid until the next :meth:`take`; the
    part of a chunk read before the stream is advanced is copied first, so the stream may
    overwrite one buffer for every array it yields.
    """

    def __init__(self, stream: Iterator[np.ndarray]) -> None:
        self._stream = stream
        self._current = np.empty(0, dtype=np.int64)
        self._position = 0

    def take(self, count: int) -> np.ndarray:
        parts = []
        while count > 0:
            if self._position == self._current.size:
                if parts:  # the stream may overwrite what parts views
                    parts = [np.concatenate(parts)]
                self._current, self._position = next(self._stream), 0
            piece = self._current[self._position: self._position + count]
            self._position += piece.size
            count -= piece.size
            parts.append(piece)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    num_replicas = check_int(
        "num_replicas", num_replicas, minimum=1,
        fix="pass the number of processes sharing the data (the world size), or None to read it "
            "from the initialised process group (1 without one)")
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    rank = check_int("rank", rank, fix="pass the process's rank, or None to read it from the "
                                        "initialised process group")
    if not 0 <= rank < num_replicas:
        raise ValueError(
            f"rank should be in [0, num_replicas) = [0, {num_replicas}), but got rank={rank}; "
            f"pass the process's rank and the world size"
        )
    return num_replicas, rank

