"""Accelerate job for ``test_integrations.py``, started by ``torchrun --nproc_per_node=2``.

    torchrun ... tests/_job_accelerate.py --out DIR --stop-after K --ckpt C  # K steps, save_state
    torchrun ... tests/_job_accelerate.py --out DIR --resume C               # load_state, finish
    torchrun ... tests/_job_accelerate.py --out DIR --multilabel  # both multi-label plans

The training loop is Accelerate's usual one; resuming is ``accelerator.load_state`` and nothing
else (the loader is a ``StatefulDataLoader`` through ``DataLoaderConfiguration``).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from _frameworks import (
    BATCH_SIZE,
    COUNTS,
    EPOCHS,
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
)
from accelerate import Accelerator, DataLoaderConfiguration
from torch import nn
from torch.utils.data import DataLoader

from balancer import FineTuneSchedule
from balancer.integrations.accelerate import prepare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--ckpt")
    parser.add_argument("--resume")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--multilabel", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    accelerator = Accelerator(
        cpu=True, dataloader_config=DataLoaderConfiguration(use_stateful_dataloader=True))
    if args.multilabel:
        multilabel(accelerator, args.out)
        return
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, len(COUNTS))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = prepare(accelerator, DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True,
                                             num_workers=args.num_workers),
                     schedule=FineTuneSchedule(EPOCHS, FINETUNE), seed=SEED)
    model, optimizer = accelerator.prepare(model, optimizer)
    if args.resume:
        accelerator.load_state(args.resume)
    recorder = Recorder(args.out, accelerator.process_index)
    recorder.extra["lengths"] = {}
    step = 0
    for epoch in range(loader.iteration, EPOCHS):
        loader.set_epoch(epoch)
        recorder.extra["lengths"][epoch] = len(loader)
        for features, targets, indices in loader:
            loss = nn.functional.cross_entropy(model(features), targets)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            recorder.add(epoch, indices.tolist())
            step += 1
            if step == args.stop_after:
                accelerator.save_state(args.ckpt)
                recorder.save()
                accelerator.wait_for_everyone()
                accelerator.end_training()
                return
    recorder.extra["total_batches"] = loader.total_batches()
    recorder.save()
    accelerator.wait_for_everyone()
    accelerator.end_training()


def multilabel(accelerator: Accelerator, out: str) -> None:
    """Both multi-label plans, one after the other, in these two processes: ``ML_EPOCHS``
    epochs each, the indices of every batch recorded to ``out/<plan>/rank<r>.json``."""
    for kind, options in MULTILABEL_SAMPLERS.items():
        torch.manual_seed(0)
        model = nn.Linear(FEATURES, len(ML_NAMES))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = prepare(accelerator, DataLoader(Findings(), batch_size=BATCH_SIZE,
                                                 shuffle=True),
                         "findings", schedule=FineTuneSchedule(ML_EPOCHS, ML_FINETUNE),
                         seed=SEED, sampler=kind, **options)
        model, optimizer = accelerator.prepare(model, optimizer)
        recorder = Recorder(os.path.join(out, kind), accelerator.process_index)
        recorder.extra["lengths"] = {}
        for epoch in range(ML_EPOCHS):
            loader.set_epoch(epoch)
            recorder.extra["lengths"][epoch] = len(loader)
            for features, targets, indices in loader:
                loss = nn.functional.binary_cross_entropy_with_logits(model(features), targets)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
                recorder.add(epoch, indices.tolist())
        recorder.extra["total_batches"] = loader.total_batches()
        recorder.save()
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
