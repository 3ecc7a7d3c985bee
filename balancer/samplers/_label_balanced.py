"""The ``"label-balanced"`` kind: multi-label batches in which every label's positives come as
close to equal as co-occurrence allows, from circular per-bucket buffers."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from balancer import _rng
from balancer._validation import check_int
from balancer.labels import NO_FINDING, MultiLabels, encode_multilabels, multilabels_of
from balancer.samplers._base import BatchType, PlanBatchSampler, multilabel_digest
from balancer.samplers._buffers import GroupedCycles
from balancer.samplers._registry import SamplerKind, register

__all__ = ["BucketCycles", "Buckets", "MultiLabelBalancedSampler", "PatternSlots",
           "balanced_pattern", "pattern_length"]

# Design note: label-balanced epochs as stretches of one stream of slots
# Buckets are the L labels plus, when some sample has no label, the no-finding bucket K - 1.
# Bucket k keeps a circular buffer of its members (the samples carrying label k; the samples
# with no label), an endless concatenation of seeded permutations, as in the single-label
# sampler. Which bucket fills each slot is decided by a greedy rule: the next slot goes to the
# bucket whose count is lowest (furthest below the common target), and a draw from bucket k
# adds to *every* bucket the share of k's members carrying it (k's row of the co-occurrence
# matrix A, A[k, j] = |members(k) and members(j)| / |members(k)|). Counting the expected labels
# of a draw instead of the drawn sample's own labels is what keeps the plan addressable: the
# bucket sequence depends on the labels only, so it is one fixed *pattern* of R slots. Over
# whole passes of a buffer the drawn samples carry exactly the expected labels, so the plan's
# per-label rates (label_positive_rate, per round) are what training sees, up to where the
# buffers stand.
#
# The pattern, repeated round after round, is one endless *stream* of slots shared by all
# balanced epochs: stream slot t belongs to bucket pattern[t % R] and is that bucket's
# (t // R) * m_k + j-th draw (m_k its slots per round, j the slot's rank among them). Balanced
# epoch b (counting balanced epochs only) serves stream slots [b S, b S + P): S its slots, P
# those rounded up to whole batches per rank. Where an epoch starts in the stream is then a
# function of b and S alone, like every bucket's draw counter, so any epoch is addressed
# without replaying the ones before, and an epoch shorter than a round continues the round
# where the previous epoch stopped (revision 1 restarted the round in every epoch and never
# reached the buckets placed after its first S slots). Advancing by S, not P, keeps the stream
# the same for every number of replicas: the padding of an epoch is the first slots of the
# next one, served again there, and the plan of R replicas holds the single-process plan.
#
# The pattern is read from the greedy after a warm-up of R slots (so the start from zero counts
# does not bias it), and R = clip(64 K, 1024, 65536): each bucket's share is then resolved to
# about 1 / (64 K) of a round.


class Buckets:
    """The members of every bucket (labels, then no-finding), as one concatenated array.

    ``members[starts[k]:starts[k + 1]]`` are bucket ``k``'s samples in dataset order. Memory is
    O(N + P): each positive once, plus the no-finding samples.
    """

    def __init__(self, targets: MultiLabels) -> None:
        import scipy.sparse as sparse

        n, labels = targets.num_samples, targets.num_labels
        dtype = np.int32 if n < 2**31 else np.int64
        # Counts fit int32 (a pair of labels co-occurs at most N < 2^31 times); int64 above.
        ones = np.ones(len(targets.indices), dtype=np.int32 if n < 2**31 else np.int64)
        matrix = sparse.csr_matrix((ones, targets.indices, targets.indptr), shape=(n, labels))
        # Column-compressed, each label's rows come out ascending: the buckets' members in
        # dataset order, in O(N + P) (a counting sort, not a comparison sort).
        by_label = matrix.tocsc()
        empty = np.flatnonzero(targets.no_finding).astype(dtype)
        self.has_no_finding = bool(empty.size)
        self.members = np.concatenate((by_label.indices.astype(dtype, copy=False), empty))
        counts = np.diff(by_label.indptr)
        if self.has_no_finding:
            counts = np.append(counts, empty.size)
        self.counts = counts.astype(np.int64)
        self.starts = np.concatenate(([0], np.cumsum(self.counts))).astype(np.int64)
        self.num_buckets = len(self.counts)
        self.num_labels = labels
        # by_label.T is row-compressed (L x N) as it stands: the product needs no conversion.
        # Neither sparse matrix is kept: the buckets hold only their members.
        pairs = (by_label.T @ matrix).toarray()  # O(sum of squared labels per row)
        shares = np.zeros((self.num_buckets, self.num_buckets))
        shares[:labels, :labels] = pairs / self.counts[:labels, None]
        if self.has_no_finding:
            shares[-1, -1] = 1.0
        self.shares = shares

    def cooccurrence(self) -> np.ndarray:
        """``A[k, j]``: the share of bucket ``k``'s members that carry label (bucket) ``j``."""
        return self.shares


