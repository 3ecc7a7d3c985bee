"""Helpers for the multi-process tests: a free local port, a loopback-only environment, and the
rank function that trains a tiny DDP model through a balanced and a fine-tune epoch."""

from __future__ import annotations

import gc
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from balancer import FineTuneSchedule, balance

# Class counts per setting. "exact": C * n_max = 120 and N = 56 are whole numbers of global
# batches (4 per batch x 2 ranks), so the ranks' batches must be exactly the single-process plan.
# "padded": neither is, so ranks pad by continuing the buffers / the permutation.
COUNTS = {"exact": (40, 11, 5), "padded": (41, 11, 5)}
BATCH_SIZE = 4
FEATURES = 6
EPOCHS = 4  # 3 balanced epochs (the guarantees must hold after the first), then 1 fine-tune


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def loopback_env() -> dict[str, str]:
    """Environment keeping gloo on the loopback interface (no traffic leaves the machine)."""
    env = {"MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    if os.path.exists("/sys/class/net/lo"):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def make_labels(counts) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(labels)
    return labels


class Points(Dataset):
    """Separable points: item ``i`` is ``(features, label, i)``."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        generator = torch.Generator().manual_seed(0)
        centres = torch.randn(int(labels.max()) + 1, FEATURES, generator=generator) * 3
        noise = torch.randn(len(labels), FEATURES, generator=generator)
        self.features = centres[torch.from_numpy(labels)] + noise

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[index], int(self.labels[index]), index


def save_record(record, out_dir: str, rank: int) -> None:
    """Save a rank's record atomically: the test reads complete records only."""
    partial = Path(out_dir) / f"rank{rank}.pt.partial"
    torch.save(record, partial)
    os.replace(partial, partial.with_suffix(""))


def exit_rank() -> None:
    """Leave a finished rank without interpreter finalisation (see :func:`run_rank`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_rank(rank: int, world_size: int, port: int, out_dir: str, num_workers: int) -> None:
    """One rank: build the loaders with balance(), train DDP for 2 epochs, save what it saw.

    Teardown follows the order torch.distributed asks for: every rank reaches a barrier, the
    DDP models are released, then the process group is destroyed. On success the rank leaves
    with ``os._exit(0)``: the record is on disk by then, and skipping interpreter finalisation
    keeps gloo's background threads out of the C++ static destructors (a crash there would be
    torch's teardown, not a result of the code under test). Any exception still fails the rank.
    """
    os.environ.update(loopback_env())
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=120))
    try:
        record = train_settings(num_workers)
        save_record(record, out_dir, rank)
        dist.barrier()
    finally:
        gc.collect()
        dist.destroy_process_group()
    exit_rank()


def disagreeing_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One rank building samplers that agree, then three that do not; records the errors."""
    os.environ.update(loopback_env())
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=60))
    from balancer import BalancedBatchSampler

    labels = make_labels((40, 11, 5))
    cases = {
        "agree": dict(labels=labels, seed=3),
        "seed=rank": dict(labels=labels, seed=rank),
        "reordered": dict(labels=labels[::-1].copy() if rank else labels, seed=3),
        "shorter": dict(labels=labels[:-3] if rank else labels, seed=3),
    }
    errors = {}
    try:
        for name, kwargs in cases.items():
            try:
                BalancedBatchSampler(kwargs["labels"], BATCH_SIZE, seed=kwargs["seed"])
                errors[name] = None
            except ValueError as error:
                errors[name] = str(error)
        save_record(errors, out_dir, rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    exit_rank()


def train_settings(num_workers: int) -> dict:
    """Train one DDP model per class-count setting; return what each epoch's loader served."""
    record: dict = {}
    for setting, counts in COUNTS.items():
        dataset = Points(make_labels(counts))
        schedule = FineTuneSchedule(total_epochs=EPOCHS, finetune_epochs=1)
        plain = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True,
                           num_workers=num_workers, persistent_workers=num_workers > 0)
        loader = balance(plain, schedule=schedule, seed=None)  # rank 0's seed, broadcast
        torch.manual_seed(0)  # the same initial weights on every rank (DDP also syncs them)
        model = DistributedDataParallel(nn.Linear(FEATURES, len(counts)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        epochs = []
        for epoch in range(schedule.total_epochs):
            loader.set_epoch(epoch)
            batches, losses = [], []
            for features, targets, indices in loader:
                loss = nn.functional.cross_entropy(model(features), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                batches.append(indices.tolist())
                losses.append(loss.item())
            epochs.append({"phase": loader.phase, "len": len(loader), "batches": batches,
                           "losses": losses})
        record[setting] = {
            "seed": loader.seed, "num_replicas": loader.batch_sampler.num_replicas,
            "rank": loader.batch_sampler.rank, "epochs": epochs,
            "weights": [p.detach().clone() for p in model.module.parameters()],
        }
        del model, optimizer, loader, plain  # release the DDP reducer before the next setting
    return record
