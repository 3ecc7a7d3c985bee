"""The two-phase training schedule: balanced epochs, then a few at the true class frequencies."""

from __future__ import annotations

from typing import Any, Literal

from balancer._validation import check_int

__all__ = ["FineTuneSchedule", "Phase"]

Phase = Literal["balanced", "finetune"]


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
    :meth:`is_finetune` says so.

    Args:
        total_epochs: number of epochs of the whole run, at least 1.
        finetune_epochs: number of final epochs at the true frequencies, in
            ``[0, total_epochs]`` (default 1).

    Example:
        >>> schedule = FineTuneSchedule(total_epochs=10, finetune_epochs=2)
        >>> [schedule.phase(epoch) for epoch in (0, 7, 8, 9)]
        ['balanced', 'balanced', 'finetune', 'finetune']
        >>> FineTuneSchedule(12).balanced_epochs  # the recommended single fine-tune epoch
        11
    """

    def __init__(self, total_epochs: int, finetune_epochs: int = 1) -> None:
        self.total_epochs = check_int("total_epochs", total_epochs, minimum=1,
                                      fix="pass the number of epochs you train, fine-tune included")
        self.finetune_epochs = check_int(
            "finetune_epochs", finetune_epochs, minimum=0, maximum=self.total_epochs,
            fix=f"it must lie in [0, total_epochs={self.total_epochs}]",
        )

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

    def state_dict(self) -> dict[str, Any]:
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
                f"finetune_epochs={self.finetune_epochs})")
