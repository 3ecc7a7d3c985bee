"""Accelerate job for ``test_integrations.py``, started by ``torchrun --nproc_per_node=2``.

    torchrun ... tests/_job_accelerate.py --out DIR --stop-after K --ckpt C  # K steps, save_state
    torchrun ... tests/_job_accelerate.py --out DIR --resume C               # load_state, finish
    torchrun ... tests/_job_accelerate.py --out DIR --multilabel KIND:K ... --ckpt C  # K steps each
    torchrun ... tests/_job_accelerate.py --out DIR --multilabel KIND:K ... --resume C  # the rest

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
    close_process_group,
    parse_run,
    run_name,
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
    parser.add_argument("--multilabel", nargs="+", metavar="KIND:STOP", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.multilabel:
        multilabel(args)
        return
    accelerator = Accelerator(
        cpu=True, dataloader_config=DataLoaderConfiguration(use_stateful_dataloader=True))
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


def multilabel(args: argparse.Namespace) -> None:
    """One run per ``KIND:STOP`` in ``args.multilabel``, one after the other in these two
    processes, each with its own ``Accelerator`` (so a checkpoint holds that run's objects only):
    ``ML_EPOCHS`` epochs, the indices of every batch recorded to ``out/KIND-STOP/rank<r>.json``.
    The first job stops each run after STOP steps with ``save_state(ckpt/KIND-STOP)``; the second
    ``load_state``s it and trains the rest, exactly as the single-label job does."""
    for spec in args.multilabel:
        kind, stop = parse_run(spec)
        name = run_name(spec)
        accelerator = Accelerator(
            cpu=True, dataloader_config=DataLoaderConfiguration(use_stateful_dataloader=True))
        torch.manual_seed(0)
        model = nn.Linear(FEATURES, len(ML_NAMES))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = prepare(accelerator, DataLoader(Findings(), batch_size=BATCH_SIZE,
                                                 shuffle=True),
                         "findings", schedule=FineTuneSchedule(ML_EPOCHS, ML_FINETUNE),
                         seed=SEED, sampler=kind, **MULTILABEL_SAMPLERS[kind])
        model, optimizer = accelerator.prepare(model, optimizer)
        if args.resume:
            accelerator.load_state(os.path.join(args.resume, name))
        recorder = Recorder(os.path.join(args.out, name), accelerator.process_index)
        recorder.extra["lengths"] = {}
        step = 0
        for epoch in range(loader.iteration, ML_EPOCHS):
            loader.set_epoch(epoch)
            recorder.extra["lengths"][epoch] = len(loader)
            for features, targets, indices in loader:
                loss = nn.functional.binary_cross_entropy_with_logits(model(features), targets)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
                recorder.add(epoch, indices.tolist())
                step += 1
                if not args.resume and step == stop:
                    break
            if not args.resume and step == stop:
                accelerator.save_state(os.path.join(args.ckpt, name))
                break
        recorder.extra["total_batches"] = loader.total_batches()
        recorder.save()
        accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
    close_process_group()
