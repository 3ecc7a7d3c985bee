"""Epoch plans for multi-label data, as pure vectorised functions of the labels and a seed.

# Design note: label-balanced epochs with closed-form buffer positions
# Buckets are the L labels plus, when some sample has no label, the no-finding bucket K - 1.
# Bucket k keeps a circular buffer of its members (the samples carrying label k; the samples
# with no label), an endless concatenation of seeded permutations, as in the single-label
# sampler. Which bucket fills each slot is decided by a greedy rule: the next slot goes to the
# bucket whose count is lowest (furthest below the common target), and a draw from bucket k
# adds to *every* bucket the share of k's members carrying it (k's row of the co-occurrence
# matrix A, A[k, j] = |members(k) and members(j)| / |members(k)|). Counting the expected labels
# of a draw instead of the drawn sample's own labels is what keeps the plan addressable: the
# bucket sequence depends on the labels only, so it is one fixed *pattern* of R slots, repeated
# round after round in every balanced epoch, and bucket k's draws before epoch e are
# e * q_k (q_k its draws per epoch) -- no earlier epoch is ever replayed. Over whole passes of a
# buffer the drawn samples carry exactly the expected labels, so the plan's per-label rates
# (label_positive_rate) are what training sees, up to where the buffers stand.
#
# The pattern is read from the greedy after a warm-up of R slots (so the start from zero counts
# does not bias it), and R = clip(64 K, 1024, 65536): each bucket's share is then resolved to
# about 1 / (64 K) of a round.
#
# Repeat-factor sampling (Gupta et al., LVIS, 2019) repeats sample i r_i times per epoch. Its
# fractional parts rho_i are rounded deterministically: laid end to end (in a seeded order of
# the samples) they cover [0, X), X = sum rho_i, rescaled to [0, M) with M = floor(X) (1 if
# 0 < X < 1); sample i gets one extra copy in epoch e when its stretch holds a point of
# u_e + Z, u_e = frac(u_0 + e * phi) (phi the golden ratio, a Weyl sequence). Every epoch then
# has exactly sum floor(r_i) + M slots, on every rank, and sample i's extra copies over E
# epochs are E * rho_i * M / X up to the sequence's discrepancy (O(log E)).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from balancer import _rng
from balancer._base import GroupedCycles
from balancer._multilabel_labels import MultiLabels

__all__ = ["Buckets", "CircularBuffers", "balanced_pattern", "repeat_factors", "rfs_copies"]

_GOLDEN = (5**0.5 - 1) / 2


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


class CircularBuffers(GroupedCycles):
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



class PatternPlan:
    """Slots of balanced epochs: rounds of a fixed bucket pattern, each filled from buffers.

    Slot ``t`` of an epoch belongs to bucket ``pattern[t % R]`` and is that bucket's
    ``(t // R) * m_k + j``-th draw of the epoch (``m_k`` its slots per round, ``j`` the slot's
    rank among them).
    """

    _BLOCK_SLOTS = 1 << 20  # slots built per step: bounds memory, does not change the plan

    def __init__(self, pattern: np.ndarray, num_buckets: int, buffers: CircularBuffers) -> None:
        self.pattern = pattern
        self.length = len(pattern)
        self.per_round = np.bincount(pattern, minlength=num_buckets).astype(np.int64)
        # prefix[s, k]: bucket k's slots among the first s of a round (for partial rounds).
        self._positions = [np.flatnonzero(pattern == k) for k in range(num_buckets)]
        self.buffers = buffers
        self.num_buckets = num_buckets

    def draws_in(self, slots: int) -> np.ndarray:
        """Draws of every bucket in the first ``slots`` slots of an epoch."""
        rounds, rest = divmod(slots, self.length)
        partial = np.bincount(self.pattern[:rest], minlength=self.num_buckets)
        return rounds * self.per_round + partial

    def slots(self, drawn_before: np.ndarray, slot_start: int, slot_end: int,
              dtype: np.dtype) -> Iterator[np.ndarray]:
        """Slots ``[slot_start, slot_end)`` of an epoch whose buckets start at ``drawn_before``."""
        length = self.length
        first_round = slot_start // length
        total_rounds = -(-slot_end // length)
        skip = slot_start - first_round * length
        block = max(1, self._BLOCK_SLOTS // length)
        arena = np.empty(min(block, total_rounds - first_round) * length, dtype=dtype)
        current = first_round
        per_round = self.per_round.tolist()
        drawn = [int(v) for v in drawn_before]
        while current < total_rounds:
            count = min(block, total_rounds - current)
            rounds = arena[: count * length].reshape(count, length)
            for k, positions in enumerate(self._positions):
                m = per_round[k]
                if not m:
                    continue
                values = np.empty(count * m, dtype=dtype)
                self.buffers.draw(k, drawn[k] + current * m, count * m, values)
                rounds[:, positions] = values.reshape(count, m)
            flat = rounds.reshape(-1)
            yield flat[skip: min(count * length, slot_end - current * length)]
            skip = 0
            current += count


# --------------------------------------------------------------------- repeat-factor sampling
def repeat_factors(targets: MultiLabels, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(r_i, r_c)``: per-sample and per-category repeat factors (LVIS).

    Categories are the labels plus, when some sample has none, "no finding". With ``f(c)`` the
    share of samples carrying ``c``, ``r(c) = max(1, sqrt(threshold / f(c)))`` and ``r_i`` is
    the largest ``r(c)`` over the sample's categories.
    """
    n = targets.num_samples
    frequency = targets.counts / n
    with np.errstate(divide="ignore"):
        per_label = np.maximum(1.0, np.sqrt(threshold / frequency))
    empty = targets.no_finding
    per_category = per_label
    per_sample = np.ones(n)
    if len(targets.indices):
        # Max over each row's labels: reduceat over non-empty rows only.
        values = per_label[targets.indices]
        nonempty = ~empty
        per_sample[nonempty] = np.maximum.reduceat(values, targets.indptr[:-1][nonempty])
    if empty.any():
        none_factor = max(1.0, float(np.sqrt(threshold / empty.mean())))
        per_sample[empty] = none_factor
        per_category = np.append(per_label, none_factor)
    return per_sample, per_category


