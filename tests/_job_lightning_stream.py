"""Lightning job for ``test_frameworks_with_streams.py``: a balanced stream under
``Trainer(strategy="ddp", devices=2, accelerator="cpu")``.

    python tests/_job_lightning_stream.py --out DIR                         # the whole run
    python tests/_job_lightning_stream.py --out DIR --stop-after K --ckpt C  # K steps, checkpoint
    python tests/_job_lightning_stream.py --out DIR --resume C               # fit(ckpt_path=C)

``train_dataloader`` returns ``balancer.integrations.lightning.balance(self.trainer,
DataLoader(stream, batch_size=8), "cls", classes=3, finetune_epochs=1)``. Lightning's DDP
launcher starts rank 1 by running this script again.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lightning as L
import torch
from _frameworks import Recorder, close_process_group
from _stream_frameworks import (
    BATCH_SIZE,
    BUFFER_SIZE,
    COUNTS,
    EPOCHS,
    FEATURES,
    FINETUNE,
    SEED,
    Stream,
)
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from balancer.integrations import lightning as balancer_lightning


class Classifier(L.LightningModule):
    def __init__(self, out: str, num_workers: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(FEATURES, len(COUNTS))
        self.out, self.num_workers = out, num_workers
        self.recorder: Recorder | None = None

    def train_dataloader(self):
        return balancer_lightning.balance(
            self.trainer, DataLoader(Stream(), batch_size=BATCH_SIZE,
                                     num_workers=self.num_workers),
            "cls", classes=len(COUNTS), finetune_epochs=FINETUNE, seed=SEED,
            buffer_size=BUFFER_SIZE)

    def on_train_start(self) -> None:
        self.recorder = Recorder(self.out, self.global_rank)

    def training_step(self, batch, batch_idx):
        self.recorder.add(self.current_epoch, batch["key"].tolist())
        return nn.functional.cross_entropy(self.net(batch["x"]), batch["cls"])

    def on_train_end(self) -> None:
        self.recorder.save()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--ckpt")
    parser.add_argument("--resume")
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    callbacks = []
    if args.stop_after:
        directory, name = os.path.split(args.ckpt)
        callbacks.append(ModelCheckpoint(dirpath=directory, filename=name.removesuffix(".ckpt"),
                                         every_n_train_steps=args.stop_after, save_top_k=-1))
    trainer = L.Trainer(
        max_epochs=EPOCHS, max_steps=args.stop_after or -1, strategy="ddp", devices=2,
        accelerator="cpu", callbacks=callbacks, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=bool(args.stop_after),
        num_sanity_val_steps=0,
    )
    trainer.fit(Classifier(args.out, args.num_workers), ckpt_path=args.resume)


if __name__ == "__main__":
    main()
    close_process_group()