def pattern_length(num_buckets: int) -> int:
    return int(np.clip(64 * num_buckets, 1024, 65536))


def balanced_pattern(shares: np.ndarray, length: int, min_share: float = 0.0) -> np.ndarray:
    """The greedy bucket sequence: ``length`` slots after a warm-up of ``length`` slots.

    Each slot goes to the bucket with the lowest count (the lowest id among ties), and adds
    ``shares[k]`` to the counts -- except that a bucket whose own draws fall a whole slot behind
    ``min_share`` of the slots so far takes the slot first (the one furthest behind), so every
    bucket is drawn at least ``floor(min_share * length)`` times per pattern, evenly spread.
    Deterministic: a function of ``shares``, ``length`` and ``min_share`` only.
    """
    num_buckets = shares.shape[0]
    counts = np.zeros(num_buckets)
    direct = np.zeros(num_buckets)
    rows = list(shares)
    pattern = np.empty(length, dtype=np.int32)
    for step in range(2 * length):
        lag = min_share * (step % length + 1) - direct
        k = int(lag.argmax())
        if lag[k] < 1.0:
            k = int(counts.argmin())
        counts += rows[k]
        direct[k] += 1
        if step == length - 1:
            direct[:] = 0  # the floor is counted afresh in the recorded pattern
        if step >= length:
            pattern[step - length] = k
    return pattern


