"""What every balancer batch sampler shares, whatever its kind: batching, sharding, resume.

A subclass decides which dataset indices fill the slots of a balanced epoch; this base cuts
that stream of slots into the plan (the batches of an epoch, all ranks' together). It shuffles
inside balanced batches, deals whole batches to the ranks of a distributed run and pads epochs
so that every rank yields the same number of full batches. It runs fine-tune epochs (one
shuffled pass at the true frequencies), counts batches for ``state_dict`` /
``load_state_dict`` and checks that every rank built the same plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from balancer import _rng
from balancer._distributed import shared_seed
from balancer._schedule import Phase
from balancer._validation import check_bool, check_int
from balancer.samplers._registry import describe_state_id, kind_of_class

if TYPE_CHECKING:
    from balancer.labels import MultiLabels

__all__ = ["BatchType", "PlanBatchSampler", "multilabel_digest"]

_STATE_VERSION = 1
_MAX_EPOCH = 2**32 - 1  # keeps every position of the plan within int64 arithmetic

#: What a sampler yields for each batch: a ``list`` of ints (what ``DataLoader`` expects from any
#: dataset), a numpy ``int64`` array or an ``int64`` tensor (cheaper, for datasets whose
#: ``__getitems__`` takes an array).
BatchType = Literal["list", "numpy", "tensor"]
_BATCH_TYPES = ("list", "numpy", "tensor")


class PlanBatchSampler(Sampler[list[int]]):
    """Base of the balancer samplers: a stream of slots, cut into batches and dealt to ranks.

    Subclasses implement:

    - ``_balanced_length(epoch) -> int``: the slots of balanced epoch ``epoch`` before rounding to
      whole batches per rank;
    - ``_balanced_slots(epoch, slot_start, slot_end)``: yield consecutive arrays of dataset
      indices covering slots ``[slot_start, slot_end)`` of that epoch (``slot_end`` can exceed
      its length when the epoch is padded: the slots then continue as they would);
    - ``_labels_digest() -> bytes`` (what fingerprints the labels) and ``_kind_settings()`` (the
      kind's own settings, recorded in :meth:`state_dict`);

    and call :meth:`_agree_across_ranks` at the end of their ``__init__``. Its registry entry
    (:class:`~balancer.samplers.SamplerKind`) gives it a name for :func:`balancer.balance` and
    the state id its :meth:`state_dict` records.
    """

    # Batches whose in-batch order comes from one random stream; part of the plan's definition.
    _ROWS_PER_GROUP = 64
    # Slots come in plan order, so the order inside each balanced batch is shuffled. An
    # independent Fisher-Yates per batch costs as much as drawing the samples themselves;
    # instead each batch takes one of a pool of random permutations of its positions (drawn
    # once per epoch) and rotates it by a random offset. Every batch's order is uniformly
    # random, and two batches share a pattern with probability 1 / pool size.
    _ORDER_POOL = 256
    _ORDER_POOL_MAX_BATCH = 1 << 14  # above this, batches are shuffled one by one
    # False for a kind whose balanced slots are already in uniformly random order (one shuffle
    # of the whole epoch): a second shuffle inside each batch would change nothing in
    # distribution and only cost time.
    _SHUFFLE_IN_BATCH = True
    # Set only by BalancedDataLoader (an _EpochHook): where frameworks look for ``set_epoch``.
    sampler: Any

    def __init__(self, *, num_samples: int, batch_size: int, seed: int | None, drop_last: bool,
                 schedule: Any, num_replicas: int | None, rank: int | None,
                 batch_type: BatchType = "list") -> None:
        self._num_samples = num_samples
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
        if batch_type not in _BATCH_TYPES:
            raise ValueError(f"batch_type should be one of {_BATCH_TYPES}, but got "
                             f"batch_type={batch_type!r}; 'list' works with every dataset")
        self.batch_type: BatchType = batch_type
        self.num_replicas, self.rank = _resolve_replicas(num_replicas, rank)
        self.epoch = 0
        self._resume_from = 0  # where the next iteration starts (set by load_state_dict)
        self._started_at = 0  # where the pending or running iteration started, for len()
        self._yielded = 0
        # Bumped whenever the position changes under a running iteration (set_epoch to another
        # epoch, load_state_dict): that iteration then stops counting and refuses to go on.
        self._generation = 0
        self._finished_epoch: int | None = None  # epoch last iterated to its end
        self._iterated_epoch: int | None = None  # epoch of the last iteration that yielded
        self._warned_repeat = False
        self._fingerprint_cache: str | None = None

    # ------------------------------------------------------------------ the kind's hooks
    def _balanced_length(self, epoch: int) -> int:
        raise NotImplementedError

    def _balanced_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _labels_digest(self) -> bytes:
        raise NotImplementedError

    def _kind_settings(self) -> dict[str, Any]:
        return {}

    def _state_id(self) -> str | None:
        """What :meth:`state_dict` records as ``settings["plan"]``: the registered kind's id."""
        kind = kind_of_class(type(self))
        return None if kind is None else kind.state_id

    def _index_dtype(self) -> np.dtype:
        return np.dtype(np.int32 if self._num_samples < 2**31 else np.int64)

    # ------------------------------------------------------------------ epochs and phases
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose batches the next iteration yields.

        The batches of an epoch depend only on ``(seed, epoch)``, the labels and the settings, so
        epoch 7 can be produced without producing 0-6, and iterating the same epoch twice gives
        the same batches. Setting a different epoch than the current one discards a pending
        resume position (see :meth:`load_state_dict`) and ends a running iteration (advancing it
        raises); setting the same epoch keeps both, so the usual
        ``for epoch in range(start, n): sampler.set_epoch(epoch)`` loop resumes correctly.
        """
        epoch = check_int("epoch", epoch, minimum=0, maximum=_MAX_EPOCH,
                          fix="pass the 0-based number of the epoch about to start, as in "
                              "`for epoch in range(epochs): sampler.set_epoch(epoch)`")
        self._phase_of(epoch)  # a schedule rejects epochs outside its range
        if epoch != self.epoch:
            self._resume_from = self._started_at = self._yielded = 0
            self._generation += 1
        elif self._finished_epoch == epoch:  # the same epoch again, from its start
            self._started_at = self._yielded = 0
        self.epoch = epoch
        self._finished_epoch = self._iterated_epoch = None

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

    def _layout_of(self, samples: int, phase: Phase) -> tuple[int, int]:
        """(slots, global batches) of an epoch of ``samples`` samples after rounding.

        A balanced epoch that is not a whole number of full batches per rank is extended by
        continuing the plan (nothing is dropped, whatever ``drop_last``); a fine-tune epoch
        is padded by repeating the first samples of its pass, or with ``drop_last`` cut down.
        """
        size, replicas = self.batch_size, self.num_replicas
        if replicas == 1 and not self.drop_last:
            return samples, -(-samples // size)
        per_round = size * replicas
        if phase == "finetune" and self.drop_last:
            rounds = samples // per_round
        else:
            rounds = -(-samples // per_round)
        return rounds * per_round, rounds * replicas

    def _past_end(self, epoch: int) -> bool:
        """Whether ``epoch`` is just past the schedule's last epoch: where a finished run's
        checkpoint points (a valid position that yields nothing)."""
        return epoch == getattr(self.schedule, "total_epochs", None)

    def _layout(self, epoch: int) -> tuple[Phase, int, int]:
        if self._past_end(epoch):
            return "finetune", 0, 0
        phase = self._phase_of(epoch)
        samples = self._balanced_length(epoch) if phase == "balanced" else self._num_samples
        return (phase, *self._layout_of(samples, phase))

    def _check_layouts(self) -> None:
        """Refuse settings under which an epoch would yield no batch at all."""
        if self.schedule is not None and self._layout_of(self._num_samples, "finetune")[1] == 0:
            raise ValueError(
                f"a fine-tune epoch of {self._num_samples} samples gives no batch per replica "
                f"with batch_size={self.batch_size}, num_replicas={self.num_replicas} and "
                f"drop_last=True; lower batch_size, or pass drop_last=False"
            )

    def _batches_per_replica(self, epoch: int) -> int:
        return self._layout(epoch)[2] // self.num_replicas

    def batches_in_epoch(self, epoch: int | None = None) -> int:
        """Batches this rank yields in the whole of ``epoch`` (default: the current epoch).

        Unlike ``len()``, it does not shrink for an iteration resumed mid-epoch: it is what a
        framework that counts the batches already done (Lightning) adds them to.

        Example:
            >>> from balancer import BalancedBatchSampler, FineTuneSchedule
            >>> sampler = BalancedBatchSampler([0] * 90 + [1] * 10, batch_size=10,
            ...                                schedule=FineTuneSchedule(2, 1))
            >>> sampler.batches_in_epoch(0), sampler.batches_in_epoch(1)  # 2 x 90, then 100
            (18, 10)
        """
        if epoch is None:
            epoch = self.epoch
        epoch = check_int("epoch", epoch, minimum=0, maximum=_MAX_EPOCH,
                          fix="pass an epoch number of the run")
        return self._batches_per_replica(epoch)

    def __len__(self) -> int:
        """Batches this rank yields in its next (or running) iteration of the current epoch.

        That is the whole epoch, or, for an iteration resumed by :meth:`load_state_dict`, what
        remained of it when it was saved.
        """
        return self._batches_per_replica(self.epoch) - self._started_at

    def total_batches(self, epochs: int | None = None) -> int:
        """Batches this rank yields over epochs ``0 .. epochs - 1``, for step-based schedulers.

        ``None`` takes the schedule's ``total_epochs``. The length of an epoch follows its phase
        (a fine-tune epoch is one pass over the data, usually far shorter than a balanced one),
        so ``len(loader) * epochs`` is wrong with a schedule; give this to a learning-rate
        schedule or a framework's ``max_steps`` instead.
        """
        if epochs is None:
            epochs = getattr(self.schedule, "total_epochs", None)
            if epochs is None:
                raise ValueError("total_batches() needs epochs=N without a schedule that has "
                                 "total_epochs; pass the number of epochs you train")
        epochs = check_int("epochs", epochs, minimum=0,
                           fix="pass the number of epochs you train")
        return sum(self._batches_per_replica(e) for e in range(epochs))

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self.epoch, self._resume_from
        if self._iterated_epoch == epoch and not self._warned_repeat and start == 0:
            self._warned_repeat = True
            warnings.warn(
                f"{type(self).__name__}: epoch {epoch} is being iterated again without "
                f"set_epoch() since an earlier iteration of it, so it repeats the same batches"
                f"{' and the schedule never reaches its fine-tune phase' if self.schedule else ''}"
                f". Call loader.set_epoch(epoch) (or sampler.set_epoch(epoch)) at the start of "
                f"every epoch: `for epoch in range(epochs): loader.set_epoch(epoch)`",
                UserWarning, stacklevel=2)
        self._resume_from = 0
        self._started_at = self._yielded = start
        generation = self._generation
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
        shuffled = phase == "balanced" and self._SHUFFLE_IN_BATCH
        pool = self._order_pool(epoch, streams) if shuffled else None
        convert = _CONVERTERS[self.batch_type]
        reader = _SlotReader(stream)
        while group * per_group < batches:
            base = group * per_group
            rows = min(per_group, batches - base)
            chunk = reader.take(min(rows * size, slots - base * size))
            full = chunk.size // size
            matrix = chunk[: full * size].reshape(full, size)
            tail = chunk[full * size:].copy()  # shuffled below: never the plan's own array
            lowest = max(first_global, base)
            first = lowest + (rank - lowest) % replicas  # this rank's first batch in the group
            if shuffled:
                mine = self._shuffle_rows(matrix, pool, streams, epoch, group, first - base)
                if tail.size:  # the short last batch of a single-replica epoch
                    streams.get(_rng.INBATCH_POOL, epoch, 1).shuffle(tail)
            else:
                mine = matrix[first - base:: replicas]
            for batch in convert(mine):
                self._check_generation(generation, epoch)
                self._yielded += 1
                # Started is enough: a loop that breaks early every epoch repeats them too.
                self._iterated_epoch = epoch
                yield batch
            if tail.size and (base + full) % replicas == rank and base + full >= first_global:
                self._check_generation(generation, epoch)
                self._yielded += 1
                self._iterated_epoch = epoch
                yield convert(tail[None])[0]
            group += 1
        if self._generation == generation:
            self._finished_epoch = epoch
            if self._started_at == start:
                self._started_at = 0  # a finished resumed iteration: the next one is whole again

    def _check_generation(self, generation: int, epoch: int) -> None:
        if self._generation != generation:
            raise RuntimeError(
                f"{type(self).__name__}: this iteration of epoch {epoch} was ended by "
                f"set_epoch({self.epoch}) or load_state_dict() while it was running; start a "
                f"new iteration (iter(loader)) for the new position instead of advancing the "
                f"old one"
            )

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

    def _finetune_slots(self, epoch: int, slot_start: int, slot_end: int) -> Iterator[np.ndarray]:
        """One permutation of all samples (wrapping around to pad whole batches per rank)."""
        permutation = _rng.Streams(self.seed).get(_rng.FINETUNE, epoch).permutation(
            self._num_samples).astype(self._index_dtype(), copy=False)
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
            # The key is "plan" for the checkpoints written before the registry named kinds.
            **({} if (state_id := self._state_id()) is None else {"plan": state_id}),
            **self._kind_settings(),
            "num_replicas": self.num_replicas,
            # A schedule without state_dict() is known by its type: its repr may hold an address.
            "schedule": schedule.state_dict() if callable(getattr(schedule, "state_dict", None))
            else None if schedule is None else type(schedule).__qualname__,
        }

    def _fingerprint(self) -> str:
        if self._fingerprint_cache is None:
            self._fingerprint_cache = hashlib.sha256(self._labels_digest()).hexdigest()[:32]
        return self._fingerprint_cache

    def _agree_across_ranks(self) -> None:
        """Under an initialised process group, check that every rank built the same plan.

        One ``all_gather_object`` of a few short strings, at construction: ranks that disagree
        (another seed, labels in another order, a shorter dataset) would otherwise train on
        overlapping, unbalanced shards, or yield different numbers of batches and hang DDP.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size()
        if world == 1 or self.num_replicas != world:
            return  # a plan sharded over some other set of processes: nothing to compare
        mine = {"samples": self._num_samples, "labels": self._fingerprint(),
                **{k: repr(v) for k, v in self._settings().items()}}
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, {"plan": mine, "rank": self.rank, "error": None})
        failed = [(r, other["error"]) for r, other in enumerate(everyone) if other["error"]]
        if failed:
            raise ValueError(
                f"{type(self).__name__}: " + "; ".join(
                    f"process {r} could not build its sampler ({error})" for r, error in failed)
                + "; every rank must build the sampler with valid arguments"
            )
        ranks = [other["rank"] for other in everyone]
        if sorted(ranks) != list(range(world)):
            raise ValueError(
                f"{type(self).__name__}: the {world} processes passed rank={ranks} (process p "
                f"gave the p-th); each must pass its own rank, dist.get_rank(), or rank=None, "
                f"so that their shards are the whole plan"
            )
        everyone = [other["plan"] for other in everyone]
        differing = [k for k in mine if any(other[k] != mine[k] for other in everyone)]
        if differing:
            details = "; ".join(
                f"{k}: " + ", ".join(f"rank {r} {other[k]}" for r, other in enumerate(everyone))
                for k in differing)
            raise ValueError(
                f"{type(self).__name__}: the {world} ranks built different plans ({details}). "
                f"Every rank must build its sampler from the same labels, in the same order, "
                f"with the same settings and seed (seed=None is drawn once and shared; do not "
                f"pass seed=rank), so that their shards are one plan"
            )

    @contextlib.contextmanager
    def _built_together(self, num_replicas: int | None, seed: int | None) -> Iterator[None]:
        """Wrap a subclass's argument checks: a rank whose arguments are refused still joins
        the collectives the others run (the seed's broadcast for ``seed=None``, then
        :meth:`_agree_across_ranks`), with its error, so that the other ranks raise it too
        instead of waiting for it until the process group times out."""
        try:
            yield
        except (TypeError, ValueError) as error:
            if dist.is_available() and dist.is_initialized():
                world = dist.get_world_size()
                if world > 1 and num_replicas in (None, world):
                    if seed is None and not hasattr(self, "seed"):
                        shared_seed(None)  # the broadcast this rank did not reach
                    everyone: list[Any] = [None] * world
                    dist.all_gather_object(everyone, {"plan": None, "rank": None,
                                                      "error": f"{type(error).__name__}: {error}"})
            raise

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

    def state_at(self, batches_done: int) -> dict[str, Any]:
        """:meth:`state_dict` as it would be after ``batches_done`` batches of the current epoch.

        For a wrapper that knows better than the sampler how many batches the training loop has
        received (a ``DataLoader`` with workers fetches ahead; Ray Train's loader holds one batch
        back): it checkpoints ``sampler.state_at(batches_received)``.
        """
        batches_done = check_int("batches_done", batches_done, minimum=0,
                                 maximum=self._batches_per_replica(self.epoch),
                                 fix="pass the batches of the current epoch already received")
        return self._state_at(batches_done)

    def _state_at(self, batches_done: int) -> dict[str, Any]:
        epoch = self.epoch
        if batches_done >= self._batches_per_replica(epoch) and not self._past_end(epoch):
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
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"state should be a dict from {name}.state_dict(), but "
                            f"got {type(state).__name__}")
        missing = {"version", "epoch", "batches_done", "labels_fingerprint", "settings"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass a dict from "
                             f"{name}.state_dict()")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"state has version {state['version']!r}; this sampler reads "
                             f"version {_STATE_VERSION}")
        saved = state["settings"] if isinstance(state["settings"], dict) else {}
        here_id = self._state_id()
        if saved and saved.get("plan") != here_id:
            # Before the labels: each kind of sampler fingerprints them its own way, so a state
            # of another kind would be blamed on its labels.
            raise ValueError(
                f"state was taken from {describe_state_id(saved.get('plan'))}, not from a {name} "
                f"(plan: saved {saved.get('plan')!r}, here {here_id!r}); load it "
                f"into the kind of sampler that saved it"
            )
        if state["labels_fingerprint"] != self._fingerprint():
            raise ValueError(
                "state was taken from a sampler over different labels (their fingerprints differ); "
                "build the sampler on the same labels, in the same order, before loading it"
            )
        ours = self._settings()
        if saved.get("revision") != ours.get("revision"):
            # No setting rebuilds an older plan, so the generic advice below would not help.
            raise ValueError(
                f"state was taken from another revision of the {name} plan (revision: saved "
                f"{saved.get('revision')!r}, here {ours.get('revision')!r}), whose batches "
                f"differ, so its position cannot be resumed; resume with the balancer version "
                f"that saved it, or skip load_state_dict and call set_epoch(state['epoch']) to "
                f"continue from the start of that epoch with this plan"
            )
        differing = {k: (saved.get(k), v) for k, v in ours.items() if saved.get(k) != v}
        if differing:
            described = ", ".join(f"{k}: saved {before!r}, here {here!r}"
                                  for k, (before, here) in differing.items())
            raise ValueError(
                f"state was taken from a sampler with other settings ({described}); build the "
                f"sampler with the saved settings before loading it"
            )
        corrupt = "pass the dict that state_dict() returned, unchanged"
        epoch = check_int("state['epoch']", state["epoch"], minimum=0, maximum=_MAX_EPOCH,
                          fix=corrupt)
        done = check_int("state['batches_done']", state["batches_done"], minimum=0, fix=corrupt)
        if not self._past_end(epoch):
            try:
                self._phase_of(epoch)  # a schedule rejects epochs outside its range
            except ValueError as error:
                raise ValueError(
                    f"state['epoch']={epoch} is outside the schedule of this sampler ({error}); "
                    f"build the sampler with the schedule the state was saved with"
                ) from None
        if done:  # the start of an epoch is valid even just past a schedule's last epoch
            total = self._batches_per_replica(epoch)
            if total == 0:
                raise ValueError(
                    f"state['batches_done']={done} but epoch {epoch} has no batches (it is just "
                    f"past the schedule's last epoch); {corrupt}"
                )
            check_int("state['batches_done']", done, maximum=total - 1,
                      fix=f"epoch {epoch} has {total} batches per replica")
        self.epoch = epoch
        self._resume_from = self._started_at = self._yielded = done
        self._generation += 1
        self._finished_epoch = self._iterated_epoch = None


def multilabel_digest(targets: MultiLabels) -> bytes:
    """What fingerprints multi-label targets: their names and their positives."""
    digest = hashlib.sha256(repr(targets.names.tolist()).encode())
    digest.update(np.ascontiguousarray(targets.indptr).tobytes())
    digest.update(np.ascontiguousarray(targets.indices).tobytes())
    return digest.digest()


def _as_lists(rows: np.ndarray) -> list[list[int]]:
    return rows.tolist()


def _as_arrays(rows: np.ndarray) -> list[np.ndarray]:
    return list(rows.astype(np.int64))  # views of one new array: no batch aliases the plan's


def _as_tensors(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    return torch.from_numpy(rows.astype(np.int64)).unbind(0)


_CONVERTERS: dict[str, Callable[[np.ndarray], Sequence[Any]]] = {"list": _as_lists, "numpy": _as_arrays, "tensor": _as_tensors}


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
        parts: list[np.ndarray] = []
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
