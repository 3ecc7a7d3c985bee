"""The ``"repeat-factor"`` kind: repeat-factor sampling (LVIS), rare-label samples repeated
within each epoch, with the fractional repeats rounded deterministically."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from balancer import _rng
from balancer._validation import check_int
from balancer.labels import NO_FINDING, MultiLabels, encode_multilabels, multilabels_of
from balancer.samplers._base import BatchType, PlanBatchSampler, multilabel_digest
from balancer.samplers._registry import SamplerKind, register

__all__ = ["RepeatFactorSampler", "RepeatRounding", "repeat_factors", "rfs_copies",
           "rfs_extra_total"]

# Design note: repeat-factor rounding
# Repeat-factor sampling (Gupta et al., LVIS, 2019) repeats sample i r_i times per epoch. Its
# fractional parts rho_i are rounded deterministically: laid end to end (in a seeded order of
# the samples) they cover [0, X), X = sum rho_i, rescaled to [0, M) with M = floor(X) (1 if
# 0 < X < 1); sample i gets one extra copy in epoch e when its stretch holds a point of
# u_e + Z, u_e = frac(u_0 + e * phi) (phi the golden ratio, a Weyl sequence). Every epoch then
# has exactly sum floor(r_i) + M slots, on every rank, and sample i's extra copies over E
# epochs are E * rho_i * M / X up to the sequence's discrepancy (O(log E)).

_GOLDEN = (5**0.5 - 1) / 2


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
        # (one pass instead of a float diff and then a cast).
        copies: np.ndarray = np.empty(len(points) - 1, dtype=dtype)
        np.subtract(points[1:], points[:-1], out=copies, casting="unsafe")
        copies += self._laid_whole
        return copies

    def copies(self, epoch: int) -> np.ndarray:
        """Copies of every sample in dataset order, shape ``(N,)``."""
        copies = np.empty_like(self.whole)
        copies[self._order] = self.laid_copies(epoch)
        return copies

    def copy_indices(self, epoch: int) -> np.ndarray:
        """The epoch's copies as dataset indices (unshuffled), int64: sum(copies) of them.

        8-byte items on purpose: ``np.repeat`` with int64 counts and ``Generator.shuffle`` on
        int64 items take their fast paths (faster than with int32); a shuffle's swaps depend
        only on the length and the stream, not on the item type."""
        return np.repeat(self._order.astype(np.int64), self.laid_copies(epoch, np.int64))


def rfs_copies(factors: np.ndarray, order: np.ndarray, offset: float, epoch: int) -> np.ndarray:
    """Copies of every sample in ``epoch`` (see :class:`RepeatRounding`)."""
    return RepeatRounding(factors, order, offset).copies(epoch)


class RepeatFactorSampler(PlanBatchSampler):
    r"""Repeat-factor sampling (LVIS): rare-label samples repeat within each epoch.

    With :math:`f(c)` the share of samples carrying category :math:`c` (each label; and "no
    finding" for samples without any, its own category), the category repeat factor is
    :math:`r(c) = \max(1, \sqrt{t / f(c)})` and a sample's is the largest over its categories,
    :math:`r_i = \max_{c \in i} r(c)`. An epoch holds :math:`\lfloor r_i \rfloor` copies of
    sample :math:`i` plus one more in a share :math:`\rho_i = r_i - \lfloor r_i \rfloor` of the
    epochs, shuffled. The extra copies are rounded deterministically, not drawn at random: the
    fractional parts are laid end to end and every epoch places exactly
    :math:`M = \lfloor \sum_i \rho_i \rfloor` points among them on a Weyl sequence, so every
    epoch has exactly :attr:`samples_per_epoch` :math:`= \sum_i \lfloor r_i \rfloor + M`
    slots (the same on every rank, every epoch), and over :math:`E` epochs sample :math:`i`
    gets :math:`E \rho_i M / \sum_j \rho_j` extra copies up to :math:`O(\log E)`.

    Works for single-label data too: a 1-D array of class ids, each sample carrying one class.

    Args:
        labels: multi-label targets (see :class:`MultiLabelBalancedSampler`; ``L >= 1``) or one
            integer class per sample.
        batch_size: samples per batch: consecutive slices of the epoch's shuffled copies.
        threshold: :math:`t` in :math:`(0, 1]`: categories rarer than this are repeated. LVIS
            uses 0.001 for 1,203 categories; with 14 findings, 0.05 - 0.2 is more typical.
        schedule: optional :class:`~balancer.FineTuneSchedule`: its fine-tune epochs are one
            pass at the true frequencies, the other epochs repeat-factor epochs. Refused when no
            sample is repeated (every epoch is already at the true frequencies).
        seed, drop_last, num_replicas, rank, names, no_finding, batch_type: as for
            :class:`MultiLabelBalancedSampler`.

    Attributes:
        repeat_factors: :math:`r_i` per sample, shape ``(N,)``.
        category_repeat_factors: :math:`r(c)` per label (then "no finding" when present).
        samples_per_epoch: slots of every repeat-factor epoch.
        label_positive_rate: per label, its expected share of an epoch's slots.

    Example:
        >>> findings = ["Mass"] * 2 + ["Effusion|Mass"] + ["No Finding"] * 9 + ["Effusion"] * 4
        >>> sampler = RepeatFactorSampler(findings, batch_size=4, threshold=0.5, seed=0)
        >>> [round(float(r), 2) for r in sampler.category_repeat_factors]  # Effusion, Mass, none
        [1.26, 1.63, 1.0]
        >>> sampler.samples_per_epoch, len(sampler)
        (18, 5)
    """

    def __init__(self, labels: Any, batch_size: int, *, threshold: float = 0.001,
                 seed: int | None = 0, drop_last: bool = False, schedule: Any = None,
                 num_replicas: int | None = None, rank: int | None = None,
                 names: Sequence[Any] | None = None, no_finding: str = NO_FINDING,
                 batch_type: BatchType = "list") -> None:
        with self._built_together(num_replicas, seed):
            targets = encode_multilabels(labels, "labels", names=names, no_finding=no_finding,
                                         min_labels=1, classes=True)
            if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
                raise TypeError(f"threshold should be a number in (0, 1], but got "
                                f"threshold={threshold!r} of type {type(threshold).__name__}")
            threshold = float(threshold)
            if not 0.0 < threshold <= 1.0:
                raise ValueError(
                    f"threshold should be in (0, 1], but got threshold={threshold!r}; it is the "
                    f"category frequency below which samples are repeated (LVIS: 0.001)")
            self.threshold: float = threshold
            factors, per_category = repeat_factors(targets, threshold)
            # A schedule without fine-tune epochs only counts epochs (framework adapters pass
            # one for total_batches()), so it applies whatever the factors are.
            finetunes = getattr(schedule, "finetune_epochs", 0) > 0
            if finetunes and not (factors > 1.0).any():
                rarest = float(targets.counts.min() / targets.num_samples)
                raise ValueError(
                    f"a fine-tune schedule does not apply here: with threshold={threshold} no "
                    f"category is rarer than the threshold (the rarest has frequency {rarest:.4g}), "
                    f"so no sample is repeated and every epoch is already at the true frequencies. "
                    f"Raise threshold above {rarest:.4g}, or use a schedule with "
                    f"finetune_epochs=0 (or none)"
                )
            super().__init__(num_samples=targets.num_samples, batch_size=batch_size, seed=seed,
                             drop_last=drop_last, schedule=schedule, num_replicas=num_replicas,
                             rank=rank, batch_type=batch_type)
            self._targets: MultiLabels = targets
            self.label_names: np.ndarray = targets.names
            self.label_counts: np.ndarray = targets.counts
            self.repeat_factors: np.ndarray = factors
            self.category_repeat_factors: np.ndarray = per_category
            whole, extras = rfs_extra_total(factors)
            self.samples_per_epoch: int = whole + extras
            rows = targets.rows()
            self.label_positive_rate: np.ndarray = np.bincount(
                targets.indices, weights=factors[rows], minlength=targets.num_labels
            ) / factors.sum()
            generator = _rng.Streams(self.seed).get(_rng.RFS_ORDER)
            order = generator.permutation(targets.num_samples).astype(self._index_dtype())
            self._rounding: RepeatRounding = RepeatRounding(factors, order, float(generator.random()))
            self._cache: tuple[int, np.ndarray] | None = None
            self._check_layouts()
        self._agree_across_ranks()

    def copies(self, epoch: int) -> np.ndarray:
        """Copies of every sample in repeat-factor epoch ``epoch``, shape ``(N,)``."""
        epoch = check_int("epoch", epoch, minimum=0, fix="pass a 0-based epoch number")
        return self._rounding.copies(self._balanced_epochs_before(epoch))

    # An epoch's slots are one uniform shuffle of its copies (see _balanced_slots).
    _SHUFFLE_IN_BATCH = False

    # ------------------------------------------------------------------ the kind's hooks
    def _balanced_length(self, epoch: int) -> int:
        return self.samples_per_epoch

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        if self._cache is None or self._cache[0] != epoch:
            # An epoch's copies, in an order drawn from its own stream: O(samples_per_epoch).
            copies = self._rounding.copy_indices(self._balanced_epochs_before(epoch))
            _rng.Streams(self.seed).get(_rng.RFS_EPOCH, epoch).shuffle(copies)
            self._cache = (epoch, copies)  # int64 (see RepeatRounding.copy_indices)
        copies = self._cache[1]
        if slot_end > len(copies):  # padding for whole batches per rank: wrap around
            copies = np.resize(copies, slot_end)
        # A copy in the index dtype: the caller may shuffle what it gets in place.
        yield copies[slot_start:slot_end].astype(self._index_dtype())

    def _labels_digest(self) -> bytes:
        return multilabel_digest(self._targets)

    def _kind_settings(self) -> dict[str, Any]:
        # Revision 2: batches keep the epoch's shuffled order (revision 1 shuffled inside every
        # batch again); a state saved by revision 1 is refused, as its batches differ.
        return {"revision": 2, "threshold": self.threshold}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(labels={len(self.label_names)}, "
                f"samples={self._num_samples}, batch_size={self.batch_size}, "
                f"threshold={self.threshold}, seed={self.seed}, drop_last={self.drop_last}, "
                f"schedule={self.schedule!r}, num_replicas={self.num_replicas}, rank={self.rank})")


def _read_labels(dataset: Any, labels: Any) -> MultiLabels:
    return multilabels_of(dataset, labels, classes=True)


register(SamplerKind(name="repeat-factor", sampler_class=RepeatFactorSampler, labels="multi",
                     state_id="repeat-factor", read_labels=_read_labels))
