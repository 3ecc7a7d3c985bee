"""One rank of a real 2-process gloo run of the multi-label samplers (see
test_multilabel_distributed.py): builds loaders with balance(seed=None), iterates their epochs
and saves what it served."""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from _distributed import exit_rank, loopback_env, save_record
from torch.utils.data import DataLoader, Dataset

from balancer import FineTuneSchedule, balance

BATCH_SIZE = 8
EPOCHS = 3  # 2 balanced (or repeat-factor) epochs, then 1 fine-tune


def findings(num_samples: int = 300) -> list[str]:
    rng = np.random.default_rng(0)
    names = np.array(["Effusion", "Mass", "Hernia", "Nodule"])
    rates = np.array([0.3, 0.15, 0.03, 0.1])
    rows = rng.random((num_samples, 4)) < rates
    rows[0, 2] = True  # Hernia has at least one positive
    return ["|".join(names[row]) or "No Finding" for row in rows]


class Findings(Dataset):
    def __init__(self, labels: list[str]) -> None:
        self.findings = labels

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, index: int) -> int:
        return index


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(loopback_env())
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=120))
    try:
        labels = findings()
        record: dict = {}
        for plan, options in (("label-balanced", {}), ("repeat-factor", {"threshold": 0.2})):
            plain = DataLoader(Findings(labels), batch_size=BATCH_SIZE, shuffle=True)
            loader = balance(plain, "findings", sampler=plan, seed=None,
                             schedule=FineTuneSchedule(EPOCHS, 1), **options)
            sampler = loader.batch_sampler
            epochs = []
            for epoch in range(EPOCHS):
                loader.set_epoch(epoch)
                epochs.append({"len": len(loader), "batches": [b.tolist() for b in loader]})
            record[plan] = {"seed": loader.seed, "num_replicas": sampler.num_replicas,
                            "rank": sampler.rank, "epochs": epochs}
        errors = {}
        reordered = labels[::-1] if rank else labels
        for plan, options in (("label-balanced", {}), ("repeat-factor", {"threshold": 0.2})):
            try:
                balance(DataLoader(Findings(reordered), batch_size=BATCH_SIZE), "findings",
                        sampler=plan, seed=3, **options)
                errors[plan] = None
            except ValueError as error:
                errors[plan] = str(error)
        record["errors"] = errors
        save_record(record, out_dir, rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    exit_rank()
