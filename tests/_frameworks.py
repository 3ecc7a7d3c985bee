"""Shared by the framework jobs (``tests/_job_*.py``) and ``tests/test_integrations.py``.

Every job trains a tiny model for ``EPOCHS`` epochs (``FINETUNE`` of them at the true
frequencies) on ``WORLD_SIZE`` CPU processes started by the framework's own launcher, and each
rank writes the dataset indices of every batch it trained on, with the epoch, to
``<out>/rank<r>.json``. The test process then checks those records; nothing is checked inside the
ranks.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

COUNTS = (150, 40, 10)  # 200 items; the largest class is C * n_max / N = 2.25x over-represented
BATCH_SIZE = 8
EPOCHS, FINETUNE = 3, 1
WORLD_SIZE = 2
SEED = 7
FEATURES = 4


def make_labels() -> np.ndarray:
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    np.random.default_rng(0).shuffle(labels)
    return labels


class Points(Dataset):
    """Item ``i`` is ``(features, label, i)``; labels in ``.targets`` (found without loading)."""

    def __init__(self) -> None:
        self.targets = make_labels()
        generator = torch.Generator().manual_seed(0)
        centres = torch.randn(len(COUNTS), FEATURES, generator=generator) * 3
        self.features = centres[torch.from_numpy(self.targets)] + torch.randn(
            len(self.targets), FEATURES, generator=generator)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.features[index], int(self.targets[index]), index


class Recorder:
    """Collects ``(epoch, indices)`` per step and writes them atomically."""

    def __init__(self, out: str | os.PathLike, rank: int) -> None:
        self.path = Path(out) / f"rank{rank}.json"
        self.steps: list[tuple[int, list[int]]] = []
        self.extra: dict = {}

    def add(self, epoch: int, indices) -> None:
        self.steps.append((int(epoch), [int(i) for i in indices]))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({"steps": self.steps, **self.extra}))
        os.replace(partial, self.path)


def load_records(out: str | os.PathLike) -> list[dict]:
    return [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def by_epoch(record: dict) -> dict[int, list[list[int]]]:
    epochs: dict[int, list[list[int]]] = collections.defaultdict(list)
    for epoch, indices in record["steps"]:
        epochs[epoch].append(indices)
    return dict(epochs)


def check_epochs(records: list[dict], *, seed: int = SEED) -> None:
    """The invariants every framework run must meet, epoch by epoch, across the ranks."""
    from balancer import BalancedBatchSampler, FineTuneSchedule

    labels = make_labels()
    num_samples, num_classes, n_max = len(labels), len(COUNTS), max(COUNTS)
    largest = set(np.flatnonzero(labels == int(np.argmax(COUNTS))).tolist())
    schedule = FineTuneSchedule(EPOCHS, FINETUNE)
    ranks = [by_epoch(record) for record in records]
    assert [sorted(r) for r in ranks] == [list(range(EPOCHS))] * WORLD_SIZE, "epochs trained"
    for epoch in range(EPOCHS):
        shards = [r[epoch] for r in ranks]
        # Equal batch counts per rank (DDP's lock-step), all batches full.
        assert len({len(shard) for shard in shards}) == 1, (epoch, [len(s) for s in shards])
        assert all(len(batch) == BATCH_SIZE for shard in shards for batch in shard)
        served = collections.Counter(i for shard in shards for batch in shard for i in batch)
        total = sum(served.values())
        # The ranks' batches are exactly the plan every rank builds for this epoch, each batch
        # on one rank: no position served twice, none lost.
        for rank, shard in enumerate(shards):
            reference = BalancedBatchSampler(labels, BATCH_SIZE, seed=seed, schedule=schedule,
                                             num_replicas=WORLD_SIZE, rank=rank)
            reference.set_epoch(epoch)
            assert shard == list(reference), f"rank {rank}, epoch {epoch}: not the plan's batches"
        if schedule.phase(epoch) == "balanced":
            padding = total - num_classes * n_max
            assert 0 <= padding < WORLD_SIZE * BATCH_SIZE
            # G1: every sample of every class at least once; a largest class's samples exactly
            # once, plus at most the padding.
            assert set(served) == set(range(num_samples)), (
                f"epoch {epoch}: {num_samples - len(served)} samples never served")
            repeats = sum(served[i] - 1 for i in largest)
            assert all(served[i] >= 1 for i in largest) and repeats <= padding, (epoch, repeats)
        else:
            # One pass at the true frequencies: every sample once, plus the padding.
            padding = total - num_samples
            assert 0 <= padding < WORLD_SIZE * BATCH_SIZE
            assert set(served) == set(range(num_samples))
            assert sum(count - 1 for count in served.values()) == padding


def check_resumed(full: list[dict], first: list[dict], second: list[dict], stop: int) -> None:
    """Rank by rank: the stopped run trained the first ``stop`` steps of the full run, and the
    resumed run exactly the rest (same epochs, same batches, none repeated, none skipped)."""
    for rank in range(WORLD_SIZE):
        steps = [tuple(map(_freeze, step)) for step in full[rank]["steps"]]
        before = [tuple(map(_freeze, step)) for step in first[rank]["steps"]]
        after = [tuple(map(_freeze, step)) for step in second[rank]["steps"]]
        assert before == steps[:stop], f"rank {rank}: the stopped run is not the full run's start"
        assert len(after) == len(steps) - stop, (
            f"rank {rank}: resumed with {len(after)} steps, {len(steps) - stop} were left")
        assert after == steps[stop:], f"rank {rank}: the resumed steps are not the remaining ones"


def _freeze(value):
    return tuple(value) if isinstance(value, list) else value
