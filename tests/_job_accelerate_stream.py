"""Accelerate job for ``test_frameworks_with_streams.py``, started by ``torchrun
--nproc_per_node=2``: a balanced stream through ``balancer.integrations.accelerate.prepare``.

    torchrun ... tests/_job_accelerate_stream.py --out DIR                          # whole run
    torchrun ... tests/_job_accelerate_stream.py --out DIR --stop-after K --ckpt C  # save_state
    torchrun ... tests/_job_accelerate_stream.py --out DIR --resume C               # load_state
    torchrun ... tests/_job_accelerate_stream.py --out DIR --natural               # see below

``--natural`` is the path Accelerate's docs give for any DataLoader,
``accelerator.prepare(balance(DataLoader(stream, ...)))``: each rank writes what it trained on,
or the error it got, to ``DIR/rank<r>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from balancer import FineTuneSchedule, balance
from balancer.integrations.accelerate import prepare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--ckpt")
    parser.add_argument("--resume")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--natural", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, len(COUNTS))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    plain = DataLoader(Stream(), batch_size=BATCH_SIZE, num_workers=args.num_workers)
    schedule = FineTuneSchedule(EPOCHS, FINETUNE)
    if args.natural:
        natural(args, accelerator, model, optimizer, plain, schedule)
        return
    loader = prepare(accelerator, plain, "cls", classes=len(COUNTS), schedule=schedule,
                     seed=SEED, buffer_size=BUFFER_SIZE)
    model, optimizer = accelerator.prepare(model, optimizer)
    if args.resume:
        accelerator.load_state(args.resume)
    recorder = Recorder(args.out, accelerator.process_index)
    step = 0
    for epoch in range(loader.iteration, EPOCHS):
        loader.set_epoch(epoch)
        for batch in loader:
            loss = nn.functional.cross_entropy(model(batch["x"]), batch["cls"])
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            recorder.add(epoch, batch["key"].tolist())
            step += 1
            if step == args.stop_after:
                accelerator.save_state(args.ckpt)
                recorder.save()
                accelerator.wait_for_everyone()
                accelerator.end_training()
                return
    recorder.save()
    accelerator.wait_for_everyone()
    accelerator.end_training()


def natural(args, accelerator, model, optimizer, plain, schedule) -> None:
    loader = balance(plain, "cls", classes=len(COUNTS), schedule=schedule, seed=SEED,
                     buffer_size=BUFFER_SIZE)
    steps: list[tuple[int, list[int]]] = []
    error = None
    try:
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for epoch in range(EPOCHS):
            loader.set_epoch(epoch)
            for batch in loader:
                steps.append((epoch, batch["key"].tolist()))
    except Exception as caught:  # the record says which error, for the test to check
        error = f"{type(caught).__name__}: {caught}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{accelerator.process_index}.json").write_text(
        json.dumps({"steps": steps, "error": error}))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
    close_process_group()
