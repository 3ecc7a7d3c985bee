"""A training job that can stop after a given step and resume from its checkpoint.

Run by ``test_resume.py`` as a real process: ``python _resume_job.py --out seen.pt
--checkpoint ckpt.pt [--stop-after K] [--num-workers W]``. With an existing checkpoint it resumes
from it; with ``--stop-after K`` it saves a checkpoint after its K-th step and exits. It writes the
batches it trained on and the final weights to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from balancer import FineTuneSchedule, balance

COUNTS = (45, 12, 6)
BATCH_SIZE = 6
EPOCHS, FINETUNE_EPOCHS = 3, 1


class Points(Dataset):
    def __init__(self) -> None:
        self.targets = np.repeat(np.arange(len(COUNTS)), COUNTS)
        np.random.default_rng(1).shuffle(self.targets)
        generator = torch.Generator().manual_seed(1)
        centres = torch.randn(len(COUNTS), 5, generator=generator)
        self.features = centres[torch.from_numpy(self.targets)] + torch.randn(
            len(self.targets), 5, generator=generator)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.features[index], int(self.targets[index]), index


def train(out: str, checkpoint: str, stop_after: int | None = None, num_workers: int = 0) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Linear(5, len(COUNTS))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = FineTuneSchedule(EPOCHS, FINETUNE_EPOCHS)
    loader = balance(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True,
                                num_workers=num_workers), schedule=schedule, seed=3)

    # The save/load lines the README documents.
    start_epoch, step = 0, 0
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        start_epoch, step = loader.epoch, state["step"]

    seen = []
    for epoch in range(start_epoch, schedule.total_epochs):
        loader.set_epoch(epoch)
        for features, targets, indices in loader:
            loss = nn.functional.cross_entropy(model(features), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append((epoch, indices.tolist()))
            step += 1
            if step == stop_after:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "loader": loader.state_dict(), "step": step}, checkpoint)
                torch.save({"seen": seen, "weights": None}, out)
                return
    torch.save({"seen": seen, "weights": model.state_dict()}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args()
    train(args.out, args.checkpoint, args.stop_after, args.num_workers)
    sys.exit(0)