def rfs_extra_total(factors: np.ndarray) -> tuple[int, int]:
    """``(sum floor(r_i), M)``: an epoch's whole copies and its extra copies."""
    whole = np.floor(factors)
    fraction = float((factors - whole).sum())
    extras = 0 if fraction <= 0 else max(1, int(np.floor(fraction)))
    return int(whole.sum()), extras


class RepeatRounding:
    """Copies of every sample per epoch: ``floor(r_i)`` plus 0 or 1 extra (see the note).

    ``order`` is the seeded order the fractional parts are laid out in, ``offset`` the seeded
    phase ``u_0`` of the Weyl sequence. The stretches' edges are computed once (``N + 1``
    floats); an epoch then costs two passes over them.
    """

    def __init__(self, factors: np.ndarray, order: np.ndarray, offset: float) -> None:
        whole = np.floor(factors)
        self.whole = whole.astype(np.int32)
        self.whole_total, self.extras = rfs_extra_total(factors)
        self._order = order
        self._offset = offset
        self._edges = None
        self._laid_whole = None
        if self.extras:
            self._laid_whole = self.whole[order]
            laid = (factors - whole)[order]
            edges = np.empty(len(laid) + 1)
            edges[0] = 0.0
            np.cumsum(laid, out=edges[1:])
            edges *= self.extras / edges[-1]
            np.minimum(edges, self.extras, out=edges)
            edges[-1] = self.extras  # the last edge is exactly M: every epoch has M extras
            self._edges = edges

    def laid_copies(self, epoch: int, dtype: type = np.int32) -> np.ndarray:
        """Copies in the laid-out order: sample ``order[j]`` gets entry ``j``."""
        if self._edges is None:
            return self.whole[self._order].astype(dtype, copy=False)
        phase = (self._offset + epoch * _GOLDEN) % 1.0
        # Increments of the edges are below 1, so each sample's stretch holds 0 or 1 point.
        points = self._edges - phase
        np.floor(points, out=points)
        # The differences of whole floats are exact: cast straight into the integer output
        # (one pass; a float diff and then a cast cost four times as much at N = 10M).
        copies = np.empty(len(points) - 1, dtype=dtype)
        np.subtract(points[1:], points[:-1], out=copies, casting="unsafe")
        copies += self._laid_whole
        return copies

    def copies(self, epoch: int) -> np.ndarray:
        """Copies of every sample in dataset order, shape ``(N,)``."""
        copies = np.empty_like(self.whole)
        copies[self._order] = self.laid_copies(epoch)
        return copies

    def plan(self, epoch: int) -> np.ndarray:
        """The epoch's copies as dataset indices (unshuffled), int64: sum(copies) of them.

        8-byte items on purpose: ``np.repeat`` with int64 counts and ``Generator.shuffle`` on
        int64 items take their fast paths (3x and 1.3x faster than int32 at 10M samples); a
        shuffle's swaps depend only on the length and the stream, not on the item type."""
        return np.repeat(self._order.astype(np.int64), self.laid_copies(epoch, np.int64))


def rfs_copies(factors: np.ndarray, order: np.ndarray, offset: float, epoch: int) -> np.ndarray:
    """Copies of every sample in ``epoch`` (see :class:`RepeatRounding`)."""
    return RepeatRounding(factors, order, offset).copies(epoch)
