"""Batch samplers for multi-label data: label-balanced batches and repeat-factor sampling."""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from balancer import _rng
from balancer._base import BatchType, PlanBatchSampler
from balancer._multilabel_labels import NO_FINDING, MultiLabels, encode_multilabels
from balancer._multilabel_plan import (
    Buckets,
    CircularBuffers,
    PatternPlan,
    RepeatRounding,
    balanced_pattern,
    pattern_length,
    repeat_factors,
    rfs_extra_total,
)
from balancer._validation import check_int

__all__ = ["MultiLabelBalancedSampler", "RepeatFactorSampler"]


def _digest(targets: MultiLabels) -> bytes:
    digest = hashlib.sha256(repr(targets.names.tolist()).encode())
    digest.update(np.ascontiguousarray(targets.indptr).tobytes())
    digest.update(np.ascontiguousarray(targets.indices).tobytes())
    return digest.digest()


class MultiLabelBalancedSampler(PlanBatchSampler):
    r"""Batches in which every label's positives come as close to equal as co-occurrence allows.

    Each label, and the *no-finding* bucket of samples without any label, keeps a circular
    buffer of its samples: a shuffled order of them, reshuffled and restarted when it runs out,
    continuing across epochs. The bucket of each slot comes from a greedy rule: the next slot
    goes to the bucket furthest below the common target, counting every label a drawn sample
    carries. With :math:`A_{kj}` the share of bucket :math:`k`'s samples that carry label
    :math:`j` (co-occurrence), a draw from bucket :math:`k` adds :math:`A_{k\cdot}` to the counts
    and the next slot goes to :math:`\arg\min_k c_k`. Because the rule counts a draw's expected
    labels, the bucket sequence depends on the labels only: one fixed pattern of ``R`` slots
    repeated in every balanced epoch, which is what makes any epoch, and any batch in it,
    addressable without replaying the ones before. A label that mostly comes with others (on
    ChestX-ray14, Infiltration) ends above the target; :attr:`label_positive_rate` reports
    what the plan reaches.

    **Epoch length.** A balanced epoch has ``samples_per_epoch`` slots, by default ``N`` (as
    many as a plain pass, so epochs, learning-rate schedules and budgets compare one to one;
    the single-label rule ``C * n_max`` would make a ChestX-ray14 epoch 8 times a plain one
    because no finding is half the data). **Coverage:** bucket ``k`` draws
    :attr:`bucket_draws_per_epoch` ``[k]`` = :math:`q_k` samples per balanced epoch from its
    buffer, continuing where the last epoch stopped, so after :math:`E` balanced epochs every
    sample has been drawn at least :math:`\lfloor E q_k / n_k \rfloor` times for each bucket
    :math:`k` it belongs to (:math:`n_k` the bucket's size), and no sample of a bucket is drawn
    twice *by that bucket* before all its samples were drawn once.

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
            of batches by continuing the plan (nothing is dropped); a fine-tune epoch drops its
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
            never be seen; the greedy still gives every bucket at least
            ``(1 - K * min_bucket_share) / K`` of the slots.
        no_finding: the token meaning "no label" in strings and lists.
        batch_type: ``"list"`` (default), ``"numpy"`` or ``"tensor"`` batches.

    Attributes:
        label_names: the labels, shape ``(L,)``.
        label_counts: positives per label in the data, shape ``(L,)``.
        label_positive_rate: per label, the share of a balanced epoch's slots whose sample
            carries it, as planned (what the buffers yield over whole passes); shape ``(L,)``.
        no_finding_rate: the share of slots given to samples without any label.
        bucket_draws_per_epoch: draws per balanced epoch of each bucket (labels, then no
            finding), counting the slots that pad an epoch to full batches per rank.

    Example:
        >>> findings = ["Mass"] * 2 + ["Effusion|Mass"] + ["No Finding"] * 9 + ["Effusion"] * 4
        >>> sampler = MultiLabelBalancedSampler(findings, batch_size=4, seed=0)
        >>> len(sampler), sampler.label_names.tolist()
        (4, ['Effusion', 'Mass'])
        >>> [round(float(r), 2) for r in sampler.label_positive_rate], round(sampler.no_finding_rate, 2)
        ([0.38, 0.42], 0.38)
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
            self._targets = targets
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
            self.min_bucket_share = float(min_bucket_share)
            shares = buckets.cooccurrence()
            self._pattern_length = pattern_length(num_buckets)
            pattern = balanced_pattern(shares, self._pattern_length, self.min_bucket_share)
            self._plan = PatternPlan(pattern, buckets.num_buckets, None)
            padded = self._layout_of(self._samples, "balanced")[0]
            self.bucket_draws_per_epoch: np.ndarray = self._plan.draws_in(padded)
            planned = self._plan.draws_in(self._samples) @ shares / self._samples
            self.label_positive_rate: np.ndarray = planned[: targets.num_labels]
            self.no_finding_rate: float = float(planned[-1]) if buckets.has_no_finding else 0.0
            self._check_layouts()
        self._agree_across_ranks()

    def _buffers(self) -> CircularBuffers:
        if self._plan.buffers is None:  # built on first use: construction stays cheap
            buckets = self._buckets
            self._plan.buffers = CircularBuffers(buckets.members, buckets.starts, buckets.counts,
                                                 _rng.Streams(self.seed), _rng.LABEL_CYCLE)
        return self._plan.buffers

    # ------------------------------------------------------------------ the plan's hooks
    def _balanced_length(self, epoch: int) -> int:
        return self._samples

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        self._buffers()
        drawn_before = self._balanced_epochs_before(epoch) * self.bucket_draws_per_epoch
        return self._plan.slots(drawn_before, slot_start, slot_end, self._index_dtype())

    def _labels_digest(self) -> bytes:
        return _digest(self._targets)

    def _plan_settings(self) -> dict[str, Any]:
        return {"plan": "label-balanced", "samples_per_epoch": self.samples_per_epoch,
                "min_bucket_share": self.min_bucket_share}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(labels={len(self.label_names)}, "
                f"samples={self._num_samples}, batch_size={self.batch_size}, seed={self.seed}, "
                f"drop_last={self.drop_last}, samples_per_epoch={self.samples_per_epoch}, "
                f"schedule={self.schedule!r}, num_replicas={self.num_replicas}, rank={self.rank})")


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
            self.threshold = threshold
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
            self._targets = targets
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
            self._rounding = RepeatRounding(factors, order, float(generator.random()))
            self._cache: tuple[int, np.ndarray] | None = None
            self._check_layouts()
        self._agree_across_ranks()

    def copies(self, epoch: int) -> np.ndarray:
        """Copies of every sample in repeat-factor epoch ``epoch``, shape ``(N,)``."""
        epoch = check_int("epoch", epoch, minimum=0, fix="pass a 0-based epoch number")
        return self._rounding.copies(self._balanced_epochs_before(epoch))

    # An epoch's slots are one uniform shuffle of its copies (see _balanced_slots).
    _SHUFFLE_IN_BATCH = False

    # ------------------------------------------------------------------ the plan's hooks
    def _balanced_length(self, epoch: int) -> int:
        return self.samples_per_epoch

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        if self._cache is None or self._cache[0] != epoch:
            # An epoch's copies, in an order drawn from its own stream: O(samples_per_epoch).
            plan = self._rounding.plan(self._balanced_epochs_before(epoch))
            _rng.Streams(self.seed).get(_rng.RFS_EPOCH, epoch).shuffle(plan)
            self._cache = (epoch, plan)  # int64 (see RepeatRounding.plan)
        plan = self._cache[1]
        if slot_end > len(plan):  # padding for whole batches per rank: wrap around
            plan = np.resize(plan, slot_end)
        # A copy in the index dtype: the caller may shuffle what it gets in place.
        yield plan[slot_start:slot_end].astype(self._index_dtype())

    def _labels_digest(self) -> bytes:
        return _digest(self._targets)

    def _plan_settings(self) -> dict[str, Any]:
        # Revision 2: batches keep the epoch's shuffled order (revision 1 shuffled inside every
        # batch again); a state saved by revision 1 is refused, as its batches differ.
        return {"plan": "repeat-factor", "revision": 2, "threshold": self.threshold}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(labels={len(self.label_names)}, "
                f"samples={self._num_samples}, batch_size={self.batch_size}, "
                f"threshold={self.threshold}, seed={self.seed}, drop_last={self.drop_last}, "
                f"schedule={self.schedule!r}, num_replicas={self.num_replicas}, rank={self.rank})")
