"""Balanced training on PneumoniaMNIST, on one process or several with DistributedDataParallel.

The same script runs everywhere; the settings below can be overridden on the command line.

One process (CPU, or the first GPU):

    python examples/ddp_train.py

Two processes on this machine (gloo on CPU, NCCL on GPUs), each training on its shard of one
balanced plan:

    torchrun --nproc_per_node=2 examples/ddp_train.py

Several machines: the usual torchrun flags (--nnodes, --node_rank, --rdzv-endpoint). A quick run:

    python examples/ddp_train.py --epochs 2 --finetune-epochs 1 --limit 512

Resume after a crash or preemption: pass --checkpoint run.pt; it is saved after every epoch and
loaded at start when it exists.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import balanced_accuracy_score, recall_score
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

import balancer

# ----------------------------------------------------------------------------- settings
dataset = "pneumoniamnist"  # a shipped MedMNIST file (see balancer.SHIPPED_DATASETS)
epochs = 4  # all epochs, the fine-tune ones included
finetune_epochs = 1  # last epochs at the true class frequencies
batch_size = 128  # per process
learning_rate = 2e-3
finetune_learning_rate = 2e-4
finetune_batchnorm = "train"  # train | frozen: BatchNorm statistics in the fine-tune phase
seed = 0
limit = 0  # train on the first `limit` images only (0: all); for quick runs
num_workers = 0
checkpoint = ""  # path: saved after every epoch, resumed from when it exists
# ----------------------------------------------------------------------------- command line
SETTINGS = {k: v for k, v in dict(globals()).items()
            if not k.startswith("_") and isinstance(v, (int, float, str))}


def parse_settings() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in SETTINGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()


class SmallCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def main() -> None:
    args = parse_settings()
    distributed = "RANK" in os.environ  # set by torchrun
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device(f"cuda:{local_rank}" if backend == "nccl" else "cpu")
        if backend == "nccl":
            torch.cuda.set_device(device)
    else:
        rank, world_size = 0, 1
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    main_process = rank == 0

    def log(message: str) -> None:
        if main_process:
            print(message, flush=True)

    train_set = balancer.MedMNIST(args.dataset, "train")
    test_set = balancer.MedMNIST(args.dataset, "test")
    if args.limit:
        train_set = Subset(train_set, range(min(args.limit, len(train_set))))
    num_classes = test_set.num_classes
    channels = test_set.images.shape[1]

    schedule = balancer.FineTuneSchedule(args.epochs, args.finetune_epochs,
                                         batchnorm=args.finetune_batchnorm)
    # The one line that adds balancing. Under torchrun every rank gets its shard of one plan.
    loader = balancer.balance(
        DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                   num_workers=args.num_workers, pin_memory=device.type == "cuda"),
        schedule=schedule, seed=args.seed,
    )

    torch.manual_seed(args.seed)
    model = SmallCNN(channels, num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    log(f"{world_size} process(es) on {device}; {len(train_set)} training images, "
        f"{len(loader)} batches of {args.batch_size} per process in a balanced epoch")
    start_epoch = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        start_epoch = loader.epoch
        log(f"resumed from {args.checkpoint} at epoch {start_epoch}")
    ddp_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                        else None) if distributed else model
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(start_epoch, args.epochs):
        loader.set_epoch(epoch)
        lr = args.learning_rate if loader.phase == "balanced" else args.finetune_learning_rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        loader.train_mode(ddp_model)  # model.train(), BatchNorm per the schedule's batchnorm
        started = time.perf_counter()
        total = torch.zeros(2, device=device)  # summed loss, batches
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            loss = loss_fn(ddp_model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += torch.stack((loss.detach(), torch.ones((), device=device)))
        if distributed:
            dist.all_reduce(total)
        log(f"epoch {epoch} ({loader.phase:8s}) {int(total[1])} batches, loss "
            f"{float(total[0] / total[1].clamp(min=1)):.4f}, lr {lr:g}, "
            f"{time.perf_counter() - started:.1f} s")
        if args.checkpoint and main_process:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "loader": loader.state_dict()}, args.checkpoint)

    if main_process:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(images.to(device)).cpu() for images, _ in
                                DataLoader(test_set, batch_size=512)])
        predicted, truth = logits.argmax(1).numpy(), np.asarray(test_set.labels)
        recalls = recall_score(truth, predicted, average=None, labels=range(num_classes))
        log(f"test: accuracy {np.mean(predicted == truth):.3f}, balanced accuracy "
            f"{balanced_accuracy_score(truth, predicted):.3f}, per-class recall "
            f"{np.round(recalls, 3).tolist()}")
    if distributed:
        # The DDP wrapper's reducer holds gloo work objects: released before the group is torn
        # down, not during the interpreter's exit.
        del ddp_model
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
