"""The two-phase training schedule: balanced epochs, then a few at the true class frequencies."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from balancer._validation import check_int

__all__ = ["BATCHNORM_POLICIES", "BatchNormPolicy", "FineTuneSchedule", "Phase",
           "set_train_mode"]

Phase = Literal["balanced", "finetune"]
BatchNormPolicy = Literal["frozen", "train"]

#: What BatchNorm layers do in the fine-tune phase: ``"frozen"`` keeps the running statistics of
#: the balanced phase, ``"train"`` re-estimates them at the true class frequencies.
BATCHNORM_POLICIES: tuple[BatchNormPolicy, ...] = ("frozen", "train")

# Design note: BatchNorm in the fine-tune phase (issue 22)
# The fine-tune phase exists to teach the output biases the real priors. With BatchNorm in train
# mode its running statistics are re-estimated at the true frequencies too, which re-centres the
# features the classifier was trained on and can move predictions *towards* the rare classes.
# experiments/results/finetune_batchnorm.md (7 data sets, 5 seeds): frozen statistics never cost
# more than 0.002 accuracy against no fine-tune and gave the lowest NLL of the variants on 6 of 7
# sets; train mode lost 0.03-0.14 accuracy on all four tabular sets but gave higher balanced
# accuracy on all seven (by 0.003-0.062). A real trade-off, not a bug: the default stays "train"
# (the behaviour before 0.2.0, and what the study's evidence was measured with); the study's
# tuning grid lets the validation split choose "frozen".
# Only _BatchNorm subclasses (BatchNorm1d/2d/3d, SyncBatchNorm, the lazy ones) hold running
# statistics updated by the batch mix; GroupNorm and LayerNorm normalise each sample alone and
# need nothing. Eval mode leaves the affine weight and bias trainable.


def check_batchnorm(batchnorm: Any) -> BatchNormPolicy:
    """``batchnorm`` if it is one of :data:`BATCHNORM_POLICIES`, else ``TypeError``/``ValueError``."""
    if not isinstance(batchnorm, str):
        raise TypeError(f"batchnorm should be one of {list(BATCHNORM_POLICIES)}, but got "
                        f"batchnorm={batchnorm!r}; pass batchnorm='frozen' (keep the balanced "
                        f"phase's running statistics) or batchnorm='train' (re-estimate them)")
    if batchnorm not in BATCHNORM_POLICIES:
        raise ValueError(f"batchnorm should be one of {list(BATCHNORM_POLICIES)}, but got "
                         f"batchnorm={batchnorm!r}; pass batchnorm='frozen' (keep the balanced "
                         f"phase's running statistics) or batchnorm='train' (re-estimate them)")
    return batchnorm


def set_train_mode(model: nn.Module, phase: Phase, *,
                   batchnorm: BatchNormPolicy = "train") -> nn.Module:
    """Put ``model`` in training mode for an epoch of ``phase``; call it where you would call
    ``model.train()``.

    Balanced epochs: ``model.train()``. Fine-tune epochs: ``model.train()``, then with
    ``batchnorm="frozen"`` every BatchNorm layer (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``) in
    eval mode, so its running statistics stay those of the balanced phase while its affine weight
    and bias (and every other parameter) still train. ``batchnorm="train"`` re-estimates the
    statistics at the true frequencies (the default, and the behaviour before 0.2.0). The two
    trade accuracy against rare-class recall: on 7 data sets (5 seeds each,
    ``experiments/results/finetune_batchnorm.md``) frozen statistics never cost more than 0.002
    accuracy against no fine-tune and gave the lowest NLL on 6 of 7, while train mode cost
    0.03-0.14 accuracy on the four tabular sets but gave 0.003-0.062 higher balanced accuracy on
    all seven. Choose on your validation split (``balancer study --tune`` does).

    Args:
        model: the module to train.
        phase: ``"balanced"`` or ``"finetune"``, e.g. ``schedule.phase(epoch)`` or
            ``loader.phase``.
        batchnorm: ``"train"`` (default) or ``"frozen"``; read only in the fine-tune phase.

    Returns:
        ``model``, like ``model.train()``.

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> _ = set_train_mode(model, "finetune", batchnorm="frozen")
        >>> model.training, model[1].training, model[1].weight.requires_grad
        (True, False, True)
        >>> _ = set_train_mode(model, "finetune")  # batchnorm="train"
        >>> model[1].training
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model should be a torch.nn.Module, but got model of type "
                        f"{type(model).__name__}; pass the model you train")
    if phase not in ("balanced", "finetune"):
        raise ValueError(f"phase should be 'balanced' or 'finetune', but got phase={phase!r}; "
                         f"pass schedule.phase(epoch) or loader.phase")
    batchnorm = check_batchnorm(batchnorm)
    model.train()
    if phase == "finetune" and batchnorm == "frozen":
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
    return model


