"""Balanced batches in PyTorch Lightning 2.x: return ``balance(trainer, loader, ...)`` from
``train_dataloader()``.

Lightning, with its default ``use_distributed_sampler=True``, rebuilds every training loader whose
``sampler`` is not a ``DistributedSampler`` and calls ``sampler.set_epoch(epoch)`` at the start of
every epoch. A balanced loader built where the process group exists (the ``train_dataloader``
hook of a ``LightningModule`` or ``LightningDataModule``; Lightning starts the group before it
calls the hook) shards itself and shows Lightning a ``DistributedSampler`` holding its shard, so
Lightning leaves it as it is and drives its epochs, phases included. On a single device (no
process group) Lightning calls ``set_epoch`` only on ``loader.batch_sampler.sampler``, which a
balanced loader forwards to its own ``set_epoch``, so there too every epoch is the plan's and the
last ones fine-tune. It has ``state_dict`` and
``load_state_dict``, so Lightning stores its position in every checkpoint and
``trainer.fit(model, ckpt_path=...)`` resumes mid-epoch with exactly the remaining batches.

Example::

    import lightning as L
    from balancer.integrations import lightning as balancer_lightning

    class Classifier(L.LightningModule):
        def train_dataloader(self):
            return balancer_lightning.balance(
                self.trainer, DataLoader(train_set, batch_size=64, shuffle=True, num_workers=4),
                finetune_epochs=2)

Epoch lengths follow the phase, which ``trainer.estimated_stepping_batches`` does not know: size
an LR schedule with :func:`total_steps` (the loader's :meth:`~balancer.BalancedDataLoader.total_batches`).

    L.Trainer(max_epochs=10, strategy="ddp", devices=2).fit(Classifier())

BatchNorm in the fine-tune epochs: ``balance(..., batchnorm="frozen")`` keeps every BatchNorm
layer of the ``LightningModule`` in eval mode there (its running statistics stay those of the
balanced epochs; its affine weights still train). Lightning owns the model's mode, so the
training loop has no place for ``loader.train_mode(model)``; instead ``balance`` adds a callback
to the trainer that applies the policy before every fine-tune training batch (after anything
Lightning does to the mode, such as restoring it after validation).
"""

from __future__ import annotations

from typing import Any

from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader

from balancer._distributed import is_distributed
from balancer._schedule import BatchNormPolicy, FineTuneSchedule, check_batchnorm
from balancer._validation import check_int
from balancer.integrations.torchrun import EvenStreamLoader
from balancer.loader import BalancedDataLoader
from balancer.loader import balance as _balance
from balancer.streams import BalancedStreamLoader

__all__ = ["LightningBalancedDataLoader", "balance", "total_steps"]


class LightningBalancedDataLoader(BalancedDataLoader):
    """A :class:`~balancer.BalancedDataLoader` whose ``len()`` is always the whole epoch.

    A plain balanced loader restored mid-epoch reports the batches left (what its next
    iteration yields); Lightning instead restores its own count of the batches already done and
    adds the loader's length to it, so it needs the whole epoch's length to end the resumed
    epoch at the right batch.
    """

    def __len__(self) -> int:
        return self.batch_sampler.batches_in_epoch()


def balance(trainer: Any, loader: DataLoader, labels: Any = None, *, finetune_epochs: int = 0,
            seed: int | None = 0, samples_per_epoch: int | None = None,
            drop_last: bool | None = None, batchnorm: BatchNormPolicy = "train",
            sampler: str | type = "balanced",
            **sampler_options: Any) -> BalancedDataLoader | EvenStreamLoader:
    """:func:`balancer.balance` with a :class:`~balancer.FineTuneSchedule` sized from ``trainer``.

    The schedule runs ``trainer.max_epochs`` epochs, the last ``finetune_epochs`` of them at the
    true class frequencies. Call it from the ``train_dataloader`` hook, where Lightning has
    started the process group (so the loader shards itself across ``trainer.world_size`` ranks).

    Args:
        trainer: the ``lightning.Trainer`` (``self.trainer`` inside the hook); its
            ``max_epochs`` must be set.
        loader: the ``DataLoader`` the hook would otherwise return.
        labels, seed, samples_per_epoch, drop_last: as for :func:`balancer.balance`.
        finetune_epochs: final epochs at the true frequencies, in ``[0, max_epochs]``.
        batchnorm: what BatchNorm layers do in the fine-tune epochs, as for
            :class:`~balancer.FineTuneSchedule`: ``"train"`` (default; Lightning's own train
            mode, statistics re-estimated) or ``"frozen"`` (eval mode before every fine-tune
            batch, through a callback this adds to ``trainer.callbacks``).
        sampler, **sampler_options: the kind of sampler, as for :func:`balancer.balance`
            (``"label-balanced"`` or ``"repeat-factor"`` for multi-label targets).

    A ``loader`` over an ``IterableDataset`` (a stream) gives a balanced stream instead
    (``classes=`` is then required, and ``buffer_size=``, ``wait=``, ``split=`` are the
    stream's): each rank balances its share of the stream, the stream loader keeps the ranks in
    step (a rank whose share has ended re-serves the first batches of its epoch while another
    still has batches), and the returned loader receives Lightning's ``set_epoch`` and saves
    every rank's position in Lightning's checkpoints; see :class:`~balancer.integrations.torchrun.EvenStreamLoader`.
    """
    max_epochs = getattr(trainer, "max_epochs", None)
    if max_epochs is None or max_epochs < 1:
        raise ValueError(
            f"trainer.max_epochs={max_epochs!r}; the fine-tune schedule needs the run's number of "
            f"epochs: build the Trainer with max_epochs=N"
        )
    finetune_epochs = check_int("finetune_epochs", finetune_epochs, minimum=0,
                                maximum=max_epochs,
                                fix=f"it must lie in [0, trainer.max_epochs={max_epochs}]")
    batchnorm = check_batchnorm(batchnorm)
    world_size = int(getattr(trainer, "world_size", 1))
    if world_size > 1 and not is_distributed():
        raise RuntimeError(
            f"the trainer runs {world_size} processes but no process group is initialised yet; "
            f"call balance() inside LightningModule.train_dataloader() (or a "
            f"LightningDataModule's), where Lightning has started it"
        )
    schedule = FineTuneSchedule(max_epochs, finetune_epochs, batchnorm=batchnorm)
    balanced = _balance(loader, labels, schedule=schedule, seed=seed,
                        samples_per_epoch=samples_per_epoch, drop_last=drop_last,
                        sampler=sampler, **sampler_options)
    if isinstance(balanced, BalancedStreamLoader):
        # Lightning leaves a loader over an IterableDataset as it is (no DistributedSampler),
        # calls set_epoch only on loader.sampler, and fetches one batch ahead of the step.
        return EvenStreamLoader(balanced, held=1)
    # The subclass only changes len(); it adds no state, so the built loader is re-typed (keeping
    # the class balance() kept, e.g. MONAI's DataLoader).
    balanced.__class__ = _lightning_class(type(balanced))
    _attach_batchnorm_policy(trainer, balanced)
    return balanced


