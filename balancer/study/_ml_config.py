"""The multi-label study's settings and strategies, checked before any data is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from balancer._validation import check_int
from balancer.study._config import SharedSettings, _check_float, check_phases
from balancer.study._strategies import ML_STRATEGIES, Strategy

__all__ = ["ML_QUICK", "ML_STRATEGIES", "MultiLabelStrategy", "MultiLabelStudyConfig"]


#: A row of the multi-label study: a :class:`~balancer.study._strategies.Strategy` declared
#: with ``task="multi"``.
MultiLabelStrategy = Strategy


#: What ``--quick`` changes in the multi-label study: one seed, two epochs, fewer bootstrap replicates.
ML_QUICK: dict[str, Any] = {"seeds": (0,), "epochs": 2, "finetune_epochs": 1,
                            "bootstrap": 200}


@dataclass(kw_only=True)
class MultiLabelStudyConfig(SharedSettings):
    """Everything that defines a multi-label study; saved as ``study.json`` and ``config.json``.

    Data (at most one of ``data`` and ``table``; neither means the semi-synthetic ChestX-ray14
    set of ``samples`` rows, see :func:`~balancer.study._data.semisynthetic_chestxray14`):
        data: an ``.npz`` with ``X`` and ``Y`` (optional ``names``, ``groups``, ``split``), or an
            ``.arff``/``.arff.gz`` file (MULAN layout).
        table: a CSV table; its labels are ``label_cols`` (0/1 columns) or ``label_col`` (one
            ``|``-separated column).
        split_col, group_col: a train/val/test column and a group (patient) column of the table.

    Training (identical for every strategy; every strategy takes ``epochs * ceil(N /
    batch_size)`` optimizer steps, ``N`` the training rows):
        strategies, seeds, epochs, batch_size, lr, weight_decay: as in the single-label study.
        finetune_epochs, finetune_lr_scale, finetune_freeze: label-balanced+finetune's last
            epochs at the true frequencies, their learning-rate factor, a frozen backbone.
        rfs_threshold: repeat-factor sampling's ``t`` (labels rarer than ``t`` are repeated).
        asl_gamma_neg, asl_gamma_pos, asl_clip: the asymmetric loss's settings (the paper's).
        la_tau: sigmoid-la's ``tau``.
        width: units per hidden layer of the MLP.
        select: ``"last"`` (final weights) or ``"best"`` (highest validation macro AUPRC).
        reference, bootstrap: the row of the paired statistics, and its bootstrap replicates.
        rarest: how many of the rarest labels (by train positives) the report lists.
    """

    data: str | None = None
    table: str | None = None
    label_cols: tuple[str, ...] | None = None
    label_col: str | None = None
    split_col: str = "split"
    group_col: str | None = None
    samples: int = 8000

    strategies: tuple[str, ...] = tuple(ML_STRATEGIES)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    finetune_epochs: int | None = None
    finetune_lr_scale: float = 0.1
    finetune_freeze: bool = False
    rfs_threshold: float = 0.1
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float = 0.05
    la_tau: float = 1.0
    width: int = 64
    select: str = "last"
    reference: str | None = None
    bootstrap: int = 1000
    rarest: int = 3

    device: str = "cpu"
    threads: int = 1
    quick: bool = False
    progress: bool = True
    multilabel: bool = True  # marks the saved settings as a multi-label study's

    task: ClassVar[str] = "multi"
    _selected_by: ClassVar[str] = "validation macro AUPRC"
    _width_is: ClassVar[str] = "the MLP's hidden units"
    _threads_example: ClassVar[int] = 1
    _cuda_fix: ClassVar[str] = "; pass --device cpu"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the setting, its value and the fix."""
        self._validate_shared()
        if self.finetune_epochs is None:
            self.finetune_epochs = min(1, self.epochs)
        self.finetune_epochs = check_int("finetune_epochs", self.finetune_epochs, minimum=0,
                                         maximum=self.epochs,
                                         fix=f"it must lie in [0, epochs={self.epochs}]")
        check_phases(self, ML_STRATEGIES)
        self.samples = check_int("samples", self.samples, minimum=500,
                                 fix="the semi-synthetic set needs at least 500 rows so that "
                                     "rare findings reach every split, e.g. 8000")
        self.rarest = check_int("rarest", self.rarest, minimum=0,
                                fix="pass how many of the rarest labels to list, e.g. 3")
        self.finetune_lr_scale = _check_float("finetune_lr_scale", self.finetune_lr_scale,
                                              low=0.0, low_open=True)
        self.rfs_threshold = _check_float("rfs_threshold", self.rfs_threshold, low=0.0,
                                          high=1.0, low_open=True,
                                          fix="labels rarer than this share are repeated, "
                                              "e.g. 0.1")
        self.asl_gamma_neg = _check_float("asl_gamma_neg", self.asl_gamma_neg, low=0.0)
        self.asl_gamma_pos = _check_float("asl_gamma_pos", self.asl_gamma_pos, low=0.0)
        self.asl_clip = _check_float("asl_clip", self.asl_clip, low=0.0, high=1.0,
                                     high_open=True,
                                     fix="it is the probability margin shifted off the "
                                         "negatives; the paper's is 0.05, 0 turns it off")
        self.la_tau = _check_float("la_tau", self.la_tau, low=0.0)
        if self.data is not None and self.table is not None:
            raise ValueError(f"pass only one of data and table, but got data={self.data!r} and "
                             f"table={self.table!r}")
        if self.label_cols is not None:
            if isinstance(self.label_cols, str):
                self.label_cols = tuple(c.strip() for c in self.label_cols.split(",")
                                        if c.strip())
            self.label_cols = tuple(self.label_cols)
        if self.table is not None and (self.label_cols is None) == (self.label_col is None):
            raise ValueError("a multi-label table needs its labels: pass label_cols (--label-cols "
                             "A,B,C, 0/1 columns) or label_col (--label-col NAME, one "
                             "'|'-separated column), exactly one")
        if self.table is None and self.data is None and self.label_cols is not None:
            raise ValueError(f"label_cols={list(self.label_cols)} applies to a CSV table or an "
                             f"ARFF file, but the data is the semi-synthetic ChestX-ray14 set "
                             f"(all 14 findings); pass --table or --data, or remove --label-cols")
        if self.table is None and self.label_col is not None:
            raise ValueError(f"label_col={self.label_col!r} applies only to a CSV table; pass "
                             f"--table, or remove --label-col")
        if self.table is None and (self.group_col is not None or self.split_col != "split"):
            raise ValueError("group_col and split_col apply only to a CSV table (an .npz holds "
                             "them as the arrays 'groups' and 'split'; the semi-synthetic set is "
                             "split by patient); pass --table, or remove them")
        self._validate_device()