class FineTuneSchedule:
    r"""Balanced epochs first, then ``finetune_epochs`` epochs at the true class frequencies.

    Training on equal-frequency minibatches teaches the features of rare classes as well as
    common ones but hides the real priors: the model's output biases end up assuming every class
    is equally likely. Running the last few epochs on the natural frequencies lets the biases (and
    the calibration) learn which classes are rare again.

    Epochs ``0 .. total_epochs - finetune_epochs - 1`` are ``"balanced"``; the last
    ``finetune_epochs`` are ``"finetune"``. Give the schedule to
    :class:`~balancer.BalancedBatchSampler` (``schedule=``) to switch its batches, and use it on its
    own to change anything else in the fine-tune phase, such as freezing the backbone or lowering
    the learning rate.

    Recommended settings (the default ``finetune_epochs=1``): one fine-tune epoch, with the
    learning rate lowered to x0.1 and every layer still trained. The comparison study's tuning
    (``balancer study --tune``, validation split only, 12-epoch budget) chose them for
    ``balanced+finetune`` on all three shipped data sets over 3 fine-tune epochs and over the
    full learning rate; freezing the backbone was rejected by an earlier validation grid. The
    schedule does not touch the optimizer: lower the learning rate in your loop when
    :meth:`is_finetune` says so. It sets the model's mode through :meth:`train_mode`: call
    ``schedule.train_mode(model, epoch)`` where you would call ``model.train()``.

    Args:
        total_epochs: number of epochs of the whole run, at least 1.
        finetune_epochs: number of final epochs at the true frequencies, in
            ``[0, total_epochs]`` (default 1).
        batchnorm: what BatchNorm layers do in fine-tune epochs: ``"train"`` (default:
            statistics re-estimated at the true frequencies, as before 0.2.0) or ``"frozen"``
            (eval mode: the balanced phase's running statistics kept, affine weights still
            trained); see :func:`set_train_mode` for the trade-off and the numbers.

    Example:
        >>> schedule = FineTuneSchedule(total_epochs=10, finetune_epochs=2, batchnorm="frozen")
        >>> [schedule.phase(epoch) for epoch in (0, 7, 8, 9)]
        ['balanced', 'balanced', 'finetune', 'finetune']
        >>> FineTuneSchedule(12).balanced_epochs  # the recommended single fine-tune epoch
        11
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> _ = schedule.train_mode(model, epoch=9)  # a fine-tune epoch: statistics frozen
        >>> model[1].training
        False
    """

    def __init__(self, total_epochs: int, finetune_epochs: int = 1, *,
                 batchnorm: BatchNormPolicy = "train") -> None:
        self.total_epochs = check_int("total_epochs", total_epochs, minimum=1,
                                      fix="pass the number of epochs you train, fine-tune included")
        self.finetune_epochs = check_int(
            "finetune_epochs", finetune_epochs, minimum=0, maximum=self.total_epochs,
            fix=f"it must lie in [0, total_epochs={self.total_epochs}]",
        )
        self.batchnorm = check_batchnorm(batchnorm)

    @property
    def balanced_epochs(self) -> int:
        """Number of balanced epochs at the start of the run."""
        return self.total_epochs - self.finetune_epochs

    def _check_epoch(self, epoch: int) -> int:
        return check_int(
            "epoch", epoch, minimum=0, maximum=self.total_epochs - 1,
            fix=f"the schedule covers epochs 0..{self.total_epochs - 1} "
                f"(total_epochs={self.total_epochs}); build it with the number of epochs you train",
        )

    def phase(self, epoch: int) -> Phase:
        """``"balanced"`` or ``"finetune"`` for ``epoch`` (0-based)."""
        return "balanced" if self._check_epoch(epoch) < self.balanced_epochs else "finetune"

    def is_finetune(self, epoch: int) -> bool:
        """Whether ``epoch`` runs at the true class frequencies."""
        return self.phase(epoch) == "finetune"

    def balanced_epochs_before(self, epoch: int) -> int:
        """How many balanced epochs precede ``epoch``: the sampler's buffers advance only in those."""
        return min(self._check_epoch(epoch), self.balanced_epochs)

    def train_mode(self, model: nn.Module, epoch: int) -> nn.Module:
        """``model`` in training mode for ``epoch``, BatchNorm per :attr:`batchnorm`; see
        :func:`set_train_mode`. Call it where you would call ``model.train()``."""
        return set_train_mode(model, self.phase(epoch), batchnorm=self.batchnorm)

    def state_dict(self) -> dict[str, Any]:
        """The phases: ``total_epochs`` and ``finetune_epochs``.

        ``batchnorm`` is not part of it: it changes no batch, and a sampler checks the schedule
        of a resumed run by this state, so a checkpoint resumes under either policy, and the
        checkpoints written before the setting existed still load. Build the schedule with the
        policy you train with.
        """
        return {"total_epochs": self.total_epochs, "finetune_epochs": self.finetune_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"total_epochs", "finetune_epochs"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass a dict from "
                             f"FineTuneSchedule.state_dict()")
        restored = FineTuneSchedule(state["total_epochs"], state["finetune_epochs"])
        self.total_epochs, self.finetune_epochs = restored.total_epochs, restored.finetune_epochs

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(total_epochs={self.total_epochs}, "
                f"finetune_epochs={self.finetune_epochs}, batchnorm={self.batchnorm!r})")
