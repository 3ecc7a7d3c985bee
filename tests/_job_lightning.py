"""Lightning job for ``test_integrations.py``: ``Trainer(strategy="ddp", devices=2,
accelerator="cpu")`` with the default ``use_distributed_sampler=True``.

    python tests/_job_lightning.py --out DIR                         # the whole run
    python tests/_job_lightning.py --out DIR --stop-after K --ckpt C  # K steps, checkpoint, stop
    python tests/_job_lightning.py --out DIR --resume C               # trainer.fit(ckpt_path=C)
    python tests/_job_lightning.py --out DIR --plain --epochs 1       # a shuffled DataLoader
    python tests/_job_lightning.py --out DIR --epochs 1 --finetune-epochs 0  # one balanced epoch
    python tests/_job_lightning.py --out DIR --multilabel KIND:K ... --ckpt D  # K steps each
    python tests/_job_lightning.py --out DIR --multilabel KIND:K ... --resume D  # then the rest

With ``--multilabel`` one ``trainer.fit`` per ``KIND:K`` runs one after the other in the same two
processes (Lightning keeps the process group between them): the first job stops each after ``K``
steps with a checkpoint ``D/KIND-K.ckpt``, the second resumes each from it with
``ckpt_path``; the records go to ``DIR/KIND-K/``.

Lightning's DDP launcher starts rank 1 by running this script again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lightning as L
import torch
from _frameworks import (
    BATCH_SIZE,
    COUNTS,
    FEATURES,
    FINETUNE,
    ML_EPOCHS,
    ML_FINETUNE,
    ML_NAMES,
    MULTILABEL_SAMPLERS,
    SEED,
    Findings,
    Points,
    Recorder,
    close_process_group,
    parse_run,
    run_name,
)
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from balancer.integrations import lightning as balancer_lightning


class Classifier(L.LightningModule):
    def __init__(self, out: str, plain: bool, finetune_epochs: int,
                 multilabel: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(FEATURES, len(ML_NAMES) if multilabel else len(COUNTS))
        self.out, self.plain, self.finetune_epochs = out, plain, finetune_epochs
        self.multilabel = multilabel
        self.recorder: Recorder | None = None
        self.epoch_times: list[tuple[int, float]] = []

    def train_dataloader(self):
        if self.multilabel:
            return balancer_lightning.balance(
                self.trainer, DataLoader(Findings(), batch_size=BATCH_SIZE, shuffle=True),
                "findings", finetune_epochs=self.finetune_epochs, seed=SEED,
                sampler=self.multilabel, **MULTILABEL_SAMPLERS[self.multilabel])
        plain = DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True)
        if self.plain:
            return plain
        return balancer_lightning.balance(self.trainer, plain,
                                          finetune_epochs=self.finetune_epochs, seed=SEED)

    def on_train_start(self) -> None:
        self.recorder = Recorder(self.out, self.global_rank)
        self._epoch_start = time.perf_counter()  # a run resumed mid-epoch starts no epoch

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        batches = len(self.trainer.train_dataloader)
        self.epoch_times.append((batches, time.perf_counter() - self._epoch_start))

    def training_step(self, batch, batch_idx):
        features, targets, indices = batch
        self.recorder.add(self.current_epoch, indices.tolist())
        if self.multilabel:
            return nn.functional.binary_cross_entropy_with_logits(self.net(features), targets)
        return nn.functional.cross_entropy(self.net(features), targets)

    def on_train_end(self) -> None:
        self.recorder.extra["epoch_times"] = self.epoch_times
        self.recorder.save()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--ckpt")
    parser.add_argument("--resume")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=FINETUNE)
    parser.add_argument("--multilabel", nargs="+", metavar="KIND:STOP", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    for spec in args.multilabel:
        kind, stop = parse_run(spec)
        name = run_name(spec)
        if args.resume:
            fit(os.path.join(args.out, name), ML_EPOCHS, ML_FINETUNE, kind=kind,
                resume=os.path.join(args.resume, f"{name}.ckpt"))
        else:
            fit(os.path.join(args.out, name), ML_EPOCHS, ML_FINETUNE, kind=kind,
                stop_after=stop, ckpt=os.path.join(args.ckpt, f"{name}.ckpt"))
    if not args.multilabel:
        fit(args.out, args.epochs, args.finetune_epochs, plain=args.plain,
            stop_after=args.stop_after, ckpt=args.ckpt, resume=args.resume)


def fit(out: str, epochs: int, finetune_epochs: int, *, plain: bool = False,
        kind: str | None = None, stop_after: int | None = None, ckpt: str | None = None,
        resume: str | None = None) -> None:
    """One ``trainer.fit``: the whole run, or ``stop_after`` steps and a checkpoint ``ckpt``, or
    the rest of a run from ``resume``."""
    callbacks = []
    if stop_after:
        directory, name = os.path.split(ckpt)
        callbacks.append(ModelCheckpoint(dirpath=directory, filename=name.removesuffix(".ckpt"),
                                         every_n_train_steps=stop_after, save_top_k=-1))
    trainer = L.Trainer(
        max_epochs=epochs, max_steps=stop_after or -1, strategy="ddp", devices=2,
        accelerator="cpu", callbacks=callbacks, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=bool(stop_after),
        num_sanity_val_steps=0,
    )
    trainer.fit(Classifier(out, plain, finetune_epochs, kind), ckpt_path=resume)


if __name__ == "__main__":
    main()
    close_process_group()