class BucketCycles(GroupedCycles):
    """Each bucket's endless stream of draws: seeded permutation after permutation.

    The ``c``-th permutation of bucket ``k`` is one row of group ``c // cycles[k]``, generated
    whole from the random stream ``(purpose, k, group)`` by sorting random keys, so any draw is
    addressed directly; one group per bucket is held at a time (at most ``max(n_k, group_draws)``
    indices each).
    """

    def __init__(self, members: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                 streams: _rng.Streams, purpose: int, group_draws: int = 4096) -> None:
        self._members = members
        self._starts = starts.tolist()
        self._streams = streams
        self._purpose = purpose
        cycles = np.maximum(1, -(-group_draws // np.maximum(counts, 1)))
        self._cycles = cycles.tolist()
        self.lengths = (cycles * counts).tolist()
        self.group_ids = [-1] * len(counts)
        self.groups: list[np.ndarray | None] = [None] * len(counts)
        bits = max(1, int(members.max(initial=0)).bit_length())
        self._low = np.uint64((1 << bits) - 1)
        self._high = ~self._low

    def _load(self, k: int, group: int) -> np.ndarray:
        start, end = self._starts[k], self._starts[k + 1]
        size = end - start
        keys = self._streams.get(self._purpose, k, group).bit_generator.random_raw(
            size * self._cycles[k])
        keys &= self._high
        keys = keys.reshape(-1, size)
        keys |= self._members[start:end].astype(np.uint64)
        keys.sort(axis=1)  # each row: a uniform permutation of the members, in the low bits
        keys &= self._low
        draws = keys.reshape(-1).astype(self._members.dtype)
        self.group_ids[k], self.groups[k] = group, draws
        return draws


class PatternSlots:
    """The stream of slots of balanced epochs: rounds of a fixed bucket pattern, each slot
    filled from its bucket's buffer.

    Stream slot ``t`` belongs to bucket ``pattern[t % R]`` and is that bucket's
    ``(t // R) * m_k + j``-th draw (``m_k`` its slots per round, ``j`` the slot's rank among
    them).
    """

    _BLOCK_SLOTS = 1 << 20  # slots built per step: bounds memory, changes no batch

    def __init__(self, pattern: np.ndarray, num_buckets: int, buffers: BucketCycles | None) -> None:
        self.pattern = pattern
        self.length = len(pattern)
        self.per_round = np.bincount(pattern, minlength=num_buckets).astype(np.int64)
        self._positions = [np.flatnonzero(pattern == k) for k in range(num_buckets)]
        self.buffers = buffers
        self.num_buckets = num_buckets

    def draws_before(self, position: int) -> np.ndarray:
        """Draws of every bucket in stream slots ``[0, position)``."""
        rounds, rest = divmod(position, self.length)
        partial = np.bincount(self.pattern[:rest], minlength=self.num_buckets)
        return rounds * self.per_round + partial

    def slots(self, slot_start: int, slot_end: int, dtype: np.dtype) -> Iterator[np.ndarray]:
        """Stream slots ``[slot_start, slot_end)``, as consecutive arrays (Python ints: no
        overflow however far the stream goes)."""
        length = self.length
        first_round = slot_start // length
        total_rounds = -(-slot_end // length)
        skip = slot_start - first_round * length
        block = max(1, self._BLOCK_SLOTS // length)
        arena = np.empty(min(block, total_rounds - first_round) * length, dtype=dtype)
        current = first_round
        per_round = self.per_round.tolist()
        buffers = self.buffers
        assert buffers is not None, "the sampler builds the buffers before the first slot"
        while current < total_rounds:
            count = min(block, total_rounds - current)
            rounds = arena[: count * length].reshape(count, length)
            for k, positions in enumerate(self._positions):
                m = per_round[k]
                if not m:
                    continue
                values = np.empty(count * m, dtype=dtype)
                buffers.draw(k, current * m, count * m, values)
                rounds[:, positions] = values.reshape(count, m)
            flat = rounds.reshape(-1)
            yield flat[skip: min(count * length, slot_end - current * length)]
            skip = 0
            current += count


class MultiLabelBalancedSampler(PlanBatchSampler):
    r"""Batches in which every label's positives come as close to equal as co-occurrence allows.

    Each label, and the *no-finding* bucket of samples without any label, keeps a circular
    buffer of its samples: a shuffled order of them, reshuffled and restarted when it runs out,
    continuing across epochs. The bucket of each slot comes from a greedy rule: the next slot
    goes to the bucket furthest below the common target, counting every label a drawn sample
    carries. With :math:`A_{kj}` the share of bucket :math:`k`'s samples that carry label
    :math:`j` (co-occurrence), a draw from bucket :math:`k` adds :math:`A_{k\cdot}` to the counts
    and the next slot goes to :math:`\arg\min_k c_k`. Because the rule counts a draw's expected
    labels, the bucket sequence depends on the labels only: one fixed pattern of
    :attr:`pattern_length` :math:`T` slots, repeated round after round in one stream of slots
    that balanced epochs take in turn, so any epoch, and any batch in it, is addressable without
    replaying the ones before. A label that mostly comes with others (on ChestX-ray14,
    Infiltration) ends above the target; :attr:`label_positive_rate` reports what the plan
    reaches.

    **Epoch length.** A balanced epoch has ``samples_per_epoch`` slots :math:`S`, by default
    ``N`` (as many as a plain pass, so epochs, learning-rate schedules and budgets compare one to
    one; the single-label rule ``C * n_max`` would make a ChestX-ray14 epoch 8 times a plain one
    because no finding is half the data). Balanced epoch :math:`b` (counting balanced epochs
    only) serves the stream's slots :math:`[bS, bS + P)`, :math:`P` being :math:`S` rounded up
    to whole batches per rank: an epoch continues the pattern where the previous one stopped,
    and its padding is the next epoch's first slots, served again there. The slots of an epoch
    are the same for every ``num_replicas`` and ``drop_last``; only the padding differs.

    **Coverage.** Bucket :math:`k` draws :attr:`bucket_draws_per_round` ``[k]`` =
    :math:`m_k` slots of every round, at least :math:`\lfloor s T \rfloor - 1` with
    :math:`s` = ``min_bucket_share``, from its buffer, continuing where the last draw stopped.
    In the first :math:`E` balanced epochs it draws :math:`D_k` = :meth:`bucket_draws` ``(E)``
    :math:`\geq \lfloor ES / T \rfloor m_k` samples (not counting padding), so every sample has
    been drawn at least :math:`\lfloor D_k / n_k \rfloor` times for each bucket :math:`k` it
    belongs to (:math:`n_k` the bucket's size): every sample is drawn within
    :math:`\lceil T \lceil n_k / m_k \rceil / S \rceil` balanced epochs. No sample of a bucket
    is drawn twice *by that bucket* in the stream before all its samples were drawn once.

    With a :class:`~balancer.FineTuneSchedule` (``schedule=``), fine-tune epochs are one shuffled
    pass over all ``N`` samples at their true frequencies.

    Args:
        labels: multi-label targets: an ``(N, L)`` 0/1 array or tensor, one ``|``-joined string
            of findings per sample (ChestX-ray14's ``Finding Labels``; ``"No Finding"`` is the
            empty set), one list of label names per sample, or a :class:`~balancer.MultiLabels`
            (from ``labels_of(..., multilabel=True)``). ``L >= 2`` labels, each with a positive.
        batch_size: samples per batch; order inside a batch is shuffled.
        names: label names for a matrix's columns (default: column numbers).
        seed: the batches of an epoch are a pure function of ``(seed, epoch)``, the labels and
            the settings. ``None`` draws a fresh seed (shared across ranks).
        drop_last: every batch is full. A balanced epoch is then extended to a whole number
            of batches by the stream's next slots (nothing is dropped); a fine-tune epoch drops its
            short last batch. Without it, a single replica's last batch may be short; with
            several replicas balanced epochs are always extended to full batches per rank.
        schedule: optional :class:`~balancer.FineTuneSchedule` deciding each epoch's phase.
        samples_per_epoch: slots of a balanced epoch (default ``N``).
        num_replicas, rank: distributed sharding, as for :class:`~balancer.BalancedBatchSampler`:
            rank ``r`` takes global batches ``r, r + R, ...`` and every rank yields as many.
        min_bucket_share: the least share of the slots every bucket draws itself, in
            ``[0, 1 / K]`` for ``K`` buckets (default ``1 / (4 K)``). A label whose positives
            mostly arrive with other labels is otherwise never drawn on its own (on ChestX-ray14,
            Atelectasis, Effusion and Infiltration), and its images without another label would
            never be seen. The floor is kept per round of the pattern, less one slot (see
            *Coverage*).
        no_finding: the token meaning "no label" in strings and lists.
        batch_type: ``"list"`` (default), ``"numpy"`` or ``"tensor"`` batches.

    Attributes:
        label_names: the labels, shape ``(L,)``.
        label_counts: positives per label in the data, shape ``(L,)``.
        label_positive_rate: per label, the share of a round's slots whose sample carries it,
            as planned (what the buffers yield over whole passes); shape ``(L,)``.
        no_finding_rate: the share of a round's slots given to samples without any label.
        pattern_length: :math:`T`, the slots of one round of the bucket pattern,
            ``clip(64 K, 1024, 65536)`` for ``K`` buckets.
        bucket_draws_per_round: draws of each bucket (labels, then no finding) in every round
            of ``pattern_length`` consecutive slots of the stream, shape ``(K,)``.
        bucket_draws_per_epoch: draws per balanced epoch of each bucket on average over the
            stream, ``bucket_draws_per_round * S / T`` (floats: an epoch shorter than a round
            takes a different part of it each time; :meth:`bucket_draws` gives exact counts).

    Example:
        >>> findings = ["Mass"] * 2 + ["Effusion|Mass"] + ["No Finding"] * 9 + ["Effusion"] * 4
        >>> sampler = MultiLabelBalancedSampler(findings, batch_size=4, seed=0)
        >>> len(sampler), sampler.label_names.tolist()
        (4, ['Effusion', 'Mass'])
        >>> [round(float(r), 2) for r in sampler.label_positive_rate], round(sampler.no_finding_rate, 2)
        ([0.39, 0.39], 0.39)
    """

    def __init__(self, labels: Any, batch_size: int, *, names: Sequence[Any] | None = None,
                 seed: int | None = 0, drop_last: bool = False, schedule: Any = None,
                 samples_per_epoch: int | None = None, num_replicas: int | None = None,
                 rank: int | None = None, min_bucket_share: float | None = None,
                 no_finding: str = NO_FINDING, batch_type: BatchType = "list") -> None:
        with self._built_together(num_replicas, seed):
            targets = encode_multilabels(labels, "labels", names=names, no_finding=no_finding)
            super().__init__(num_samples=targets.num_samples, batch_size=batch_size, seed=seed,
                             drop_last=drop_last, schedule=schedule, num_replicas=num_replicas,
                             rank=rank, batch_type=batch_type)
            self._targets: MultiLabels = targets
            self.label_names: np.ndarray = targets.names
            self.label_counts: np.ndarray = targets.counts
            if samples_per_epoch is None:
                self.samples_per_epoch = None
                self._samples = targets.num_samples
            else:
                self._samples = self.samples_per_epoch = check_int(
                    "samples_per_epoch", samples_per_epoch, minimum=self.batch_size,
                    fix=f"a balanced epoch needs at least one batch of batch_size={self.batch_size} "
                        f"(the default is N = {targets.num_samples})")
            buckets = Buckets(targets)
            self._buckets = buckets
            num_buckets = buckets.num_buckets
            if min_bucket_share is None:
                min_bucket_share = 1.0 / (4 * num_buckets)
            if isinstance(min_bucket_share, bool) or not isinstance(min_bucket_share, numbers.Real):
                raise TypeError(f"min_bucket_share should be a number, but got "
                                f"min_bucket_share={min_bucket_share!r}")
            if not 0.0 <= min_bucket_share <= 1.0 / num_buckets:
                raise ValueError(
                    f"min_bucket_share should be in [0, 1 / buckets] = [0, {1 / num_buckets:.4g}] "
                    f"({num_buckets} buckets: {targets.num_labels} labels"
                    f"{' and no finding' if buckets.has_no_finding else ''}), but got "
                    f"min_bucket_share={min_bucket_share!r}; pass None for the default 1 / (4 buckets)")
            self.min_bucket_share: float = float(min_bucket_share)
            shares = buckets.cooccurrence()
            self.pattern_length: int = pattern_length(num_buckets)
            pattern = balanced_pattern(shares, self.pattern_length, self.min_bucket_share)
            self._pattern_slots: PatternSlots = PatternSlots(pattern, buckets.num_buckets, None)
            self.bucket_draws_per_round: np.ndarray = self._pattern_slots.per_round
            self.bucket_draws_per_epoch: np.ndarray = (
                self.bucket_draws_per_round * (self._samples / self.pattern_length))
            planned = self.bucket_draws_per_round @ shares / self.pattern_length
            self.label_positive_rate: np.ndarray = planned[: targets.num_labels]
            self.no_finding_rate: float = float(planned[-1]) if buckets.has_no_finding else 0.0
            self._check_layouts()
        self._agree_across_ranks()

    def _buffers(self) -> BucketCycles:
        if self._pattern_slots.buffers is None:  # built on first use: construction stays cheap
            buckets = self._buckets
            self._pattern_slots.buffers = BucketCycles(
                buckets.members, buckets.starts, buckets.counts, _rng.Streams(self.seed),
                _rng.LABEL_CYCLE)
        return self._pattern_slots.buffers

    # ------------------------------------------------------------------ the kind's hooks
    def _balanced_length(self, epoch: int) -> int:
        return self._samples

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        self._buffers()
        start = self._balanced_epochs_before(epoch) * self._samples  # where the epoch starts
        return self._pattern_slots.slots(start + slot_start, start + slot_end, self._index_dtype())

    def bucket_draws(self, balanced_epochs: int) -> np.ndarray:
        """Draws of every bucket (labels, then no finding) in the first ``balanced_epochs``
        balanced epochs, not counting the slots that pad them (those are the next epoch's first
        slots, drawn again there): the stream's first ``balanced_epochs * S`` slots."""
        epochs = check_int("balanced_epochs", balanced_epochs, minimum=0,
                           fix="pass a number of balanced epochs")
        return self._pattern_slots.draws_before(epochs * self._samples)

    def _labels_digest(self) -> bytes:
        return multilabel_digest(self._targets)

    def _kind_settings(self) -> dict[str, Any]:
        # Revision 2: balanced epochs continue the stream of slots where the previous one
        # stopped (revision 1 restarted the bucket pattern in every epoch, and padding moved the
        # buffers); a state saved by revision 1 is refused, as its batches differ.
        return {"revision": 2, "samples_per_epoch": self.samples_per_epoch,
                "min_bucket_share": self.min_bucket_share}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(labels={len(self.label_names)}, "
                f"samples={self._num_samples}, batch_size={self.batch_size}, seed={self.seed}, "
                f"drop_last={self.drop_last}, samples_per_epoch={self.samples_per_epoch}, "
                f"schedule={self.schedule!r}, num_replicas={self.num_replicas}, rank={self.rank})")


def _read_labels(dataset: Any, labels: Any) -> MultiLabels:
    return multilabels_of(dataset, labels, classes=False)


register(SamplerKind(name="label-balanced", sampler_class=MultiLabelBalancedSampler,
                     labels="multi", state_id="label-balanced", read_labels=_read_labels))