def _finetune_batchnorm_callback() -> type[Any]:
    """The callback class behind ``batchnorm="frozen"``, built over Lightning's ``Callback`` the
    first time it is needed (Lightning is imported only then)."""
    global _CALLBACK
    if _CALLBACK is not None:
        return _CALLBACK
    from lightning.pytorch.callbacks import Callback  # the framework, only when asked for

    class FineTuneBatchNorm(Callback):
        """BatchNorm layers in eval mode before every fine-tune training batch.

        Lightning never calls ``model.train()`` at an epoch's start (it keeps the module's modes
        and restores them after validation), so a plain loop's ``loader.train_mode(model)`` has
        no place to go. Applied per batch rather than per epoch because a run resumed mid-epoch
        starts no epoch (``on_train_epoch_start`` is skipped) and a user's
        ``on_validation_model_train`` may call ``model.train()`` mid-epoch. Only the BatchNorm
        layers are touched: modes the user set on other modules stay theirs. It holds no state,
        so checkpoints are unchanged.
        """

        def __init__(self, loader: BalancedDataLoader) -> None:
            self.loader = loader

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                                 batch_idx: int) -> None:
            # The phase of the batches being served (the loader's epoch, which Lightning sets).
            if self.loader.phase == "finetune":
                for module in pl_module.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()

    _CALLBACK = FineTuneBatchNorm
    return _CALLBACK


_CALLBACK: type[Any] | None = None


def _attach_batchnorm_policy(trainer: Any, loader: BalancedDataLoader) -> None:
    """Add the callback that applies ``batchnorm="frozen"``, or point it at the new ``loader``."""
    if getattr(loader.batch_sampler.schedule, "batchnorm", "train") != "frozen":
        return  # "train": Lightning's own train mode is the policy
    callbacks = getattr(trainer, "callbacks", None)
    if not isinstance(callbacks, list):
        raise TypeError(f"batchnorm='frozen' needs the lightning.Trainer (its callbacks list), "
                        f"but got trainer of type {type(trainer).__name__}; pass self.trainer "
                        f"from the train_dataloader hook")
    cls = _finetune_batchnorm_callback()
    for callback in callbacks:
        if isinstance(callback, cls):
            # The hook ran again (reload_dataloaders_every_n_epochs): follow the new loader.
            callback.loader = loader
            return
    callbacks.append(cls(loader))


_LIGHTNING_CLASSES: dict[type, type] = {BalancedDataLoader: LightningBalancedDataLoader}


def _lightning_class(cls: type) -> type:
    """``LightningBalancedDataLoader`` over the class ``balance()`` built, one per class."""
    if cls not in _LIGHTNING_CLASSES:
        _LIGHTNING_CLASSES[cls] = type(f"Lightning{cls.__name__}",
                                       (LightningBalancedDataLoader, cls),
                                       {"__module__": __name__})
    return _LIGHTNING_CLASSES[cls]


def total_steps(trainer: Any, loader: BalancedDataLoader) -> int:
    """Optimizer steps per rank over the whole run: batches per epoch, phase by phase, over
    ``trainer.max_epochs`` epochs, divided by ``accumulate_grad_batches`` (per epoch, rounded up,
    as Lightning steps on an epoch's last batch). Use it for ``OneCycleLR(total_steps=...)``."""
    if not isinstance(loader, BalancedDataLoader):  # LightningBalancedDataLoader too
        raise TypeError(f"loader should be a balancer.BalancedDataLoader, but got "
                        f"{type(loader).__name__}")
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1))
    steps = done = 0
    for epoch in range(1, trainer.max_epochs + 1):
        total = loader.total_batches(epoch)
        steps += -(-(total - done) // accumulate)
        done = total
    return steps
