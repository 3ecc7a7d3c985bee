"""Balanced batches in the Hugging Face ``Trainer``: ``BalancedTrainer(..., finetune_epochs=k)``.

The ``Trainer`` sizes a run from the length of the first epoch's loader: ``max_steps`` (and so
the LR schedule), the number of steps in every epoch, and on resume which epoch and batch a
global step falls in. Balanced epochs (``C * n_max`` samples) and fine-tune epochs (``N``) differ
in length, so a plain ``Trainer`` given a balanced loader cuts or stretches epochs, stops early or
late, and never finishes its LR schedule (a ``Trainer`` subclass whose ``get_train_dataloader``
returns ``balance(loader)`` with a fine-tune schedule gets the plan's batches, each epoch for its
own length, but plans ``max_steps`` from the first epoch; the loader warns, naming this class, at
the first epoch). :class:`BalancedTrainer` is a ``Trainer`` whose
training loader is balanced (through :func:`balancer.integrations.accelerate.prepare`, which the
Trainer's Accelerate sharding needs) and whose step counts come from
:meth:`~balancer.BalancedBatchSampler.total_batches`, epoch by epoch.

Example::

    from balancer.integrations.transformers import BalancedTrainer

    trainer = BalancedTrainer(model=model, args=TrainingArguments(num_train_epochs=10, ...),
                              train_dataset=train_set, finetune_epochs=2)
    trainer.train()  # or trainer.train(resume_from_checkpoint=True)

BatchNorm in the fine-tune epochs: ``BalancedTrainer(..., batchnorm="frozen")`` keeps every
BatchNorm layer in eval mode in the fine-tune training steps (running statistics of the balanced
epochs kept, affine weights still trained). The ``Trainer`` calls ``model.train()`` at the start
of every ``training_step``; the policy is applied right after it, in
``compute_loss_context_manager`` (which ``training_step`` enters just before the forward pass),
so a subclass may still override ``training_step`` or ``compute_loss`` as long as its step calls
``self.compute_loss_context_manager()`` as the Trainer's does.

Labels are read as :func:`balancer.labels_of` reads them (a ``datasets.Dataset``'s
``label``/``labels`` column, without decoding any row), or given with ``labels=``.

Written against the ``Trainer`` of transformers 5.x: it overrides the private
``set_initial_training_values``, ``_init_training_state`` and ``_run_epoch`` steps of the
training loop (the places that assume equal epochs), and the public ``get_train_dataloader``
and ``compute_loss_context_manager``.
"""

from __future__ import annotations

import inspect
import itertools
import math
from functools import partial
from typing import Any

import transformers
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, IterableDataset

from balancer._schedule import BatchNormPolicy, FineTuneSchedule, check_batchnorm
from balancer._validation import check_int
from balancer.integrations.accelerate import prepare
from balancer.samplers import PlanBatchSampler, sampler_kind, sampler_kinds

__all__ = ["BalancedTrainer"]

_LOOP_STEPS = ("set_initial_training_values", "_init_training_state", "_run_epoch")


def _refuse_sampler_options_as_keywords(kwargs: dict[str, Any], sampler: Any) -> None:
    """An option of a sampler given to ``BalancedTrainer`` itself would reach the ``Trainer``,
    which fails with "unexpected keyword argument"; say where it goes instead."""
    trainer_keywords = inspect.signature(transformers.Trainer.__init__).parameters
    # What every kind takes (seed, batch_size, schedule, ...) BalancedTrainer sets itself.
    common = frozenset.intersection(*(kind.options for kind in sampler_kinds()))
    for name, value in kwargs.items():
        kinds = [kind.name for kind in sampler_kinds() if name in kind.options]
        if name in trainer_keywords or name in common or not kinds:
            continue
        chosen = sampler if isinstance(sampler, str) else getattr(sampler, "__name__", sampler)
        kind_fix = "" if chosen in kinds else f"sampler={kinds[0]!r}, "
        raise TypeError(
            f"{name}={value!r} is an option of the {' / '.join(map(repr, kinds))} sampler, not "
            f"of the Trainer; pass it in sampler_options: "
            f"BalancedTrainer(..., {kind_fix}sampler_options={{{name!r}: {value!r}}})")


def _refuse_stream(dataset: Any) -> None:
    """The run's steps come from every epoch's length, which a stream does not know."""
    if isinstance(dataset, IterableDataset):
        raise TypeError(
            f"train_dataset is an IterableDataset ({type(dataset).__name__}): BalancedTrainer "
            f"plans the run's steps from the length of every epoch, which a stream does not "
            f"know, so balanced streams are not supported here. Train the stream in your own "
            f"loop with balancer.integrations.accelerate.prepare(accelerator, DataLoader(stream, "
            f"batch_size=...), labels, classes=...), or with balancer.integrations.lightning; or "
            f"give BalancedTrainer a map-style dataset"
        )


class BalancedTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` that trains on balanced batches, then ``finetune_epochs`` epochs
    at the true class frequencies, with every epoch's real length.

    Args:
        *args, **kwargs: as for ``transformers.Trainer``. ``args.num_train_epochs`` must be a
            whole number and ``args.max_steps`` unset: the run is whole epochs of the schedule.
        finetune_epochs: final epochs at the true frequencies, in ``[0, num_train_epochs]``.
        batchnorm: what BatchNorm layers do in the fine-tune epochs, as for
            :class:`~balancer.FineTuneSchedule`: ``"train"`` (default; statistics re-estimated
            at the true frequencies) or ``"frozen"`` (eval mode in every fine-tune training
            step, after the Trainer's own ``model.train()``).
        labels: where the class of every training item is; see :func:`balancer.labels_of`.
        samples_per_epoch: optional length of a balanced epoch; see the sampler.
        sampler: the kind of sampler, as for :func:`balancer.balance`: ``"balanced"``, or
            ``"label-balanced"`` / ``"repeat-factor"`` for multi-label targets.
        sampler_options: further keywords of that sampler, as a dict, e.g.
            ``{"threshold": 0.1}``; such a keyword given to ``BalancedTrainer`` itself is a
            ``TypeError`` that shows it inside ``sampler_options``.

    The plan's seed is ``args.seed``. ``trainer.balanced_sampler`` is this process's sampler once
    training has started.
    """

    def __init__(self, *args: Any, finetune_epochs: int = 0,
                 batchnorm: BatchNormPolicy = "train", labels: Any = None,
                 samples_per_epoch: int | None = None, sampler: str | type = "balanced",
                 sampler_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        missing = [name for name in _LOOP_STEPS if not callable(getattr(transformers.Trainer,
                                                                         name, None))]
        if missing:
            # An older Trainer runs its loop in one method: overriding nothing, the run would
            # silently keep the first epoch's length.
            raise ImportError(
                f"BalancedTrainer needs transformers>=5 (its Trainer splits the training loop "
                f"into {', '.join(_LOOP_STEPS)}); transformers {transformers.__version__} lacks "
                f"{', '.join(missing)}: pip install 'balancer[hf]'"
            )
        if sampler_options is not None and not isinstance(sampler_options, dict):
            raise TypeError(
                f"sampler_options should be a dict of the sampler's keywords, e.g. "
                f"sampler_options={{'threshold': 0.1}}, but got "
                f"sampler_options={sampler_options!r} ({type(sampler_options).__name__})")
        _refuse_sampler_options_as_keywords(kwargs, sampler)
        batchnorm = check_batchnorm(batchnorm)  # before the Trainer's (slow) construction
        _refuse_stream(kwargs.get("train_dataset"))
        super().__init__(*args, **kwargs)
        epochs = self.args.num_train_epochs
        if epochs != int(epochs) or epochs < 1:
            raise ValueError(f"args.num_train_epochs={epochs!r}; a balanced run is whole epochs of "
                             f"its schedule: pass a positive whole number")
        if self.args.max_steps > 0:
            raise ValueError(f"args.max_steps={self.args.max_steps}; BalancedTrainer computes the "
                             f"run's steps from its epochs (balanced and fine-tune differ in "
                             f"length): leave max_steps unset and set num_train_epochs")
        finetune_epochs = check_int("finetune_epochs", finetune_epochs, minimum=0,
                                    maximum=int(epochs),
                                    fix=f"it must lie in [0, num_train_epochs={int(epochs)}]")
        self.balanced_schedule = FineTuneSchedule(int(epochs), finetune_epochs,
                                                  batchnorm=batchnorm)
        self.balanced_sampler: PlanBatchSampler | None = None  # set by get_train_dataloader
        self._balanced_labels = labels
        self._balanced_samples_per_epoch = samples_per_epoch
        # A bad name or option fails here, not in train().
        self._balanced_kind = sampler_kind(sampler, sampler_options)
        self._balanced_options = dict(sampler_options or {})

    # ------------------------------------------------------------------ the loader
    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("BalancedTrainer needs a train_dataset")
        dataset = self.train_dataset
        # Labels from the dataset as given: column removal below may drop the label column.
        labels = self._balanced_kind.read_labels(dataset, self._balanced_labels)
        collator = self.data_collator
        if hasattr(dataset, "column_names"):  # a datasets.Dataset: the Trainer's own preparation
            dataset = self._remove_unused_columns(dataset, description="Training")
        else:
            collator = self._get_collator_with_removed_columns(collator, description="Training")
        args = self.args
        settings: dict[str, Any] = {
            "collate_fn": collator, "num_workers": args.dataloader_num_workers,
            "pin_memory": args.dataloader_pin_memory,
            "persistent_workers": args.dataloader_persistent_workers,
            "worker_init_fn": partial(transformers.trainer_utils.seed_worker,
                                      num_workers=args.dataloader_num_workers,
                                      rank=args.process_index),
        }
        if args.dataloader_num_workers > 0:
            settings["prefetch_factor"] = args.dataloader_prefetch_factor
            settings["multiprocessing_context"] = args.dataloader_multiprocessing_context
        plain = DataLoader(dataset, batch_size=self._train_batch_size,
                           drop_last=args.dataloader_drop_last, **settings)
        loader = prepare(self.accelerator, plain, labels, schedule=self.balanced_schedule,
                         seed=args.seed, samples_per_epoch=self._balanced_samples_per_epoch,
                         sampler=self._balanced_kind.name, **self._balanced_options)
        self.balanced_sampler = loader.balanced_sampler
        return loader

    # ------------------------------------------------------------------ step counts
    def _epoch_lengths(self) -> list[int]:
        sampler = self.balanced_sampler
        assert sampler is not None  # the Trainer builds its loader before counting steps
        totals = [sampler.total_batches(e) for e in range(self.balanced_schedule.total_epochs + 1)]
        return [after - before for before, after in itertools.pairwise(totals)]

    def _update_steps(self, batches: int) -> int:
        accumulate = self.args.gradient_accumulation_steps
        return max(math.ceil(batches / accumulate), 1)

    def set_initial_training_values(self, args: Any, dataloader: Any) -> tuple:
        values: list[Any] = list(super().set_initial_training_values(args, dataloader))
        lengths = self._epoch_lengths()
        # (num_train_epochs, num_update_steps_per_epoch, num_examples, num_train_samples,
        #  total_train_batch_size, steps_in_epoch, max_steps): the run is the schedule's epochs,
        # and max_steps -- which sizes the LR schedule and ends the run -- their update steps.
        values[0] = len(lengths)
        values[3] = sum(lengths) * values[4] // max(args.gradient_accumulation_steps, 1)
        values[6] = sum(self._update_steps(length) for length in lengths)
        return tuple(values)

    def _init_training_state(self, max_steps: int, num_update_steps_per_epoch: int,
                             num_train_epochs: int, resume_from_checkpoint: Any,
                             trial: Any) -> tuple[int, int]:
        epochs_trained, steps_in_epoch = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial)
        if resume_from_checkpoint is None or self.state.global_step == 0:
            return epochs_trained, steps_in_epoch
        # The Trainer divides the global step by the first epoch's length; walk the real ones.
        remaining = self.state.global_step
        for epoch, length in enumerate(self._epoch_lengths()):
            updates = self._update_steps(length)
            if remaining < updates:
                done = 0 if self.args.ignore_data_skip else remaining
                return epoch, done * self.args.gradient_accumulation_steps
            remaining -= updates
        return len(self._epoch_lengths()), 0

    # The Trainer passes every argument by keyword; **kwargs keeps this hook independent of the
    # parameter list, which differs between transformers versions.
    def _run_epoch(self, **kwargs: Any) -> Any:  # type: ignore[override]
        epoch = kwargs["epoch"]
        length = self._epoch_lengths()[epoch]
        kwargs["steps_in_epoch"] = length
        kwargs["num_update_steps_per_epoch"] = self._update_steps(length)
        # Before the Trainer wraps the loader in skip_first_batches (on resume), whose
        # set_epoch does not reach the sampler.
        assert self.balanced_sampler is not None  # set when the Trainer built the loader
        self.balanced_sampler.set_epoch(epoch)
        return super()._run_epoch(**kwargs)

    # ------------------------------------------------------------------ BatchNorm
    def compute_loss_context_manager(self) -> Any:
        # training_step calls model.train() and then enters this, right before the forward pass:
        # the one overridable place between the two. prediction_step enters it too, with the
        # model in eval mode, where nothing is changed.
        sampler = self.balanced_sampler
        if (self.balanced_schedule.batchnorm == "frozen" and sampler is not None
                and sampler.phase == "finetune" and self.model is not None and self.model.training):
            for module in self.model.modules():  # the wrapped model (DDP) shares these modules
                if isinstance(module, _BatchNorm):
                    module.eval()
        return super().compute_loss_context_manager()
